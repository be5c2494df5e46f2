"""Variance and bias of MAPO's stratified gradient estimator (paper Appendix C), as pure numpy functions.

Notation, for one question. Programs ``τ``, reward ``R(τ) ∈ {0, 1}``, score ``g(τ) = ∇log π(τ)``, a constant
baseline ``b`` and ``ρ(τ) = (R(τ) - b) g(τ)``. The memory buffer ``B`` splits π into two strata: ``π+``, π
renormalised inside ``B`` (total probability ``π_B``), and ``π-``, π renormalised outside ``B``. Per stratum
``s``: ``μ_s = E_{π_s}[ρ]`` and ``V_s = E_{π_s}‖ρ - μ_s‖²``. The variance of a vector estimator is the trace of
its covariance (the sum of its coordinates' variances), so every variance below is a scalar. The gradient of the
expected return (paper eq. 1) is ``∇O = π_B μ+ + (1 - π_B) μ-`` for every ``b``, because ``E_π[g] = 0``.

Estimators with a budget of ``n`` programs (the derivations, written out so that nothing depends on how the
paper numbers its equations; Appendix C, eqs. 9-11 and 14-15):

* REINFORCE, ``n`` draws from π, the mean of ``ρ``. By the law of total variance
  ``Var = [π_B V+ + (1 - π_B) V- + π_B (1 - π_B) ‖μ+ - μ-‖²] / n`` (:func:`reinforce_variance`).
* Stratified sampling, MAPO's estimator: ``k+`` draws from ``π+`` and ``k-`` from ``π-``,
  ``ĝ = w mean_i ρ(τ+_i) + (1 - w) mean_j ρ(τ-_j)`` with ``w = max(π_B, α)`` (memory-weight clipping; ``α = 0``
  is the unbiased estimator of eq. 5). ``Var = w² V+ / k+ + (1 - w)² V- / k-`` (:func:`stratified_variance`).
  Without a baseline ``ρ = R g``; with one, the same formula holds with the moments of ``(R - b) g``: a
  baseline changes ``V±`` but not the mean at ``α = 0``. (With binary rewards and no baseline a program
  outside ``B`` with ``R = 0`` contributes exactly 0: if every rewarded program is in ``B``, ``V- = 0``.)
* Proportional allocation ``k+ = n π_B`` removes exactly the between-strata term ``π_B (1 - π_B) ‖μ+ - μ-‖² / n``
  from REINFORCE's variance: stratification never hurts at that allocation.
* Optimal (Neyman) allocation, minimising ``Var`` subject to ``k+ + k- = n``:
  ``k+ / n = w √V+ / (w √V+ + (1 - w) √V-)`` (:func:`optimal_allocation`) and then
  ``Var* = (w √V+ + (1 - w) √V-)² / n`` (:func:`optimal_stratified_variance`).
* Bias of the clip: ``E[ĝ] - ∇O = (w - π_B)(μ+ - μ-)``, zero once ``π_B ≥ α`` (:func:`clip_bias`).

The moments come from an exact enumeration (:func:`strata_moments`: a softmax bandit here, the tree test bed or
a real policy elsewhere) or from samples (:func:`sampled_strata_moments`). The symmetric softmax bandit
(:func:`symmetric_bandit`) gives analytic curves against ``π_B``; :func:`symmetric_bandit_closed_form` is its
closed form when every rewarded program is in the buffer.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Dict, NamedTuple, Optional, Sequence, Tuple

import numpy as np

__all__ = [
    "StrataMoments",
    "Estimator",
    "strata_moments",
    "sampled_strata_moments",
    "reinforce_variance",
    "stratified_variance",
    "clip_weight",
    "optimal_allocation",
    "optimal_stratified_variance",
    "clip_bias",
    "estimator_variance",
    "estimator_bias_norm",
    "softmax_bandit_scores",
    "symmetric_bandit",
    "bandit_strata_moments",
    "symmetric_bandit_closed_form",
    "default_estimators",
    "bandit_variance_curves",
]


class StrataMoments(NamedTuple):
    """First and second moments of ``ρ = (R - b) ∇log π`` in the two strata of one question."""

    pi_buffer: float  # π_B
    mean_in: np.ndarray  # μ+ [P]
    mean_out: np.ndarray  # μ- [P]
    var_in: float  # V+ = E_{π+}‖ρ - μ+‖²
    var_out: float  # V- = E_{π-}‖ρ - μ-‖²
    baseline: float = 0.0  # the b these moments were computed with

    @property
    def gradient(self) -> np.ndarray:
        """``∇O = π_B μ+ + (1 - π_B) μ-`` (paper eq. 1, split as in eq. 5)."""
        return self.pi_buffer * self.mean_in + (1.0 - self.pi_buffer) * self.mean_out

    @property
    def between(self) -> float:
        """``‖μ+ - μ-‖²``, the part of REINFORCE's variance that stratification removes."""
        return float(np.sum((self.mean_in - self.mean_out) ** 2))


@dataclasses.dataclass(frozen=True)
class Estimator:
    """A gradient estimator with its sample budget.

    ``k_in == 0``: REINFORCE with ``k_out`` draws from π. Otherwise stratified sampling (MAPO) with ``k_in``
    draws ∝ π inside ``B`` and ``k_out`` draws from π outside ``B``, buffer weight ``max(π_B, alpha)``.
    ``baseline``: subtract the question's expected return ``b = E_π[R]`` from every reward.
    """

    label: str
    k_in: int
    k_out: int
    baseline: bool = False
    alpha: float = 0.0

    def __post_init__(self):
        if self.k_in < 0 or self.k_out < 1:
            raise ValueError(f"{self.label}: need k_in >= 0 and k_out >= 1, got {self.k_in}, {self.k_out}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"{self.label}: alpha must be in [0, 1], got {self.alpha}")
        if self.k_in == 0 and self.alpha:
            raise ValueError(f"{self.label}: REINFORCE (k_in = 0) has no clip")

    @property
    def is_reinforce(self) -> bool:
        return self.k_in == 0

    @property
    def budget(self) -> int:
        """Programs per question (log-probability gradients the learner computes)."""
        return self.k_in + self.k_out


def default_estimators(budget: int = 2, allocations: Sequence[Tuple[int, int]] = ()) -> Tuple[Estimator, ...]:
    """REINFORCE, MAPO without and with a baseline (``budget/2`` programs per stratum, the paper's 1 + 1 at
    ``budget = 2``) and stratified sampling at the given ``(k+, k-)`` allocations, all with ``budget``
    programs, so that their variances compare at equal cost."""
    if budget < 2 or budget % 2:
        raise ValueError("budget must be an even number >= 2")
    half = budget // 2
    out = [
        Estimator(f"REINFORCE (n={budget})", 0, budget),
        Estimator(f"REINFORCE + baseline (n={budget})", 0, budget, baseline=True),
        Estimator(f"MAPO ({half}+{half})", half, half),
        Estimator(f"MAPO + baseline ({half}+{half})", half, half, baseline=True),
    ]
    for k_in, k_out in allocations:
        if k_in + k_out != budget:
            raise ValueError(f"allocation {(k_in, k_out)} does not spend the budget {budget}")
        if (k_in, k_out) != (half, half):
            out.append(Estimator(f"stratified {k_in}+{k_out}", k_in, k_out))
    return tuple(out)


# --- moments ---


def _check_probs(probs: np.ndarray, in_buffer: np.ndarray) -> None:
    if probs.ndim != 1 or in_buffer.shape != probs.shape:
        raise ValueError(f"probs and in_buffer must be [N] arrays of one shape, got {probs.shape}, {in_buffer.shape}")
    if np.any(probs < 0) or not math.isclose(float(probs.sum()), 1.0, rel_tol=0, abs_tol=1e-6):
        raise ValueError("probs must be a probability vector")


def _stratum(rho: np.ndarray, weights: np.ndarray) -> Tuple[np.ndarray, float]:
    """Mean and trace-variance of ``rho`` [N, P] under weights that sum to 1 (0 and 0 for an empty stratum)."""
    total = weights.sum()
    if total <= 0:
        return np.zeros(rho.shape[1]), 0.0
    weights = weights / total
    mean = weights @ rho
    return mean, float(weights @ np.sum((rho - mean) ** 2, axis=1))


def strata_moments(scores: np.ndarray, probs: np.ndarray, rewards: np.ndarray, in_buffer: np.ndarray,
                   baseline: float = 0.0) -> StrataMoments:
    """Exact strata moments by enumeration: ``scores`` [N, P] is ``∇log π(τ)`` of every program, ``probs`` [N]
    their probabilities (summing to 1), ``rewards`` [N] and ``in_buffer`` [N] (bool)."""
    scores = np.asarray(scores, np.float64)
    probs = np.asarray(probs, np.float64)
    in_buffer = np.asarray(in_buffer, bool)
    _check_probs(probs, in_buffer)
    rho = (np.asarray(rewards, np.float64) - baseline)[:, None] * scores
    mean_in, var_in = _stratum(rho, np.where(in_buffer, probs, 0.0))
    mean_out, var_out = _stratum(rho, np.where(in_buffer, 0.0, probs))
    return StrataMoments(float(probs[in_buffer].sum()), mean_in, mean_out, var_in, var_out, float(baseline))


def sampled_strata_moments(buffer_scores: np.ndarray, buffer_probs: np.ndarray, outside_scores: np.ndarray,
                           outside_rewards: np.ndarray, baseline: float = 0.0) -> StrataMoments:
    """Strata moments of a policy too large to enumerate: the buffer exactly (its programs ``[K, P]`` with
    their probabilities ``π(τ)``, ``π_B = Σ π(τ)``; buffer programs have ``R = 1``) and the outside stratum
    from ``M`` independent draws of ``π-`` (on-policy samples that fell outside ``B``), mean and unbiased
    (``ddof = 1``) trace-variance. With fewer than 2 outside draws ``V-`` is 0 (nothing measured)."""
    buffer_scores = np.asarray(buffer_scores, np.float64)
    buffer_probs = np.asarray(buffer_probs, np.float64)
    if buffer_scores.ndim != 2 or buffer_probs.shape != buffer_scores.shape[:1] or not len(buffer_probs):
        raise ValueError("need buffer scores [K, P] and probabilities [K], K >= 1")
    pi_b = float(buffer_probs.sum())
    mean_in, var_in = _stratum((1.0 - baseline) * buffer_scores, buffer_probs)
    outside_scores = np.asarray(outside_scores, np.float64).reshape(-1, buffer_scores.shape[1])
    rho = (np.asarray(outside_rewards, np.float64) - baseline)[:, None] * outside_scores
    m = rho.shape[0]
    mean_out = rho.mean(0) if m else np.zeros(buffer_scores.shape[1])
    var_out = float(np.sum((rho - mean_out) ** 2) / (m - 1)) if m >= 2 else 0.0
    return StrataMoments(pi_b, mean_in, mean_out, var_in, var_out, float(baseline))


# --- the variance formulas (Appendix C) ---


def reinforce_variance(m: StrataMoments, n: int = 1) -> float:
    """REINFORCE's variance with ``n`` draws from π (law of total variance over the two strata):
    ``[π_B V+ + (1 - π_B) V- + π_B (1 - π_B) ‖μ+ - μ-‖²] / n``."""
    p = m.pi_buffer
    return (p * m.var_in + (1.0 - p) * m.var_out + p * (1.0 - p) * m.between) / n


def clip_weight(pi_buffer, alpha: float = 0.0):
    """The buffer weight ``w = max(π_B, α)`` of memory-weight clipping (paper §4.2)."""
    return np.maximum(pi_buffer, alpha)


def stratified_variance(m: StrataMoments, k_in: float = 1, k_out: float = 1, alpha: float = 0.0) -> float:
    """Variance of the stratified (MAPO) estimator, Appendix C: ``w² V+ / k+ + (1 - w)² V- / k-`` with
    ``w = max(π_B, α)``; without a baseline pass the moments of ``R g``, with one those of ``(R - b) g``.
    ``k±`` may be fractional (an allocation's expected counts)."""
    w = float(clip_weight(m.pi_buffer, alpha))
    var = 0.0
    if m.var_in:
        var += w**2 * m.var_in / k_in
    if m.var_out:
        var += (1.0 - w) ** 2 * m.var_out / k_out
    return var


def optimal_allocation(m: StrataMoments, n: float = 1.0, alpha: float = 0.0) -> Tuple[float, float]:
    """The Neyman allocation ``(k+, k-)`` of a budget ``n`` that minimises :func:`stratified_variance`,
    Appendix C (eq. 14): ``k+ / n = w √V+ / (w √V+ + (1 - w) √V-)``. Both strata empty of variance: ``n/2`` each."""
    w = float(clip_weight(m.pi_buffer, alpha))
    a, c = w * math.sqrt(m.var_in), (1.0 - w) * math.sqrt(m.var_out)
    share = 0.5 if a + c == 0 else a / (a + c)
    return n * share, n * (1.0 - share)


def optimal_stratified_variance(m: StrataMoments, n: float = 1.0, alpha: float = 0.0) -> float:
    """The variance at the optimal allocation, Appendix C (eq. 15): ``(w √V+ + (1 - w) √V-)² / n``."""
    w = float(clip_weight(m.pi_buffer, alpha))
    return (w * math.sqrt(m.var_in) + (1.0 - w) * math.sqrt(m.var_out)) ** 2 / n


def clip_bias(m: StrataMoments, alpha: float) -> np.ndarray:
    """Bias of the clipped estimator, ``E[ĝ] - ∇O = (max(π_B, α) - π_B)(μ+ - μ-)`` [P]: zero once ``π_B ≥ α``.
    It pushes the gradient towards the buffer programs (``μ+``), away from ``μ-``."""
    return (float(clip_weight(m.pi_buffer, alpha)) - m.pi_buffer) * (m.mean_in - m.mean_out)


def estimator_variance(est: Estimator, moments: StrataMoments,
                       moments_baseline: Optional[StrataMoments] = None) -> float:
    """The variance of ``est`` from strata moments without (``moments``) and with (``moments_baseline``) the
    baseline: REINFORCE's formula for ``k_in = 0``, the stratified one otherwise."""
    m = moments
    if est.baseline:
        if moments_baseline is None:
            raise ValueError(f"{est.label} uses a baseline: pass moments_baseline")
        m = moments_baseline
    if est.is_reinforce:
        return reinforce_variance(m, est.k_out)
    return stratified_variance(m, est.k_in, est.k_out, est.alpha)


def estimator_bias_norm(est: Estimator, moments: StrataMoments,
                        moments_baseline: Optional[StrataMoments] = None) -> float:
    """``‖E[ĝ] - ∇O‖`` of ``est``: 0 for REINFORCE and for ``α = 0``, :func:`clip_bias` otherwise."""
    if est.is_reinforce or not est.alpha:
        return 0.0
    m = moments_baseline if est.baseline else moments
    return float(np.linalg.norm(clip_bias(m, est.alpha)))


# --- the softmax bandit: analytic curves ---


def softmax_bandit_scores(probs: np.ndarray) -> np.ndarray:
    """``∇_θ log softmax(θ)_a = e_a - π`` for every action ``a`` of a one-step softmax policy: [N, N]."""
    probs = np.asarray(probs, np.float64)
    return np.eye(probs.shape[0]) - probs[None, :]


def symmetric_bandit(n_programs: int, n_buffer: int, pi_buffer: float,
                     n_rewarded_outside: int = 0) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A one-step softmax policy over ``n_programs`` programs whose first ``n_buffer`` form the buffer and share
    ``π_B`` equally; the others share ``1 - π_B`` equally, and the first ``n_rewarded_outside`` of them also have
    reward 1 (programs not yet found). Returns ``(probs, rewards, in_buffer)``."""
    n_out = n_programs - n_buffer
    if n_buffer < 1 or n_out < 1 or not 0 <= n_rewarded_outside <= n_out:
        raise ValueError("need 1 <= n_buffer < n_programs and 0 <= n_rewarded_outside <= n_programs - n_buffer")
    if not 0.0 < pi_buffer < 1.0:
        raise ValueError("pi_buffer must be in (0, 1)")
    in_buffer = np.arange(n_programs) < n_buffer
    probs = np.where(in_buffer, pi_buffer / n_buffer, (1.0 - pi_buffer) / n_out)
    rewards = (np.arange(n_programs) < n_buffer + n_rewarded_outside).astype(np.float64)
    return probs, rewards, in_buffer


def bandit_strata_moments(probs: np.ndarray, rewards: np.ndarray, in_buffer: np.ndarray,
                          baseline: float = 0.0) -> StrataMoments:
    """Exact strata moments of a one-step softmax policy (gradients with respect to its logits)."""
    return strata_moments(softmax_bandit_scores(probs), probs, rewards, in_buffer, baseline)


def symmetric_bandit_closed_form(n_programs: int, n_buffer: int, pi_buffer, baseline=0.0) -> Dict[str, np.ndarray]:
    """Closed forms for :func:`symmetric_bandit` with every rewarded program in the buffer (``m`` buffer
    programs out of ``N``, ``c = 1/m + 1/(N - m)``, ``p = π_B``):

        V+ = (1 - b)² (1 - 1/m)          V- = b² (1 - 1/(N - m))          ‖μ+ - μ-‖² = (1 - p - b)² c
        ‖∇O‖ = p (1 - p) √c              clip bias = (max(p, α) - p) |1 - p - b| √c

    so without a baseline MAPO's 1+1 variance is ``p² (1 - 1/m)`` (0 for a single buffer program) and
    REINFORCE's one-draw variance is ``p (1 - 1/m) + p (1 - p)³ c``. Vectorised over ``pi_buffer``/``baseline``.
    """
    m, n_out = n_buffer, n_programs - n_buffer
    p = np.asarray(pi_buffer, np.float64)
    b = np.asarray(baseline, np.float64)
    c = 1.0 / m + 1.0 / n_out
    var_in = (1.0 - b) ** 2 * (1.0 - 1.0 / m)
    var_out = b**2 * (1.0 - 1.0 / n_out)
    between = (1.0 - p - b) ** 2 * c
    return {
        "var_in": var_in + 0.0 * p,
        "var_out": var_out + 0.0 * p,
        "between": between,
        "grad_norm": p * (1.0 - p) * math.sqrt(c) + 0.0 * b,
        "reinforce_1": p * var_in + (1.0 - p) * var_out + p * (1.0 - p) * between,
        "mapo_1_1": p**2 * var_in + (1.0 - p) ** 2 * var_out,
    }


def bandit_variance_curves(pi_grid: Sequence[float], estimators: Sequence[Estimator], *, n_programs: int = 20,
                           n_buffer: int = 3, n_rewarded_outside: int = 0, alpha: float = 0.1) -> Dict[str, object]:
    """Analytic curves against ``π_B`` on :func:`symmetric_bandit` (baseline ``b = E_π[R]``): every estimator's
    variance, the optimal allocation's ``k+`` share and variance (at the budget of the first stratified
    estimator) without and with the baseline, ``‖∇O‖`` and the clip bias at ``alpha`` (MAPO, no baseline).

    Returns arrays over the grid: ``pi_buffer``, ``expected_return``, ``variance`` ({label: [G]}),
    ``optimal_share``, ``optimal_share_baseline``, ``optimal_variance``, ``optimal_variance_baseline``,
    ``grad_norm``, ``clip_bias``, and ``budget``.
    """
    stratified = [e for e in estimators if not e.is_reinforce]
    budget = stratified[0].budget if stratified else 2
    keys = ("expected_return", "optimal_share", "optimal_share_baseline", "optimal_variance",
            "optimal_variance_baseline", "grad_norm", "clip_bias")
    out: Dict[str, object] = {k: [] for k in keys}
    variance: Dict[str, list] = {e.label: [] for e in estimators}
    for p in pi_grid:
        probs, rewards, in_buffer = symmetric_bandit(n_programs, n_buffer, float(p), n_rewarded_outside)
        value = float(probs @ rewards)
        plain = bandit_strata_moments(probs, rewards, in_buffer)
        with_b = bandit_strata_moments(probs, rewards, in_buffer, value)
        for e in estimators:
            variance[e.label].append(estimator_variance(e, plain, with_b))
        out["expected_return"].append(value)
        out["optimal_share"].append(optimal_allocation(plain)[0])
        out["optimal_share_baseline"].append(optimal_allocation(with_b)[0])
        out["optimal_variance"].append(optimal_stratified_variance(plain, budget))
        out["optimal_variance_baseline"].append(optimal_stratified_variance(with_b, budget))
        out["grad_norm"].append(float(np.linalg.norm(plain.gradient)))
        out["clip_bias"].append(float(np.linalg.norm(clip_bias(plain, alpha))))
    result: Dict[str, object] = {k: np.asarray(v) for k, v in out.items()}
    result["variance"] = {k: np.asarray(v) for k, v in variance.items()}
    result["pi_buffer"] = np.asarray(pi_grid, np.float64)
    result["budget"] = budget
    return result
