"""Per-example memory buffers of high-reward programs (MAPO's ``B``; the original ``AllGoodReplayBuffer``).

For every example id the buffer keeps the reward-1 programs found so far (token tuples, in the order found)
and their cached :class:`~mapo_jax.env.Trajectory` objects, so replaying a buffer program to the learner
needs no interpreter work. What it is for, and the choices made:

* **Admission** follows the original: return ``> 0.5``, last token ``<END>``, program not yet
  stored for that example. There is no size cap, and nothing is ever removed: the original's
  ``truncate_at_n`` permanently shrank the buffer while still counting the dropped programs as "in the
  buffer"; here ``contains`` (the rejection step) and ``pi_buffer`` always refer to the same set ``B``.
* **No JAX here.** The programs' probabilities under a policy are computed by the caller (the actor, in
  one batched policy call for a whole batch of questions) and passed in as ``probs``, so this module is
  numpy only and actor threads can share it freely.
* **π_old(B) is never exactly 0 for a non-empty buffer.** The objectives read ``pi_buffer == 0`` as "this
  example has no buffer" (``objectives.mapo_weights``), so :func:`total_probability` floors the sum of a
  non-empty buffer at :data:`PI_BUFFER_FLOOR`.
* **Sampling helpers** return ``(trajectory, sample_weight)`` pairs with the ``sample_weight`` of
  ``objectives.SampleBatch``: ``1/n`` for ``n`` draws (MAPO, MML, IML), ``1`` for Hard EM's most probable
  program.
  Draws use an explicit ``numpy.random.Generator`` so runs are reproducible.
* **Checkpoints** store program strings only (:meth:`MemoryBuffer.to_json`); trajectories are rebuilt by
  replay (:meth:`MemoryBuffer.from_json`), which also checks that the environment still gives them reward 1.

One buffer is meant to be owned by one actor (its shard of examples); it has no locks.
"""

from __future__ import annotations

from typing import Dict, Hashable, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

from mapo_jax.env import Trajectory
from mapo_jax.lisp.interpreter import END

__all__ = [
    "PI_BUFFER_FLOOR",
    "ADMISSION_REWARD",
    "BufferSample",
    "MemoryBuffer",
    "total_probability",
]

PI_BUFFER_FLOOR = 1e-8
"""Smallest π_old(B) reported for a non-empty buffer (0 would mean "no buffer" to the objectives)."""

ADMISSION_REWARD = 0.5
"""A trajectory enters the buffer only if its reward is strictly above this (the original's rule)."""

ExampleId = Hashable
Tokens = Union[Sequence[str], str]


class BufferSample(NamedTuple):
    """A buffer program chosen for training and its ``SampleBatch.sample_weight``."""

    trajectory: Trajectory
    sample_weight: float


def _key(tokens: Tokens) -> Tuple[str, ...]:
    """Programs are keyed by their token tuple; a string is split on whitespace (the JSON form)."""
    return tuple(tokens.split()) if isinstance(tokens, str) else tuple(tokens)


def total_probability(probs: np.ndarray) -> float:
    """π(B) = Σ probs, clipped to at most 1 (round-off) and floored at :data:`PI_BUFFER_FLOOR` when ``B`` is
    non-empty (so it never reads as "no buffer"); 0.0 for an empty buffer."""
    probs = np.asarray(probs, np.float64)
    if probs.size == 0:
        return 0.0
    total = float(probs.sum())
    if not np.isfinite(total):
        raise ValueError(f"buffer probabilities must be finite, got {probs}")
    return min(max(total, PI_BUFFER_FLOOR), 1.0)


def _renormalise(probs: np.ndarray) -> np.ndarray:
    """probs / Σ probs; uniform if they all underflowed to 0 (every program is still a valid choice).

    Unlike the original's ``(p + 1e-8) / Σ(p + 1e-8)`` there is no additive smoothing, which would flatten
    the distribution whenever the programs' probabilities are themselves around 1e-8 or below.
    """
    total = probs.sum()
    if total > 0.0:
        return probs / total
    return np.full(probs.shape, 1.0 / probs.size)


class MemoryBuffer:
    """The reward-1 programs found for each example, with their cached trajectories (see the module doc)."""

    def __init__(self) -> None:
        # example id -> {token tuple: trajectory}; dicts keep insertion (discovery) order.
        self._programs: Dict[ExampleId, Dict[Tuple[str, ...], Trajectory]] = {}

    # ----------------------------------------------------------------------------- contents
    def add(self, example_id: ExampleId, trajectory: Trajectory) -> bool:
        """Stores a trajectory if it earns reward (> 0.5), ends with ``<END>`` and is new for the example;
        returns whether it was stored. Dead ends and failed programs are simply not admitted."""
        tokens = tuple(trajectory.tokens)
        if not (float(trajectory.reward) > ADMISSION_REWARD and tokens and tokens[-1] == END):
            return False
        programs = self._programs.setdefault(example_id, {})
        if tokens in programs:
            return False
        programs[tokens] = trajectory
        return True

    def add_many(self, example_id: ExampleId, trajectories: Iterable[Trajectory]) -> int:
        """Adds each trajectory (see :meth:`add`); returns how many were new."""
        return sum(1 for trajectory in trajectories if self.add(example_id, trajectory))

    def contains(self, example_id: ExampleId, tokens: Tokens) -> bool:
        """Whether the program is in the example's buffer: the rejection test for on-policy samples."""
        return _key(tokens) in self._programs.get(example_id, ())

    def programs(self, example_id: ExampleId) -> List[Tuple[str, ...]]:
        """The example's programs as token tuples, in the order found (empty if none)."""
        return list(self._programs.get(example_id, ()))

    def trajectories(self, example_id: ExampleId) -> List[Trajectory]:
        """The example's cached trajectories, in the order of :meth:`programs`."""
        return list(self._programs.get(example_id, {}).values())

    def has_programs(self, example_id: ExampleId) -> bool:
        """Whether the example has at least one buffer program (the original's ``has_found_solution``)."""
        return bool(self._programs.get(example_id))

    def example_ids(self) -> List[ExampleId]:
        """Ids of the examples with at least one program, in the order their first program arrived."""
        return [example_id for example_id, programs in self._programs.items() if programs]

    def n_programs(self, example_id: Optional[ExampleId] = None) -> int:
        """Programs stored for one example, or over all examples when ``example_id`` is None."""
        if example_id is not None:
            return len(self._programs.get(example_id, ()))
        return sum(len(programs) for programs in self._programs.values())

    def __len__(self) -> int:
        """Total number of programs over all examples."""
        return self.n_programs()

    def coverage(self, example_ids: Iterable[ExampleId]) -> float:
        """Fraction of ``example_ids`` with at least one program (0.0 for no ids): the share of questions the
        buffer can teach."""
        ids = list(example_ids)
        if not ids:
            return 0.0
        return sum(1 for example_id in ids if self.has_programs(example_id)) / len(ids)

    # ----------------------------------------------------------------------------- loading
    def load_programs(
        self,
        envs_by_id: Mapping[ExampleId, object],
        programs_by_id: Mapping[ExampleId, Sequence[str]],
        max_errors: int = 20,
    ) -> dict:
        """Replays saved programs (a warm start's ``programs.json``, a checkpoint) with their environments and
        stores the reward-1 ones. Never raises on a bad program: each skipped program is counted by reason.

        Only ids present in ``envs_by_id`` are loaded (an actor loads its own shard); others are counted in
        ``examples_without_env``. Skip reasons: ``invalid`` (a token the interpreter does not allow there,
        a program that does not finish with ``<END>``, or something that is not a token string),
        ``reward_0`` (runs but earns no reward, e.g. the data or ``punish_extra_work`` changed) and
        ``duplicate`` (already in the buffer). ``errors`` holds the first ``max_errors`` messages.
        """
        skipped = {"invalid": 0, "reward_0": 0, "duplicate": 0}
        errors: List[str] = []
        loaded, considered, examples, without_env = 0, 0, 0, 0

        def skip(reason: str, example_id: ExampleId, message: str) -> None:
            skipped[reason] += 1
            if len(errors) < max_errors:
                errors.append(f"{example_id}: {reason}: {message}")

        for example_id, programs in programs_by_id.items():
            env = envs_by_id.get(example_id)
            if env is None:
                without_env += 1
                continue
            examples += 1
            if isinstance(programs, (str, bytes)) or not isinstance(programs, Sequence):
                considered += 1
                skip("invalid", example_id, f"expected a list of program strings, got {programs!r:.200}")
                continue
            for program in programs:
                considered += 1
                if not isinstance(program, str) or not program.split():
                    skip("invalid", example_id, f"not a program string: {program!r:.200}")
                    continue
                if self.contains(example_id, program):
                    skip("duplicate", example_id, program)
                    continue
                try:
                    trajectory = env.replay(program.split())
                except (ValueError, KeyError, IndexError, TypeError) as error:  # ProgramError is a ValueError
                    skip("invalid", example_id, str(error)[:300])
                    continue
                if self.add(example_id, trajectory):
                    loaded += 1
                else:
                    skip("reward_0", example_id, program)
        return {
            "examples": examples,
            "examples_without_env": without_env,
            "programs": considered,
            "loaded": loaded,
            "skipped": skipped,
            "coverage": self.coverage(envs_by_id),
            "errors": errors,
        }

    # ----------------------------------------------------------------------------- probabilities
    def _checked_probs(self, example_id: ExampleId, probs) -> np.ndarray:
        probs = np.asarray(probs, np.float64)
        n = self.n_programs(example_id)
        if probs.shape != (n,):
            raise ValueError(f"example {example_id}: expected {n} buffer probabilities, got shape {probs.shape}")
        if not np.all(np.isfinite(probs)) or np.any(probs < 0.0):
            raise ValueError(f"example {example_id}: buffer probabilities must be finite and >= 0, got {probs}")
        return probs

    def pi_buffer(self, example_id: ExampleId, probs) -> float:
        """π_old(B) for ``SampleBatch.pi_buffer``: Σ of ``probs``, the probabilities of the example's buffer
        programs (in the order of :meth:`programs`); floored at :data:`PI_BUFFER_FLOOR` for a non-empty
        buffer, 0.0 for an empty one (:func:`total_probability`)."""
        return total_probability(self._checked_probs(example_id, probs))

    # ----------------------------------------------------------------------------- choosing programs
    def sample(self, example_id: ExampleId, probs, n: int, rng: np.random.Generator) -> List[BufferSample]:
        """``n`` draws with replacement ∝ ``probs`` within the buffer (π_old renormalised to ``B``, i.e. π+),
        each with ``sample_weight = 1/n``: MAPO and MML. Empty for an empty buffer."""
        _check_count(n)
        trajectories = self.trajectories(example_id)
        if not trajectories or n == 0:
            return []
        p = _renormalise(self._checked_probs(example_id, probs))
        picks = rng.choice(len(trajectories), size=n, replace=True, p=p)
        return [BufferSample(trajectories[i], 1.0 / n) for i in picks]

    def uniform(self, example_id: ExampleId, n: int, rng: np.random.Generator) -> List[BufferSample]:
        """``n`` draws uniformly with replacement, ``sample_weight = 1/n`` (IML; the original's random replay)."""
        _check_count(n)
        trajectories = self.trajectories(example_id)
        if not trajectories or n == 0:
            return []
        picks = rng.integers(0, len(trajectories), size=n)
        return [BufferSample(trajectories[i], 1.0 / n) for i in picks]

    def most_probable(self, example_id: ExampleId, probs) -> List[BufferSample]:
        """The single most probable program (first found on ties) with ``sample_weight = 1`` (Hard EM); a list
        like the other helpers, empty for an empty buffer."""
        trajectories = self.trajectories(example_id)
        if not trajectories:
            return []
        probs = self._checked_probs(example_id, probs)
        return [BufferSample(trajectories[int(np.argmax(probs))], 1.0)]

    # ----------------------------------------------------------------------------- checkpoints
    def to_json(self) -> Dict[str, List[str]]:
        """``{example id: ["( hop v1 v2 ) <END>", ...]}`` in the order found (ids as strings, as JSON needs);
        the same program strings as a warm start's ``programs.json``. Trajectories are not stored: they are
        rebuilt by replay, which is cheap and re-checks them against the current data."""
        return {
            str(example_id): [" ".join(tokens) for tokens in programs]
            for example_id, programs in self._programs.items()
            if programs
        }

    @classmethod
    def from_json(
        cls, data: Mapping[str, Sequence[str]], envs_by_id: Mapping[ExampleId, object], strict: bool = True
    ) -> "MemoryBuffer":
        """Rebuilds a buffer from :meth:`to_json` by replaying every program with its environment; ids without
        an environment (another actor's shard) are ignored. With ``strict`` a program that no longer replays
        to reward 1 raises ``ValueError`` (the data, limits or interpreter changed since the checkpoint)."""
        buffer = cls()
        stats = buffer.load_programs(envs_by_id, data)
        failed = stats["skipped"]["invalid"] + stats["skipped"]["reward_0"]
        if strict and failed:
            raise ValueError(
                f"{failed} of {stats['programs']} saved buffer programs no longer replay to reward 1: "
                + "; ".join(stats["errors"][:5])
            )
        return buffer

    def __repr__(self) -> str:
        return f"MemoryBuffer({len(self.example_ids())} examples, {len(self)} programs)"


def _check_count(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"the number of programs to choose must be an int >= 0, got {n!r}")
