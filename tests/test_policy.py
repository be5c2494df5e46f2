"""The policy network and its pure functions: shapes, step-vs-sequence agreement, gradients."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mapo_jax.model import policy
from mapo_jax.model.networks import EncoderInputs, ModelConfig, StepInputs

SMALL = ModelConfig(encoder_vocab_size=24, pretrained_dim=8, hidden_size=16, n_builtin=31,
                    max_mem=12, max_valid=7, dropout=0.2)


def random_batch(config, batch=3, length=6, steps=5, seed=0):
    rng = np.random.default_rng(seed)
    c, v = config.max_mem, config.max_valid
    lengths = rng.integers(2, length + 1, batch)
    spans = -np.ones((batch, c, 2), np.int32)
    spans[:, 2] = [0, 0]  # an entity at the very first token still gets its span
    spans[:, 3] = [1, 2]
    inputs = EncoderInputs(
        tokens=jnp.asarray(rng.integers(0, config.encoder_vocab_size, (batch, length)), jnp.int32),
        in_table=jnp.asarray(rng.integers(0, 2, (batch, length)), jnp.float32),
        length=jnp.asarray(lengths, jnp.int32),
        constant_spans=jnp.asarray(spans),
        constant_values=jnp.asarray(rng.normal(size=(batch, c, config.pretrained_dim)), jnp.float32),
        n_constants=jnp.asarray([4] * batch, jnp.int32),
    )
    n_slots = config.n_slots
    valid_count = rng.integers(1, v + 1, (batch, steps))
    valid_mask = np.arange(v)[None, None, :] < valid_count[..., None]
    valid_ids = rng.integers(0, n_slots, (batch, steps, v)) * valid_mask
    actions = rng.integers(0, valid_count)
    read_ids = np.concatenate(
        [np.full((batch, 1), 2), np.take_along_axis(valid_ids, actions[..., None], -1)[:, :-1, 0]], axis=1)
    write_ids = np.where(rng.random((batch, steps)) < 0.3, config.n_builtin + 5 + np.arange(steps)[None], -1)
    trajectories = policy.TrajectoryBatch(
        read_ids=jnp.asarray(read_ids, jnp.int32), write_ids=jnp.asarray(write_ids, jnp.int32),
        valid_ids=jnp.asarray(valid_ids, jnp.int32), valid_mask=jnp.asarray(valid_mask),
        features=jnp.asarray(rng.integers(0, 3, (batch, steps, v)), jnp.float32),
        actions=jnp.asarray(actions, jnp.int32), length=jnp.asarray([steps, steps - 2, 1][:batch], jnp.int32),
        example_index=jnp.arange(batch, dtype=jnp.int32),
    )
    return inputs, trajectories


@pytest.fixture(scope="module")
def params():
    return policy.init(jax.random.PRNGKey(0), SMALL, np.ones((SMALL.encoder_vocab_size - 4, 8), np.float32))


def test_paper_sized_model_has_the_original_parameter_count():
    config = ModelConfig(encoder_vocab_size=2045, pretrained_dim=300)
    params = jax.eval_shape(lambda: policy.init(jax.random.PRNGKey(0), config))  # shapes only
    assert policy.count_parameters(params) == 2_335_001  # as many trainable as the original release
    chex.assert_shape(params["pretrained_embeddings"], (2041, 300))
    chex.assert_shape(params["decoder_1"]["gates"]["kernel"], (400, 800))
    chex.assert_shape(params["encoder_forward"]["lstm_1"]["input"]["kernel"], (201, 800))  # + 200 recurrent
    chex.assert_shape(params["encoder_forward"]["lstm_1"]["recurrent"], (200, 800))  # = TF's 401 x 800


def test_pretrained_matrix_must_fit(params):
    with pytest.raises(ValueError, match="expects"):
        policy.init(jax.random.PRNGKey(0), SMALL, np.ones((3, 8), np.float32))
    assert float(params["pretrained_embeddings"].sum()) == (SMALL.encoder_vocab_size - 4) * 8


def test_step_and_sequence_log_probs_agree(params):
    inputs, trajectories = random_batch(SMALL)
    log_probs, entropies = policy.sequence_log_probs(params, inputs, trajectories, SMALL)
    chex.assert_shape([log_probs, entropies], [(3, 5)] * 2)
    encoded = policy.encode(params, inputs, SMALL)
    state = policy.initial_state(encoded, SMALL)
    for t in range(5):
        step_inputs = StepInputs(
            trajectories.read_ids[:, t], trajectories.write_ids[:, t], trajectories.valid_ids[:, t],
            trajectories.valid_mask[:, t], trajectories.features[:, t])
        state, step_log_probs = policy.step(params, encoded, state, step_inputs, SMALL)
        chex.assert_shape(step_log_probs, (3, SMALL.max_valid))
        chosen = step_log_probs[jnp.arange(3), trajectories.actions[:, t]]
        live = t < trajectories.length
        np.testing.assert_allclose(np.where(live, chosen, 0.0), log_probs[:, t], atol=1e-5)
        probs = jnp.exp(step_log_probs)
        np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)
        assert float(jnp.where(step_inputs.valid_mask, 0.0, probs).max()) < 1e-6  # invalid: no mass
    assert float(log_probs[2, 1:].sum()) == 0.0 and float(entropies[2, 1:].sum()) == 0.0  # padding


def test_gradients_are_finite_and_skip_frozen_vectors(params):
    inputs, trajectories = random_batch(SMALL)

    def loss(p):
        log_probs, entropies = policy.sequence_log_probs(p, inputs, trajectories, SMALL, jax.random.PRNGKey(1), False)
        return -log_probs.sum() - 0.01 * entropies.sum()

    grads = jax.grad(loss)(params)
    chex.assert_tree_all_finite(grads)
    assert float(jnp.abs(grads["pretrained_embeddings"]).sum()) == 0.0
    assert float(jnp.abs(grads["decoder_1"]["gates"]["kernel"]).sum()) > 0.0
    assert float(jnp.abs(grads["feature_weight"])) > 0.0


def test_the_learners_scan_is_an_encoding_then_the_actors_scan(params):
    """`sequence_log_probs` = `encode` + the scan actors run from encoded questions: without dropout the
    two paths agree, and with it the learner's key splits as (encoder, decoder) -- pinned, so a run's
    dropout masks do not change under a refactor."""
    inputs, trajectories = random_batch(SMALL)
    encoded = policy.encode(params, inputs, SMALL)
    chex.assert_trees_all_close(policy.encoded_log_probs(params, encoded, trajectories, SMALL),
                                policy.sequence_log_probs(params, inputs, trajectories, SMALL), atol=1e-5)
    rng = jax.random.PRNGKey(7)
    encode_rng, decode_rng = jax.random.split(rng)
    by_hand = policy._teacher_forced(params, policy.encode(params, inputs, SMALL, encode_rng, False), trajectories,
                                     SMALL, decode_rng, False)
    chex.assert_trees_all_close(policy.sequence_log_probs(params, inputs, trajectories, SMALL, rng, False), by_hand,
                                atol=1e-5)


def test_dropout_changes_training_passes_only(params):
    inputs, trajectories = random_batch(SMALL)
    a, _ = policy.sequence_log_probs(params, inputs, trajectories, SMALL, jax.random.PRNGKey(1), False)
    b, _ = policy.sequence_log_probs(params, inputs, trajectories, SMALL, jax.random.PRNGKey(2), False)
    c, _ = policy.sequence_log_probs(params, inputs, trajectories, SMALL)
    d, _ = policy.sequence_log_probs(params, inputs, trajectories, SMALL)
    assert not np.allclose(a, b)
    chex.assert_trees_all_close(c, d)


def test_questions_are_encoded_once_for_all_their_trajectories(params):
    inputs, trajectories = random_batch(SMALL)
    full, _ = policy.sequence_log_probs(params, inputs, trajectories, SMALL)
    # Keep only question 1 and point every trajectory at it: its trajectory must score the same.
    one = jax.tree_util.tree_map(lambda x: x[1:2], inputs)
    shared = trajectories._replace(example_index=jnp.zeros(3, jnp.int32))
    again, _ = policy.sequence_log_probs(params, one, shared, SMALL)
    np.testing.assert_allclose(again[1], full[1], atol=1e-5)


@pytest.mark.parametrize("reverse", [False, True])
def test_encoder_layer_respects_each_sequence_length(reverse):
    """Padded batch scan == a plain loop over each unpadded sequence (forwards or backwards)."""
    from mapo_jax.model.networks import _LSTMLayer

    layer = _LSTMLayer(5, reverse)
    x = jax.random.normal(jax.random.PRNGKey(0), (3, 6, 4))
    length = jnp.asarray([6, 3, 1])
    variables = layer.init(jax.random.PRNGKey(1), x, length)
    outputs, (c_final, h_final) = layer.apply(variables, x, length)
    p = variables["params"]
    for b in range(3):
        n = int(length[b])
        sequence = x[b, :n][::-1] if reverse else x[b, :n]
        c = h = jnp.zeros(5)
        expected = []
        for x_t in sequence:
            z = x_t @ p["input"]["kernel"] + p["input"]["bias"] + h @ p["recurrent"]
            i, j, f, o = jnp.split(z, 4)
            c = c * jax.nn.sigmoid(f + 1.0) + jax.nn.sigmoid(i) * jnp.tanh(j)
            h = jnp.tanh(c) * jax.nn.sigmoid(o)
            expected.append(h)
        expected = jnp.stack(expected[::-1] if reverse else expected)
        np.testing.assert_allclose(outputs[b, :n], expected, atol=1e-5)
        np.testing.assert_allclose(outputs[b, n:], 0.0)
        np.testing.assert_allclose(h_final[b], h, atol=1e-5)
