"""Decoding programs with the policy: sampling (with or without the exploration filter), greedy
decoding and beam search.

All environments of a call are decoded in lockstep: their questions are encoded once, then every
decoding step is one call of the jitted `policy.step` over all live rows, followed by a Python pass
that picks each row's token and steps its interpreter state. Batches are padded to power-of-two
row buckets (at least 8), so `policy.step` compiles once per bucket, never once per batch.
Padding and finished rows get a dummy step (one valid slot) and are ignored.

Sampling draws from the policy restricted to the valid tokens (the interpreter's code assistance).
With `explorers` (one `SystematicExplorer` per environment, paper Algorithm 1 with the policy as the
proposal) a row samples only among its explorer's *open* tokens (valid, not disabled, not fully
explored), the policy's probabilities renormalised over them; every finished program and every
prefix found exhausted is reported to the explorer, so repeated calls sample without replacement
and an environment whose empty prefix is fully explored yields no sample. The trajectories always
store the observation over the *full* valid list (as the original: training probabilities are
w.r.t. the unfiltered action set), so a sampled trajectory equals `env.replay(its tokens)`.

Beam search keeps, per environment, the `beam_size` best of the live extensions
and the finished programs, scores being summed log-probabilities over the valid-restricted softmax
(no length normalisation); the result is the finished programs sorted by score with probabilities
renormalised within the environment. One batched `policy.step` per step serves every live
hypothesis of every environment: encoder outputs are gathered per hypothesis by environment index
and decoder states are reordered by parent index as beams are selected.

Unlike the original, no beam slot is ever wasted on a dead end: the original kept candidates that
then failed to execute (and dropped them after selection), while our interpreter offers a token only
if the program can still be completed into one that executes, so every kept candidate either stays
live or finishes as a program. (A hypothesis still unfinished after `max_steps` is dropped; the
default `max_steps` is long enough for any program the environments' limits allow.)
"""

from __future__ import annotations

from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import jax
import numpy as np

from mapo_jax.batching import Featurizer
from mapo_jax.env import Observation, QAEnvironment, Trajectory
from mapo_jax.lisp.interpreter import ProgramState
from mapo_jax.model import policy
from mapo_jax.model.networks import Encoded, EncoderInputs, ModelConfig, StepInputs

MIN_ROWS = 8
Questions = Union[EncoderInputs, Encoded]  # a batch's questions, as inputs or already encoded


class Hypothesis(NamedTuple):
    """A finished program of beam search: its tokens, summed log-probability and renormalised
    probability (within its environment's finished list)."""

    tokens: Tuple[str, ...]
    log_prob: float
    prob: float


# ---------------------------------------------------------------------------------------------
# Shapes and inputs
# ---------------------------------------------------------------------------------------------


def row_bucket(n: int, minimum: int = MIN_ROWS) -> int:
    """The padded row count for `n` rows: the smallest power of two, or 1.5 times a power of two,
    >= max(n, minimum). Half-steps waste at most a third of the rows (not half) for twice the shapes."""
    n = max(int(n), minimum, 1)
    power = 1 << (n - 1).bit_length()
    return power * 3 // 4 if power >= 8 and n <= power * 3 // 4 else power


def max_program_steps(envs: Sequence[QAEnvironment]) -> int:
    """Tokens of the longest program the environments' limits allow: per expression `(`, the head,
    its arguments and `)`, then `<END>` (19 for WTQ's 3 expressions and functions of at most 3
    arguments). The one program-length rule: sampling and beam search stop there, actors pad
    trajectories to it."""
    longest = 1
    for env in envs:
        arity = max(f.arity for f in env.context.functions)
        longest = max(longest, env.limits.max_n_exp * (arity + 3) + 1)
    return longest


def encoder_inputs(featurizer: Featurizer, envs: Sequence[QAEnvironment], min_length: int = 0) -> EncoderInputs:
    """The environments' questions as encoder inputs (row i: environment i), padded to a bucket
    (and to at least `min_length` tokens: one shape for a whole run means one compilation)."""
    rows = [
        featurizer.features(env.example, env.context.view.table, len(env.context.constants))
        for env in envs
    ]
    return featurizer.encoder_inputs(rows, batch_size=row_bucket(len(rows)), min_length=min_length)


def pad_inputs(inputs: EncoderInputs, n: int) -> EncoderInputs:
    """The first `n` rows of `inputs` padded to `row_bucket(n)` rows (as `Featurizer` pads)."""
    have = int(np.shape(inputs.tokens)[0])
    if have < n:
        raise ValueError(f"encoder inputs have {have} rows for {n} environments")
    rows = row_bucket(n)
    if have == rows:
        return inputs
    fills = EncoderInputs(tokens=0, in_table=0.0, length=1, constant_spans=-1, constant_values=0.0,
                          n_constants=0)
    out = []
    for array, fill in zip(inputs, fills):
        array = np.asarray(array)[:n]
        padding = np.full((rows - n,) + array.shape[1:], fill, array.dtype)
        out.append(np.concatenate([array, padding], axis=0))
    return EncoderInputs(*out)


def encoded_questions(params: policy.Params, config: ModelConfig, inputs: Questions, n_envs: int) -> Encoded:
    """The environments' questions encoded: `inputs` are `EncoderInputs` (row i: environment i) or
    already their `policy.encode` (an actor encodes its batch once for all its decoding calls)."""
    if isinstance(inputs, Encoded):
        if int(np.shape(inputs.memory)[0]) < n_envs:
            raise ValueError(f"encoded questions have {np.shape(inputs.memory)[0]} rows for {n_envs} environments")
        return inputs
    return policy.encode(params, pad_inputs(inputs, n_envs), config)


@jax.jit
def _take_rows(tree, index):
    """Rows `index` of every array of a pytree (encoder outputs, decoder states)."""
    return jax.tree_util.tree_map(lambda x: x[index], tree)


def _step_inputs(observations: Sequence[Optional[Observation]], n_rows: int, max_valid: int) -> StepInputs:
    """StepInputs of `n_rows` rows; rows without an observation get one dummy valid slot."""
    read = np.zeros(n_rows, np.int32)
    write = -np.ones(n_rows, np.int32)
    valid_ids = np.zeros((n_rows, max_valid), np.int32)
    valid_mask = np.zeros((n_rows, max_valid), bool)
    valid_mask[:, 0] = True
    features = np.zeros((n_rows, max_valid), np.float32)
    for r, obs in enumerate(observations):
        if obs is None:
            continue
        read[r], write[r] = obs.read_id, obs.write_id
        valid_ids[r], valid_mask[r], features[r] = obs.valid_ids, obs.valid_mask, obs.features
    return StepInputs(read, write, valid_ids, valid_mask, features)


def _check(config: ModelConfig, envs: Sequence[QAEnvironment], explorers) -> None:
    for env in envs:
        if env.limits.max_valid != config.max_valid:
            raise ValueError(f"example {env.example.id}: the environment offers {env.limits.max_valid} "
                             f"valid slots, the model {config.max_valid}")
    if explorers is not None:
        if len(explorers) != len(envs):
            raise ValueError(f"{len(explorers)} explorers for {len(envs)} environments")
        for env, explorer in zip(envs, explorers):
            if explorer.env is not env:
                raise ValueError(f"example {env.example.id}: its explorer explores another environment")


class _Observations:
    """Observations memoised per (environment, state): the samples of one question share prefixes."""

    def __init__(self):
        self._memo: Dict[Tuple[int, ProgramState], Observation] = {}

    def __call__(self, env_index: int, env: QAEnvironment, state: ProgramState) -> Observation:
        key = (env_index, state)
        obs = self._memo.get(key)
        if obs is None:
            obs = self._memo[key] = env.observation(state)
        return obs


# ---------------------------------------------------------------------------------------------
# Sampling and greedy decoding
# ---------------------------------------------------------------------------------------------


class _Row:
    """One program being sampled: its environment, current state, and the steps taken so far (the
    path of states is what an explorer needs to propagate exhaustion towards the root)."""

    __slots__ = ("env", "state", "path", "observations", "actions", "live")

    def __init__(self, env_index: int, root: ProgramState):
        self.env = env_index
        self.state = root
        self.path: List[ProgramState] = []
        self.observations: List[Observation] = []
        self.actions: List[int] = []
        self.live = True

    def take(self, observation: Observation, action: int, token: str) -> None:
        """Records one step (the observation it was taken from, its slot) and moves to the next state."""
        self.observations.append(observation)
        self.actions.append(action)
        self.path.append(self.state)
        self.state = self.state.step(token)


def _trajectory(env: QAEnvironment, row: _Row) -> Trajectory:
    return Trajectory.from_steps(row.observations, row.actions, row.state.tokens, env.reward(row.state))


def _pick(scores: np.ndarray, rng: Optional[np.random.Generator], greedy: bool) -> int:
    """Index of the chosen score: the largest, or a draw from softmax(scores) by inverse CDF with
    exactly one `rng.random()` (so a seeded generator gives identical samples)."""
    if greedy:
        return int(np.argmax(scores))
    probs = np.exp(scores - scores.max())
    cumulative = np.cumsum(probs)
    choice = int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"))
    return min(choice, len(scores) - 1)


class _RowPolicy:
    """The policy over a fixed set of rows: questions encoded once and gathered per row (row r reads
    its environment's question), then one jitted `policy.step` over all rows per call."""

    def __init__(self, params: policy.Params, config: ModelConfig, envs: Sequence[QAEnvironment],
                 inputs: Questions, row_envs: Sequence[int]):
        self.params, self.config = params, config
        encoded = encoded_questions(params, config, inputs, len(envs))
        self.n_rows = row_bucket(len(row_envs))
        env_index = np.zeros(self.n_rows, np.int32)
        env_index[: len(row_envs)] = row_envs
        self.encoded = _take_rows(encoded, env_index)
        self.state = policy.initial_state(self.encoded, config)

    def step(self, observations: Sequence[Optional[Observation]]) -> np.ndarray:
        """Log-probabilities [n_rows, max_valid] (float64) of one step; rows without an observation
        get a dummy step."""
        step_inputs = _step_inputs(observations, self.n_rows, self.config.max_valid)
        self.state, log_probs = policy.step(self.params, self.encoded, self.state, step_inputs, self.config)
        return np.asarray(log_probs, np.float64)


class _Sampler:
    """The Python side of one `sample` call: which rows are live, which slots each may take (all
    valid ones, or its explorer's open tokens), the pick, and what is reported to the explorers.
    Kept apart from the policy so the explorer bookkeeping reads in one place."""

    def __init__(self, envs: Sequence[QAEnvironment], explorers: Optional[Sequence],
                 rng: Optional[np.random.Generator], greedy: bool):
        self.envs, self.explorers, self.rng, self.greedy = envs, explorers, rng, greedy
        self.observe = _Observations()
        self.results: List[List[Trajectory]] = [[] for _ in envs]

    def _explorer(self, row: _Row):
        return None if self.explorers is None else self.explorers[row.env]

    def start_rows(self, n_samples: int) -> List[_Row]:
        """`n_samples` rows per environment with a program left to sample (each counts as a rollout
        of its explorer); none for an environment without programs or fully explored."""
        rows: List[_Row] = []
        for i, env in enumerate(self.envs):
            root = env.context.initial_state()
            if not root.valid_tokens() or (self.explorers is not None and not self.explorers[i].open_tokens(root)):
                continue
            for _ in range(n_samples):
                rows.append(_Row(i, root))
                if self.explorers is not None:
                    self.explorers[i].n_rollouts += 1
        return rows

    def _stop_exhausted(self, row: _Row) -> None:
        """A prefix with no open token left: record it (exhaustion climbs the row's path) and stop."""
        self._explorer(row).record_exhausted(row.path, row.state)
        row.live = False

    def live_rows(self, rows: Sequence[_Row]) -> List[int]:
        """Indices of the rows to step; rows standing on an exhausted prefix are stopped first, so no
        policy computation is spent on them."""
        if self.explorers is not None:
            for row in rows:
                if row.live and not self.explorers[row.env].open_tokens(row.state):
                    self._stop_exhausted(row)
        return [k for k, row in enumerate(rows) if row.live]

    def observations(self, rows: Sequence[_Row], live: Sequence[int], n_rows: int) -> List[Optional[Observation]]:
        """The live rows' observations (over the full valid list), `None` for the other rows."""
        observations: List[Optional[Observation]] = [None] * n_rows
        for k in live:
            row = rows[k]
            observations[k] = self.observe(row.env, self.envs[row.env], row.state)
        return observations

    def _slots(self, row: _Row, valid: Sequence[str]) -> Optional[np.ndarray]:
        """Slots of the valid list the row may take: all, or its explorer's open tokens as of now
        (rows earlier in this step may have closed some); `None` when none is left (row stopped)."""
        explorer = self._explorer(row)
        if explorer is None:
            return np.arange(len(valid))
        open_tokens = explorer.open_tokens(row.state)
        if not open_tokens:
            self._stop_exhausted(row)
            return None
        slot_of = {token: a for a, token in enumerate(valid)}
        return np.array([slot_of[token] for token in open_tokens])

    def advance(self, row: _Row, observation: Observation, log_probs: np.ndarray) -> None:
        """Picks the row's next token among its slots and steps it; a finished program is reported
        to the explorer and kept as a trajectory."""
        valid = row.state.valid_tokens()
        slots = self._slots(row, valid)
        if slots is None:
            return
        action = int(slots[_pick(log_probs[slots], self.rng, self.greedy)])
        row.take(observation, action, valid[action])
        if row.state.done:
            row.live = False
            explorer = self._explorer(row)
            if explorer is not None:
                explorer.record_program(row.path, row.state)
            self.results[row.env].append(_trajectory(self.envs[row.env], row))


def sample(
    params: policy.Params,
    config: ModelConfig,
    envs: Sequence[QAEnvironment],
    inputs: Questions,
    rng: Optional[np.random.Generator] = None,
    *,
    n_samples: int = 1,
    explorers: Optional[Sequence] = None,
    greedy: bool = False,
    max_steps: Optional[int] = None,
) -> List[List[Trajectory]]:
    """Decodes `n_samples` programs per environment, all in lockstep; returns per environment the
    finished trajectories (each equal to `env.replay(trajectory.tokens)`).

    `inputs`: encoder inputs whose row i is environment i's question (`encoder_inputs(featurizer,
    envs)`; extra rows are ignored), or their `policy.encode`. `rng` drives sampling (one uniform
    draw per row and step, in row order, so a seeded generator gives identical samples); `greedy`
    takes the most probable token instead. `explorers` (one `SystematicExplorer` per environment):
    sample only among open tokens, report finished programs and exhausted prefixes; no program is
    then returned twice for an environment, within a call or across calls, and a fully explored
    environment yields none.
    Fewer than `n_samples` trajectories come back for an environment when rows run into exhausted
    prefixes or exceed `max_steps` (default: `max_program_steps(envs)`).
    """
    _check(config, envs, explorers)
    if not envs or n_samples < 1:
        return [[] for _ in envs]
    if rng is None and not greedy:
        raise ValueError("sampling needs an rng (or greedy=True)")
    max_steps = max_program_steps(envs) if max_steps is None else max_steps
    sampler = _Sampler(envs, explorers, rng, greedy)
    rows = sampler.start_rows(n_samples)
    if not rows:
        return sampler.results
    model = _RowPolicy(params, config, envs, inputs, [row.env for row in rows])
    for _ in range(max_steps):
        live = sampler.live_rows(rows)
        if not live:
            break
        observations = sampler.observations(rows, live, model.n_rows)
        log_probs = model.step(observations)
        for k in live:
            sampler.advance(rows[k], observations[k], log_probs[k])
    return sampler.results


# ---------------------------------------------------------------------------------------------
# Beam search
# ---------------------------------------------------------------------------------------------


class _Beam(NamedTuple):
    env: int
    state: ProgramState
    score: float
    row: int  # row of the decoder state this hypothesis continues from


# A finished program of beam search before ranking: (summed log-probability, tokens).
_Finished = Tuple[float, Tuple[str, ...]]


class _BeamPolicy:
    """The policy over a changing set of hypotheses: questions encoded once (rows: environments);
    every step gathers encoder outputs by environment and decoder states by parent row."""

    def __init__(self, params: policy.Params, config: ModelConfig, envs: Sequence[QAEnvironment],
                 inputs: Questions):
        self.params, self.config, self.envs = params, config, envs
        self.encoded = encoded_questions(params, config, inputs, len(envs))
        self.state = policy.initial_state(self.encoded, config)  # rows: environments (and padding)
        self.observe = _Observations()

    def step(self, beam: Sequence[_Beam]) -> np.ndarray:
        """Log-probabilities [row_bucket(len(beam)), max_valid] (float64): row k extends `beam[k]`."""
        n_rows = row_bucket(len(beam))
        env_index = np.zeros(n_rows, np.int32)
        parent = np.zeros(n_rows, np.int32)
        env_index[: len(beam)] = [h.env for h in beam]
        parent[: len(beam)] = [h.row for h in beam]
        observations: List[Optional[Observation]] = [None] * n_rows
        for k, h in enumerate(beam):
            observations[k] = self.observe(h.env, self.envs[h.env], h.state)
        self.state, log_probs = policy.step(
            self.params, _take_rows(self.encoded, env_index), _take_rows(self.state, parent),
            _step_inputs(observations, n_rows, self.config.max_valid), self.config)
        return np.asarray(log_probs, np.float64)


def _candidates(beam: Sequence[_Beam], log_probs: np.ndarray,
                finished: Sequence[List[_Finished]]) -> Dict[int, list]:
    """Per environment with live hypotheses, its candidates `(score, done, what)` in tie-breaking
    order: its finished programs (`what`: tokens), then every valid extension of each hypothesis
    in beam order and valid-slot order (`what`: (hypothesis index, slot))."""
    pools: Dict[int, list] = {}
    for k, h in enumerate(beam):
        pool = pools.get(h.env)
        if pool is None:
            pool = pools[h.env] = [(score, True, tokens) for score, tokens in finished[h.env]]
        n_valid = len(h.state.valid_tokens())
        scores = h.score + log_probs[k, :n_valid]
        pool.extend((float(scores[a]), False, (k, a)) for a in range(n_valid))
    return pools


def _select(pools: Dict[int, list], beam: Sequence[_Beam], beam_size: int,
            finished: List[List[_Finished]]) -> List[_Beam]:
    """Keeps each environment's `beam_size` best candidates (a stable sort: ties keep pool order).
    `finished[i]` becomes its kept finished programs plus the kept extensions that end the program;
    the other kept extensions are returned as the next beam."""
    new_beam: List[_Beam] = []
    for i, pool in pools.items():
        kept = sorted(pool, key=lambda c: -c[0])[:beam_size]
        finished[i] = [(score, what) for score, done, what in kept if done]
        for score, done, what in kept:
            if done:
                continue
            k, a = what
            h = beam[k]
            child = h.state.step(h.state.valid_tokens()[a])
            if child.done:
                finished[i].append((score, child.tokens))
            else:
                new_beam.append(_Beam(i, child, score, k))
    return new_beam


def _ranked(programs: Sequence[_Finished]) -> List[Hypothesis]:
    """An environment's finished programs best first, probabilities renormalised over them."""
    programs = sorted(programs, key=lambda p: -p[0])
    if not programs:
        return []
    scores = np.array([score for score, _ in programs])
    probs = np.exp(scores - scores.max())
    probs /= probs.sum()
    return [Hypothesis(tuple(tokens), float(score), float(p)) for (score, tokens), p in zip(programs, probs)]


def beam_search(
    params: policy.Params,
    config: ModelConfig,
    envs: Sequence[QAEnvironment],
    inputs: Questions,
    beam_size: int = 5,
    max_steps: Optional[int] = None,
) -> List[List[Hypothesis]]:
    """Per environment, at most `beam_size` finished programs, best first, with probabilities
    renormalised over them (no length normalisation).

    Ties are broken deterministically: finished programs before new candidates, then hypothesis
    order, then valid-slot order (so `beam_size=1` is exactly greedy decoding).
    """
    if beam_size < 1:
        raise ValueError(f"beam_size must be >= 1, got {beam_size}")
    _check(config, envs, None)
    if not envs:
        return []
    max_steps = max_program_steps(envs) if max_steps is None else max_steps
    model = _BeamPolicy(params, config, envs, inputs)
    beam = [
        _Beam(i, env.context.initial_state(), 0.0, i)
        for i, env in enumerate(envs) if env.context.initial_state().valid_tokens()
    ]
    finished: List[List[_Finished]] = [[] for _ in envs]
    for _ in range(max_steps):
        if not beam:
            break
        log_probs = model.step(beam)
        beam = _select(_candidates(beam, log_probs, finished), beam, beam_size, finished)
    return [_ranked(programs) for programs in finished]
