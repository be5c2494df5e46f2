"""`Actor.make_batch` per objective: which programs a batch holds (buffer draws, on-policy draws),
the inputs of their weights (`in_buffer`, `pi_buffer`, `sample_weight`), the padding, and what
systematic exploration adds to the buffer and the Bloom filter.

One untrained policy (hidden size 16) over three toy questions: RICH has a buffer of a few dozen
reward-1 programs (their total probability is a few percent, so MAPO's weight 1/(1 - pi_B) is
visibly above 1), SINGLE has one, EMPTY has none. Expected probabilities are recomputed here, one
question at a time, with the policy's own log-probability function.
"""

import random
from typing import Callable, Dict, List, NamedTuple, Sequence, Tuple

import chex
import jax
import numpy as np
import pytest

from mapo_jax import decoding, objectives, training
from mapo_jax.acting import Actor
from mapo_jax.batching import trajectory_batch
from mapo_jax.buffer import MemoryBuffer
from mapo_jax.config import DataConfig, TrainConfig
from mapo_jax.env import QAEnvironment, Trajectory
from mapo_jax.explore.systematic import random_explore
from mapo_jax.model import policy

RICH, SINGLE, EMPTY = "rich", "single", "empty"
SEED = 3
PROB_STEPS, PROB_ROWS = 24, 64  # one padded shape for the test's own probabilities (toy programs: < 20 tokens)


class World(NamedTuple):
    params: object
    featurizer: object
    config: object
    envs: Dict[str, QAEnvironment]  # by role
    programs: Dict[str, List[Trajectory]]  # the buffer programs of each role, in the order found
    probs: Callable[[str, Sequence[Trajectory]], np.ndarray]  # role, trajectories -> pi(trajectory)

    def id(self, role: str) -> str:
        return self.envs[role].example.id

    def role_of(self, example_id: str) -> str:
        return next(role for role, env in self.envs.items() if env.example.id == example_id)

    def buffer(self, programs: Dict[str, Sequence[Trajectory]] = None) -> MemoryBuffer:
        """A fresh buffer (actors change theirs) holding `programs` by role (default: all of them)."""
        buffer = MemoryBuffer()
        for role, trajectories in (self.programs if programs is None else programs).items():
            for trajectory in trajectories:
                assert buffer.add(self.id(role), trajectory)
        return buffer

    def pi_buffer(self, role: str) -> float:
        return float(np.sum(self.probs(role, self.programs[role])))


@pytest.fixture(scope="module")
def world(glove) -> World:  # `glove` skips the module where the GloVe package is missing
    s = training.setup(DataConfig(dataset="toy"), TrainConfig(hidden_size=16, min_count=1))
    params = policy.init(jax.random.PRNGKey(0), s.model_config, s.pretrained)
    found = {}
    for env in s.train_envs[:4]:
        programs, _ = random_explore(env, 300, set(), random.Random(0))
        found[env] = [env.replay(tokens) for tokens in programs[:48]]
        env.release_memory()
    by_count = sorted(found, key=lambda env: -len(found[env]))
    envs = {RICH: by_count[0], SINGLE: by_count[1], EMPTY: by_count[2]}
    programs = {RICH: found[envs[RICH]], SINGLE: found[envs[SINGLE]][:1], EMPTY: []}
    assert len(programs[RICH]) >= 20 and programs[SINGLE], "the toy questions should have reward-1 programs"
    log_prob_fn = jax.jit(policy.make_log_prob_fn(s.model_config, deterministic=True))

    def probs(role: str, trajectories: Sequence[Trajectory]) -> np.ndarray:
        inputs = decoding.encoder_inputs(s.featurizer, [envs[role]])
        batch = trajectory_batch(trajectories, PROB_STEPS, s.model_config.max_valid, PROB_ROWS,
                                 example_index=[0] * len(trajectories))  # all answer input row 0
        log_probs, _ = log_prob_fn(params, (inputs, batch, None))
        return np.exp(np.asarray(log_probs, np.float64)[: len(trajectories)])

    return World(params, s.featurizer, s.model_config, envs, programs, probs)


def make_actor(world: World, objective: str, buffer: MemoryBuffer, roles=(RICH, SINGLE, EMPTY),
               **kwargs) -> Actor:
    kwargs.setdefault("systematic_exploration", False)
    return Actor([world.envs[role] for role in roles], world.featurizer, world.config, objective=objective,
                 questions_per_step=len(roles), seed=SEED, buffer=buffer, bloom_capacity=10_000, **kwargs)


class Row(NamedTuple):
    role: str
    tokens: Tuple[str, ...]
    reward: float
    in_buffer: bool
    pi_buffer: float
    sample_weight: float


def rows_of(world: World, actor: Actor, batch) -> List[Row]:
    """The valid rows of the actor's last batch, with their question and program decoded."""
    envs = [actor.envs[i] for i in actor.order[actor.cursor - actor.questions_per_step: actor.cursor]]
    expected_inputs = decoding.encoder_inputs(world.featurizer, envs)
    np.testing.assert_array_equal(batch.inputs.tokens[: len(envs)], expected_inputs.tokens[: len(envs)])
    samples, trajectories = batch.samples, batch.trajectories
    rows = []
    for b in range(int(np.sum(samples.valid))):
        env = envs[trajectories.example_index[b]]
        n = trajectories.length[b]
        ids = trajectories.valid_ids[b, np.arange(n), trajectories.actions[b, :n]]
        rows.append(Row(world.role_of(env.example.id), tuple(env.vocabulary.tokens[i] for i in ids),
                        float(samples.reward[b]), bool(samples.in_buffer[b]), float(samples.pi_buffer[b]),
                        float(samples.sample_weight[b])))
    return rows


def assert_layout(batch, n_rows: int, n_valid: int, n_examples: int) -> None:
    """Valid rows first, then padding rows that hold nothing; one row count for the whole run."""
    samples = batch.samples
    chex.assert_shape([samples.reward, samples.in_buffer, samples.pi_buffer, samples.sample_weight,
                       samples.baseline, samples.valid, batch.trajectories.length], (n_rows,))
    chex.assert_shape(batch.trajectories.actions, (n_rows, None))
    np.testing.assert_array_equal(samples.valid, np.arange(n_rows) < n_valid)
    padding = slice(n_valid, None)
    for values in (samples.reward, samples.in_buffer, samples.pi_buffer, samples.sample_weight,
                   batch.trajectories.length):
        assert not np.any(values[padding])
    assert np.all(batch.trajectories.length[:n_valid] > 0)
    np.testing.assert_array_equal(samples.baseline, 0.0)
    assert float(samples.n_examples) == n_examples


def programs_of(world: World, buffer: MemoryBuffer) -> Dict[str, set]:
    return {role: set(buffer.programs(world.id(role))) for role in world.envs}


# --------------------------------------------------------------------------------------------- MAPO


def test_mapo_rows_are_one_buffer_draw_and_one_draw_outside_the_buffer(world):
    buffer = world.buffer()
    before = programs_of(world, buffer)
    actor = make_actor(world, "mapo", buffer)
    batch, stats = actor.make_batch(world.params)
    rows = rows_of(world, actor, batch)
    assert_layout(batch, n_rows=6, n_valid=len(rows), n_examples=3)
    pi = {role: world.pi_buffer(role) for role in world.envs}
    assert pi[RICH] > 0.02 and pi[EMPTY] == 0.0  # so 1/(1 - pi) differs from 1 where it matters

    from_buffer = [row for row in rows if row.in_buffer]
    assert sorted(row.role for row in from_buffer) == [RICH, SINGLE]  # EMPTY has nothing to draw
    for row in from_buffer:
        assert row.tokens in before[row.role] and row.reward == 1.0
        assert row.sample_weight == 1.0  # one draw from the buffer: 1/n with n = 1
        np.testing.assert_allclose(row.pi_buffer, pi[row.role], rtol=1e-4)

    outside = [row for row in rows if not row.in_buffer]
    assert sorted(row.role for row in outside) == [EMPTY, RICH, SINGLE]  # this seed: no draw was in B
    for row in outside:
        assert row.tokens not in before[row.role]
        assert row.reward == world.envs[row.role].replay(row.tokens).reward
        np.testing.assert_allclose(row.pi_buffer, pi[row.role], rtol=1e-4)
        np.testing.assert_allclose(row.sample_weight, 1.0 / (1.0 - pi[row.role]), rtol=1e-4)

    # rewarded draws outside the buffer join it
    joined = {(row.role, row.tokens) for row in outside if row.reward == 1.0}
    after = programs_of(world, actor.buffer)
    assert after == {role: before[role] | {t for r, t in joined if r == role} for role in world.envs}
    assert stats.new_programs == len(joined)


def test_the_original_outside_weight_sends_the_kept_draw_with_weight_one(world):
    """--outside_draw_weight=original: the same batch as the default but for the outside rows' weight."""
    batches = {how: make_actor(world, "mapo", world.buffer(), outside_draw_weight=how).make_batch(world.params)[0]
               for how in ("unbiased", "original")}
    unbiased, original = (batches[how].samples for how in ("unbiased", "original"))
    outside = np.asarray(unbiased.valid & ~unbiased.in_buffer)
    assert np.any(outside & (unbiased.pi_buffer > 0.02))  # a row where the two rules differ
    np.testing.assert_allclose(original.sample_weight[outside], 1.0)
    np.testing.assert_allclose(unbiased.sample_weight[outside], 1.0 / (1.0 - unbiased.pi_buffer[outside]), rtol=1e-6)
    np.testing.assert_array_equal(original.sample_weight[~outside], unbiased.sample_weight[~outside])
    np.testing.assert_array_equal(original.pi_buffer, unbiased.pi_buffer)
    with pytest.raises(ValueError, match="unknown outside_draw_weight"):
        make_actor(world, "mapo", world.buffer(), outside_draw_weight="biased")


def test_mapo_rejects_an_on_policy_draw_already_in_the_buffer(world):
    """Two actors with one seed draw the same programs. The first runs until a draw outside its
    buffer earns reward 1 (it joins the buffer); the second starts with that program in its buffer
    and, at that batch, keeps no on-policy row: the buffer term already covers the program."""
    start = {RICH: world.programs[RICH][:1]}
    first = make_actor(world, "mapo", world.buffer(start), roles=(RICH,))
    history = []
    for _ in range(60):
        batch, stats = first.make_batch(world.params)
        outside = [row for row in rows_of(world, first, batch) if not row.in_buffer]
        history.append([row.tokens for row in outside])
        rewarded = [row for row in outside if row.reward == 1.0]
        if rewarded:
            break
    else:
        pytest.fail("no on-policy draw earned reward 1 in 60 batches")
    (drawn,) = rewarded
    assert first.buffer.contains(world.id(RICH), drawn.tokens) and stats.new_programs == 1

    program = world.envs[RICH].replay(drawn.tokens)
    second = make_actor(world, "mapo", world.buffer({RICH: start[RICH] + [program]}), roles=(RICH,))
    for step, expected in enumerate(history):
        batch, stats = second.make_batch(world.params)
        rows = rows_of(world, second, batch)
        outside = [row.tokens for row in rows if not row.in_buffer]
        if step < len(history) - 1:
            assert outside == expected  # the same draws so far
    assert outside == [] and len(rows) == 1 and rows[0].in_buffer
    assert_layout(batch, n_rows=2, n_valid=1, n_examples=1)
    pi = float(np.sum(world.probs(RICH, start[RICH] + [program])))
    np.testing.assert_allclose(rows[0].pi_buffer, pi, rtol=1e-4)
    assert stats.new_programs == 0 and second.buffer.n_programs(world.id(RICH)) == 2


# ------------------------------------------------------------------------------- the other objectives


def test_reinforce_keeps_every_on_policy_draw_and_never_reads_the_buffer(world):
    buffer = world.buffer()
    before = programs_of(world, buffer)
    actor = make_actor(world, "reinforce", buffer, n_devices=2)  # 3 rows, padded to 4 for two devices
    batch, stats = actor.make_batch(world.params)
    rows = rows_of(world, actor, batch)
    assert_layout(batch, n_rows=4, n_valid=3, n_examples=3)
    assert sorted(row.role for row in rows) == [EMPTY, RICH, SINGLE]
    for row in rows:
        assert (row.in_buffer, row.pi_buffer, row.sample_weight) == (False, 0.0, 1.0)
        assert row.reward == world.envs[row.role].replay(row.tokens).reward
    assert programs_of(world, actor.buffer) == before and stats.new_programs == 0


def test_mml_draws_one_buffer_program_per_question_that_has_one(world):
    actor = make_actor(world, "mml", world.buffer())
    batch, stats = actor.make_batch(world.params)
    rows = rows_of(world, actor, batch)
    assert_layout(batch, n_rows=3, n_valid=2, n_examples=3)
    assert sorted(row.role for row in rows) == [RICH, SINGLE]
    for row in rows:
        assert row.in_buffer and row.reward == 1.0 and row.sample_weight == 1.0
        assert row.tokens in {t.tokens for t in world.programs[row.role]}
        np.testing.assert_allclose(row.pi_buffer, world.pi_buffer(row.role), rtol=1e-4)
    assert stats.new_programs == 0


def test_hard_em_takes_the_most_probable_buffer_program(world):
    actor = make_actor(world, "hard_em", world.buffer())
    for _ in range(2):
        batch, _ = actor.make_batch(world.params)
        rows = rows_of(world, actor, batch)
        assert_layout(batch, n_rows=3, n_valid=2, n_examples=3)
        assert sorted(row.role for row in rows) == [RICH, SINGLE]
        for row in rows:
            probs = world.probs(row.role, world.programs[row.role])
            assert row.tokens == world.programs[row.role][int(np.argmax(probs))].tokens
            assert row.in_buffer and row.sample_weight == 1.0
            np.testing.assert_allclose(row.pi_buffer, probs.sum(), rtol=1e-4)
    assert np.argmax(world.probs(RICH, world.programs[RICH])) != 0  # not simply the first one found


def skewed_pair(world: World) -> List[Trajectory]:
    """RICH's most and least probable programs (a probability ratio of 20 or more)."""
    probs = world.probs(RICH, world.programs[RICH])
    pair = [world.programs[RICH][int(np.argmax(probs))], world.programs[RICH][int(np.argmin(probs))]]
    assert probs.max() > 20 * probs.min()
    return pair


def draw_counts(world: World, objective: str, pair: List[Trajectory], n_batches: int) -> List[int]:
    actor = make_actor(world, objective, world.buffer({RICH: pair}), roles=(RICH,))
    counts = [0, 0]
    for _ in range(n_batches):
        batch, _ = actor.make_batch(world.params)
        (row,) = rows_of(world, actor, batch)
        counts[[t.tokens for t in pair].index(row.tokens)] += 1
    return counts


def test_iml_draws_buffer_programs_uniformly_and_mml_in_proportion_to_the_policy(world):
    pair = skewed_pair(world)
    actor = make_actor(world, "iml", world.buffer())
    batch, _ = actor.make_batch(world.params)
    rows = rows_of(world, actor, batch)
    assert_layout(batch, n_rows=3, n_valid=2, n_examples=3)
    assert sorted(row.role for row in rows) == [RICH, SINGLE]
    for row in rows:
        assert (row.in_buffer, row.pi_buffer, row.sample_weight, row.reward) == (True, 0.0, 1.0, 1.0)

    uniform = draw_counts(world, "iml", pair, 40)
    assert min(uniform) >= 10  # about 20 each
    proportional = draw_counts(world, "mml", pair, 40)
    assert proportional[1] <= 5  # the unlikely program: about 40/21 draws at most


# ------------------------------------------------------------------------------ systematic exploration


@pytest.mark.parametrize("objective,explore", [(objective, False) for objective in objectives.OBJECTIVES]
                         + [("reinforce", True)])
def test_nothing_is_explored_without_systematic_exploration(world, objective, explore):
    """Off by the flag, or by the objective: REINFORCE keeps no buffer, so it never explores."""
    buffer = world.buffer()
    actor = make_actor(world, objective, buffer, systematic_exploration=explore)
    empty_filter = actor.bloom.to_arrays()
    assert not np.any(empty_filter["bits"])  # no warm-start program was marked explored either
    for _ in range(2):
        batch, stats = actor.make_batch(world.params)
        if objective != "mapo":  # MAPO's rewarded on-policy draws join the buffer (tested above)
            assert stats.new_programs == 0
    np.testing.assert_array_equal(actor.bloom.to_arrays()["bits"], empty_filter["bits"])
    assert actor.bloom.num_added == 0
    if objective != "mapo":
        assert programs_of(world, actor.buffer) == {role: {t.tokens for t in world.programs[role]}
                                                    for role in world.envs}


def test_systematic_exploration_adds_new_programs_to_the_buffer_and_the_bloom_filter(world):
    actor = make_actor(world, "mml", world.buffer(), systematic_exploration=True)
    for role, trajectories in world.programs.items():  # the warm start counts as explored
        for trajectory in trajectories:
            assert (world.id(role),) + trajectory.tokens in actor.bloom
    for _ in range(40):
        before, explored_before = programs_of(world, actor.buffer), actor.bloom.num_added
        _, stats = actor.make_batch(world.params)
        assert actor.bloom.num_added > explored_before  # every batch explores
        after = programs_of(world, actor.buffer)
        new = [(role, tokens) for role in world.envs for tokens in after[role] - before[role]]
        assert stats.new_programs == len(new)
        for role, tokens in new:
            assert (world.id(role),) + tokens in actor.bloom
            assert world.envs[role].replay(tokens).reward == 1.0
        if new:
            break
    else:
        pytest.fail("exploration found no new reward-1 program in 40 batches")
