"""Tests for mapo_jax.buffer: admission, loading saved programs, probabilities, sampling helpers, JSON."""

import json
import random
import sys

import numpy as np
import pytest

from mapo_jax.buffer import PI_BUFFER_FLOOR, MemoryBuffer, total_probability
from mapo_jax.data.synthetic import load_toy
from mapo_jax.env import QAEnvironment
from mapo_jax.explore.systematic import random_explore


@pytest.fixture(scope="module")
def toy():
    return load_toy("train")


@pytest.fixture(scope="module")
def envs(toy):
    """The first three toy examples' environments, by id."""
    out = {}
    for example in toy.examples[:3]:
        out[example.id] = QAEnvironment(example, toy.tables[example.table])
    return out


@pytest.fixture(scope="module")
def gold(toy, envs):
    """Example id -> the reward-1 trajectory of its gold program."""
    out = {}
    for example_id, env in envs.items():
        trajectory = env.replay(env.context.tokens_from_text(toy.programs[example_id]))
        assert trajectory.reward == 1.0
        out[example_id] = trajectory
    return out


@pytest.fixture(scope="module")
def first(envs):
    return next(iter(envs))


@pytest.fixture(scope="module")
def found(envs, gold, first):
    """Reward-1 trajectories of the first example: its gold program, then four others found by exploration."""
    env = envs[first]
    programs, _ = random_explore(env, 2000, set(), random.Random(0))
    others = [p for p in programs if p != gold[first].tokens]
    assert len(others) >= 4, "the toy example should have several reward-1 programs"
    trajectories = [gold[first]] + [env.replay(p) for p in others[:4]]
    assert all(t.reward == 1.0 for t in trajectories)
    assert len({t.tokens for t in trajectories}) == 5
    return trajectories


@pytest.fixture()
def full(first, found):
    """A buffer holding the five programs of `found` for the first example, in that order."""
    buffer = MemoryBuffer()
    assert buffer.add_many(first, found) == 5
    return buffer


def _wrong(env, gold_trajectory):
    """A finished program with reward 0: the gold program with argmax turned into argmin."""
    tokens = ["argmin" if t == "argmax" else t for t in gold_trajectory.tokens]
    trajectory = env.replay(tokens)
    assert trajectory.reward == 0.0 and trajectory.tokens[-1] == "<END>"
    return trajectory


# ----------------------------------------------------------------------------- admission


def test_add_admits_new_rewarded_programs_only(envs, gold, first, found):
    buffer = MemoryBuffer()
    assert buffer.add(first, gold[first]) is True
    assert buffer.add(first, gold[first]) is False  # duplicate
    assert buffer.add(first, envs[first].replay(gold[first].tokens)) is False  # same program, new object
    assert buffer.add(first, _wrong(envs[first], gold[first])) is False  # reward 0
    unfinished = gold[first]._replace(tokens=gold[first].tokens[:-1])  # reward 1 but no <END>
    assert buffer.add(first, unfinished) is False
    assert buffer.add(first, found[1]) is True
    assert buffer.programs(first) == [gold[first].tokens, found[1].tokens]  # insertion order
    assert buffer.trajectories(first) == [gold[first], found[1]]
    assert buffer.n_programs(first) == 2 and len(buffer) == 2


def test_programs_are_per_example(envs, gold, first):
    buffer = MemoryBuffer()
    second = list(envs)[1]
    assert buffer.add(first, gold[first])
    assert buffer.add(second, gold[first])  # the same tokens for another example are a separate entry
    assert buffer.add(second, gold[second])
    assert buffer.n_programs(first) == 1 and buffer.n_programs(second) == 2 and len(buffer) == 3
    assert buffer.example_ids() == [first, second]


def test_contains_accepts_tuples_lists_and_strings(gold, first, found):
    buffer = MemoryBuffer()
    buffer.add(first, gold[first])
    tokens = gold[first].tokens
    assert buffer.contains(first, tokens)
    assert buffer.contains(first, list(tokens))
    assert buffer.contains(first, " ".join(tokens))
    assert not buffer.contains(first, found[1].tokens)
    assert not buffer.contains("no-such-example", tokens)
    assert not buffer.contains(first, tokens[:-1])


def test_coverage_counts_examples_with_a_program(envs, gold):
    buffer = MemoryBuffer()
    ids = list(envs)
    assert buffer.coverage(ids) == 0.0 and buffer.coverage([]) == 0.0
    buffer.add(ids[0], gold[ids[0]])
    assert buffer.coverage(ids) == pytest.approx(1 / 3)
    buffer.add(ids[2], gold[ids[2]])
    assert buffer.coverage(ids) == pytest.approx(2 / 3)
    assert buffer.coverage(ids[:1]) == 1.0


def test_empty_buffer_queries():
    buffer = MemoryBuffer()
    assert buffer.programs("x") == [] and buffer.trajectories("x") == []
    assert len(buffer) == 0 and buffer.n_programs("x") == 0 and not buffer.has_programs("x")


# ----------------------------------------------------------------------------- loading saved programs


def test_load_programs_counts_skipped_programs_without_crashing(envs, gold, first, found):
    ids = list(envs)
    good = " ".join(gold[first].tokens)
    saved = {
        first: [
            good,
            " ".join(found[1].tokens),
            good,  # duplicate
            "( hop v1",  # malformed: never finishes
            "( no_such_function all_rows ) <END>",  # invalid token
            " ".join(_wrong(envs[first], gold[first]).tokens),  # reward 0
            "",  # empty
            None,  # not a string
        ],
        ids[1]: [" ".join(gold[ids[1]].tokens)],
        "another-actors-example": [good],
    }
    buffer = MemoryBuffer()
    stats = buffer.load_programs(envs, saved)
    assert stats["loaded"] == 3
    assert stats["skipped"] == {"invalid": 4, "reward_0": 1, "duplicate": 1}
    assert stats["programs"] == 9 and stats["examples"] == 2 and stats["examples_without_env"] == 1
    assert stats["coverage"] == pytest.approx(2 / 3)
    assert len(stats["errors"]) == 6 and any("no_such_function" in e for e in stats["errors"])
    assert buffer.programs(first) == [gold[first].tokens, found[1].tokens]
    assert buffer.programs(ids[1]) == [gold[ids[1]].tokens]
    assert not buffer.has_programs("another-actors-example")
    # The stored trajectories are real replays: same actions and observations as the original.
    replayed = buffer.trajectories(first)[0]
    np.testing.assert_array_equal(replayed.actions, gold[first].actions)
    np.testing.assert_array_equal(replayed.valid_ids, gold[first].valid_ids)


def test_load_programs_rejects_a_non_list_entry(envs, first):
    stats = MemoryBuffer().load_programs(envs, {first: "( hop v1 v2 ) <END>"})
    assert stats["loaded"] == 0 and stats["skipped"]["invalid"] == 1


def test_load_programs_reads_a_warm_start_file(tmp_path, envs, gold, first):
    from mapo_jax.explore.warm_start import FORMAT, load_programs

    path = tmp_path / "programs.json"
    path.write_text(json.dumps({"format": FORMAT, "programs": {first: [" ".join(gold[first].tokens)]}}))
    buffer = MemoryBuffer()
    assert buffer.load_programs(envs, load_programs(path))["loaded"] == 1
    assert buffer.contains(first, gold[first].tokens)


# ----------------------------------------------------------------------------- probabilities


def test_pi_buffer_sums_the_probabilities_and_checks_them(full, first):
    assert full.pi_buffer(first, [0.2, 0.1, 0.05, 0.04, 0.01]) == pytest.approx(0.4, rel=1e-12)
    with pytest.raises(ValueError, match="expected 5 buffer probabilities"):
        full.pi_buffer(first, np.full(3, 0.1))  # one probability per program
    with pytest.raises(ValueError, match="finite"):
        full.pi_buffer(first, np.full(5, np.nan))  # a diverged policy


def test_pi_buffer_is_floored_for_a_non_empty_buffer_and_zero_for_an_empty_one(full, first):
    assert full.pi_buffer(first, np.exp(np.full(5, -2000.0))) == PI_BUFFER_FLOOR > 0.0  # underflowed to 0
    assert MemoryBuffer().pi_buffer(first, np.zeros(0)) == 0.0
    assert total_probability(np.array([])) == 0.0
    assert total_probability(np.array([0.7, 0.5])) == 1.0  # round-off above 1 is clipped


# ----------------------------------------------------------------------------- choosing programs


def test_sample_frequencies_follow_the_renormalised_probs(full, first, found):
    probs = np.array([0.02, 0.01, 0.04, 0.0, 0.03])  # π_old(B) = 0.1: renormalised 0.2, 0.1, 0.4, 0, 0.3
    n = 20000
    samples = full.sample(first, probs, n, np.random.default_rng(0))
    assert len(samples) == n and all(s.sample_weight == 1.0 / n for s in samples)
    index = {t.tokens: i for i, t in enumerate(found)}
    counts = np.bincount([index[s.trajectory.tokens] for s in samples], minlength=5)
    np.testing.assert_allclose(counts / n, [0.2, 0.1, 0.4, 0.0, 0.3], atol=0.015)
    assert counts[3] == 0  # zero probability: never drawn
    again = full.sample(first, probs, n, np.random.default_rng(0))
    assert [s.trajectory.tokens for s in again] == [s.trajectory.tokens for s in samples]  # seeded


def test_sample_of_underflowed_probs_is_uniform_and_bad_probs_raise(full, first):
    samples = full.sample(first, np.zeros(5), 5000, np.random.default_rng(1))
    counts = np.bincount([full.programs(first).index(s.trajectory.tokens) for s in samples], minlength=5)
    np.testing.assert_allclose(counts / 5000, 0.2, atol=0.03)
    with pytest.raises(ValueError):
        full.sample(first, np.ones(4), 3, np.random.default_rng(0))  # one probability per program
    with pytest.raises(ValueError):
        full.sample(first, np.array([0.5, -0.1, 0.2, 0.2, 0.2]), 3, np.random.default_rng(0))
    assert MemoryBuffer().sample(first, np.zeros(0), 3, np.random.default_rng(0)) == []


def test_uniform_draws_every_program_equally(full, first):
    n = 10000
    samples = full.uniform(first, n, np.random.default_rng(2))
    assert len(samples) == n and all(s.sample_weight == 1.0 / n for s in samples)
    counts = np.bincount([full.programs(first).index(s.trajectory.tokens) for s in samples], minlength=5)
    np.testing.assert_allclose(counts / n, 0.2, atol=0.02)
    assert MemoryBuffer().uniform(first, 3, np.random.default_rng(0)) == []


def test_most_probable_picks_the_argmax(full, first, found):
    (best,) = full.most_probable(first, np.array([0.1, 0.2, 0.4, 0.4, 0.3]))
    assert best.trajectory.tokens == found[2].tokens and best.sample_weight == 1.0  # first of a tie
    assert MemoryBuffer().most_probable(first, np.zeros(0)) == []


# ----------------------------------------------------------------------------- checkpoints


def test_json_round_trip_rebuilds_the_trajectories(envs, gold, first, found):
    buffer = MemoryBuffer()
    ids = list(envs)
    buffer.add_many(first, found[:3])
    buffer.add(ids[2], gold[ids[2]])
    data = json.loads(json.dumps(buffer.to_json()))  # through real JSON
    assert data == {
        first: [" ".join(t.tokens) for t in found[:3]],
        ids[2]: [" ".join(gold[ids[2]].tokens)],
    }
    restored = MemoryBuffer.from_json(data, envs)
    assert restored.to_json() == buffer.to_json()
    for example_id in (first, ids[2]):
        assert restored.programs(example_id) == buffer.programs(example_id)
        for a, b in zip(restored.trajectories(example_id), buffer.trajectories(example_id)):
            for field in ("read_ids", "write_ids", "valid_ids", "valid_mask", "features", "actions"):
                np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
            assert a.reward == b.reward == 1.0
    # an actor restoring only its shard ignores the other ids
    shard = MemoryBuffer.from_json(data, {ids[2]: envs[ids[2]]})
    assert shard.example_ids() == [ids[2]]


def test_from_json_is_strict_about_programs_that_no_longer_replay(envs, gold, first):
    data = {first: [" ".join(gold[first].tokens), "( no_such_function all_rows ) <END>"]}
    with pytest.raises(ValueError, match="no longer replay"):
        MemoryBuffer.from_json(data, envs)
    lenient = MemoryBuffer.from_json(data, envs, strict=False)
    assert lenient.programs(first) == [gold[first].tokens]


def test_buffer_module_does_not_need_jax():
    import subprocess

    code = "import sys, mapo_jax.buffer; assert 'jax' not in sys.modules, 'buffer imported jax'"
    subprocess.run([sys.executable, "-c", code], check=True)
