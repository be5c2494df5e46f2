"""The Ray backend (`--actor_backend=ray`): one Ray actor per actor, on a local Ray instance or on the
cluster at `--ray_address`. Imported only when asked for: the other backends never load Ray.

Each parameter version goes into the object store once (`ray.put`, by the first actor that samples
with it) and every actor's `make_batch` call gets its reference, so a node fetches it once. Calls to
one Ray actor run in the order they were made, so its replies are in step order and its state, asked
for while the pool is paused, follows every batch requested before; at most `queue_size` batch calls
per actor are unconsumed (the `ActorThread`'s bounded queue). A Ray actor that is lost (killed, its
node gone) fails the run with `TrainingFailed` as soon as the learner waits on it.

On a cluster every node needs this package installed (or a `runtime_env` that ships it) and a CPU free
per actor; the workers run JAX on CPU.
"""

from __future__ import annotations

import collections
import os
import warnings
from typing import Callable, Deque, Tuple

import ray

from mapo_jax.config import TrainConfig
from mapo_jax.errors import TrainingFailed
from mapo_jax.training.process_pool import worker_env
from mapo_jax.training.remote_pool import ActorHost, ActorRecipe, Published, RemoteActor, RemoteBackend, Reply

POLL_S = 0.05  # how often a learner waiting for a batch checks the run's other roles
OBJECT_STORE_BYTES = 256 * 1024 ** 2  # a local instance's object store: parameters and batches in flight
RemoteActorHost = ray.remote(ActorHost)


class RayActor(RemoteActor):
    """The handle on one Ray actor; its pending calls are kept in order, so a lost actor is noticed
    even while the learner waits on another one."""

    def __init__(self, recipe: ActorRecipe):
        self.index = recipe.index
        self._recipe = recipe
        self._handle = None
        self._awaited: Deque[Reply] = collections.deque()

    def start(self) -> None:
        options = dict(num_cpus=1, max_restarts=0, runtime_env={"env_vars": worker_env()})
        self._handle = RemoteActorHost.options(name=f"mapo-actor-{self.index}-{os.getpid()}-{id(self)}",
                                               **options).remote(self._recipe)
        self._recipe = None

    def make_batch(self, published: Published) -> Tuple[Reply, None]:
        reply = Reply(self._handle.make_batch.remote(published.shared()))
        self._awaited.append(reply)
        return reply, None

    def state_dict(self) -> tuple:
        reply = Reply(self._handle.state_dict.remote())
        self._awaited.append(reply)
        return self.wait(reply, check=lambda: None)

    def wait(self, reply: Reply, check: Callable[[], None]):
        while not reply.done:
            ready, _ = ray.wait([reply.ticket], timeout=POLL_S)
            if ready:
                self._receive(reply)
            else:
                self.raise_if_lost()
                check()
        return reply.value

    def raise_if_lost(self) -> None:
        """Receives the oldest pending call if it has ended: a failure raises."""
        if self._awaited and ray.wait([self._awaited[0].ticket], timeout=0)[0]:
            self._receive(self._awaited[0])

    def stop(self) -> None:
        if self._handle is not None:
            ray.kill(self._handle)

    def _receive(self, reply: Reply) -> None:
        try:
            reply.set(ray.get(reply.ticket))
        except ray.exceptions.RayActorError as error:
            raise TrainingFailed(f"actor {self.index}'s Ray actor was lost ({type(error).__name__}): {error}") from None
        except ray.exceptions.RayTaskError as error:
            raise TrainingFailed(f"actor {self.index} failed in its Ray actor:\n{error}") from None
        except ray.exceptions.RayError as error:
            raise TrainingFailed(f"actor {self.index}'s reply was lost by Ray ({type(error).__name__}): "
                                 f"{error}") from None
        while self._awaited and self._awaited[0].done:  # calls end in order: keep only pending ones
            self._awaited.popleft()


class RayBackend(RemoteBackend):
    """Ray actors on the instance this process is connected to; if it is connected to none, on the
    cluster at `cfg.ray_address`, or on a local instance started here (and shut down at the end)."""

    def __init__(self, cfg: TrainConfig):
        self._started_here = not ray.is_initialized()
        if not self._started_here:
            return
        with warnings.catch_warnings():  # JAX warns of any fork; Ray's fork is followed by exec at once
            warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning)
            if cfg.ray_address:
                ray.init(address=cfg.ray_address)
            else:
                ray.init(num_cpus=cfg.n_actors, include_dashboard=False, object_store_memory=OBJECT_STORE_BYTES)

    def actor(self, recipe: ActorRecipe) -> RayActor:
        return RayActor(recipe)

    def share(self, host_params):
        return ray.put(host_params)

    def close(self) -> None:
        if self._started_here:
            ray.shutdown()
