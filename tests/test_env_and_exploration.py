"""The RL environment, systematic exploration (Algorithm 1), trigger words and the warm start."""

import json
import random

import chex
import numpy as np
import pytest

from mapo_jax.data.synthetic import load_toy
from mapo_jax.env import QAEnvironment, Vocabulary, check_gold_programs
from mapo_jax.explore.bloom import BloomFilter
from mapo_jax.explore.systematic import SystematicExplorer, disabled_functions, random_explore
from mapo_jax.explore.warm_start import WarmStartConfig, load_programs, run_warm_start
from mapo_jax.lisp.interpreter import Limits


@pytest.fixture(scope="module")
def toy():
    return load_toy("train")


def _env(toy, index=0, **kwargs):
    example = toy.examples[index]
    return QAEnvironment(example, toy.tables[example.table], **kwargs)


def test_observations_have_fixed_shapes(toy):
    env = _env(toy)
    obs = env.observation(env.context.initial_state())
    chex.assert_shape([obs.valid_ids, obs.valid_mask, obs.features], [(60,)] * 3)
    assert obs.read_id == Vocabulary().id_of["<DECODE>"] and obs.write_id == -1
    assert obs.valid_mask.sum() == 1 and obs.valid_ids[0] == Vocabulary().id_of["("]


def test_replay_rebuilds_a_rewarded_trajectory(toy):
    env = _env(toy)
    tokens = env.context.tokens_from_text(toy.programs[env.example.id])
    trajectory = env.replay(tokens)
    n = len(tokens)
    chex.assert_shape([trajectory.valid_ids, trajectory.valid_mask, trajectory.features], [(n, 60)] * 3)
    chex.assert_shape([trajectory.read_ids, trajectory.write_ids, trajectory.actions], [(n,)] * 3)
    assert trajectory.reward == 1.0 and trajectory.tokens == tuple(tokens)
    vocab = env.vocabulary
    for t, token in enumerate(tokens):  # each action indexes the emitted token in the valid list
        assert trajectory.valid_ids[t, trajectory.actions[t]] == env.token_id(token)
    close = tokens.index(")")  # the step after `)` writes the new variable's memory slot
    assert trajectory.write_ids[close + 1] == vocab.n_builtin + len(env.context.constants)
    assert trajectory.read_ids[close + 1] == vocab.id_of[")"]


def test_column_features_reach_the_valid_tokens(toy):
    env = _env(toy)
    obs = env.observation(env.context.initial_state().step("(").step("argmax").step("all_rows"))
    features = dict(zip(obs.valid_ids[obs.valid_mask].tolist(), obs.features[obs.valid_mask].tolist()))
    for k, value in enumerate(env.example.column_features):
        if env.vocabulary.n_builtin + k in features:
            assert features[env.vocabulary.n_builtin + k] == value


class _FinishedState:
    """A finished program whose answer is empty (stands in for a ProgramState)."""

    done = True

    def unused_variables(self):
        return []

    def denotation(self):
        return []


def test_a_question_without_a_gold_answer_rewards_nothing(toy):
    """An empty answer matches an empty gold answer under the official rules; the reward (the one rule that
    training and evaluation share) must still be 0 for a question that has no gold answer."""
    import dataclasses

    from mapo_jax.data.values import check_denotation

    example = dataclasses.replace(toy.examples[0], answer=(), answer_canon=None)
    env = QAEnvironment(example, toy.tables[example.table], punish_extra_work=False)
    assert env.gold == [] and check_denotation(env.gold, [])
    assert env.reward(_FinishedState()) == 0.0
    gold_program = env.replay(env.context.tokens_from_text(toy.programs[example.id]))
    assert gold_program.reward == 0.0


def test_all_toy_gold_programs_earn_reward_one(toy):
    check = check_gold_programs(toy)
    assert check["gold_programs"] == len(toy.examples) == check["gold_programs_correct"]



@pytest.mark.parametrize("explored_factory", [set, lambda: BloomFilter(20000, 1e-8)])
def test_systematic_exploration_samples_without_replacement(toy, explored_factory, all_programs):
    env = _env(toy, index=6, limits=Limits(max_n_exp=2))
    everything = all_programs(env.context.initial_state())
    explored = explored_factory()
    explorer = SystematicExplorer(env, explored, random.Random(0))
    seen = []
    while not explorer.fully_explored:
        state = explorer.sample()
        if state is not None:
            seen.append(state.tokens)
    assert len(seen) == len(set(seen)) == len(everything)  # each program exactly once
    assert set(seen) == everything
    assert () in explored  # exhaustion reached the root
    # A fresh explorer over the same record finds nothing new.
    again = SystematicExplorer(env, explored, random.Random(1))
    assert again.sample() is None


def test_trigger_words():
    disabled = disabled_functions("how many nations won more than 3 gold medals ?".split())
    assert "count" not in disabled and "filter_greater" not in disabled and "average" in disabled
    assert "argmax" not in disabled  # "more" stands for the JJR/RBR tag, a trigger of argmax
    assert "argmax" in disabled_functions("how many nations won 3 gold medals ?".split())
    highest = "which nation has the highest total ?".split()
    assert "argmax" not in disabled_functions(highest)
    assert "argmax" in disabled_functions(highest, use_degree_words=False)


def test_random_explore_finds_the_gold_answer(toy):
    env = _env(toy)
    found, rollouts = random_explore(env, 2000, set(), random.Random(0))
    assert rollouts <= 2000 and len(found) == len(set(found))
    assert all(env.replay(program).reward == 1.0 for program in found)
    gold = tuple(env.context.tokens_from_text(toy.programs[env.example.id]))
    assert gold in found  # among other (spurious) programs with the same answer


def test_warm_start_writes_programs_and_resumes(toy, tmp_path):
    config = WarmStartConfig(rollouts_per_example=200, processes=2, chunk_size=5)
    stats = run_warm_start(toy, tmp_path, config, n_examples=20, log=lambda m: None)
    assert stats["examples"] == 20 and stats["coverage"] >= 0.9
    programs = load_programs(tmp_path / "programs.json")
    assert len(programs) == 20
    first = json.loads((tmp_path / "programs.json").read_text())
    # Interrupted run: one chunk lost; the rerun redoes only it and gets the same programs.
    (tmp_path / "parts" / "part-00001.json").unlink()
    messages = []
    run_warm_start(toy, tmp_path, config, n_examples=20, log=messages.append)
    assert any("resuming: 3/4 chunks" in m for m in messages)
    assert json.loads((tmp_path / "programs.json").read_text()) == first
    with pytest.raises(ValueError, match="other settings"):
        run_warm_start(toy, tmp_path, WarmStartConfig(rollouts_per_example=5), n_examples=20)
    assert set(json.loads((tmp_path / "stats.json").read_text())) >= {
        "coverage", "programs_per_example", "rollouts_per_second", "wall_time_s", "top_program_shapes"}
    assert np.isclose(stats["programs_per_example"]["mean"], np.mean([len(p) for p in programs.values()]))


def test_exhaustion_climbs_to_the_root_from_whole_programs_only(toy, all_programs):
    """An explored set holding only finished programs (as loaded from a warm start) must still
    let exhaustion propagate: sample() records prefixes whose continuations are all explored."""
    env = _env(toy, index=6, limits=Limits(max_n_exp=1))
    everything = all_programs(env.context.initial_state())
    explored = set(everything)  # whole programs, no prefixes
    explorer = SystematicExplorer(env, explored, random.Random(0))
    for _ in range(len(everything) + 5):
        assert explorer.sample() is None
        if () in explored:
            break
    assert () in explored and explorer.fully_explored
