"""End to end on real examples: featurise questions, replay programs into trajectories, batch them,
and score them with the policy, step by step and as whole sequences."""

import chex
import numpy as np
import pytest

from mapo_jax.batching import bucket, trajectory_batch
from mapo_jax.env import QAEnvironment, Vocabulary
from mapo_jax.model import policy
from mapo_jax.model.networks import StepInputs


@pytest.fixture(scope="module")
def setup(toy_policy):
    toy, _, featurizer, config, params = toy_policy
    examples = toy.examples[:6]
    envs = [QAEnvironment(ex, toy.tables[ex.table], vocabulary=Vocabulary()) for ex in examples]
    trajectories = [env.replay(env.context.tokens_from_text(toy.programs[env.example.id])) for env in envs]
    rows = [featurizer.features(env.example, toy.tables[env.example.table], len(env.context.constants))
            for env in envs]
    return envs, trajectories, featurizer, rows, config, params


def test_featurised_constants_follow_the_interpreter(setup):
    envs, _, featurizer, rows, _, _ = setup
    for env, (ids, in_table, spans, values, n_constants) in zip(envs, rows):
        columns = env.context.view.table.columns
        assert n_constants == len(env.context.constants)
        assert (spans[: len(columns)] == -1).all() and np.abs(values[: len(columns)]).sum() > 0
        for k, entity in enumerate(env.example.entities[: n_constants - len(columns)]):
            assert tuple(spans[len(columns) + k]) == (entity.start, entity.end - 1)
            assert not values[len(columns) + k].any()  # entities: no value embedding
        assert len(ids) == len(env.example.tokens) == len(in_table)


def test_policy_scores_real_trajectories(setup):
    envs, trajectories, featurizer, rows, config, params = setup
    inputs = featurizer.encoder_inputs(rows, batch_size=8)  # two padding rows
    batch = trajectory_batch(trajectories, max_steps=20, max_valid=60, batch_size=8)
    chex.assert_shape(inputs.tokens, (8, bucket(max(len(r[0]) for r in rows))))
    chex.assert_shape([batch.valid_ids, batch.valid_mask], [(8, 20, 60)] * 2)
    log_probs, entropies = policy.sequence_log_probs(params, inputs, batch, config)
    chex.assert_tree_all_finite((log_probs, entropies))
    assert (log_probs[:6].sum(1) < 0).all() and (log_probs[6:] == 0).all()
    # The same numbers, decoding step by step from the environments' own observations.
    encoded = policy.encode(params, inputs, config)
    state = policy.initial_state(encoded, config)
    for t in range(int(batch.length.max())):
        step = StepInputs(batch.read_ids[:, t], batch.write_ids[:, t], batch.valid_ids[:, t],
                          batch.valid_mask[:, t], batch.features[:, t])
        state, step_log_probs = policy.step(params, encoded, state, step, config)
        chosen = np.take_along_axis(np.asarray(step_log_probs), batch.actions[:, t, None], 1)[:, 0]
        live = t < batch.length
        np.testing.assert_allclose(np.where(live, chosen, 0.0), log_probs[:, t], atol=1e-5)


def test_too_long_trajectories_are_refused(setup):
    _, trajectories, _, _, _, _ = setup
    with pytest.raises(ValueError, match="exceeds max_steps"):
        trajectory_batch(trajectories, max_steps=3, max_valid=60)
