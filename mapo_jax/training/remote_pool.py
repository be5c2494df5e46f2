"""Actors outside the learner's process: the part the processes and Ray backends share
(docs/architecture.md#actors-and-learner).

Each actor lives in a worker (a local process or a Ray actor) that rebuilds it from an `ActorRecipe`:
its shard's questions and tables, the vocabulary, the program and model settings and the actor's state
(`Actor.state_dict()`, the same plain data a checkpoint holds), so a worker's actor continues exactly
where the learner's process would. In the learner's process an `ActorThread` drives each actor through
a `RemoteActor` handle and runs the very loop of the thread pool (wait for room, get the parameters of
version `policy_version(s)`, make batch s); the handle's `make_batch` only sends the request and
returns a `Reply`, which waits in the bounded queue until the learner takes the batch. A worker serves
requests in order, so its replies come back in step order and its state, asked for while the pool is
paused, follows every batch requested before.
"""

from __future__ import annotations

import abc
import threading
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

import jax

from mapo_jax.acting import Actor
from mapo_jax.buffer import MemoryBuffer
from mapo_jax.config import ModelConfig, ProgramConfig, TrainConfig
from mapo_jax.data.example import Dataset
from mapo_jax.env import QAEnvironment
from mapo_jax.training.actor_pool import (ActorState, PoolState, ThreadActorPool, actor_settings, make_actor,
                                          restored_line, shards, starting_points)


class ActorRecipe(NamedTuple):
    """What a worker needs to rebuild actor `index` exactly: plain, picklable data."""

    index: int
    examples: list  # the shard's `Example`s, in shard order
    tables: Dict[str, Any]  # the tables they ask about, by name
    program: ProgramConfig
    vocab: dict  # `EncoderVocab.to_json()`
    glove_file: Optional[str]  # the word vectors (`TrainConfig.glove_file`), loaded by the worker
    model_config: ModelConfig
    settings: dict  # `Actor` keyword arguments (`actor_pool.actor_settings`)
    state: dict  # `Actor.state_dict()`: positions, RNGs, buffer programs
    bloom: Dict[str, Any]  # its Bloom filter's arrays

    def build(self) -> "ActorHost":
        return ActorHost(self)


def questions_and_tables(envs: Sequence[QAEnvironment]) -> Tuple[list, Dict[str, Any]]:
    """The `Example`s of `envs` and their tables by name: what a worker rebuilds the environments from."""
    return [env.example for env in envs], {env.example.table: env.context.view.table for env in envs}


def actor_recipes(s, cfg: TrainConfig, program: ProgramConfig, buffer: Optional[MemoryBuffer],
                  restored: Optional[Sequence[ActorState]]) -> List[ActorRecipe]:
    """Every actor's recipe: a restored actor's checkpointed state, a new one's as `make_actor` builds it
    here (warm-start buffer shard, seeded generators), so both backends start from the same state."""
    recipes = []
    for index, envs in enumerate(shards(s.train_envs, cfg.n_actors)):
        if restored is not None:
            state, bloom = restored[index].actor, restored[index].bloom
        else:
            state, bloom = make_actor(index, envs, s, cfg, buffer).state_dict()
        examples, tables = questions_and_tables(envs)
        recipes.append(ActorRecipe(index, examples, tables, program, s.vocab.to_json(), cfg.glove_file,
                                   s.model_config, actor_settings(index, cfg, jax.local_device_count()), state, bloom))
    return recipes


def build_actor(recipe: ActorRecipe) -> Actor:
    """The actor of `recipe`, rebuilt in a worker: environments, featurizer and state."""
    from mapo_jax.data.embeddings import load_glove
    from mapo_jax.data.vocab import EncoderVocab
    from mapo_jax.training.preparation import make_featurizer, training_environments

    envs = training_environments(Dataset("shard", "train", recipe.tables, recipe.examples), recipe.program)
    featurizer = make_featurizer(EncoderVocab.from_json(recipe.vocab), load_glove(recipe.glove_file), recipe.program)
    actor = Actor(envs, featurizer, recipe.model_config, **recipe.settings)
    actor.load_state_dict(recipe.state, recipe.bloom)
    return actor


class ActorHost:
    """A worker's side of one actor: built from its recipe, it makes batches and reports its state."""

    def __init__(self, recipe: ActorRecipe):
        self.actor = build_actor(recipe)
        self._held: Tuple[Optional[int], Any] = (None, None)

    def make_batch(self, params) -> tuple:
        """A batch sampled with `params`, put on the device once: host arrays (as both backends send
        them) would be converted at every one of the batch's policy calls."""
        return self.actor.make_batch(jax.device_put(params))

    def hold_params(self, version: int, params) -> None:
        """Keeps a parameter version for the batch requests that name it (it is sent once)."""
        self._held = (version, jax.device_put(params))

    def make_batch_with(self, version: int) -> tuple:
        held, params = self._held
        if held != version:
            raise RuntimeError(f"asked for a batch of parameter version {version}, holding version {held}")
        return self.make_batch(params)

    def state_dict(self) -> tuple:
        return self.actor.state_dict()


class Reply:
    """What a worker owes for one request (`ticket`: how its backend finds it); `value` once received."""

    __slots__ = ("ticket", "value", "done")

    def __init__(self, ticket=None):
        self.ticket, self.value, self.done = ticket, None, False

    @classmethod
    def of(cls, value) -> "Reply":
        """A reply already received (a batch restored from a checkpoint)."""
        reply = cls()
        reply.set(value)
        return reply

    def set(self, value) -> None:
        self.value, self.done = value, True


class Published:
    """One parameter version as the learner published it, and its form for the workers (host arrays, or
    a Ray object reference): made once, by the first actor that needs it, outside the learner's thread."""

    def __init__(self, version: int, params, share: Callable[[Any], Any]):
        self.version, self.params, self._share = version, params, share
        self._shared = None
        self._lock = threading.Lock()

    def shared(self):
        with self._lock:
            if self._shared is None:
                self._shared = self._share(jax.device_get(self.params))
            return self._shared


class RemoteActor(abc.ABC):
    """The learner process's handle on an actor in a worker. Requests are served in order."""

    index: int

    @abc.abstractmethod
    def start(self) -> None:
        """Starts the worker (it builds its actor while the first requests wait)."""

    @abc.abstractmethod
    def make_batch(self, published: Published) -> Tuple[Reply, None]:
        """Requests the next batch sampled with `published` and returns at once: (its reply, None), in
        the place of `Actor.make_batch`'s (batch, stats)."""

    @abc.abstractmethod
    def wait(self, reply: Reply, check: Callable[[], None]) -> Any:
        """`reply`'s value, once received; `check()` runs every poll (it raises to abort). Raises
        `TrainingFailed` when the worker failed or is gone."""

    @abc.abstractmethod
    def state_dict(self) -> tuple:
        """`Actor.state_dict()` after every batch requested so far."""

    @abc.abstractmethod
    def raise_if_lost(self) -> None:
        """Raises `TrainingFailed` when the worker failed or is gone."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Ends the worker; requests not served are dropped."""


class RemoteBackend(abc.ABC):
    """Where workers run: makes their handles, shares parameters with them, and cleans up."""

    @abc.abstractmethod
    def actor(self, recipe: ActorRecipe) -> RemoteActor:
        """The handle of the worker for `recipe` (not started)."""

    @abc.abstractmethod
    def share(self, host_params) -> Any:
        """Parameters (host arrays) in the form the workers receive them."""

    def close(self) -> None:
        """Called once every worker is stopped."""


def remote_backend(cfg: TrainConfig) -> RemoteBackend:
    """The backend `cfg.actor_backend` names; Ray is imported only when asked for."""
    if cfg.actor_backend == "processes":
        from mapo_jax.training.process_pool import ProcessBackend

        return ProcessBackend()
    if cfg.actor_backend == "ray":
        from mapo_jax.training.ray_pool import RayBackend

        return RayBackend(cfg)
    raise ValueError(f"no remote actors for backend {cfg.actor_backend!r}")


class RemoteActorPool(ThreadActorPool):
    """Actors in workers, each driven by an `ActorThread` of this process around its `RemoteActor`:
    the thread pool's loop, versions and bounded queues, whose items are replies still to receive."""

    def __init__(self, handles: Sequence[RemoteActor], next_steps: Sequence[int], queued: Sequence[Sequence[tuple]],
                 cfg: TrainConfig, backend: RemoteBackend):
        received = [[(step, Reply.of((batch, stats)), None) for step, batch, stats in items] for items in queued]
        super().__init__(handles, next_steps, received, cfg)
        self._handles = list(handles)
        self._backend = backend

    @classmethod
    def create(cls, s, cfg: TrainConfig, program: ProgramConfig, start_step: int, buffer: Optional[MemoryBuffer],
               restored: Optional[Sequence[ActorState]], log) -> "RemoteActorPool":
        """Like `ThreadActorPool.create`: a new run's actors start from the warm-start `buffer`, a resumed
        run's from their checkpointed states; here each goes to its worker as a recipe."""
        recipes = actor_recipes(s, cfg, program, buffer, restored)
        backend = remote_backend(cfg)
        next_steps, queued = zip(*starting_points(cfg, start_step, restored))
        pool = cls([backend.actor(recipe) for recipe in recipes], next_steps, queued, cfg, backend)
        if restored is not None:
            programs = sum(len(found) for recipe in recipes for found in recipe.state["buffer"].values())
            log(restored_line(pool.n_actors, programs, pool.queue_depth()))
        return pool

    def publish(self, version: int, params) -> None:
        super().publish(version, Published(version, params, self._backend.share))

    def start(self) -> None:
        for handle in self._handles:
            handle.start()
        super().start()

    def collect(self) -> PoolState:
        state = super().collect()
        return PoolState(state.actors, {version: p.params for version, p in state.policy_versions.items()})

    def raise_if_failed(self) -> None:
        for handle in self._handles:  # first: a lost worker also fails the thread that drives it
            handle.raise_if_lost()
        super().raise_if_failed()

    def stop(self) -> None:
        try:
            super().stop()
        finally:
            for handle in self._handles:
                handle.stop()
            self._backend.close()

    def _received(self, thread, item: tuple, check: Callable[[], None]) -> tuple:
        step, reply, _ = item
        batch, stats = thread.actor.wait(reply, check)
        return step, batch, stats
