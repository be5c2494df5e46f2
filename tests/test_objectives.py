"""Tests of mapo_jax.objectives: weight functions and the loss (gradients on the enumerable tree of
mapo_jax.analysis.estimators, whose estimator checks are in test_analysis.py)."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized

from mapo_jax import objectives as obj
from mapo_jax.analysis import estimators as E
from mapo_jax.objectives import SampleBatch


def make_batch(reward, in_buffer, pi_buffer, sample_weight=None, baseline=None, valid=None, n_examples=1.0):
    n = len(reward)
    return SampleBatch(
        reward=jnp.asarray(reward, jnp.float32),
        in_buffer=jnp.asarray(in_buffer, bool),
        pi_buffer=jnp.asarray(pi_buffer, jnp.float32),
        sample_weight=jnp.asarray(sample_weight if sample_weight is not None else [1.0] * n, jnp.float32),
        baseline=jnp.asarray(baseline if baseline is not None else [0.0] * n, jnp.float32),
        valid=jnp.asarray(valid if valid is not None else [True] * n, bool),
        n_examples=jnp.asarray(n_examples, jnp.float32),
    )


# Rows: in-buffer pi_B=0.05; outside R=1 and R=0 at pi_B=0.05; in-buffer pi_B=0.6 with 2 samples (sw=1/2);
# outside at pi_B=0.6; outside with an empty buffer; a padding row; outside at pi_B=0.6 drawn once and kept
# with the acceptance correction sw = 1/(1 - 0.6).
MAPO_BATCH = make_batch(
    reward=[1, 1, 0, 1, 1, 1, 1, 1],
    in_buffer=[True, False, False, True, False, False, False, False],
    pi_buffer=[0.05, 0.05, 0.05, 0.6, 0.6, 0.0, 0.3, 0.6],
    sample_weight=[1, 1, 1, 0.5, 1, 1, 1, 2.5],
    valid=[True, True, True, True, True, True, False, True],
)


class WeightsTest(chex.TestCase):

    @chex.variants(with_jit=True, without_jit=True)
    def test_mapo_weights_clip(self):
        weights = self.variant(obj.mapo_weights)(MAPO_BATCH, 0.1)
        np.testing.assert_allclose(weights, [0.1, 0.9, 0.0, 0.3, 0.4, 1.0, 0.0, 1.0], rtol=1e-6)

    @chex.variants(with_jit=True, without_jit=True)
    def test_mapo_weights_alpha_zero_disables_clip(self):
        weights = self.variant(obj.mapo_weights)(MAPO_BATCH, 0.0)
        np.testing.assert_allclose(weights, [0.05, 0.95, 0.0, 0.3, 0.4, 1.0, 0.0, 1.0], rtol=1e-6)

    @chex.variants(with_jit=True, without_jit=True)
    def test_mapo_weights_baseline_and_unbatched(self):
        fn = self.variant(obj.mapo_weights)
        batch = make_batch([1, 0], [True, False], [0.5, 0.5], baseline=[0.25, 0.25])
        np.testing.assert_allclose(fn(batch, 0.1), [0.75 * 0.5, -0.25 * 0.5], rtol=1e-6)
        single = jax.tree_util.tree_map(lambda x: x[1] if x.ndim else x, MAPO_BATCH)  # rank-0 fields
        np.testing.assert_allclose(fn(single, 0.1), 0.9, rtol=1e-6)

    @chex.variants(with_jit=True, without_jit=True)
    def test_mapo_weights_round_off_pi_buffer(self):
        batch = make_batch([1, 1], [True, False], [1.0000001, 1.0000001])
        np.testing.assert_allclose(self.variant(obj.mapo_weights)(batch, 0.1), [1.0, 0.0], atol=1e-7)

    def test_outside_draw_weight_by_hand(self):
        assert obj.outside_draw_weight(0.75) == pytest.approx(4.0)  # kept with probability 1/4
        assert obj.outside_draw_weight(0.0) == 1.0
        assert obj.outside_draw_weight(1.0) == pytest.approx(1e6)  # bounded where pi_B rounds to 1
        assert obj.outside_draw_weight(0.75, "original") == 1.0
        with pytest.raises(ValueError, match="unbiased, original"):
            obj.outside_draw_weight(0.5, "clipped")

    @chex.variants(with_jit=True, without_jit=True)
    def test_reinforce_weights(self):
        batch = make_batch(reward=[1, 0, 1, 1, 1], in_buffer=[False, False, True, False, False],
                           pi_buffer=[0.0, 0.0, 0.7, 0.0, 0.0], sample_weight=[0.5, 0.5, 1.0, 1.0, 0.25],
                           baseline=[0.0, 0.0, 0.5, 0.0, 0.2], valid=[True, True, True, False, True])
        np.testing.assert_allclose(self.variant(obj.reinforce_weights)(batch), [0.5, 0.0, 0.5, 0.0, 0.2], rtol=1e-6)

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.parameters("mml", "hard_em", "iml")
    def test_buffer_only_weights(self, objective):
        batch = make_batch(reward=[1, 1, 1, 1, 0], in_buffer=[True, True, False, True, False],
                           pi_buffer=[0.05, 0.05, 0.05, 0.3, 0.0], sample_weight=[0.5, 0.5, 1.0, 1.0, 1.0],
                           baseline=[0.3, 0.3, 0.3, 0.3, 0.3], valid=[True, True, True, False, True])
        weights = self.variant(obj.WEIGHT_FNS[objective])(batch)
        np.testing.assert_allclose(weights, [0.5, 0.5, 0.0, 0.0, 0.0], rtol=1e-6)

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.parameters(*obj.OBJECTIVES)
    def test_padding_with_nan_gives_zero_weight(self, objective):
        nan = float("nan")
        batch = make_batch(reward=[1, nan], in_buffer=[True, True], pi_buffer=[0.5, nan],
                           sample_weight=[1.0, nan], baseline=[0.0, nan], valid=[True, False])
        fn = obj.WEIGHT_FNS[objective]
        fn = (lambda b: obj.mapo_weights(b, 0.1)) if objective == "mapo" else fn
        weights = self.variant(fn)(batch)
        np.testing.assert_array_equal(np.isfinite(weights), [True, True])
        self.assertEqual(float(weights[1]), 0.0)

    def test_shape_mismatch_raises(self):
        batch = MAPO_BATCH._replace(reward=jnp.ones(3))
        with self.assertRaises(AssertionError):
            obj.mapo_weights(batch, 0.1)

    def test_weight_fns_table(self):
        self.assertEqual(set(obj.WEIGHT_FNS), {"mapo", "reinforce", "mml", "hard_em", "iml"})


def linear_log_prob_fn(params, inputs):
    """log pi = scale * base_log_prob, entropy = temp * base_entropy: a policy whose numbers are chosen."""
    return params["scale"] * inputs["logp"], params["temp"] * inputs["entropy"]


PARAMS = {"scale": jnp.asarray(1.0), "temp": jnp.asarray(1.0)}
# 2 examples: the first has a buffer (pi_B = 0.05), an in-buffer and an outside R=1 sample; the second has
# no buffer and one R=1 sample. MAPO weights [0.1, 0.9, 1.0].
LOSS_BATCH = make_batch(reward=[1, 1, 1], in_buffer=[True, False, False], pi_buffer=[0.05, 0.05, 0.0], n_examples=2.0)
LOSS_INPUTS = {"logp": jnp.array([-1.0, -2.0, -3.0]), "entropy": jnp.array([0.5, 1.0, 1.5])}


class LossTest(chex.TestCase):

    @chex.variants(with_jit=True, without_jit=True)
    def test_mapo_loss_hand_computed(self):
        loss_fn = self.variant(obj.make_loss("mapo", linear_log_prob_fn, alpha=0.1, entropy_coeff=0.01))
        loss, metrics = loss_fn(PARAMS, (LOSS_BATCH, LOSS_INPUTS))
        # -(0.1*-1 + 0.9*-2 + 1*-3)/2 - 0.01*(0.5+1+1.5)/2 = 2.45 - 0.015
        np.testing.assert_allclose(loss, 2.435, rtol=1e-6)
        np.testing.assert_allclose(metrics["loss"], 2.435, rtol=1e-6)
        np.testing.assert_allclose(metrics["entropy"], 1.0, rtol=1e-6)
        np.testing.assert_allclose(metrics["mean_pi_buffer"], 0.05, rtol=1e-6)
        np.testing.assert_allclose(metrics["clip_fraction"], 1.0, rtol=1e-6)
        np.testing.assert_allclose(metrics["weight_sum"], 2.0, rtol=1e-6)

    @chex.variants(with_jit=True, without_jit=True)
    def test_reinforce_loss_and_gradient_hand_computed(self):
        loss_fn = obj.make_loss("reinforce", linear_log_prob_fn, entropy_coeff=0.01)
        grad_fn = self.variant(jax.value_and_grad(lambda p: loss_fn(p, (LOSS_BATCH, LOSS_INPUTS))[0]))
        loss, grads = grad_fn(PARAMS)
        np.testing.assert_allclose(loss, 3.0 - 0.015, rtol=1e-6)
        np.testing.assert_allclose(grads["scale"], 3.0, rtol=1e-6)  # -(1/2) sum_b w_b * base_logp_b
        np.testing.assert_allclose(grads["temp"], -0.015, rtol=1e-6)  # -0.01 * (1/2) sum_b base_entropy_b

    @chex.variants(with_jit=True, without_jit=True)
    def test_entropy_is_a_bonus(self):
        loss_fn = self.variant(obj.make_loss("mapo", linear_log_prob_fn, entropy_coeff=0.01))
        low, _ = loss_fn(PARAMS, (LOSS_BATCH, LOSS_INPUTS))
        high, _ = loss_fn({**PARAMS, "temp": jnp.asarray(2.0)}, (LOSS_BATCH, LOSS_INPUTS))
        self.assertLess(float(high), float(low))
        np.testing.assert_allclose(low - high, 0.015, rtol=1e-5)
        no_bonus = obj.make_loss("mapo", linear_log_prob_fn, entropy_coeff=0.0)
        np.testing.assert_allclose(no_bonus(PARAMS, (LOSS_BATCH, LOSS_INPUTS))[0], 2.45, rtol=1e-6)

    @chex.variants(with_jit=True, without_jit=True)
    def test_gradient_is_weighted_score_with_stop_gradient(self):
        # The batch's pi_B is recomputed from the parameters (as a learner with "trainer prob" would): the
        # gradient must still be (1/n) sum_b w_b grad log pi_b + c (1/n) sum_b grad H_b, weights held fixed.
        bed = E.default_tree_bed()
        log_prob_fn = E.make_tree_log_prob_fn(bed)
        theta = E.tree_params_with_buffer_prob(bed, 0.3, seed=1)
        programs = jnp.array([7, 19, 2, 13, 5])
        base = make_batch(reward=[1, 1, 1, 1, 0], in_buffer=[True, True, False, False, False],
                          pi_buffer=[0.0] * 5, sample_weight=[0.5, 0.5, 1, 1, 1], n_examples=1.0)
        loss_fn = obj.make_loss("mapo", log_prob_fn, alpha=0.0, entropy_coeff=0.01)

        def loss_of_theta(theta):
            pi_b = E.tree_buffer_prob(bed, theta)
            return loss_fn(theta, (base._replace(pi_buffer=jnp.full((5,), pi_b)), programs))[0]

        grads = self.variant(jax.grad(loss_of_theta))(theta)
        pi_b = float(E.tree_buffer_prob(bed, theta))
        weights = np.array([0.5 * pi_b, 0.5 * pi_b, 1 - pi_b, 1 - pi_b, 0.0])
        jac_logp, jac_ent = jax.jacobian(log_prob_fn)(theta, programs)
        expected = -np.tensordot(weights, jac_logp, 1) - 0.01 * np.sum(jac_ent, 0)
        np.testing.assert_allclose(grads, expected, atol=1e-6)

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.parameters(*obj.OBJECTIVES)
    def test_padding_rows_contribute_nothing(self, objective):
        nan = float("nan")
        padded = make_batch(reward=[1, 1, 1, 7, nan], in_buffer=[True, False, False, True, False],
                            pi_buffer=[0.05, 0.05, 0.0, 0.5, nan], sample_weight=[1, 1, 1, 3, nan],
                            baseline=[0, 0, 0, -2, nan], valid=[True, True, True, False, False], n_examples=2.0)
        padded_inputs = {"logp": jnp.array([-1.0, -2.0, -3.0, -50.0, -1e4]),
                         "entropy": jnp.array([0.5, 1.0, 1.5, 9.0, 1e4])}
        loss_fn = obj.make_loss(objective, linear_log_prob_fn)
        value_and_grad = self.variant(jax.value_and_grad(loss_fn, has_aux=True))
        (loss, metrics), grads = value_and_grad(PARAMS, (LOSS_BATCH, LOSS_INPUTS))
        (loss_p, metrics_p), grads_p = value_and_grad(PARAMS, (padded, padded_inputs))
        np.testing.assert_allclose(loss_p, loss, rtol=1e-6)
        chex.assert_trees_all_close(metrics_p, metrics, rtol=1e-6)
        chex.assert_trees_all_close(grads_p, grads, rtol=1e-6)
        # a padding row's log-probability may even be NaN or -inf for the loss value (its gradient must be
        # finite: that is the policy's side of the contract)
        bad_inputs = {**padded_inputs, "logp": padded_inputs["logp"].at[3].set(nan).at[4].set(-jnp.inf)}
        np.testing.assert_allclose(self.variant(loss_fn)(PARAMS, (padded, bad_inputs))[0], loss, rtol=1e-6)

    @chex.variants(with_jit=True, without_jit=True)
    def test_metrics_without_buffer_samples_are_finite(self):
        batch = make_batch(reward=[0, 1], in_buffer=[False, False], pi_buffer=[0.0, 0.0], valid=[True, False])
        _, metrics = self.variant(obj.make_loss("mapo", linear_log_prob_fn))(
            PARAMS, (batch, {"logp": jnp.array([-1.0, -2.0]), "entropy": jnp.array([0.5, 1.0])}))
        self.assertEqual(float(metrics["mean_pi_buffer"]), 0.0)
        self.assertEqual(float(metrics["clip_fraction"]), 0.0)
        np.testing.assert_allclose(metrics["entropy"], 0.5)

    def test_unknown_objective_lists_valid_ones(self):
        with pytest.raises(ValueError, match="unknown objective 'ppo'.*mapo, reinforce, mml, hard_em, iml"):
            obj.make_loss("ppo", linear_log_prob_fn)
        with pytest.raises(ValueError, match="alpha"):
            obj.make_loss("mapo", linear_log_prob_fn, alpha=1.5)

    @parameterized.parameters(*obj.OBJECTIVES)
    def test_finite_gradients(self, objective):
        bed = E.default_tree_bed()
        theta = E.tree_params_with_buffer_prob(bed, 0.999, seed=2, scale=3.0)  # a peaked policy
        # in-buffer with pi_B ~ 1, outside with pi_B ~ 1, no buffer, a padding row, pi_B = 0 in-buffer
        batch = make_batch(reward=[1, 1, 1, 0, 1], in_buffer=[True, False, False, False, True],
                           pi_buffer=[0.999, 0.999, 0.0, 0.3, 0.0], valid=[True, True, True, False, True],
                           n_examples=3.0)
        programs = jnp.array([7, 2, 0, 26, 19])
        loss_fn = jax.jit(obj.make_loss(objective, E.make_tree_log_prob_fn(bed)))
        (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(theta, (batch, programs))
        self.assertTrue(bool(jnp.isfinite(loss)))
        chex.assert_tree_all_finite((metrics, grads))
        self.assertGreater(float(jnp.linalg.norm(grads)), 0.0)
