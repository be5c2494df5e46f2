"""The actor pool: the learner loop's one view of the actors, whatever runs them
(docs/architecture.md#actors-and-learner).

The learner publishes parameter versions, takes batch s (made by actor s mod N), and for a checkpoint
pauses the pool and collects every actor's state with the batches it has queued. `ActorPool` is that
interface; `create_actor_pool` picks its implementation from `--actor_backend`: `ThreadActorPool`
(actors as threads of this process, here) or `remote_pool.RemoteActorPool` (actors in local worker
processes or Ray actors). Nothing the learner calls assumes threads.
"""

from __future__ import annotations

import abc
import contextlib
import threading
from typing import Any, Callable, Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple

import jax
import numpy as np

from mapo_jax.acting import Actor, ActorStats, ActorThread, BatchQueue, ParameterServer
from mapo_jax.buffer import MemoryBuffer
from mapo_jax.config import ProgramConfig, TrainConfig
from mapo_jax.env import QAEnvironment
from mapo_jax.errors import TrainingFailed, UserInputError
from mapo_jax.learning import LearnerBatch

JOIN_TIMEOUT_S = 60  # an actor in the middle of a batch finishes it before it sees the stop


class ActorState(NamedTuple):
    """One actor's checkpointed state: plain data, so any kind of pool can save and restore it."""

    actor: dict  # `Actor.state_dict()[0]`: epoch order and position, RNG states, buffer programs
    bloom: Dict[str, np.ndarray]  # its Bloom filter's arrays
    next_step: int  # the learner step of the next batch it makes
    queued: List[tuple]  # (step, LearnerBatch, ActorStats) made but not consumed yet, oldest first


class PoolState(NamedTuple):
    """What a checkpoint saves of a paused pool."""

    actors: List[ActorState]
    policy_versions: Dict[int, Any]  # parameters by version that actors may still sample with


class ActorOutput(NamedTuple):
    actor: int  # the index of the actor that made the batch
    batch: LearnerBatch
    stats: ActorStats


class ActorPool(abc.ABC):
    """Actors making learner batches from published parameter versions (batch s: actor s mod N).

    A pool reports a failed actor by raising `TrainingFailed` with the actor's traceback from
    `next_batch` (while it waits) and from `raise_if_failed`.
    """

    n_actors: int

    @abc.abstractmethod
    def publish(self, version: int, params) -> None:
        """Makes the learner's parameters of step `version` available to the actors."""

    @abc.abstractmethod
    def start(self) -> None:
        """Starts making batches (after the first `publish`)."""

    @abc.abstractmethod
    def next_batch(self, step: int, while_waiting: Callable[[], None]) -> ActorOutput:
        """The batch of learner step `step`; `while_waiting()` runs every poll until it is ready (it
        raises to abort the wait)."""

    @abc.abstractmethod
    def pause(self) -> None:
        """Returns once every actor sits between batches, so `collect()` sees a consistent state."""

    @abc.abstractmethod
    def collect(self) -> PoolState:
        """Every actor's state and queued batches, and the parameter versions still needed (paused)."""

    @abc.abstractmethod
    def resume(self) -> None:
        """Lets paused actors go on."""

    @abc.abstractmethod
    def queue_depth(self) -> int:
        """Batches made and not consumed yet (a metric)."""

    @abc.abstractmethod
    def raise_if_failed(self) -> None:
        """Raises `TrainingFailed` with the traceback of an actor that failed."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Stops the actors; batches not consumed are dropped (a checkpoint holds them)."""

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        self.pause()
        try:
            yield
        finally:
            self.resume()


def shards(envs: Sequence[QAEnvironment], n_actors: int) -> List[List[QAEnvironment]]:
    """Actor i owns questions i, i + N, i + 2N, ..."""
    parts = [list(envs[i::n_actors]) for i in range(n_actors)]
    if any(not part for part in parts):
        raise UserInputError(f"{n_actors} actors for {len(envs)} training questions: use fewer actors")
    return parts


def shard_buffer(buffer: MemoryBuffer, envs: Sequence[QAEnvironment]) -> MemoryBuffer:
    """The part of a (warm-start) buffer that holds the programs of `envs`."""
    shard = MemoryBuffer()
    for env in envs:
        for trajectory in buffer.trajectories(env.example.id):
            shard.add(env.example.id, trajectory)
    return shard


def actor_settings(index: int, cfg: TrainConfig, n_devices: int) -> dict:
    """`Actor` keyword arguments of actor `index`, wherever it runs: its seed depends on the index, so
    the number of actors is part of what a seed means; its rows fit the learner's `n_devices`."""
    return dict(objective=cfg.objective, questions_per_step=cfg.questions_per_step,
                systematic_exploration=cfg.systematic_exploration, seed=cfg.seed * 1000 + index,
                bloom_capacity=max(1, cfg.bloom_capacity // cfg.n_actors), n_devices=n_devices,
                outside_draw_weight=cfg.outside_draw_weight)


def make_actor(index: int, envs: Sequence[QAEnvironment], s, cfg: TrainConfig,
               buffer: Optional[MemoryBuffer]) -> Actor:
    """Actor `index` of the run, on its shard `envs` (`s`: the run's `preparation.Setup`)."""
    return Actor(envs, s.featurizer, s.model_config, buffer=shard_buffer(buffer, envs) if buffer is not None else None,
                 **actor_settings(index, cfg, jax.local_device_count()))


def starting_points(cfg: TrainConfig, start_step: int,
                    restored: Optional[Sequence[ActorState]]) -> List[Tuple[int, List[tuple]]]:
    """(next step, queued batches) of every actor: a restored actor's own, else actor i's first step
    s >= start_step with s mod N = i and an empty queue."""
    if restored is not None:
        return [(state.next_step, list(state.queued)) for state in restored]
    return [(start_step + (index - start_step) % cfg.n_actors, []) for index in range(cfg.n_actors)]


def restored_line(n_actors: int, buffer_programs: int, queued_batches: int) -> str:
    return (f"[train] restored {n_actors} actors: {buffer_programs} buffer programs, "
            f"{queued_batches} queued batches")


def create_actor_pool(s, cfg: TrainConfig, program: ProgramConfig, start_step: int, buffer: Optional[MemoryBuffer],
                      restored: Optional[Sequence[ActorState]], log) -> ActorPool:
    """The pool `cfg.actor_backend` names. Every backend makes the same batches from the same state, so
    a run may resume with another backend (`restored`: the actors' states from a checkpoint)."""
    if cfg.actor_backend == "threads":
        return ThreadActorPool.create(s, cfg, start_step, buffer, restored, log)
    from mapo_jax.training.remote_pool import RemoteActorPool

    return RemoteActorPool.create(s, cfg, program, start_step, buffer, restored, log)


class ThreadActorPool(ActorPool):
    """One `ActorThread` per actor, each with its bounded queue; one `ParameterServer` for all."""

    def __init__(self, actors: Sequence[Actor], next_steps: Sequence[int], queued: Sequence[Sequence[tuple]],
                 cfg: TrainConfig):
        self.n_actors = len(actors)
        self._server = ParameterServer(cfg.publish_every, cfg.policy_lag)
        self._stop = threading.Event()
        self._threads: List[ActorThread] = []
        for index, (actor, next_step, items) in enumerate(zip(actors, next_steps, queued)):
            queue = BatchQueue(cfg.queue_size)
            for item in items:
                queue.put(item)
            self._threads.append(ActorThread(actor, index, self.n_actors, next_step, self._server, queue, self._stop))

    @classmethod
    def create(cls, s, cfg: TrainConfig, start_step: int, buffer: Optional[MemoryBuffer],
               restored: Optional[Sequence[ActorState]], log) -> "ThreadActorPool":
        """A new run's actors start from the warm-start `buffer`; a resumed run's from their states."""
        actors = []
        for index, envs in enumerate(shards(s.train_envs, cfg.n_actors)):
            actor = make_actor(index, envs, s, cfg, buffer)
            if restored is not None:
                actor.load_state_dict(restored[index].actor, restored[index].bloom)
            actors.append(actor)
        next_steps, queued = zip(*starting_points(cfg, start_step, restored))
        pool = cls(actors, next_steps, queued, cfg)
        if restored is not None:
            log(restored_line(pool.n_actors, sum(len(a.buffer) for a in actors), pool.queue_depth()))
        return pool

    def publish(self, version: int, params) -> None:
        self._server.publish(version, params)

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def next_batch(self, step: int, while_waiting: Callable[[], None]) -> ActorOutput:
        thread = self._threads[step % self.n_actors]

        def check() -> None:
            self.raise_if_failed()
            while_waiting()

        batch_step, batch, stats = self._received(thread, thread.queue.get(check), check)
        if batch_step != step:
            raise TrainingFailed(f"actor {thread.index} sent the batch of step {batch_step} at step {step}")
        return ActorOutput(thread.index, batch, stats)

    def pause(self) -> None:
        for thread in self._threads:
            thread.pause()

    def collect(self) -> PoolState:
        actors = []
        for thread in self._threads:
            queued = [self._received(thread, item, self.raise_if_failed) for item in thread.queue.snapshot()]
            state, bloom = thread.actor.state_dict()
            actors.append(ActorState(state, bloom, thread.next_step, queued))
        return PoolState(actors, self._server.snapshot())

    def _received(self, thread: ActorThread, item: tuple, check: Callable[[], None]) -> tuple:
        """A queued item as (step, batch, stats): here the batch itself (a remote pool's queue holds
        replies still to be received)."""
        return item

    def resume(self) -> None:
        for thread in self._threads:
            thread.resume()

    def queue_depth(self) -> int:
        return sum(len(thread.queue) for thread in self._threads)

    def raise_if_failed(self) -> None:
        for thread in self._threads:
            if thread.error is not None:
                raise TrainingFailed(f"actor {thread.index} failed:\n{thread.error}")

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            if thread.ident is not None:  # started
                thread.join(timeout=JOIN_TIMEOUT_S)
