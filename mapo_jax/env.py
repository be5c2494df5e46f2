"""One question as a reinforcement-learning episode over the interpreter.

Observations are fixed-size numpy arrays so that trajectories stack into static shapes for `jit`:
per step the decoder id just read, the id of the variable just written (or -1), the decoder ids of
the valid next tokens padded to `max_valid` with a mask, and each valid token's column-match
feature. Actions are *indices into the valid list*, as in the original. The reward is 1 when the
program's answer matches the gold answer under the official WTQ rules, else 0, given at `<END>`;
with `punish_extra_work` (training and exploration) a program that computed a variable it never
used gets 0.
"""

from __future__ import annotations

from typing import Dict, List, NamedTuple, Optional, Sequence

import numpy as np

from mapo_jax.data.example import Example
from mapo_jax.data.tables import Table
from mapo_jax.data.values import check_denotation, denotation_values
from mapo_jax.lisp.functions import TableView
from mapo_jax.lisp.interpreter import (
    DECODE,
    Limits,
    ProgramContext,
    ProgramState,
    decoder_vocabulary,
)


class Observation(NamedTuple):
    read_id: int
    write_id: int
    valid_ids: np.ndarray  # int32 [max_valid], 0 where padded
    valid_mask: np.ndarray  # bool [max_valid]
    features: np.ndarray  # float32 [max_valid]: column-name overlap of each valid token


class Trajectory(NamedTuple):
    """A whole episode as arrays of shape [length, ...] (pad them to a bucket to batch them)."""

    read_ids: np.ndarray
    write_ids: np.ndarray
    valid_ids: np.ndarray
    valid_mask: np.ndarray
    features: np.ndarray
    actions: np.ndarray  # int32 [length]: index into the valid list
    tokens: tuple
    reward: float

    @property
    def length(self) -> int:
        return len(self.actions)

    @classmethod
    def from_steps(cls, observations: Sequence[Observation], actions: Sequence[int],
                   tokens: Sequence[str], reward: float) -> "Trajectory":
        """Stacks per-step observations (the state before each action) into a trajectory."""
        return cls(
            read_ids=np.array([o.read_id for o in observations], np.int32),
            write_ids=np.array([o.write_id for o in observations], np.int32),
            valid_ids=np.stack([o.valid_ids for o in observations]),
            valid_mask=np.stack([o.valid_mask for o in observations]),
            features=np.stack([o.features for o in observations]),
            actions=np.array(actions, np.int32),
            tokens=tuple(tokens),
            reward=reward,
        )


class Vocabulary:
    """Decoder ids: builtin tokens first, then memory slots `v0..` at `n_builtin + K`."""

    def __init__(self, function_set: str = "wtq", max_mem: int = 60):
        self.tokens = decoder_vocabulary(function_set, max_mem)
        self.id_of = {token: i for i, token in enumerate(self.tokens)}
        self.n_builtin = len(self.tokens) - max_mem

    def __len__(self) -> int:
        return len(self.tokens)


class QAEnvironment:
    """A question, its table and gold answer, as an episode; cheap to restart (states are shared)."""

    def __init__(
        self,
        example: Example,
        table: Table,
        function_set: str = "wtq",
        limits: Limits = Limits(),
        punish_extra_work: bool = True,
        view: Optional[TableView] = None,
        vocabulary: Optional[Vocabulary] = None,
    ):
        self.example = example
        self.context = ProgramContext(
            table, example.entities, function_set, limits, example_id=example.id, view=view
        )
        self.limits = limits
        self.punish_extra_work = punish_extra_work
        self.vocabulary = vocabulary or Vocabulary(function_set, limits.max_mem)
        self.gold = example.gold_values()
        # Column-match feature per decoder id (constants that are columns); 0 elsewhere.
        self._feature_of_id: Dict[int, float] = {}
        for k, feature in enumerate(example.column_features[: len(self.context.constants)]):
            if feature:
                self._feature_of_id[self.vocabulary.n_builtin + k] = float(feature)
        self._rewards: Dict[ProgramState, float] = {}

    # --- ids ---------------------------------------------------------------------------------

    def token_id(self, token: str) -> int:
        if token.startswith("v") and token[1:].isdigit():
            return self.vocabulary.n_builtin + int(token[1:])
        return self.vocabulary.id_of[token]

    def observation(self, state: ProgramState) -> Observation:
        """What the policy sees before choosing the token that follows `state`."""
        n = self.limits.max_valid
        valid = state.valid_tokens()
        ids = np.zeros(n, np.int32)
        mask = np.zeros(n, bool)
        features = np.zeros(n, np.float32)
        for k, token in enumerate(valid):
            ids[k] = self.token_id(token)
            features[k] = self._feature_of_id.get(int(ids[k]), 0.0)
        mask[: len(valid)] = True
        read = self.token_id(state.tokens[-1]) if state.tokens else self.vocabulary.id_of[DECODE]
        created = state.created_variable()
        write = self.token_id(created) if created else -1
        return Observation(read, write, ids, mask, features)

    def release_memory(self) -> None:
        """Forgets the memoised program states of this question (the interpreter's trie, rewards).

        Actors and the evaluator call it once they are done with a question for a while: the memo
        speeds up the many rollouts of one batch, but kept for 11k questions it grows without bound.
        """
        self.context.reset_memo()
        self._rewards = {}

    # --- episode -----------------------------------------------------------------------------

    def reward(self, state: ProgramState) -> float:
        """1.0 if a finished program's answer matches the gold answer, else 0.0 (memoised): the one rule
        for training rewards, buffer admission and evaluation accuracy. A question without a gold answer
        rewards nothing (an empty answer would otherwise match it), and with `punish_extra_work` neither
        does a program that computed a variable it never used."""
        if not state.done:
            return 0.0
        reward = self._rewards.get(state)  # keyed by the state object (identity), kept alive here
        if reward is None:
            if not self.gold or (self.punish_extra_work and state.unused_variables()):
                reward = 0.0
            else:
                predicted = denotation_values(state.denotation())
                reward = 1.0 if check_denotation(self.gold, predicted) else 0.0
            self._rewards[state] = reward
        return reward

    def replay(self, program: Sequence[str] | str) -> Trajectory:
        """Rebuilds the trajectory (observations, actions, reward) of a program's tokens."""
        tokens = program.split() if isinstance(program, str) else list(program)
        state = self.context.initial_state()
        observations: List[Observation] = []
        actions: List[int] = []
        for position, token in enumerate(tokens):
            valid = state.valid_tokens()
            if token not in valid:
                raise self.context.error(
                    f"token {token!r} at position {position} of {' '.join(tokens)!r} is not valid "
                    f"after {' '.join(state.tokens) or '<start>'!r}; valid: {' '.join(valid)}"
                )
            observations.append(self.observation(state))
            actions.append(valid.index(token))
            state = state.step(token)
        if not state.done:
            raise self.context.error(f"program {' '.join(tokens)!r} does not end with <END>")
        return Trajectory.from_steps(observations, actions, tokens, self.reward(state))


def check_gold_programs(dataset) -> dict:
    """Replays a dataset's known gold programs (the toy dataset's) and checks they earn reward 1.

    This is the end-to-end check of the data pipeline, the interpreter and answer matching that the
    quick start runs before training exists.
    """
    vocabulary = Vocabulary()
    checked, correct, failures = 0, 0, []
    for example in dataset.examples:
        text = dataset.programs.get(example.id)
        if text is None:
            continue
        env = QAEnvironment(example, dataset.tables[example.table], vocabulary=vocabulary)
        checked += 1
        try:
            reward = env.replay(env.context.tokens_from_text(text)).reward
        except ValueError as error:
            failures.append(f"{example.id}: {error}")
            continue
        if reward == 1.0:
            correct += 1
        else:
            failures.append(f"{example.id}: {text} does not give {list(example.answer)}")
    return {"gold_programs": checked, "gold_programs_correct": correct, "failures": failures[:20]}
