"""Systematic exploration (MAPO paper, Algorithm 1) and the random-exploration warm start
(docs/architecture.md#exploration).

Systematic exploration samples a program token by token but never enters a prefix that is already
*fully explored*: every finished program is recorded as explored, and a prefix whose every valid
continuation is explored is recorded too, so exhaustion propagates towards the root and sampling is
without replacement over whole programs. An example whose empty prefix is explored is done.

The record is an "explored set" (anything with `in` and `add` on token tuples): a `BloomFilter`
(compact, checkpointable; what training uses) or a Python `set` (exact). Membership results are
memoised per interpreter state, so a rollout asks the set only about prefixes it has not seen yet.

The proposal distribution over the valid tokens is an interface: uniform for the warm start, the
policy during training (a callable returning weights for the candidate tokens).
"""

from __future__ import annotations

import functools
import json
import math
import random
import re
from importlib import resources
from typing import Callable, Dict, FrozenSet, Iterable, List, Optional, Protocol, Sequence, Set, Tuple

from mapo_jax.env import QAEnvironment
from mapo_jax.lisp.interpreter import ProgramState

Proposal = Callable[[ProgramState, Sequence[str]], Sequence[float]]


class ExploredSet(Protocol):
    def __contains__(self, key: Tuple[str, ...]) -> bool: ...

    def add(self, key: Tuple[str, ...]) -> object: ...


# ---------------------------------------------------------------------------------------------
# Trigger words: which functions a question's wording allows during the random warm start
# ---------------------------------------------------------------------------------------------

# The published trigger file uses CoreNLP POS tags (JJR, JJS, RBR, RBS) as triggers; questions have
# no POS tags here, so comparatives and superlatives are recognised from the words themselves.
COMPARATIVES = frozenset(
    "more less fewer greater higher lower larger smaller bigger longer shorter older younger "
    "earlier later faster slower heavier lighter taller better worse farther further closer deeper "
    "wider richer poorer newer warmer colder hotter cheaper stronger weaker above below over under "
    "before after".split()
)
SUPERLATIVES = frozenset(
    "most least fewest best worst first last top bottom highest lowest largest smallest biggest "
    "longest shortest oldest youngest earliest latest fastest slowest heaviest lightest tallest "
    "greatest farthest furthest closest deepest widest richest poorest newest warmest coldest "
    "hottest cheapest strongest weakest maximum minimum max min".split()
)
_NOT_SUPERLATIVE = frozenset("west test contest interest forest rest nest guest priest protest quest".split())
_POS_TRIGGERS = {"JJR": "comparative", "RBR": "comparative", "JJS": "superlative", "RBS": "superlative"}


@functools.lru_cache(maxsize=None)
def trigger_words() -> Dict[str, Tuple[str, ...]]:
    """The published WTQ trigger-word file (function -> words or POS tags), shipped as package data."""
    text = resources.files("mapo_jax.data").joinpath("resources/trigger_word_all.json").read_text()
    return {name: tuple(words) for name, words in json.loads(text).items()}


def _degree_tags(tokens: Sequence[str]) -> Set[str]:
    tags = set()
    for token in tokens:
        if token in COMPARATIVES:
            tags.add("comparative")
        if token in SUPERLATIVES or (
            len(token) > 4 and token.endswith("est") and token not in _NOT_SUPERLATIVE
        ):
            tags.add("superlative")
    return tags


def disabled_functions(tokens: Sequence[str], use_degree_words: bool = True) -> FrozenSet[str]:
    """Functions none of whose trigger words (or degree tags) occur in the question.

    `use_degree_words=False` drops the POS-tag triggers altogether (the published file's POS tags
    then never fire), which is what a tagger-less reading of the file gives.
    """
    words = set(tokens)
    tags = _degree_tags(tokens) if use_degree_words else set()
    disabled = set()
    for name, triggers in trigger_words().items():
        fired = any(
            (_POS_TRIGGERS[t] in tags) if t in _POS_TRIGGERS else (t in words) for t in triggers
        )
        if not fired:
            disabled.add(name)
    return frozenset(disabled)


# ---------------------------------------------------------------------------------------------
# Algorithm 1
# ---------------------------------------------------------------------------------------------


class SystematicExplorer:
    """Samples programs of one environment without ever re-entering a fully explored prefix."""

    def __init__(
        self,
        env: QAEnvironment,
        explored: ExploredSet,
        rng: random.Random,
        proposal: Optional[Proposal] = None,
        disabled: FrozenSet[str] = frozenset(),
    ):
        self.env = env
        self.explored = explored
        self.rng = rng
        self.proposal = proposal
        self.disabled = disabled
        # Per state: valid tokens not yet explored (persistent record) / not dead here (disabled).
        self._open: Dict[ProgramState, List[str]] = {}
        self.n_rollouts = 0

    @property
    def fully_explored(self) -> bool:
        """True once every program of this question (under the disabled functions) was sampled."""
        return not self.open_tokens(self.env.context.initial_state())

    def open_tokens(self, state: ProgramState) -> List[str]:
        """Valid next tokens whose prefixes are neither explored nor disabled (memoised per state)."""
        tokens = self._open.get(state)
        if tokens is None:
            prefix = state.tokens
            tokens = [
                t for t in state.valid_tokens()
                if t not in self.disabled and (prefix + (t,)) not in self.explored
            ]
            self._open[state] = tokens
        return tokens

    def record_program(self, path: List[ProgramState], state: ProgramState) -> None:
        """A finished program was sampled: it and any prefix it exhausts are explored."""
        self._close(path, state, persistent=True)

    def record_exhausted(self, path: List[ProgramState], state: ProgramState) -> None:
        """A prefix with no open continuation: recorded (persistently unless only disabled
        tokens were left), so that exhaustion climbs towards the root."""
        persistent = not any(t in self.disabled for t in state.valid_tokens())
        self._close(path, state, persistent)

    def _close(self, path: List[ProgramState], state: ProgramState, persistent: bool) -> None:
        """Marks `state` explored and propagates exhaustion up the path."""
        if persistent:
            self.explored.add(state.tokens)
        for parent in reversed(path):
            siblings = self._open[parent]
            token = state.tokens[-1]
            if token in siblings:
                siblings.remove(token)
            if siblings:
                return
            # Exhausted because of explored children only (not disabled ones) -> record it.
            persistent = persistent and not any(t in self.disabled for t in parent.valid_tokens())
            if persistent:
                self.explored.add(parent.tokens)
            state = parent

    def sample(self) -> Optional[ProgramState]:
        """One rollout: a finished, never-before-sampled program, or None if none is left here."""
        self.n_rollouts += 1
        state = self.env.context.initial_state()
        path: List[ProgramState] = []
        while not state.done:
            candidates = self.open_tokens(state)
            if not candidates:
                self.record_exhausted(path, state)
                return None
            if self.proposal is None:
                token = candidates[self.rng.randrange(len(candidates))]
            else:
                weights = self.proposal(state, candidates)
                token = self.rng.choices(candidates, weights=weights)[0]
            path.append(state)
            state = state.step(token)
        self.record_program(path, state)
        return state


def random_explore(
    env: QAEnvironment,
    n_rollouts: int,
    explored: ExploredSet,
    rng: random.Random,
    disabled: FrozenSet[str] = frozenset(),
) -> Tuple[List[Tuple[str, ...]], int]:
    """The warm start for one question: uniform systematic rollouts; returns (reward-1 programs, rollouts)."""
    explorer = SystematicExplorer(env, explored, rng, proposal=None, disabled=disabled)
    found = []
    for _ in range(n_rollouts):
        state = explorer.sample()
        if state is None:
            if explorer.fully_explored:
                break  # every program reachable under the trigger words was sampled
            continue
        if env.reward(state) >= 1.0:
            found.append(state.tokens)
    return found, explorer.n_rollouts


_CONSTANT = re.compile(r"^v\d+$")


def program_shape(env: QAEnvironment, tokens: Sequence[str]) -> str:
    """A program with constants replaced by their types: `(hop v0 <string_property>)`-like shapes."""
    n_constants = len(env.context.constants)
    out = []
    for token in tokens:
        if _CONSTANT.match(token):
            index = int(token[1:])
            if index < n_constants:
                out.append(f"<{env.context.constants[index].type}>")
            else:
                out.append(f"v{index - n_constants}")
        else:
            out.append(token)
    return env.context.program_text(out, show_constants=False)


def summarise_counts(counts: Iterable[int]) -> Dict[str, float]:
    counts = sorted(counts)
    if not counts:
        return {"mean": 0.0, "median": 0.0, "max": 0}
    mid = len(counts) // 2
    median = counts[mid] if len(counts) % 2 else (counts[mid - 1] + counts[mid]) / 2
    return {"mean": sum(counts) / len(counts), "median": median, "max": counts[-1]}


def example_seed(seed: int, example_id: str) -> int:
    """The seed of a question's own random generator (every warm start and analysis uses it): it depends
    on the run's seed and the question's id only, not on process scheduling, the question's position in
    a shard or Python's hash salt."""
    import zlib

    return (seed * 1_000_003 + zlib.crc32(example_id.encode("utf-8"))) % (2**32)


def bloom_capacity(n_rollouts: int) -> int:
    """Expected explored prefixes of one question: about two per rollout (program + exhausted prefixes)."""
    return max(1000, int(math.ceil(2.5 * n_rollouts)))
