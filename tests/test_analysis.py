"""Tests of mapo_jax.analysis: the Appendix C variance formulas, their measurement on the enumerable tree and on
a toy policy, and the run-directory readers behind the learning-curve notebook."""

import json
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mapo_jax.analysis import estimators as E
from mapo_jax.analysis import policy_variance as PV
from mapo_jax.analysis import runs as R
from mapo_jax.analysis import tree as T
from mapo_jax.analysis import variance as V


def bandit(n_programs, n_buffer, pi_buffer, n_rewarded_outside=0, baseline=None):
    probs, rewards, in_buffer = V.symmetric_bandit(n_programs, n_buffer, pi_buffer, n_rewarded_outside)
    b = float(probs @ rewards) if baseline is None else baseline
    return V.bandit_strata_moments(probs, rewards, in_buffer, b)


# --- analytic formulas ---


def test_symmetric_bandit_by_hand():
    # 4 programs, 2 in the buffer (both rewarded), pi_B = 0.5: pi = 1/4 each, g(a) = e_a - pi.
    # grad O = 1/4 (e0 + e1) - 1/2 pi = [1/8, 1/8, -1/8, -1/8]; V+ = E|e_a - u_B|^2 = 1/2; V- = 0;
    # |mu+ - mu-|^2 = |u_B - pi|^2 = 4 (1/4)^2 = 1/4.
    m = bandit(4, 2, 0.5, baseline=0.0)
    np.testing.assert_allclose(m.gradient, [0.125, 0.125, -0.125, -0.125], atol=1e-12)
    assert m.var_in == pytest.approx(0.5) and m.var_out == pytest.approx(0.0)
    assert m.between == pytest.approx(0.25)
    assert V.reinforce_variance(m, 1) == pytest.approx(0.5 * 0.5 + 0.25 * 0.25)  # 0.3125
    assert V.reinforce_variance(m, 2) == pytest.approx(0.15625)
    assert V.stratified_variance(m, 1, 1) == pytest.approx(0.25 * 0.5)  # pi_B^2 V+ = 0.125
    # A single buffer program makes the buffer term exact: MAPO's variance is 0 without a baseline.
    assert V.stratified_variance(bandit(4, 1, 0.3, baseline=0.0), 1, 1) == pytest.approx(0.0, abs=1e-15)


@pytest.mark.parametrize("n_programs,n_buffer,pi_buffer,baseline",
                         [(4, 2, 0.5, 0.0), (10, 3, 0.2, 0.0), (10, 3, 0.2, 0.2), (7, 1, 0.8, 0.35)])
def test_closed_form_matches_enumeration(n_programs, n_buffer, pi_buffer, baseline):
    m = bandit(n_programs, n_buffer, pi_buffer, baseline=baseline)
    closed = V.symmetric_bandit_closed_form(n_programs, n_buffer, pi_buffer, baseline)
    assert m.var_in == pytest.approx(closed["var_in"])
    assert m.var_out == pytest.approx(closed["var_out"])
    assert m.between == pytest.approx(closed["between"])
    assert np.linalg.norm(m.gradient) == pytest.approx(closed["grad_norm"])
    assert V.reinforce_variance(m, 1) == pytest.approx(closed["reinforce_1"])
    assert V.stratified_variance(m, 1, 1) == pytest.approx(closed["mapo_1_1"])


def test_baseline_keeps_the_gradient_and_changes_the_variance():
    plain, with_b = bandit(12, 3, 0.6, 2, baseline=0.0), bandit(12, 3, 0.6, 2)
    chex.assert_trees_all_close(plain.gradient, with_b.gradient, atol=1e-12)  # E_pi[grad log pi] = 0
    assert with_b.baseline == pytest.approx(0.6 + 2 * 0.4 / 9)
    # At pi_B = 0.6 the baseline lowers both strata's in-buffer variance: (1 - b)^2 < 1.
    assert V.stratified_variance(with_b) < V.stratified_variance(plain)


def test_optimal_allocation_by_hand():
    # pi_B = 0.5, V+ = 4, V- = 1, n = 3: w sqrt(V+) = 1, (1 - w) sqrt(V-) = 0.5 -> k+ = 2, k- = 1,
    # Var* = 1.5^2 / 3 = 0.75 = 0.25 * 4 / 2 + 0.25 * 1 / 1.
    m = V.StrataMoments(0.5, np.zeros(2), np.zeros(2), 4.0, 1.0)
    chex.assert_trees_all_close(V.optimal_allocation(m, 3.0), (2.0, 1.0))
    assert V.optimal_stratified_variance(m, 3.0) == pytest.approx(0.75)
    assert V.stratified_variance(m, 2, 1) == pytest.approx(0.75)
    assert V.stratified_variance(m, 1, 2) == pytest.approx(1.125)
    assert V.stratified_variance(m, 1.5, 1.5) > 0.75


def test_proportional_allocation_removes_the_between_strata_term():
    m = bandit(10, 3, 0.3, 2)
    n = 5.0
    assert V.stratified_variance(m, n * 0.3, n * 0.7) == pytest.approx(
        V.reinforce_variance(m, n) - 0.3 * 0.7 * m.between / n)


def test_clip_bias():
    m = V.StrataMoments(0.04, np.array([1.0, 2.0]), np.array([0.0, -1.0]), 0.0, 0.0)
    np.testing.assert_allclose(V.clip_bias(m, 0.1), [0.06, 0.18])  # (0.1 - 0.04) (mu+ - mu-)
    chex.assert_trees_all_close(V.clip_bias(m._replace(pi_buffer=0.2), 0.1), np.zeros(2))
    clipped = V.Estimator("clipped", 1, 1, alpha=0.1)
    assert V.estimator_bias_norm(clipped, m) == pytest.approx(0.06 * math.sqrt(10))
    assert V.estimator_bias_norm(V.Estimator("reinforce", 0, 2), m) == 0.0


def test_sampled_strata_moments_by_hand():
    # Buffer: 2 programs with pi = 0.1, 0.3 (pi_B = 0.4) and scores [1, 0], [0, 1]; outside draws with rewards
    # 1, 0, 1 and scores [2, 0], [5, 5], [0, 2] -> rho = [2, 0], [0, 0], [0, 2].
    m = V.sampled_strata_moments(np.eye(2), [0.1, 0.3], [[2, 0], [5, 5], [0, 2]], [1, 0, 1])
    assert m.pi_buffer == pytest.approx(0.4)
    np.testing.assert_allclose(m.mean_in, [0.25, 0.75])
    assert m.var_in == pytest.approx(0.25 * 0.75 * 2)
    np.testing.assert_allclose(m.mean_out, [2 / 3, 2 / 3])
    assert m.var_out == pytest.approx((16 / 9 + 4 / 9 + 4 / 9) * 2 / 2)  # ddof = 1
    with_b = V.sampled_strata_moments(np.eye(2), [0.1, 0.3], [[2, 0]], [1], baseline=0.5)
    np.testing.assert_allclose(with_b.mean_in, [0.125, 0.375])
    assert with_b.var_out == 0.0  # one draw: nothing measured


def test_estimator_validation_and_defaults():
    with pytest.raises(ValueError):
        V.Estimator("no outside draw", 1, 0)
    with pytest.raises(ValueError):
        V.Estimator("clipped reinforce", 0, 2, alpha=0.1)
    with pytest.raises(ValueError):
        V.default_estimators(4, [(1, 2)])
    labels = [e.label for e in V.default_estimators(4, [(1, 3), (2, 2)])]
    assert labels == ["REINFORCE (n=4)", "REINFORCE + baseline (n=4)", "MAPO (2+2)", "MAPO + baseline (2+2)",
                      "stratified 1+3"]
    with pytest.raises(ValueError, match="moments_baseline"):
        V.estimator_variance(V.Estimator("b", 1, 1, baseline=True), bandit(4, 2, 0.5))


def test_bandit_variance_curves():
    ests = V.default_estimators(2)
    curves = V.bandit_variance_curves([0.05, 0.5], ests, n_programs=4, n_buffer=2, alpha=0.1)
    np.testing.assert_allclose(curves["variance"]["MAPO (1+1)"], [0.05**2 * 0.5, 0.125])
    np.testing.assert_allclose(curves["variance"]["REINFORCE (n=2)"][1], 0.15625)
    np.testing.assert_allclose(curves["expected_return"], [0.05, 0.5])
    # With every rewarded program in B and no baseline V- = 0: all the budget goes to the buffer.
    np.testing.assert_allclose(curves["optimal_share"], [1.0, 1.0])
    assert curves["clip_bias"][1] == 0.0 and curves["clip_bias"][0] > 0.0


# --- the enumerable tree ---


@pytest.mark.parametrize("target", [0.05, 0.6])
def test_formulas_match_the_estimators_enumeration(target):
    """The strata formulas against mapo_jax.analysis.estimators' independent enumeration of every draw."""
    bed = E.default_tree_bed()
    params = E.tree_params_with_buffer_prob(bed, target)
    m = T.tree_strata_moments(bed, params)
    exact = np.asarray(E.exact_return_gradient(bed, params), np.float64).ravel()
    chex.assert_trees_all_close(m.gradient, exact, atol=1e-6)
    for estimator, ours in [("mapo", V.stratified_variance(m, 1, 1)), ("reinforce_1", V.reinforce_variance(m, 1)),
                            ("reinforce", V.reinforce_variance(m, 2))]:
        _, cov = E.enumerated_gradient_moments(bed, params, estimator)
        assert ours == pytest.approx(np.trace(cov), rel=1e-5), estimator
    mean, cov = E.enumerated_gradient_moments(bed, params, "mapo", alpha=0.1)
    chex.assert_trees_all_close(mean - exact, V.clip_bias(m, 0.1), atol=1e-6)
    assert V.stratified_variance(m, 1, 1, alpha=0.1) == pytest.approx(np.trace(cov), rel=1e-5)


def test_tree_monte_carlo_matches_the_formula():
    """A stratified 1+3 estimator with a baseline, run through make_loss: unbiased, variance as predicted."""
    bed = E.default_tree_bed()
    params = E.tree_params_with_buffer_prob(bed, 0.3)
    est = V.Estimator("1+3 + baseline", 1, 3, baseline=True)
    n = 4000
    samples = T.tree_estimates(bed, params, est, jax.random.key(0), n)
    chex.assert_shape(samples, (n, bed.n_nodes * bed.branching))
    b = T.tree_expected_return(bed, params)
    predicted = V.stratified_variance(T.tree_strata_moments(bed, params, b), 1, 3)
    measured = float(np.sum(samples.var(0, ddof=1)))
    assert measured == pytest.approx(predicted, rel=0.1)
    exact = np.asarray(E.exact_return_gradient(bed, params), np.float64).ravel()
    assert np.linalg.norm(samples.mean(0) - exact) < 3 * math.sqrt(predicted / n)


def test_tree_sweeps_rows():
    bed = E.default_tree_bed()
    ests = V.default_estimators(2)
    rows = T.tree_variance_sweep(bed, [0.3], ests, key=jax.random.key(1), n_seeds=500)
    (row,) = rows
    assert row["pi_buffer"] == pytest.approx(0.3, abs=1e-4)
    assert set(row["exact"]) == set(row["mc"]) == {e.label for e in ests}
    for label, exact in row["exact"].items():
        assert row["mc"][label] == pytest.approx(exact, rel=0.25), label
    bias = T.tree_clip_bias_sweep(bed, [0.03, 0.3], 0.1, key=jax.random.key(2), n_seeds=1000)
    assert bias[0]["exact_bias"] > 4 * bias[0]["noise_floor"]  # pi_B < alpha: clearly biased
    assert bias[0]["mc_bias"] == pytest.approx(bias[0]["exact_bias"], abs=3 * bias[0]["noise_floor"])
    assert bias[1]["exact_bias"] == 0.0


def test_tree_uniform_policy():
    bed = E.default_tree_bed()
    log_p, entropy = jax.jit(E.make_tree_log_prob_fn(bed))(jnp.zeros(bed.param_shape), jnp.arange(27))
    np.testing.assert_allclose(log_p, np.full(27, -3 * math.log(3)), rtol=1e-6)
    np.testing.assert_allclose(entropy, np.full(27, 3 * math.log(3)), rtol=1e-6)


def test_tree_probabilities_and_buffer_prob():
    bed = E.default_tree_bed()
    theta = E.tree_params_with_buffer_prob(bed, 0.3, seed=0)
    p = np.exp(np.asarray(E.tree_log_probs(bed, theta), np.float64))
    np.testing.assert_allclose(p.sum(), 1.0, rtol=1e-5)
    np.testing.assert_allclose(p[list(bed.buffer)].sum(), 0.3, rtol=1e-4)
    # program 7 = actions (0, 2, 1): nodes 0, 1 (depth 1, prefix 0), 4 + 2 = 6 (depth 2, prefix 2)
    log_pi = jax.nn.log_softmax(theta, -1)
    np.testing.assert_allclose(np.log(p[7]), log_pi[0, 0] + log_pi[1, 2] + log_pi[6, 1], rtol=1e-5)


# --- the estimators on the tree: a small version of benchmarks/estimator_check.py ---


@pytest.fixture(scope="module")
def tree_settings():
    """The tree bed with pi_B = 0.3 ("mid", above alpha = 0.1) and 0.05 ("early", below it)."""
    bed = E.default_tree_bed()
    return bed, E.tree_params_with_buffer_prob(bed, 0.3, seed=0), E.tree_params_with_buffer_prob(bed, 0.05, seed=0)


def _exact(bed, theta):
    return np.asarray(E.exact_return_gradient(bed, theta), np.float64).ravel()


def test_estimators_enumerated_means(tree_settings):
    bed, mid, early = tree_settings
    for theta in (mid, early):
        exact = _exact(bed, theta)
        for estimator in ("mapo", "mapo_single_draw", "mapo_enumerate", "reinforce", "reinforce_1"):
            mean, _ = E.enumerated_gradient_moments(bed, theta, estimator)
            np.testing.assert_allclose(mean, exact, atol=1e-6, err_msg=estimator)
        # one draw dropped when in B, without the 1/(1 - pi_B) correction: biased as predicted
        mean, _ = E.enumerated_gradient_moments(bed, theta, "mapo_original")
        pi_b = float(E.tree_buffer_prob(bed, theta))
        outside = np.asarray(E.exact_return_gradient(bed, theta, outside_buffer_only=True)).ravel()
        np.testing.assert_allclose(mean, exact - pi_b * outside, atol=1e-6)
        assert np.linalg.norm(mean - exact) > 1e-3


def test_mapo_monte_carlo_unbiased_at_alpha_zero(tree_settings):
    bed, mid, early = tree_settings
    key = jax.random.key(0)
    for theta in (mid, early):
        exact = _exact(bed, theta)
        _, cov = E.enumerated_gradient_moments(bed, theta, "mapo")
        samples = E.monte_carlo_gradients(bed, theta, "mapo", key, 4000)
        result = E.unbiasedness_test(samples, exact, cov)
        assert result["p_value"] >= 1e-3, result
        assert result["off_range_norm"] < 1e-5


def test_unbiasedness_test_detects_bias(tree_settings):
    # The same test at the same sample size rejects biased estimators, so the check above can fail.
    bed, mid, early = tree_settings
    key = jax.random.key(0)
    exact = _exact(bed, mid)
    _, cov = E.enumerated_gradient_moments(bed, mid, "mapo_original")
    samples = E.monte_carlo_gradients(bed, mid, "mapo_original", key, 4000)
    assert E.unbiasedness_test(samples, exact, cov)["p_value"] < 1e-6
    exact = _exact(bed, early)
    _, cov = E.enumerated_gradient_moments(bed, early, "mapo", alpha=0.1)
    samples = E.monte_carlo_gradients(bed, early, "mapo", key, 4000, alpha=0.1)
    assert E.unbiasedness_test(samples, exact, cov)["p_value"] < 1e-6


def test_clip_biases_only_below_alpha(tree_settings):
    bed, mid, early = tree_settings
    for theta, biased in ((mid, False), (early, True)):
        mean, _ = E.enumerated_gradient_moments(bed, theta, "mapo", alpha=0.1)
        bias = np.linalg.norm(mean - _exact(bed, theta))
        assert bias > 0.01 if biased else bias < 1e-6


def test_mapo_variance_against_reinforce(tree_settings):
    bed, mid, early = tree_settings
    _, cov_mapo = E.enumerated_gradient_moments(bed, mid, "mapo")
    _, cov_reinforce = E.enumerated_gradient_moments(bed, mid, "reinforce")
    assert np.trace(cov_mapo) < np.trace(cov_reinforce)
    for theta in (mid, early):
        _, cov_enum = E.enumerated_gradient_moments(bed, theta, "mapo_enumerate")
        _, cov_one = E.enumerated_gradient_moments(bed, theta, "reinforce_1")
        pi_b = float(E.tree_buffer_prob(bed, theta))
        # buffer term exact, outside term one draw: Var <= (1 - pi_B) Var[REINFORCE, 1 draw]
        assert np.trace(cov_enum) <= (1 - pi_b) * np.trace(cov_one) + 1e-9


def test_monte_carlo_matches_enumerated_variance(tree_settings):
    bed, mid, _ = tree_settings
    samples = np.asarray(E.monte_carlo_gradients(bed, mid, "reinforce", jax.random.key(1), 4000))
    _, cov = E.enumerated_gradient_moments(bed, mid, "reinforce")
    np.testing.assert_allclose(samples.var(0, ddof=1).sum(), np.trace(cov), rtol=0.1)


def test_unknown_estimator(tree_settings):
    bed, mid, _ = tree_settings
    with pytest.raises(ValueError, match="valid estimators are mapo"):
        E.monte_carlo_gradients(bed, mid, "ppo", jax.random.key(0), 10)


# --- a real (toy) policy ---


def test_policy_scores_and_moments(toy_policy):
    from mapo_jax import decoding
    from mapo_jax.batching import trajectory_batch
    from mapo_jax.model import policy

    toy, _, featurizer, config, params = toy_policy
    questions = PV.find_buffers(PV.environments(toy, 4), gold_programs=toy.programs, rollouts=0)
    assert len(questions) == 4 and all(len(q.buffer) == 1 for q in questions)  # the gold programs
    envs = [q.env for q in questions]
    inputs = decoding.encoder_inputs(featurizer, envs)
    trajectories = [q.buffer[0] for q in questions[:2]]
    max_steps = decoding.max_program_steps(envs)
    log_probs, scores = PV.trajectory_scores(params, config, inputs, trajectories, [0, 1], max_steps)
    chex.assert_shape(scores, (2, policy.count_parameters(params)))
    # Row 1 is the gradient of trajectory 1's log-probability alone (frozen word vectors excluded).
    trainable, frozen = PV._split(params)
    batch = trajectory_batch(trajectories[1:], max_steps, config.max_valid, 8, [1])
    grad = jax.grad(lambda p: policy.sequence_log_probs({**p, **frozen}, inputs, batch, config)[0][0].sum())(trainable)
    flat = np.concatenate([np.ravel(x) for x in jax.tree_util.tree_leaves(grad)])
    np.testing.assert_allclose(scores[1], flat, rtol=1e-4, atol=1e-6)

    rows = PV.question_moments(params, config, featurizer, questions[:2], 6, np.random.default_rng(0))
    assert [r["question"] for r in rows] == [q.env.example.id for q in questions[:2]]
    assert rows[0]["pi_buffer"] == pytest.approx(math.exp(log_probs[0]), rel=1e-5)
    assert all(r["n_drawn"] == 6 and 0 <= r["n_outside"] <= 6 for r in rows)
    m = rows[0]["moments"]
    assert m.var_in == 0.0  # one buffer program: no variance inside B


def test_ratio_summary():
    points = [(0.05, 1.0), (0.07, 3.0), (0.5, 1.0), (1.0, 0.0)]
    rows = [{"pi_buffer": p, "variance": {"a": a, "b": 2.0}} for p, a in points]
    rows.append({"pi_buffer": 0.2, "variance": {"a": 1.0, "b": 0.0}})  # skipped: 0 denominator
    summary = PV.ratio_summary(rows, "a", "b")
    assert [(s["low"], s["n"], s["median"]) for s in summary] == [(0.01, 2, 1.0), (0.3, 1, 0.5), (0.6, 1, 0.0)]


# --- run directories ---


def write_run(root, name, train, lines):
    path = root / name
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"data": {"dataset": "toy"}, "train": train, "model": {}}))
    (path / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


@pytest.fixture
def run_root(tmp_path):
    mapo = {"objective": "mapo", "alpha": 0.1, "systematic_exploration": True}
    write_run(tmp_path, "mapo0", {**mapo, "seed": 0}, [
        {"step": 0, "wall_time": 1.0, "dev/accuracy": 0.1},
        {"step": 10, "wall_time": 5.0, "train/loss": 0.3},
        {"step": 20, "wall_time": 9.0, "dev/accuracy": 0.5},
        {"step": 10, "wall_time": 8.0, "dev/accuracy": 0.3},  # evaluations may arrive late and out of order
    ])
    write_run(tmp_path, "mapo1", {**mapo, "seed": 1}, [
        {"step": 0, "dev/accuracy": 0.0},  # older runs: no wall time at step 0, "seconds" later
        {"step": 10, "seconds": 3.0, "dev/accuracy": 0.5},
        {"step": 20, "seconds": 7.0, "dev/accuracy": 0.4},
    ])
    write_run(tmp_path, "noclip", {"objective": "mapo", "alpha": 0.0, "seed": 0}, [
        {"step": 0, "wall_time": 0.0, "dev/accuracy": 0.2}, {"step": 20, "wall_time": 4.0, "dev/accuracy": 0.3}])
    write_run(tmp_path, "reinforce", {"objective": "reinforce", "alpha": 0.1, "seed": 3}, [
        {"step": 0, "wall_time": 0.0, "dev/accuracy": 0.0}, {"step": 20, "wall_time": 4.0, "dev/accuracy": 0.1}])
    return tmp_path


def test_method_names():
    assert R.method_name({"objective": "mapo", "alpha": 0.1, "systematic_exploration": True}) == "MAPO"
    assert R.method_name({"objective": "mapo", "alpha": 0.0}) == "MAPO w/o clip (alpha=0)"
    assert R.method_name({"objective": "mapo", "alpha": 0.1, "systematic_exploration": False}) == \
        "MAPO w/o systematic exploration"
    assert R.method_name({"objective": "mapo", "alpha": 0, "systematic_exploration": False}) == \
        "MAPO w/o clip, w/o systematic exploration"
    assert [R.method_name({"objective": o}) for o in ("reinforce", "mml", "hard_em", "iml")] == \
        ["REINFORCE", "MML", "Hard EM", "IML"]


def test_load_run(run_root):
    run = R.load_run(run_root / "mapo0")
    np.testing.assert_array_equal(run.steps, [0, 10, 20])
    # Wall time: when the learner reached the step (training line at step 10: 5 s; step 0 at 0 s); step 20 is past
    # the last training line and keeps its evaluation's own time.
    np.testing.assert_allclose(run.wall_time, [0.0, 5.0, 9.0])
    np.testing.assert_allclose(run.eval_wall_time, [1.0, 8.0, 9.0])
    np.testing.assert_allclose(run.dev_accuracy, [0.1, 0.3, 0.5])
    legacy = R.load_run(run_root / "mapo1")
    np.testing.assert_allclose(legacy.wall_time, [0.0, 3.0, 7.0])
    assert (run.method, legacy.seed) == ("MAPO", 1)
    (run_root / "empty").mkdir()
    (run_root / "empty" / "metrics.jsonl").write_text("")
    with pytest.raises(FileNotFoundError, match="config.json"):
        R.load_run(run_root / "empty")


def test_find_and_group(run_root):
    assert len(R.find_run_dirs(run_root)) == 4  # the root: its run subdirectories
    assert len(R.find_run_dirs(str(run_root / "mapo*"))) == 2
    assert len(R.find_run_dirs([run_root / "mapo0", run_root / "mapo0"])) == 1
    groups = R.group_by_method(R.load_runs(run_root))
    assert list(groups) == ["MAPO", "MAPO w/o clip (alpha=0)", "REINFORCE"]
    assert [r.seed for r in groups["MAPO"]] == [0, 1]


def test_runs_that_differ_in_a_learning_setting_are_variants_not_seeds(run_root):
    mapo = {"objective": "mapo", "alpha": 0.1, "systematic_exploration": True}
    line = [{"step": 0, "wall_time": 0.0, "dev/accuracy": 0.2}]
    write_run(run_root, "original", {**mapo, "seed": 0, "entropy_coeff": -0.01, "outside_draw_weight": "original",
                                     "actor_backend": "ray"}, line)
    write_run(run_root, "threads", {**mapo, "seed": 2, "actor_backend": "threads", "n_actors": 4}, line)
    groups = R.group_by_method(R.load_runs(run_root))
    assert list(groups) == ["MAPO", "MAPO w/o clip (alpha=0)", "REINFORCE",
                            "MAPO (entropy_coeff=-0.01, outside_draw_weight=original)"]
    assert [r.seed for r in groups["MAPO"]] == [0, 1, 2]  # the backend and actor count are not a method
    assert [row["method"] for row in R.ablation_table(R.load_runs(run_root))] == list(groups)


def test_mean_curves(run_root):
    curves = R.method_curves(R.load_runs(run_root))
    mapo = curves["MAPO"]
    np.testing.assert_array_equal(mapo.x, [0, 10, 20])
    np.testing.assert_allclose(mapo.mean, [0.05, 0.4, 0.45])
    np.testing.assert_allclose(mapo.low, [0.0, 0.3, 0.4])
    np.testing.assert_allclose(mapo.high, [0.1, 0.5, 0.5])
    np.testing.assert_allclose(mapo.std, [0.05, 0.1, 0.05])
    assert mapo.n_seeds == 2
    # By wall time (seed 0: 0, 5, 9 s; seed 1: 0, 3, 7 s) the grid spans [0, 7], what both seeds cover; at 4 s
    # seed 0 is at 0.1 + 0.2 * 4/5 and seed 1 at 0.5 - 0.1 * 1/4.
    by_time = R.method_curves(R.load_runs(run_root), x="wall_time", n_points=8)["MAPO"]
    np.testing.assert_allclose(by_time.x, np.arange(8.0))
    assert by_time.mean[4] == pytest.approx((0.1 + 0.16 + 0.5 - 0.025) / 2)
    with pytest.raises(ValueError):
        R.mean_curve([], "step")


def test_ablation_table(run_root):
    rows = R.ablation_table(R.load_runs(run_root))
    mapo = rows[0]
    assert mapo["method"] == "MAPO" and mapo["n_seeds"] == 2 and mapo["steps"] == 20
    assert mapo["best_mean"] == pytest.approx(0.5) and mapo["best_std"] == pytest.approx(0.0)
    assert mapo["final_mean"] == pytest.approx(0.45)
    assert mapo["final_std"] == pytest.approx(np.std([0.5, 0.4], ddof=1))
    table = R.format_ablation_table(rows)
    assert "| MAPO | 2 | 20 | 50.0 ± 0.0 | 45.0 ± 7.1 | +0.0 |" in table
    assert "| REINFORCE | 1 | 20 | 10.0 ± 0.0 | 10.0 ± 0.0 | -40.0 |" in table
