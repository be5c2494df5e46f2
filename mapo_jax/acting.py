"""Actors: each owns a shard of training questions, their memory buffers and explored prefixes,
and turns a (stale) copy of the policy into learner batches (paper Algorithm 2;
docs/architecture.md#actors-and-learner).

Roles, one class each:

* :class:`Actor` -- the single-threaded core of an actor: for one batch of questions it explores
  systematically with the policy (new reward-1 programs join the buffer), draws programs inside the
  buffer (in proportion to the policy, renormalised) and one on-policy program outside it (rejection),
  and packs the weights' inputs (`pi_B`, `sample_weight`) into a `LearnerBatch`. Its state (positions,
  RNGs, buffer, Bloom filter) is what a checkpoint saves.
* :class:`ParameterServer` -- the learner publishes parameters every M steps; an actor asks for a
  *version* (see `policy_version`), so which parameters a batch was sampled with does not depend on
  thread timing: a run is reproducible whatever the number of actors.
* :class:`BatchQueue` -- one bounded queue per actor. The bound keeps memory flat and, with the policy
  lag, bounds how stale a batch can be when the learner consumes it. Batches are consumed round-robin
  (learner step s takes actor s mod N's next batch), again for reproducibility.
* :class:`ActorThread` -- runs an `Actor` in a thread; it can be paused between batches so that a
  checkpoint sees a consistent state (queued batches included), and it reports its exception instead
  of dying silently.

Threads share one process: JAX releases the GIL inside XLA calls, the interpreter does not, so
`benchmarks/actors.py` measures throughput against the number of threads.
"""

from __future__ import annotations

import collections
import random
import threading
import time
import traceback
from typing import Any, Callable, Deque, Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from mapo_jax import decoding, learning, objectives
from mapo_jax.batching import Featurizer, trajectory_batch
from mapo_jax.buffer import BufferSample, MemoryBuffer
from mapo_jax.env import QAEnvironment, Trajectory
from mapo_jax.explore.bloom import BloomFilter
from mapo_jax.explore.systematic import SystematicExplorer
from mapo_jax.model import policy
from mapo_jax.model.networks import ModelConfig

BUFFER_OBJECTIVES = ("mapo", "mml", "hard_em", "iml")  # objectives that train on buffer programs
POLL_S = 0.05  # how often a waiting thread looks at the stop / pause flags


def policy_version(step: int, publish_every: int, policy_lag: int) -> int:
    """The parameter version the batch of learner step `step` is sampled with.

    The newest version published at least `policy_lag` steps before the batch is consumed: with the
    learner at step s every multiple of `publish_every` up to s is published, so the actor never waits
    for parameters the learner cannot have yet, and may run `policy_lag` steps ahead of it.
    """
    return max(0, (step - policy_lag) // publish_every * publish_every)


def rows_per_batch(objective: str, questions_per_step: int, n_devices: int = 1) -> int:
    """Learner rows per step, fixed for the run so the update compiles once: MAPO sends up to two
    programs a question (one from the buffer, one outside it), the others one; a multiple of the
    number of devices so the batch shards evenly."""
    rows = questions_per_step * (2 if objective == "mapo" else 1)
    return -(-rows // n_devices) * n_devices


def buffer_program_probs(params, config: ModelConfig, encoded, groups: Sequence[Sequence[Trajectory]],
                         max_steps: int) -> List[np.ndarray]:
    """pi(program) under `params` of every program of every group (group i: the buffer of the question in
    row i of `encoded`, from `policy.encode`), float64, in one batched policy call; an empty group gets an
    empty array."""
    flat = [t for group in groups for t in group]
    if not flat:
        return [np.zeros(0) for _ in groups]
    rows = [row for row, group in enumerate(groups) for _ in group]
    batch = trajectory_batch(flat, max_steps, config.max_valid, decoding.row_bucket(len(flat)), rows)
    log_probs, _ = policy.encoded_log_probs(params, encoded, batch, config)
    probs = np.exp(np.asarray(log_probs, np.float64).sum(axis=1)[: len(flat)])
    ends = np.cumsum([len(group) for group in groups])
    return [probs[end - len(group): end] for group, end in zip(groups, ends)]


class _ExampleKeys:
    """One example's view of an actor-wide Bloom filter: keys are (example id,) + prefix, so all of an
    actor's questions share one filter sized for the whole run (a filter per question would be
    mostly empty)."""

    __slots__ = ("bloom", "example_id")

    def __init__(self, bloom: BloomFilter, example_id: str):
        self.bloom = bloom
        self.example_id = example_id

    def __contains__(self, prefix: Tuple[str, ...]) -> bool:
        return ((self.example_id,) + tuple(prefix)) in self.bloom

    def add(self, prefix: Tuple[str, ...]) -> bool:
        return self.bloom.add((self.example_id,) + tuple(prefix))


class _BatchRows:
    """The programs of one learner batch, one row each, with their weights' inputs; padded at the end
    to the run's fixed row count (so the learner's update compiles once)."""

    def __init__(self):
        self.trajectories: List[Trajectory] = []
        self.example_rows: List[int] = []  # the question (row of the encoder inputs) of each program
        self.rewards: List[float] = []
        self.in_buffer: List[bool] = []
        self.pi_buffer: List[float] = []
        self.weights: List[float] = []

    def add(self, row: int, trajectory: Trajectory, in_buffer: bool, pi_buffer: float, weight: float) -> None:
        self.trajectories.append(trajectory)
        self.example_rows.append(row)
        self.rewards.append(trajectory.reward)
        self.in_buffer.append(in_buffer)
        self.pi_buffer.append(pi_buffer)
        self.weights.append(weight)

    def learner_batch(self, inputs, n_rows: int, n_examples: int, max_steps: int,
                      max_valid: int) -> learning.LearnerBatch:
        """The rows padded to `n_rows` (padding rows hold zeros and are not `valid`)."""
        n = len(self.trajectories)

        def padded(values, dtype):
            return np.concatenate([np.asarray(values, dtype), np.zeros(n_rows - n, dtype)])

        samples = objectives.SampleBatch(
            reward=padded(self.rewards, np.float32), in_buffer=padded(self.in_buffer, bool),
            pi_buffer=padded(self.pi_buffer, np.float32), sample_weight=padded(self.weights, np.float32),
            baseline=np.zeros(n_rows, np.float32), valid=padded([True] * n, bool),
            n_examples=np.float32(n_examples))
        return learning.LearnerBatch(
            samples, inputs, trajectory_batch(self.trajectories, max_steps, max_valid, n_rows, self.example_rows))


class ActorStats(NamedTuple):
    """What one batch says about the actor (averaged into the training metrics)."""

    on_policy_return: float  # mean reward of the on-policy draws (every draw, in or out of the buffer)
    new_programs: int  # reward-1 programs that joined the buffers
    coverage: float  # fraction of the shard's questions with a buffer program
    seconds: float  # time to make the batch


class Actor:
    """A shard of training questions with their buffers; makes learner batches from given parameters.

    Everything random comes from the actor's two generators (`np_rng` for sampling, `explore_rng`
    shared by its explorers), so an actor restored from `state_dict` continues exactly.
    """

    def __init__(self, envs: Sequence[QAEnvironment], featurizer: Featurizer, config: ModelConfig,
                 *, objective: str = "mapo", questions_per_step: int = 25, systematic_exploration: bool = True,
                 seed: int = 0, buffer: Optional[MemoryBuffer] = None, bloom_capacity: int = 1_000_000,
                 n_devices: int = 1, outside_draw_weight: str = "unbiased"):
        if objective not in objectives.OBJECTIVES:
            raise ValueError(f"unknown objective {objective!r}: valid objectives are {', '.join(objectives.OBJECTIVES)}")
        if not envs:
            raise ValueError("an actor needs at least one training question")
        self.envs = list(envs)
        self.featurizer = featurizer
        self.config = config
        self.objective = objective
        self.outside_draw_weight = outside_draw_weight
        objectives.outside_draw_weight(0.0, outside_draw_weight)  # an unknown choice fails here, not mid-run
        self.questions_per_step = min(questions_per_step, len(self.envs))
        self.explore = systematic_exploration and objective in BUFFER_OBJECTIVES
        self.n_rows = rows_per_batch(objective, questions_per_step, n_devices)
        self.max_steps = decoding.max_program_steps(self.envs)  # one trajectory length: one compilation
        self.buffer = buffer if buffer is not None else MemoryBuffer()
        self.np_rng = np.random.default_rng(seed)
        self.explore_rng = random.Random(seed)
        self.bloom = BloomFilter(bloom_capacity, 1e-3, seed=seed)
        self._explorers: Dict[str, SystematicExplorer] = {}
        self.order = self.np_rng.permutation(len(self.envs))
        self.cursor = 0
        self._ids = [env.example.id for env in self.envs]
        if self.explore:  # warm-start programs count as explored
            for example_id in self._ids:
                for tokens in self.buffer.programs(example_id):
                    self.bloom.add((example_id,) + tuple(tokens))

    # ----------------------------------------------------------------------------- one batch
    def _next_questions(self) -> List[QAEnvironment]:
        if self.cursor + self.questions_per_step > len(self.order):
            self.order, self.cursor = self.np_rng.permutation(len(self.envs)), 0
        chosen = self.order[self.cursor: self.cursor + self.questions_per_step]
        self.cursor += self.questions_per_step
        return [self.envs[i] for i in chosen]

    def _explorer(self, env: QAEnvironment) -> SystematicExplorer:
        explorer = self._explorers.get(env.example.id)
        if explorer is None:
            explorer = SystematicExplorer(env, _ExampleKeys(self.bloom, env.example.id), self.explore_rng)
            self._explorers[env.example.id] = explorer
        return explorer

    def make_batch(self, params) -> Tuple[learning.LearnerBatch, ActorStats]:
        """One learner batch of `questions_per_step` questions sampled with `params` (Algorithm 2):
        1. systematic exploration, 2. buffer draws, 3. on-policy draws, then the padded batch."""
        start = time.perf_counter()
        envs = self._next_questions()
        # padded to a length bucket: the learner compiles once per bucket (a handful), not per batch
        inputs = decoding.encoder_inputs(self.featurizer, envs)
        # IML without exploration draws uniformly and never calls the policy: nothing to encode
        encoded = self._encode(params, inputs) if self.explore or self.objective != "iml" else None
        new_programs = self._explore(params, envs, encoded) if self.explore else 0
        rows = _BatchRows()
        pi_of_row = self._draw_from_buffers(params, envs, encoded, rows) if self.objective in BUFFER_OBJECTIVES else {}
        returns: List[float] = []
        if self.objective in ("mapo", "reinforce"):
            returns, added = self._draw_on_policy(params, envs, encoded, pi_of_row, rows)
            new_programs += added
        self._release(envs)
        batch = rows.learner_batch(inputs, self.n_rows, len(envs), self.max_steps, self.config.max_valid)
        stats = ActorStats(float(np.mean(returns)) if returns else float("nan"), new_programs,
                           self.buffer.coverage(self._ids), time.perf_counter() - start)
        return batch, stats

    def _encode(self, params, inputs):
        """The batch's questions encoded once, for all three stages (none uses dropout)."""
        return policy.encode(params, inputs, self.config)

    def _explore(self, params, envs: Sequence[QAEnvironment], encoded) -> int:
        """1. Systematic exploration, one rollout a question: never the same program twice for a
        question (across batches, through the Bloom filter). Returns how many programs joined the buffer."""
        explored = decoding.sample(params, self.config, envs, encoded, self.np_rng, max_steps=self.max_steps,
                                   explorers=[self._explorer(env) for env in envs])
        return sum(self.buffer.add_many(env.example.id, found) for env, found in zip(envs, explored))

    def _draw_from_buffers(self, params, envs: Sequence[QAEnvironment], encoded, rows: _BatchRows) -> Dict[int, float]:
        """2. One buffer program per question that has one, as a learner row; returns pi_B by row
        (not for IML, which draws uniformly and so never scores the buffer)."""
        probs = ([None] * len(envs) if self.objective == "iml" else buffer_program_probs(
            params, self.config, encoded, [self.buffer.trajectories(env.example.id) for env in envs], self.max_steps))
        pi_of_row: Dict[int, float] = {}
        for row, env in enumerate(envs):
            if not self.buffer.has_programs(env.example.id):
                continue
            drawn, pi = self._draw_buffer_program(env.example.id, probs[row])
            if self.objective != "iml":
                pi_of_row[row] = pi
            rows.add(row, drawn.trajectory, True, pi, drawn.sample_weight)
        return pi_of_row

    def _draw_buffer_program(self, example_id: str, probs: Optional[np.ndarray]) -> Tuple[BufferSample, float]:
        """(drawn program, pi_B): drawn in proportion to pi (MAPO, MML), the most probable (Hard EM),
        uniform (IML, whose pi_B is left at 0)."""
        if self.objective == "iml":
            (drawn,) = self.buffer.uniform(example_id, 1, self.np_rng)
            return drawn, 0.0
        pi = self.buffer.pi_buffer(example_id, probs=probs)
        if self.objective == "hard_em":
            (drawn,) = self.buffer.most_probable(example_id, probs)
        else:
            (drawn,) = self.buffer.sample(example_id, probs, 1, self.np_rng)
        return drawn, pi

    def _draw_on_policy(self, params, envs: Sequence[QAEnvironment], encoded, pi_of_row: Dict[int, float],
                        rows: _BatchRows) -> Tuple[List[float], int]:
        """3. One on-policy program per question. REINFORCE keeps every draw; MAPO keeps a draw only
        outside the buffer (rejection: the buffer term covers the rest), and a rewarded one joins the
        buffer. Returns every draw's reward and how many programs joined."""
        on_policy = decoding.sample(params, self.config, envs, encoded, self.np_rng, max_steps=self.max_steps)
        returns, new_programs = [], 0
        for row, (env, found) in enumerate(zip(envs, on_policy)):
            for trajectory in found:
                returns.append(trajectory.reward)
                if self.objective == "reinforce":
                    rows.add(row, trajectory, False, 0.0, 1.0)
                elif not self.buffer.contains(env.example.id, trajectory.tokens):
                    pi = pi_of_row.get(row, 0.0)
                    rows.add(row, trajectory, False, pi, objectives.outside_draw_weight(pi, self.outside_draw_weight))
                    new_programs += self.buffer.add(env.example.id, trajectory)
        return returns, new_programs

    def _release(self, envs: Sequence[QAEnvironment]) -> None:
        """Done with these questions until the next epoch: free their interpreter memos. The explorer
        keeps nothing the Bloom filter does not (every record is persistent), so it is rebuilt too."""
        for env in envs:
            env.release_memory()
            self._explorers.pop(env.example.id, None)

    # ----------------------------------------------------------------------------- checkpoints
    def state_dict(self) -> Tuple[dict, Dict[str, np.ndarray]]:
        """(JSON-able state, arrays): positions, both RNGs, buffer programs, Bloom filter bits."""
        state = {
            "order": [int(i) for i in self.order],
            "cursor": int(self.cursor),
            "np_rng": self.np_rng.bit_generator.state,
            "explore_rng": _random_state_to_json(self.explore_rng.getstate()),
            "buffer": self.buffer.to_json(),
        }
        return state, self.bloom.to_arrays()

    def load_state_dict(self, state: dict, arrays: Dict[str, np.ndarray]) -> None:
        """Restores `state_dict()`; buffer programs are replayed against this actor's environments."""
        if sorted(state["order"]) != list(range(len(self.envs))):
            raise ValueError("the checkpoint's actor shard does not match this run's questions "
                             "(different data, split or number of actors)")
        self.order = np.asarray(state["order"], np.int64)
        self.cursor = int(state["cursor"])
        self.np_rng.bit_generator.state = state["np_rng"]
        self.explore_rng.setstate(_random_state_from_json(state["explore_rng"]))
        envs_by_id = {env.example.id: env for env in self.envs}
        self.buffer = MemoryBuffer.from_json(state["buffer"], envs_by_id, strict=False)
        for env in self.envs:  # the replay filled the interpreter memos
            env.release_memory()
        self.bloom = BloomFilter.from_arrays(arrays)
        self._explorers = {}


def _random_state_to_json(state) -> list:
    version, internal, gauss = state
    return [version, list(internal), gauss]


def _random_state_from_json(data) -> tuple:
    version, internal, gauss = data
    return (version, tuple(internal), gauss)


# ------------------------------------------------------------------------------------------------
# The two interfaces between actors and the learner
# ------------------------------------------------------------------------------------------------


class Stopped(Exception):
    """Raised inside a waiting actor when the run stops."""


class ParameterServer:
    """Parameters by version (= learner step). Old versions no actor can still ask for are dropped.

    A resumed run starts at version `first`; a request for an older version (made before the resume)
    gets the first one, the closest the process has.
    """

    def __init__(self, publish_every: int, policy_lag: int):
        self.publish_every = publish_every
        self.policy_lag = policy_lag
        self._versions: Dict[int, Any] = {}
        self._first: Optional[int] = None
        self._cond = threading.Condition()

    def publish(self, version: int, params) -> None:
        with self._cond:
            if self._first is None:
                self._first = version
            self._versions[version] = params
            # every actor's next batch is for a step >= `version`, so needs at least this version
            oldest_needed = policy_version(version, self.publish_every, self.policy_lag)
            if oldest_needed >= self._first:
                for old in [v for v in self._versions if v < oldest_needed]:
                    del self._versions[old]
            self._cond.notify_all()

    def snapshot(self) -> Dict[int, Any]:
        """The versions actors may still ask for (saved with a checkpoint, so a resumed run samples
        its first batches with exactly the parameters an uninterrupted run would)."""
        with self._cond:
            return dict(self._versions)

    def get(self, version: int, interrupted: Callable[[], bool]) -> Any:
        """Blocks until `version` is published; raises `Stopped` when `interrupted()` turns true."""
        with self._cond:
            while True:
                if self._first is not None:
                    wanted = max(version, self._first)
                    if wanted in self._versions:
                        return self._versions[wanted]
                    if self._versions and wanted < min(self._versions):
                        raise RuntimeError(f"parameters of version {version} were dropped (oldest kept: "
                                           f"{min(self._versions)})")
                if interrupted():
                    raise Stopped
                self._cond.wait(POLL_S)


class BatchQueue:
    """A bounded FIFO of (step, batch, stats) from one actor. The actor waits for room *before* making
    a batch, so every batch it has made is in the queue: a checkpoint can save them all."""

    def __init__(self, maxsize: int):
        if maxsize < 1:
            raise ValueError(f"queue size must be >= 1, got {maxsize}")
        self.maxsize = maxsize
        self._items: Deque[tuple] = collections.deque()
        self._cond = threading.Condition()

    def __len__(self) -> int:
        return len(self._items)

    def wait_for_room(self, interrupted: Callable[[], bool]) -> None:
        with self._cond:
            while len(self._items) >= self.maxsize:
                if interrupted():
                    raise Stopped
                self._cond.wait(POLL_S)

    def put(self, item: tuple) -> None:
        with self._cond:
            self._items.append(item)
            self._cond.notify_all()

    def get(self, check: Callable[[], None], timeout_s: float = POLL_S) -> tuple:
        """The oldest item; while waiting, `check()` runs every poll (it raises to abort)."""
        with self._cond:
            while not self._items:
                check()
                self._cond.wait(timeout_s)
            item = self._items.popleft()
            self._cond.notify_all()
            return item

    def snapshot(self) -> List[tuple]:
        with self._cond:
            return list(self._items)


class ActorThread(threading.Thread):
    """Runs `actor` for learner steps `first_step, first_step + n_actors, ...` until stopped.

    `pause()` returns once the actor sits between batches (its state and queue consistent, for a
    checkpoint); `resume()` lets it go on. An exception is kept in `error` (with its traceback) and
    ends the thread; the learner checks for it.
    """

    def __init__(self, actor: Actor, index: int, n_actors: int, first_step: int, server: ParameterServer,
                 queue: BatchQueue, stop: threading.Event):
        super().__init__(name=f"actor-{index}", daemon=True)
        self.actor = actor
        self.index = index
        self.n_actors = n_actors
        self.next_step = first_step
        self.server = server
        self.queue = queue
        self.stop_event = stop
        self.error: Optional[str] = None
        self._pause_requested = threading.Event()
        self._paused = threading.Event()
        self._resumed = threading.Event()

    def _interrupted(self) -> bool:
        return self.stop_event.is_set() or self._pause_requested.is_set()

    def _safe_point(self) -> None:
        while self._pause_requested.is_set() and not self.stop_event.is_set():
            self._paused.set()
            self._resumed.wait(POLL_S)
        self._paused.clear()

    def run(self) -> None:
        try:
            while not self.stop_event.is_set():
                self._safe_point()
                try:
                    self.queue.wait_for_room(self._interrupted)
                    version = policy_version(self.next_step, self.server.publish_every, self.server.policy_lag)
                    params = self.server.get(version, self._interrupted)
                except Stopped:
                    continue
                batch, stats = self.actor.make_batch(params)
                self.queue.put((self.next_step, batch, stats))
                self.next_step += self.n_actors
        except BaseException:  # reported by the learner, with the traceback
            self.error = traceback.format_exc()
            self.stop_event.set()
        finally:
            self._paused.set()

    def pause(self) -> None:
        self._resumed.clear()
        self._pause_requested.set()
        while not self._paused.is_set() and self.is_alive():
            time.sleep(POLL_S / 5)

    def resume(self) -> None:
        self._pause_requested.clear()
        self._resumed.set()
