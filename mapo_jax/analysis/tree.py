"""Measured gradient variance and clip bias on the exactly enumerable tree (:class:`~mapo_jax.analysis.estimators.TreeBed`).

Each estimator of :class:`~mapo_jax.analysis.variance.Estimator` is run as the learner would run it: the
programs are drawn, a :class:`~mapo_jax.objectives.SampleBatch` is filled in as the actor does (``k+`` buffer
rows with ``sample_weight = 1/k+``, ``k-`` rows outside ``B`` with ``1/k-``, ``baseline = E_π[R]`` when the
estimator uses one) and the estimate is ``-∇`` of :func:`mapo_jax.objectives.make_loss`. Many independent
estimates give the Monte Carlo variance (trace of the sample covariance) and bias; enumeration gives the exact
strata moments, so the Appendix C formulas can be checked point by point against the measurement.
"""

from __future__ import annotations

import functools
from typing import Dict, List, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from mapo_jax.analysis.estimators import (
    TreeBed,
    estimator_gradient,
    exact_return_gradient,
    make_tree_log_prob_fn,
    tree_buffer_prob,
    tree_log_probs,
    tree_params_with_buffer_prob,
)
from mapo_jax.analysis.variance import (
    Estimator,
    StrataMoments,
    clip_bias,
    estimator_variance,
    optimal_allocation,
    optimal_stratified_variance,
    strata_moments,
)
from mapo_jax.objectives import SampleBatch, make_loss

__all__ = [
    "tree_scores",
    "tree_expected_return",
    "tree_strata_moments",
    "tree_estimates",
    "tree_variance_sweep",
    "tree_clip_bias_sweep",
]


def tree_scores(bed: TreeBed, params: jax.Array) -> np.ndarray:
    """``∇_θ log π_θ(τ)`` of every program, flattened: [n_leaves, n_params]."""
    jac = jax.jacrev(lambda p: tree_log_probs(bed, p))(params)
    return np.asarray(jac, np.float64).reshape(bed.n_leaves, -1)


def tree_expected_return(bed: TreeBed, params: jax.Array) -> float:
    """``E_π[R] = Σ_τ π(τ) R(τ)`` (paper eq. 1), the baseline the estimators with a baseline use."""
    return float(np.exp(np.asarray(tree_log_probs(bed, params), np.float64)) @ bed.rewards)


def tree_strata_moments(bed: TreeBed, params: jax.Array, baseline: float = 0.0) -> StrataMoments:
    """Exact strata moments of ``(R - b) ∇log π`` on the tree (enumerating its programs)."""
    probs = np.exp(np.asarray(tree_log_probs(bed, params), np.float64))
    return strata_moments(tree_scores(bed, params), probs / probs.sum(), bed.rewards, bed.in_buffer, baseline)


def _draw(key: jax.Array, logits: jax.Array, n: int) -> jax.Array:
    return jax.random.categorical(key, logits, shape=(n,))


@functools.lru_cache(maxsize=None)
def _estimates_fn(bed: TreeBed, est: Estimator, n_seeds: int):
    objective = "reinforce" if est.is_reinforce else "mapo"
    loss_fn = make_loss(objective, make_tree_log_prob_fn(bed), alpha=est.alpha, entropy_coeff=0.0)
    in_buffer = jnp.asarray(bed.in_buffer)
    rewards = jnp.asarray(bed.rewards)

    def one(params, baseline, key):
        log_p = tree_log_probs(bed, params)
        key_in, key_out = jax.random.split(key)
        if est.is_reinforce:
            programs = _draw(key_out, log_p, est.k_out)
            rows_in = jnp.zeros((est.k_out,), bool)
            weights = jnp.full((est.k_out,), 1.0 / est.k_out)
            pi_b = jnp.zeros(())
        else:
            programs = jnp.concatenate([
                _draw(key_in, jnp.where(in_buffer, log_p, -jnp.inf), est.k_in),
                _draw(key_out, jnp.where(in_buffer, -jnp.inf, log_p), est.k_out)])
            rows_in = jnp.arange(est.budget) < est.k_in
            weights = jnp.where(rows_in, 1.0 / est.k_in, 1.0 / est.k_out)
            pi_b = tree_buffer_prob(bed, params)
        n = programs.shape[0]
        batch = SampleBatch(
            reward=rewards[programs], in_buffer=rows_in, pi_buffer=jnp.full((n,), pi_b, jnp.float32),
            sample_weight=weights.astype(jnp.float32), baseline=jnp.full((n,), baseline, jnp.float32),
            valid=jnp.ones((n,), bool), n_examples=jnp.asarray(1.0, jnp.float32))
        return estimator_gradient(loss_fn, params, (batch, programs))

    return jax.jit(lambda params, baseline, key: jax.vmap(lambda k: one(params, baseline, k))(
        jax.random.split(key, n_seeds)))


def tree_estimates(bed: TreeBed, params: jax.Array, est: Estimator, key: jax.Array, n_seeds: int) -> np.ndarray:
    """``n_seeds`` independent estimates ``[n_seeds, n_params]`` of ``est`` through ``make_loss`` (jitted,
    vmapped over seeds); the baseline, when used, is the exact ``E_π[R]``."""
    baseline = tree_expected_return(bed, params) if est.baseline else 0.0
    out = _estimates_fn(bed, est, int(n_seeds))(params, jnp.float32(baseline), key)
    return np.asarray(out, np.float64)


def tree_variance_sweep(bed: TreeBed, pi_targets: Sequence[float], estimators: Sequence[Estimator], *,
                        key: jax.Array, n_seeds: int = 2000, param_seed: int = 0) -> List[Dict]:
    """For each target ``π_B`` (logits from :func:`~mapo_jax.analysis.estimators.tree_params_with_buffer_prob`): the exact
    (Appendix C formulas on enumerated moments) and Monte Carlo variance of every estimator, and the optimal
    allocation's ``k+`` share and variance at the budget of the first stratified estimator (no baseline).

    Rows: ``pi_buffer``, ``expected_return``, ``grad_norm``, ``exact[label]``, ``mc[label]``,
    ``mc_bias[label]`` (‖mean of the estimates - ∇O‖), ``noise_floor[label]`` (``√(Var/N)``, the size of
    that error for an unbiased estimator), ``optimal_share``, ``optimal_variance``.
    """
    rows = []
    stratified = [e for e in estimators if not e.is_reinforce]
    budget = stratified[0].budget if stratified else 2
    for i, target in enumerate(pi_targets):
        params = tree_params_with_buffer_prob(bed, float(target), seed=param_seed)
        b = tree_expected_return(bed, params)
        plain, with_b = tree_strata_moments(bed, params), tree_strata_moments(bed, params, b)
        exact_grad = np.asarray(exact_return_gradient(bed, params), np.float64).ravel()
        row = {"pi_buffer": plain.pi_buffer, "expected_return": b, "grad_norm": float(np.linalg.norm(exact_grad)),
               "exact": {}, "mc": {}, "mc_bias": {}, "noise_floor": {}}
        for j, est in enumerate(estimators):
            samples = tree_estimates(bed, params, est, jax.random.fold_in(key, i), n_seeds)
            exact = estimator_variance(est, plain, with_b)
            row["exact"][est.label] = exact
            row["mc"][est.label] = float(np.sum(samples.var(0, ddof=1)))
            row["mc_bias"][est.label] = float(np.linalg.norm(samples.mean(0) - exact_grad))
            row["noise_floor"][est.label] = float(np.sqrt(exact / n_seeds))
        row["optimal_share"] = optimal_allocation(plain, 1.0)[0]
        row["optimal_variance"] = optimal_stratified_variance(plain, budget)
        rows.append(row)
    return rows


def tree_clip_bias_sweep(bed: TreeBed, pi_targets: Sequence[float], alpha: float = 0.1, *,
                         key: jax.Array, n_seeds: int = 2000, param_seed: int = 0) -> List[Dict]:
    """Bias of MAPO (1 + 1, no baseline) with the clip ``α``, against ``π_B``: exact
    ``‖(max(π_B, α) - π_B)(μ+ - μ-)‖`` and measured ``‖mean of the estimates - ∇O‖`` with its noise floor
    (the measured error of an unbiased estimator is about that size), relative bias = exact / ‖∇O‖."""
    est = Estimator(f"MAPO alpha={alpha:g}", 1, 1, alpha=alpha)
    rows = []
    for i, target in enumerate(pi_targets):
        params = tree_params_with_buffer_prob(bed, float(target), seed=param_seed)
        m = tree_strata_moments(bed, params)
        exact_grad = np.asarray(exact_return_gradient(bed, params), np.float64).ravel()
        samples = tree_estimates(bed, params, est, jax.random.fold_in(key, i), n_seeds)
        bias = float(np.linalg.norm(clip_bias(m, alpha)))
        grad_norm = float(np.linalg.norm(exact_grad))
        rows.append({
            "pi_buffer": m.pi_buffer,
            "exact_bias": bias,
            "relative_bias": bias / grad_norm,
            "mc_bias": float(np.linalg.norm(samples.mean(0) - exact_grad)),
            "noise_floor": float(np.sqrt(np.sum(samples.var(0, ddof=1)) / n_seeds)),
            "grad_norm": grad_norm,
        })
    return rows
