"""Worker processes: `WorkerProcess`, a local process started with multiprocessing's `spawn` (a process
that has started JAX must not fork), JAX on CPU inside, that builds one object from a recipe and calls
its methods in order; and the processes backend (`--actor_backend=processes`), one such worker per
actor. (`eval_process.py` runs the dev evaluation in one too.)

A worker has two pipes. Requests, in order: the recipe (sent before anything else), then method calls,
each with or without a reply (an actor's parameters are sent without one, once per version it samples
with; its batch and state requests get one). Replies come back in the same order, or the traceback of
the exception that ended the worker. The worker hands replies to a sender thread, so it goes on with
the next request while the learner has not read the last reply yet; how far an actor runs ahead is
bounded by the `ActorThread` that requests at most `queue_size` unconsumed batches.

A worker that dies (an exception, a signal, kill -9) is seen within one poll: replies are awaited with a
timeout and the process's exit code is looked at in between, and a pipe cut in the middle of a message
reads as end of file, never as a hang. The learner's process holds the only write end of a worker's
request pipe, so a worker ends when it is stopped and also when the learner's process dies.
"""

from __future__ import annotations

import collections
import contextlib
import multiprocessing
import os
import queue
import signal
import threading
import traceback
from multiprocessing.connection import Connection
from typing import Any, Callable, Deque, Iterator, Optional, Tuple

from mapo_jax.errors import TrainingFailed
from mapo_jax.training.remote_pool import ActorRecipe, Published, RemoteActor, RemoteBackend, Reply

POLL_S = 0.05  # how often a process waiting for a reply looks at the worker's exit code
LOST_JOIN_S = 5.0  # how long a cut pipe waits for the exit code (1 s was once too short on a loaded machine)
STOP_GRACE_S = 2.0  # a stopped worker ends at its next request; after this it is killed
# Workers are about one per core, so each runs XLA on one thread. XLA on CPU sizes its thread pool by
# the cores it sees (NPROC overrides that); with the default pool every worker spread its matrix
# products over all cores, and two workers on two cores made 1.3x the batches of one, not 2x.
# `--xla_cpu_multi_thread_eigen=false` alone still left a pool as large as the machine.
WORKER_XLA_THREADS = 1
WORKER_XLA_FLAGS = "--xla_cpu_multi_thread_eigen=false"
_ENVIRON_LOCK = threading.Lock()


def worker_env(inherited_xla_flags: str = "") -> dict:
    """Environment variables of a worker (a process or a Ray actor): JAX on CPU (an accelerator stays
    the learner's), XLA on `WORKER_XLA_THREADS` threads. Read when the worker imports jax."""
    return {"JAX_PLATFORMS": "cpu", "NPROC": str(WORKER_XLA_THREADS),
            "XLA_FLAGS": f"{inherited_xla_flags} {WORKER_XLA_FLAGS}".strip()}


@contextlib.contextmanager
def worker_environment() -> Iterator[None]:
    """This process's environment set to `worker_env` while a worker is spawned (it inherits it)."""
    changes = worker_env(os.environ.get("XLA_FLAGS", ""))
    with _ENVIRON_LOCK, _ctrl_c_ignored():
        saved = {name: os.environ.get(name) for name in changes}
        os.environ.update(changes)
        try:
            yield
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


@contextlib.contextmanager
def _ctrl_c_ignored() -> Iterator[None]:
    """A worker spawned meanwhile inherits an ignored SIGINT: Ctrl-C reaches the whole foreground
    process group, and the learner answers it by writing a checkpoint, which needs its workers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


# ------------------------------------------------------------------------------------------ worker side


def worker_main(requests: Connection, replies: Connection) -> None:
    """A worker process's entry point: serves requests in order until the request pipe closes (a stop,
    or the process that started it is gone). A failure is sent back with its traceback, then it ends."""
    outbox: "queue.Queue[Optional[tuple]]" = queue.Queue()
    sender = threading.Thread(target=_send_replies, args=(outbox, replies), name="replies", daemon=True)
    sender.start()
    try:
        serve(requests, outbox.put)
    except BaseException:
        outbox.put(("error", traceback.format_exc()))
    outbox.put(None)
    sender.join()


def _send_replies(outbox: "queue.Queue[Optional[tuple]]", replies: Connection) -> None:
    while (message := outbox.get()) is not None:
        try:
            replies.send(message)
        except OSError:  # the other end is closed: nobody waits for replies any more
            return


def serve(requests: Connection, reply: Callable[[tuple], None]) -> None:
    """Builds the host object from the first request (`recipe.build()`), then calls its methods in order,
    replying with the result when the request asks for it."""
    try:
        host = requests.recv().build()
        while True:
            wants_reply, method, args = requests.recv()
            result = getattr(host, method)(*args)
            if wants_reply:
                reply(("ok", result))
    except EOFError:
        return


# ------------------------------------------------------------------------------------ caller side


def exit_reason(exitcode: Optional[int]) -> str:
    if exitcode is None:
        return "no exit code yet (its pipe was cut)"
    if exitcode < 0:
        return f"killed by signal {signal.Signals(-exitcode).name}"
    return f"exit code {exitcode}"


class WorkerProcess:
    """The handle on one worker process: requests go down one pipe, replies come up the other and are
    matched to the requests in order. `role` names the worker in errors ("actor 0", "the evaluator")."""

    def __init__(self, role: str, recipe, context):
        self.role = role
        self._recipe = recipe  # sent before the first request
        self._worker_requests, self._requests = context.Pipe(duplex=False)
        self._replies, self._worker_replies = context.Pipe(duplex=False)
        self._process = context.Process(target=worker_main, args=(self._worker_requests, self._worker_replies),
                                        name=f"mapo-{role.replace(' ', '-')}", daemon=True)
        self._awaited: Deque[Reply] = collections.deque()
        self._lock = threading.Lock()
        self._stopped = False

    @property
    def pid(self) -> Optional[int]:
        return self._process.pid

    def start(self) -> None:
        with worker_environment():
            self._process.start()
        self._worker_requests.close()  # the worker holds its own ends; ours would hide its death
        self._worker_replies.close()

    def call(self, method: str, *args) -> Reply:
        """Asks the worker's object for `method(*args)`; its `Reply` comes in order."""
        with self._lock:
            reply = Reply()
            self._awaited.append(reply)  # before the send: the reply may come at once
            self._send((True, method, args))
            return reply

    def notify(self, method: str, *args) -> None:
        """Has the worker's object run `method(*args)` before later requests, without a reply."""
        with self._lock:
            self._send((False, method, args))

    def wait(self, reply: Reply, check: Callable[[], None]) -> Any:
        """`reply`'s value once received; `check()` runs every poll (it raises to abort)."""
        while not reply.done:
            if not self._receive(POLL_S):
                self.raise_if_lost()
                check()
        return reply.value

    def raise_if_lost(self) -> None:
        if self._stopped or self._process.exitcode is None:
            return
        while self._receive(0):  # what it sent before it ended: an error brings its traceback
            pass
        raise TrainingFailed(self._lost())

    def stop(self) -> None:
        """Closing the pipes ends the worker at its next request; one busy for longer is killed."""
        self._stopped = True
        self._requests.close()
        self._replies.close()
        if self._process.pid is None:
            return
        self._process.join(STOP_GRACE_S)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()

    def _send(self, message: tuple) -> None:
        try:
            if self._recipe is not None:
                self._requests.send(self._recipe)
                self._recipe = None
            self._requests.send(message)
        except OSError:
            raise TrainingFailed(self._lost()) from None

    def _receive(self, timeout: float) -> bool:
        """Takes the next reply if one comes within `timeout`; False if none did."""
        try:
            if not self._replies.poll(timeout):
                return False
            kind, payload = self._replies.recv()
        except (EOFError, OSError):
            raise TrainingFailed(self._lost()) from None
        if kind == "error":
            raise TrainingFailed(f"{self.role} failed in its worker process (pid {self.pid}):\n{payload}")
        self._awaited.popleft().set(payload)
        return True

    def _lost(self) -> str:
        self._process.join(LOST_JOIN_S)  # a cut pipe comes a moment before the exit code
        return f"{self.role}'s worker process (pid {self.pid}) died: {exit_reason(self._process.exitcode)}"


def spawn_context():
    return multiprocessing.get_context("spawn")


# ------------------------------------------------------------------------------- the actor backend


class ProcessActor(RemoteActor):
    """An actor in a worker process. Only its `ActorThread` requests batches, so the version the
    worker holds is known here: each version is sent once."""

    def __init__(self, recipe: ActorRecipe, context):
        self.index = recipe.index
        self.worker = WorkerProcess(f"actor {recipe.index}", recipe, context)
        self._sent_version: Optional[int] = None

    def start(self) -> None:
        self.worker.start()

    def make_batch(self, published: Published) -> Tuple[Reply, None]:
        if published.version != self._sent_version:
            self.worker.notify("hold_params", published.version, published.shared())
            self._sent_version = published.version
        return self.worker.call("make_batch_with", published.version), None

    def wait(self, reply: Reply, check: Callable[[], None]):
        return self.worker.wait(reply, check)

    def state_dict(self) -> tuple:
        return self.worker.wait(self.worker.call("state_dict"), check=lambda: None)

    def raise_if_lost(self) -> None:
        self.worker.raise_if_lost()

    def stop(self) -> None:
        self.worker.stop()


class ProcessBackend(RemoteBackend):
    """Actors in local worker processes; parameters travel as host arrays, once per version and worker."""

    def __init__(self):
        self._context = spawn_context()

    def actor(self, recipe: ActorRecipe) -> ProcessActor:
        return ProcessActor(recipe, self._context)

    def share(self, host_params):
        return host_params
