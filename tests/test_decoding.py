"""Decoding on real toy examples: sampling (with and without the exploration filter), greedy
decoding and beam search, checked against the environment and the learner's log-probabilities."""

import random

import chex
import jax
import numpy as np
import pytest

from mapo_jax import decoding
from mapo_jax.batching import trajectory_batch
from mapo_jax.config import ModelConfig
from mapo_jax.env import QAEnvironment, Vocabulary
from mapo_jax.explore.systematic import SystematicExplorer
from mapo_jax.lisp.interpreter import Limits
from mapo_jax.model import policy

N_ENVS = 6


@pytest.fixture(scope="module")
def setup(toy_policy):
    toy, _, featurizer, config, params = toy_policy
    vocabulary = Vocabulary()
    envs = [QAEnvironment(ex, toy.tables[ex.table], vocabulary=vocabulary) for ex in toy.examples[:N_ENVS]]
    return toy, envs, featurizer, config, params



def _assert_same_trajectory(got, expected):
    assert got.tokens == expected.tokens and got.reward == expected.reward
    for name in ("read_ids", "write_ids", "valid_ids", "valid_mask", "features", "actions"):
        a, b = getattr(got, name), getattr(expected, name)
        assert a.dtype == b.dtype, name
        np.testing.assert_array_equal(a, b, err_msg=name)


def test_row_buckets_and_input_padding(setup):
    _, envs, featurizer, _, _ = setup
    assert [decoding.row_bucket(n) for n in (0, 1, 8, 9, 13, 16, 17, 25, 100, 300)] == [8, 8, 8, 12, 16, 16, 24, 32, 128, 384]
    inputs = decoding.encoder_inputs(featurizer, envs)
    chex.assert_shape(inputs.constant_spans, (8, 60, 2))
    # Padding the first rows again gives what the featurizer pads.
    padded = decoding.pad_inputs(inputs._replace(**{k: np.asarray(v)[:3] for k, v in inputs._asdict().items()}), 3)
    for a, b in zip(padded, decoding.encoder_inputs(featurizer, envs[:3])):
        np.testing.assert_array_equal(a, b)
    assert decoding.max_program_steps(envs) == 3 * (3 + 3) + 1
    with pytest.raises(ValueError, match="rows for"):
        decoding.pad_inputs(padded, 9)


def test_one_program_length_limit_for_decoding_and_actors(setup):
    """The limit is tight (a program of that length exists) and it is what actors pad trajectories to:
    3 expressions of `(`, a head, 3 arguments, `)`, then `<END>` = 19 tokens (actors used to pad to 20)."""
    from mapo_jax.acting import Actor

    toy, envs, featurizer, config, params = setup
    assert decoding.max_program_steps(envs) == 19
    longest = "( filter_ge all_rows v10 v6 ) ( filter_le all_rows v10 v9 ) ( diff v11 v12 v4 ) <END>"
    env = QAEnvironment(toy.examples[4], toy.tables[toy.examples[4].table], punish_extra_work=False)
    assert env.replay(longest).length == decoding.max_program_steps([env]) == 19
    two = QAEnvironment(toy.examples[4], toy.tables[toy.examples[4].table], limits=Limits(max_n_exp=2))
    assert decoding.max_program_steps([two]) == 2 * 6 + 1
    actor = Actor(envs, featurizer, config, objective="reinforce", questions_per_step=2, seed=0)
    batch, _ = actor.make_batch(params)
    assert actor.max_steps == 19 and batch.trajectories.read_ids.shape[1] == 19


def test_sampled_trajectories_replay_exactly(setup):
    _, envs, featurizer, config, params = setup
    inputs = decoding.encoder_inputs(featurizer, envs)
    samples = decoding.sample(params, config, envs, inputs, np.random.default_rng(0), n_samples=2)
    assert len(samples) == N_ENVS and all(len(found) == 2 for found in samples)
    for env, found in zip(envs, samples):
        for trajectory in found:
            n = trajectory.length
            chex.assert_shape([trajectory.valid_ids, trajectory.valid_mask, trajectory.features],
                              [(n, config.max_valid)] * 3)
            chex.assert_shape([trajectory.read_ids, trajectory.write_ids, trajectory.actions], [(n,)] * 3)
            assert trajectory.tokens[-1] == "<END>"
            _assert_same_trajectory(trajectory, env.replay(trajectory.tokens))


def test_seeded_sampling_is_reproducible(setup):
    _, envs, featurizer, config, params = setup
    inputs = decoding.encoder_inputs(featurizer, envs)
    first, second = (decoding.sample(params, config, envs, inputs, np.random.default_rng(7), n_samples=2)
                     for _ in range(2))
    assert [[t.tokens for t in f] for f in first] == [[t.tokens for t in f] for f in second]
    other = decoding.sample(params, config, envs, inputs, np.random.default_rng(8), n_samples=2)
    assert [[t.tokens for t in f] for f in first] != [[t.tokens for t in f] for f in other]


def test_greedy_is_deterministic_and_is_beam_search_of_size_one(setup):
    _, envs, featurizer, config, params = setup
    inputs = decoding.encoder_inputs(featurizer, envs)
    first, second = ([found[0] for found in decoding.sample(params, config, envs, inputs, None, greedy=True)]
                     for _ in range(2))
    assert [t.tokens for t in first] == [t.tokens for t in second]
    beams = decoding.beam_search(params, config, envs, inputs, beam_size=1)
    assert [[h.tokens for h in found] for found in beams] == [[t.tokens] for t in first]
    assert all(found[0].prob == 1.0 for found in beams)
    for env, trajectory in zip(envs, first):
        _assert_same_trajectory(trajectory, env.replay(trajectory.tokens))


def test_beam_search_scores_match_the_learner(setup):
    _, envs, featurizer, config, params = setup
    inputs = decoding.encoder_inputs(featurizer, envs)
    beam_size = 5
    beams = decoding.beam_search(params, config, envs, inputs, beam_size=beam_size)
    assert len(beams) == N_ENVS
    for found in beams:
        assert 1 <= len(found) <= beam_size
        assert len({h.tokens for h in found}) == len(found)
        scores = [h.log_prob for h in found]
        assert scores == sorted(scores, reverse=True) and all(s < 0 for s in scores)
        np.testing.assert_allclose(sum(h.prob for h in found), 1.0, atol=1e-9)
        assert [h.prob for h in found] == sorted((h.prob for h in found), reverse=True)
    # Every program's log-prob equals the learner's teacher-forced sum over its replayed trajectory.
    hypotheses = [h for found in beams for h in found]
    index = [i for i, found in enumerate(beams) for _ in found]
    trajectories = [envs[i].replay(h.tokens) for i, h in zip(index, hypotheses)]
    batch = trajectory_batch(trajectories, max_steps=decoding.max_program_steps(envs), max_valid=config.max_valid,
                             batch_size=decoding.row_bucket(len(trajectories)), example_index=index)
    log_probs, _ = policy.sequence_log_probs(params, inputs, batch, config)
    np.testing.assert_allclose(np.asarray(log_probs).sum(1)[: len(hypotheses)],
                               [h.log_prob for h in hypotheses], atol=1e-4)


def test_sampling_from_encoded_questions_equals_sampling_from_inputs(setup):
    """An actor encodes its batch once and passes the encoding to every decoding call: same programs."""
    _, envs, featurizer, config, params = setup
    inputs = decoding.encoder_inputs(featurizer, envs)
    encoded = policy.encode(params, inputs, config)
    for n_samples in (1, 3):
        a = decoding.sample(params, config, envs, inputs, np.random.default_rng(5), n_samples=n_samples)
        b = decoding.sample(params, config, envs, encoded, np.random.default_rng(5), n_samples=n_samples)
        assert [[t.tokens for t in found] for found in a] == [[t.tokens for t in found] for found in b]
    beams = decoding.beam_search(params, config, envs, encoded, beam_size=3)
    assert [[h.tokens for h in found] for found in beams] == [
        [h.tokens for h in found] for found in decoding.beam_search(params, config, envs, inputs, beam_size=3)]
    with pytest.raises(ValueError, match="rows for"):
        decoding.sample(params, config, envs, jax.tree_util.tree_map(lambda x: x[:2], encoded), np.random.default_rng(5))


def test_buffer_program_probs_are_the_learners_probabilities_per_question(setup):
    """The actor's one batched call gives each question its own programs' pi, in order, empty groups included."""
    from mapo_jax.acting import buffer_program_probs

    _, envs, featurizer, config, params = setup
    inputs = decoding.encoder_inputs(featurizer, envs[:3])
    # 30 samples a question: programs that share prefixes and part ways at different depths (a prefix tree)
    drawn = decoding.sample(params, config, envs[:3], inputs, np.random.default_rng(3), n_samples=30)
    groups = [drawn[0], [], drawn[2][:5]]
    prefixes = [len({t.tokens[:depth] for t in groups[0]}) for depth in (2, 6, 20)]
    assert prefixes[0] < prefixes[1] < prefixes[2]  # programs share prefixes, then part ways
    max_steps = decoding.max_program_steps(envs)
    probs = buffer_program_probs(params, config, policy.encode(params, inputs, config), groups, max_steps)
    assert [p.shape for p in probs] == [(len(drawn[0]),), (0,), (5,)] and probs[0].dtype == np.float64
    for row, (group, got) in enumerate(zip(groups, probs)):
        for trajectory, p in zip(group, got):
            batch = trajectory_batch([trajectory], max_steps, config.max_valid, 8, [row])
            log_prob = float(np.asarray(policy.sequence_log_probs(params, inputs, batch, config)[0])[0].sum())
            assert p == pytest.approx(np.exp(log_prob), rel=1e-5)
    assert [p.shape for p in buffer_program_probs(params, config, policy.encode(params, inputs, config), [[], []], max_steps)] == [(0,), (0,)]


def test_exploration_filter_is_the_policy_when_nothing_is_explored(setup):
    """With fresh explorers every valid token is open: the same draws give the same samples."""
    _, envs, featurizer, config, params = setup
    inputs = decoding.encoder_inputs(featurizer, envs)
    explorers = [SystematicExplorer(env, set(), random.Random(0)) for env in envs]
    filtered = decoding.sample(params, config, envs, inputs, np.random.default_rng(3), explorers=explorers)
    plain = decoding.sample(params, config, envs, inputs, np.random.default_rng(3))
    assert [[t.tokens for t in f] for f in filtered] == [[t.tokens for t in f] for f in plain]
    for explorer, found in zip(explorers, filtered):  # each program was recorded as explored
        assert found[0].tokens in explorer.explored and explorer.n_rollouts == 1


def test_exploration_samples_without_replacement_until_exhausted(setup, all_programs):
    toy, _, featurizer, config, params = setup
    vocabulary = Vocabulary()
    envs = [QAEnvironment(ex, toy.tables[ex.table], limits=Limits(max_n_exp=1), vocabulary=vocabulary)
            for ex in toy.examples[:2]]
    everything = [all_programs(env.context.initial_state()) for env in envs]
    inputs = decoding.encoder_inputs(featurizer, envs)
    explored = [set(), set()]
    explorers = [SystematicExplorer(env, s, random.Random(0)) for env, s in zip(envs, explored)]
    rng = np.random.default_rng(0)
    seen = [[], []]
    for _ in range(200):
        samples = decoding.sample(params, config, envs, inputs, rng, n_samples=4, explorers=explorers)
        for i, found in enumerate(samples):
            seen[i].extend(t.tokens for t in found)
            for t in found:
                _assert_same_trajectory(t, envs[i].replay(t.tokens))
        if all(explorer.fully_explored for explorer in explorers):
            break
    for programs, expected, record in zip(seen, everything, explored):
        assert len(programs) == len(set(programs))  # never the same program twice
        assert set(programs) == expected  # and, in the end, every program
        assert () in record  # exhaustion reached the root
    # Fully explored environments yield nothing, sampled or greedy.
    assert decoding.sample(params, config, envs, inputs, rng, n_samples=4, explorers=explorers) == [[], []]
    assert decoding.sample(params, config, envs, inputs, None, greedy=True, explorers=explorers) == [[], []]


def test_exhaustion_found_below_the_root_propagates(setup, all_programs):
    """An explored set holding only whole programs (a loaded buffer): rows that reach an exhausted
    prefix report it, so exhaustion climbs to the root."""
    toy, _, featurizer, config, params = setup
    example = toy.examples[0]
    env = QAEnvironment(example, toy.tables[example.table], limits=Limits(max_n_exp=1))
    explored = set(all_programs(env.context.initial_state()))
    explorer = SystematicExplorer(env, explored, random.Random(0))
    inputs = decoding.encoder_inputs(featurizer, [env])
    rng = np.random.default_rng(0)
    for _ in range(100):
        assert decoding.sample(params, config, [env], inputs, rng, n_samples=4, explorers=[explorer]) == [[]]
        if explorer.fully_explored:
            break
    assert explorer.fully_explored and () in explored


def test_greedy_exploration_walks_programs_in_policy_order(setup):
    """Greedy decoding with explorers enumerates distinct programs, one per call."""
    _, envs, featurizer, config, params = setup
    envs = envs[:2]
    inputs = decoding.encoder_inputs(featurizer, envs)
    explorers = [SystematicExplorer(env, set(), random.Random(0)) for env in envs]
    first = decoding.sample(params, config, envs, inputs, None, greedy=True, explorers=explorers)
    unfiltered = decoding.sample(params, config, envs, inputs, None, greedy=True)
    assert [t[0].tokens for t in first] == [t[0].tokens for t in unfiltered]
    second = decoding.sample(params, config, envs, inputs, None, greedy=True, explorers=explorers)
    assert all(a[0].tokens != b[0].tokens for a, b in zip(first, second))


def test_programs_longer_than_max_steps_are_dropped(setup):
    _, envs, featurizer, config, params = setup
    inputs = decoding.encoder_inputs(featurizer, envs)
    assert decoding.sample(params, config, envs, inputs, np.random.default_rng(0), max_steps=3) == [[]] * N_ENVS
    assert decoding.beam_search(params, config, envs, inputs, max_steps=3) == [[]] * N_ENVS


def test_mismatched_inputs_are_refused(setup):
    _, envs, featurizer, config, params = setup
    inputs = decoding.encoder_inputs(featurizer, envs)
    explorers = [SystematicExplorer(envs[0], set(), random.Random(0))]
    with pytest.raises(ValueError, match="explorers for"):
        decoding.sample(params, config, envs, inputs, np.random.default_rng(0), explorers=explorers)
    with pytest.raises(ValueError, match="valid slots"):
        decoding.beam_search(params, ModelConfig(encoder_vocab_size=10, max_valid=7), envs, inputs)
    with pytest.raises(ValueError, match="needs an rng"):
        decoding.sample(params, config, envs, inputs, None)
