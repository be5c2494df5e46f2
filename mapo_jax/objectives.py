"""Policy-gradient objectives of MAPO and its baselines (Liang et al., NeurIPS 2018), as pure functions.

Every objective is a per-trajectory weight ``w_b`` times the trajectory's log-probability:

    loss(θ) = -(1/n_examples) Σ_b sg(w_b) log π_θ(τ_b)  -  c_ent (1/n_examples) Σ_b H_b(θ)

so its gradient is ``-(1/n_examples) Σ_b w_b ∇log π_θ(τ_b) - c_ent ∇H`` (docs/architecture.md#objectives).
The weights are set from fields the actor fills in (:class:`SampleBatch`): whether the trajectory came
from the example's memory buffer ``B``, ``π_old(B)``, its reward, and a ``sample_weight`` that says how it was drawn.

==================  ===========================================  ================================================
objective           in-buffer sample                             on-policy sample outside ``B``
==================  ===========================================  ================================================
``mapo``            ``(R - b) max(π_B, α) sw``                   ``(R - b)(1 - max(π_B, α)) sw`` (``(R - b) sw``
                                                                 when the example has no buffer, ``π_B = 0``)
``reinforce``       ``(R - b) sw`` (the buffer plays no part)    ``(R - b) sw``
``mml``             ``sw`` (drawn ∝ π_old within ``B``)          0
``hard_em``         ``sw`` (the most probable buffer program)    0
``iml``             ``sw`` (drawn uniformly from ``B``)          0
==================  ===========================================  ================================================

(``R`` reward, ``b`` baseline, ``sw`` sample weight.) Decisions: the entropy term is a *bonus*
(``entropy_coeff > 0`` lowers the loss of a more entropic policy; the original added it with the sign that
penalised entropy, which a negative ``entropy_coeff`` reproduces), the loss is normalised by the number of
distinct examples in the batch (not a batch-size flag), and ``(1 - max(π_B, α))`` is applied once, by
:func:`mapo_weights` (the original's WikiSQL path applied it twice). Padding rows (``valid = False``) contribute nothing to the loss, its gradient or the
metrics, whatever values they hold.

**What the actor must send for MAPO to be unbiased.** The out-of-buffer weight ``(1 - w_B)`` is right for a
program drawn from ``π-``, the policy restricted to outside ``B`` (rejection sampling *repeated until a draw is
accepted*). One draw from π that is simply dropped when it lands in ``B`` (the original code, and the paper's
Algorithm 1) is accepted with probability ``1 - π_B``, so with ``sample_weight = 1`` the out-of-buffer term is
scaled by ``(1 - π_B)`` a second time: at ``α = 0`` its mean is ``∇O - π_B Σ_{τ∉B} π(τ) R(τ) ∇log π(τ)``.
A one-draw actor stays unbiased by sending that sample with ``sample_weight = 1/(1 - π_B)``
(:func:`outside_draw_weight`; ``--outside_draw_weight=original`` sends 1, as the original did).

:mod:`mapo_jax.analysis.estimators` checks these claims on a tree small enough to enumerate every program.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable, Dict, NamedTuple, Tuple

import chex
import jax
import jax.numpy as jnp

__all__ = [
    "SampleBatch",
    "LossFn",
    "Params",
    "mapo_weights",
    "reinforce_weights",
    "mml_weights",
    "hard_em_weights",
    "iml_weights",
    "WEIGHT_FNS",
    "OBJECTIVES",
    "make_loss",
    "check_loss_settings",
    "OUTSIDE_DRAW_WEIGHTS",
    "outside_draw_weight",
]

Params = Any


class SampleBatch(NamedTuple):
    """Per-trajectory fields an objective needs (all [B] arrays; padding rows have valid=False)."""

    reward: jax.Array  # float32, return of the trajectory (0/1 for WTQ)
    in_buffer: jax.Array  # bool, the trajectory was drawn from the example's memory buffer
    pi_buffer: jax.Array  # float32, pi_old(B): total prob of the example's buffer under the actor's policy (0 if empty)
    sample_weight: jax.Array  # float32, how the row was drawn: 1/n for n draws per example and source, 1/(1 - pi_B) for one draw kept outside B (1 with outside_draw_weight="original")
    baseline: jax.Array  # float32, per-trajectory baseline (0 when unused)
    valid: jax.Array  # bool
    n_examples: jax.Array  # float32 scalar: number of distinct examples in the batch (the loss normaliser)


# log_prob_fn(params, inputs) -> (seq_log_prob [B], entropy [B]), supplied by the policy.
LogProbFn = Callable[[Params, Any], Tuple[jax.Array, jax.Array]]
LossFn = Callable[[Params, Any], Tuple[jax.Array, Dict[str, jax.Array]]]

_PER_SAMPLE_FIELDS = ("reward", "in_buffer", "pi_buffer", "sample_weight", "baseline", "valid")


def _check_batch(batch: SampleBatch) -> None:
    """Per-sample fields: all rank 0 (one trajectory) or all rank 1 (a batch), of one shape."""
    fields = [getattr(batch, name) for name in _PER_SAMPLE_FIELDS]
    chex.assert_rank(fields, {0, 1})
    chex.assert_equal_shape(fields)


def _mask(batch: SampleBatch, weights: jax.Array) -> jax.Array:
    """Zero on padding rows, also where the padding holds NaN or inf."""
    return jnp.where(jnp.asarray(batch.valid, bool), weights, jnp.zeros_like(weights))


def _advantage(batch: SampleBatch) -> jax.Array:
    return jnp.asarray(batch.reward, jnp.float32) - jnp.asarray(batch.baseline, jnp.float32)


def mapo_weights(batch: SampleBatch, alpha) -> jax.Array:
    """MAPO sample weights with memory-weight clipping (paper eq. 5 and §4.2-4.3).

    The gradient of ``O(θ) = π_B E_{τ~π+}[R] + (1 - π_B) E_{τ~π-}[R]`` (eq. 5), with ``π+`` the policy
    renormalised inside the buffer ``B`` and ``π-`` outside it, is estimated by one (or ``n``) buffer programs
    drawn ∝ π_old within ``B`` and one on-policy sample kept only if it is outside ``B``. With the clip
    ``w_B = max(π_B, α)``:

        in-buffer:       (R - b) · w_B · sample_weight
        outside buffer:  (R - b) · (1 - w_B) · sample_weight     ((R - b) · sample_weight if π_B = 0: no buffer)

    With the baseline ``b = 0`` and binary rewards (buffer programs have ``R = 1``) this is
    ``max(π_B, α) · sw`` and ``R (1 - max(π_B, α)) · sw``. The same baseline must be used for both terms of an
    example to keep the estimator unbiased at ``α = 0``. ``alpha = 0`` disables the clip; ``π_B`` is clipped
    to ``[0, 1]`` so float round-off can never make ``1 - w_B`` negative. An example whose buffer is empty is
    recognised by ``pi_buffer == 0``, so an actor must not let a non-empty buffer's ``π_B`` underflow to 0.

    The out-of-buffer weight assumes a draw from π restricted to outside ``B``; an actor that draws once from
    π and drops the draw if it is in ``B`` must send ``sample_weight = 1/(1 - π_B)`` (module docstring).

    Args:
      batch: a :class:`SampleBatch` (rank-0 or rank-1 per-sample fields).
      alpha: the clip threshold α (scalar; 0.1 in the paper).

    Returns:
      weights with the shape of ``batch.reward``; 0 on padding rows.
    """
    _check_batch(batch)
    chex.assert_rank(alpha, 0)
    pi_b = jnp.clip(jnp.asarray(batch.pi_buffer, jnp.float32), 0.0, 1.0)
    w_buffer = jnp.maximum(pi_b, jnp.asarray(alpha, jnp.float32))
    has_buffer = pi_b > 0.0
    w_outside = jnp.where(has_buffer, 1.0 - w_buffer, 1.0)
    in_buffer = jnp.asarray(batch.in_buffer, bool)
    weights = _advantage(batch) * jnp.where(in_buffer, w_buffer, w_outside) * batch.sample_weight
    return _mask(batch, weights)


def reinforce_weights(batch: SampleBatch) -> jax.Array:
    """REINFORCE (paper eq. 2): ``∇O ≈ Σ_τ (R(τ) - b) ∇log π(τ)`` with ``τ ~ π``; weight ``(R - b) · sw``.

    The buffer plays no part: every valid row is an on-policy sample, whether or not it is in the buffer.
    With ``n`` samples per example the actor sets ``sample_weight = 1/n``.
    """
    _check_batch(batch)
    return _mask(batch, _advantage(batch) * batch.sample_weight)


def _buffer_only(batch: SampleBatch) -> jax.Array:
    _check_batch(batch)
    in_buffer = jnp.asarray(batch.in_buffer, bool)
    weights = jnp.where(in_buffer, jnp.asarray(batch.sample_weight, jnp.float32), 0.0)
    return _mask(batch, weights)


def mml_weights(batch: SampleBatch) -> jax.Array:
    """Maximum marginal likelihood (paper eq. 8): ``∇log Σ_{τ∈B} π(τ) = Σ_{τ∈B} (π(τ)/π_B) ∇log π(τ)``.

    The buffer programs are drawn ∝ π_old within ``B`` (``n`` with replacement, ``sample_weight = 1/n``), so
    each in-buffer sample has weight ``sw``; on-policy samples have weight 0.
    """
    return _buffer_only(batch)


def hard_em_weights(batch: SampleBatch) -> jax.Array:
    """Hard EM (paper §3, eq. 9 with the max): the actor sends the single most probable buffer program; weight
    ``sw`` (1), on-policy samples 0."""
    return _buffer_only(batch)


def iml_weights(batch: SampleBatch) -> jax.Array:
    """Iterative maximum likelihood (paper §3): buffer programs drawn uniformly from ``B``; weight ``sw``
    in-buffer, 0 otherwise."""
    return _buffer_only(batch)


WEIGHT_FNS = {
    "mapo": mapo_weights,
    "reinforce": reinforce_weights,
    "mml": mml_weights,
    "hard_em": hard_em_weights,
    "iml": iml_weights,
}
OBJECTIVES = tuple(WEIGHT_FNS)


OUTSIDE_DRAW_WEIGHTS = ("unbiased", "original")


def outside_draw_weight(pi_buffer: float, how: str = "unbiased") -> float:
    """``sample_weight`` of MAPO's one on-policy draw, kept only when it lands outside ``B``: ``1/(1 - π_B)``
    makes the out-of-buffer term unbiased (module doc); ``"original"`` sends 1, as the paper's Algorithm 1
    and the original code did, which scales that term by ``(1 - π_B)`` a second time."""
    if how not in OUTSIDE_DRAW_WEIGHTS:
        raise ValueError(f"unknown outside_draw_weight {how!r}: valid values are {', '.join(OUTSIDE_DRAW_WEIGHTS)}")
    return 1.0 / max(1.0 - pi_buffer, 1e-6) if how == "unbiased" else 1.0


def _safe_div(numerator: jax.Array, denominator: jax.Array) -> jax.Array:
    return numerator / jnp.maximum(denominator, 1.0)


def check_loss_settings(objective: str, alpha: float, entropy_coeff: float) -> None:
    """The one check of a loss's settings (``make_loss`` and the run config call it).

    Raises:
      ValueError: unknown objective, ``alpha`` outside ``[0, 1]``, or a non-finite ``entropy_coeff``.
    """
    if objective not in WEIGHT_FNS:
        raise ValueError(f"unknown objective {objective!r}: valid objectives are {', '.join(OBJECTIVES)}")
    if not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if not math.isfinite(float(entropy_coeff)):
        raise ValueError(f"entropy_coeff must be a finite number, got {entropy_coeff}")


def make_loss(objective: str, log_prob_fn: LogProbFn, *, alpha: float = 0.1, entropy_coeff: float = 0.01) -> LossFn:
    """The loss of ``objective`` as ``loss(params, (batch, inputs)) -> (loss, metrics)``.

        loss = -(1/n_examples) Σ_b sg(w_b) log π_θ(τ_b)  -  entropy_coeff (1/n_examples) Σ_b H_b

    with ``w`` from ``WEIGHT_FNS[objective]`` (``α = alpha`` for MAPO), ``(log π_θ(τ_b), H_b) =
    log_prob_fn(params, inputs)`` (sequence log-probability and the sum of per-step entropies), sums over valid
    rows only and ``n_examples`` floored at 1. ``-∇loss = (1/n) Σ_b w_b ∇log π_θ(τ_b) + c ∇H``: the weights are
    constants (stop-gradient) even if the batch was computed from ``params``. ``entropy_coeff > 0`` is a bonus;
    a negative value reproduces the original's entropy penalty.

    Metrics: ``loss``; ``entropy``, the mean per valid sample; ``mean_pi_buffer``, the mean ``π_B`` over valid
    in-buffer samples; ``clip_fraction``, the fraction of valid in-buffer samples with ``π_B < alpha``;
    ``weight_sum``, ``Σ_b w_b``. Means over no rows are 0.

    Raises:
      ValueError: settings :func:`check_loss_settings` refuses.
    """
    check_loss_settings(objective, alpha, entropy_coeff)
    if objective == "mapo":
        weight_fn = functools.partial(mapo_weights, alpha=float(alpha))
    else:
        weight_fn = WEIGHT_FNS[objective]

    def loss_fn(params: Params, batch_and_inputs) -> Tuple[jax.Array, Dict[str, jax.Array]]:
        batch, inputs = batch_and_inputs
        _check_batch(batch)
        chex.assert_rank(batch.n_examples, 0)
        seq_log_prob, entropy = log_prob_fn(params, inputs)
        chex.assert_equal_shape([seq_log_prob, entropy, batch.reward])
        valid = jnp.asarray(batch.valid, bool)
        weights = jax.lax.stop_gradient(weight_fn(batch))
        # `where`, not a product with the mask: padding rows may hold NaN/inf and must not reach the loss.
        log_prob = jnp.where(valid, seq_log_prob, 0.0)
        entropy = jnp.where(valid, entropy, 0.0)
        n_examples = jnp.asarray(batch.n_examples, jnp.float32)
        policy_loss = -_safe_div(jnp.sum(weights * log_prob), n_examples)
        entropy_bonus = entropy_coeff * _safe_div(jnp.sum(entropy), n_examples)
        loss = policy_loss - entropy_bonus

        in_buffer = valid & jnp.asarray(batch.in_buffer, bool)
        pi_b = jnp.where(in_buffer, jnp.asarray(batch.pi_buffer, jnp.float32), 0.0)
        n_in_buffer = jnp.sum(in_buffer)
        metrics = {
            "loss": loss,
            "entropy": _safe_div(jnp.sum(entropy), jnp.sum(valid)),
            "mean_pi_buffer": _safe_div(jnp.sum(pi_b), n_in_buffer),
            "clip_fraction": _safe_div(jnp.sum(in_buffer & (pi_b < alpha)), n_in_buffer),
            "weight_sum": jnp.sum(weights),
        }
        return loss, jax.lax.stop_gradient(metrics)

    return loss_fn
