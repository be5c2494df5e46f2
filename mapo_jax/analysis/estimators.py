"""MAPO's and REINFORCE's gradient estimators on an exactly enumerable test bed (paper Appendix C).

A deterministic environment whose "programs" are the leaves of a tree of depth ``depth`` with ``branching``
actions per node; a tabular softmax policy with logits ``θ[node]`` (shape ``[n_nodes, branching]``, nodes
numbered breadth first) picks one action per level. Some leaves have reward 1; the memory buffer is a fixed
subset of them, so both terms of eq. 5 matter. Everything is small enough to enumerate: the exact gradient of
eq. 1, ``O(θ) = Σ_τ π_θ(τ) R(τ)``, and the exact mean and covariance of every estimator of
:data:`ESTIMATORS` over all its sample combinations. Monte Carlo samples go through
:func:`mapo_jax.objectives.make_loss` and the real weight functions, so ``benchmarks/estimator_check.py`` and
the tests check the production loss: MAPO with ``α = 0`` is unbiased, its variance is below REINFORCE's at the
same budget where the buffer holds enough mass, and ``α > 0`` biases it only while ``π_B < α``
(:func:`unbiasedness_test`, a χ² test with the enumerated covariance).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Dict, NamedTuple, Tuple

import chex
import jax
import jax.numpy as jnp
import numpy as np

from mapo_jax.objectives import LogProbFn, LossFn, Params, SampleBatch, make_loss

__all__ = [
    "TreeBed",
    "default_tree_bed",
    "make_tree_log_prob_fn",
    "tree_log_probs",
    "tree_buffer_prob",
    "tree_params_with_buffer_prob",
    "exact_return_gradient",
    "mapo_sample_batch",
    "reinforce_sample_batch",
    "ESTIMATORS",
    "EstimatorSpec",
    "draw_programs",
    "estimator_gradient",
    "monte_carlo_gradients",
    "enumerated_gradient_moments",
    "unbiasedness_test",
]


@dataclasses.dataclass(frozen=True)
class TreeBed:
    """The environment: leaves are programs ``0 .. branching**depth - 1`` (actions = base-``branching`` digits,
    most significant first)."""

    depth: int
    branching: int
    rewarded: Tuple[int, ...]  # leaves with reward 1
    buffer: Tuple[int, ...]  # the memory buffer: a subset of `rewarded`

    def __post_init__(self):
        if self.depth < 1 or self.branching < 2:
            raise ValueError("need depth >= 1 and branching >= 2")
        if not set(self.buffer) <= set(self.rewarded):
            raise ValueError("the buffer may hold rewarded programs only")
        if not all(0 <= leaf < self.n_leaves for leaf in self.rewarded) or not self.buffer:
            raise ValueError("rewarded leaves out of range, or an empty buffer")

    @property
    def n_leaves(self) -> int:
        return self.branching**self.depth

    @property
    def n_nodes(self) -> int:
        return (self.branching**self.depth - 1) // (self.branching - 1)

    @property
    def param_shape(self) -> Tuple[int, int]:
        return (self.n_nodes, self.branching)

    @property
    def rewards(self) -> np.ndarray:
        r = np.zeros(self.n_leaves, np.float32)
        r[list(self.rewarded)] = 1.0
        return r

    @property
    def in_buffer(self) -> np.ndarray:
        b = np.zeros(self.n_leaves, bool)
        b[list(self.buffer)] = True
        return b


def default_tree_bed() -> TreeBed:
    """Depth 3, 3 actions per node (27 programs, 13 nodes, 39 logits); 5 reward-1 programs, 2 in the buffer."""
    return TreeBed(depth=3, branching=3, rewarded=(2, 7, 13, 19, 24), buffer=(7, 19))


def make_tree_log_prob_fn(bed: TreeBed) -> LogProbFn:
    """``log_prob_fn(θ, programs [B] int) -> (log π_θ(program) [B], Σ_levels H(π_θ(·|node)) [B])``."""
    b, depth = bed.branching, bed.depth

    def log_prob_fn(params: jax.Array, programs: jax.Array) -> Tuple[jax.Array, jax.Array]:
        chex.assert_shape(params, bed.param_shape)
        chex.assert_rank(programs, 1)
        log_pi = jax.nn.log_softmax(params, axis=-1)  # [n_nodes, b]
        node_entropy = -jnp.sum(jnp.exp(log_pi) * log_pi, axis=-1)  # [n_nodes]
        prefix = jnp.zeros_like(programs)
        seq_log_prob = jnp.zeros(programs.shape, jnp.float32)
        entropy = jnp.zeros(programs.shape, jnp.float32)
        for level in range(depth):
            action = (programs // b ** (depth - 1 - level)) % b
            node = (b**level - 1) // (b - 1) + prefix
            seq_log_prob = seq_log_prob + log_pi[node, action]
            entropy = entropy + node_entropy[node]
            prefix = prefix * b + action
        return seq_log_prob, entropy

    return log_prob_fn


def tree_log_probs(bed: TreeBed, params: jax.Array) -> jax.Array:
    """``log π_θ(τ)`` of every program, [n_leaves]."""
    return make_tree_log_prob_fn(bed)(params, jnp.arange(bed.n_leaves))[0]


def tree_buffer_prob(bed: TreeBed, params: jax.Array) -> jax.Array:
    """``π_θ(B)``."""
    return jnp.sum(jnp.where(jnp.asarray(bed.in_buffer), jnp.exp(tree_log_probs(bed, params)), 0.0))


def tree_params_with_buffer_prob(bed: TreeBed, target_pi_buffer: float, *, seed: int = 0, scale: float = 0.5) -> jax.Array:
    """Logits with ``π_θ(B) ≈ target``: seeded ``N(0, scale²)`` logits plus ``c`` on every action leading to a
    buffer program, ``c`` found by bisection (π_B increases with ``c``)."""
    if not 0.0 < target_pi_buffer < 1.0:
        raise ValueError("target_pi_buffer must be in (0, 1)")
    base = scale * jax.random.normal(jax.random.key(seed), bed.param_shape, jnp.float32)
    towards = np.zeros(bed.param_shape, np.float32)
    for leaf in bed.buffer:
        prefix = 0
        for level in range(bed.depth):
            action = (leaf // bed.branching ** (bed.depth - 1 - level)) % bed.branching
            towards[(bed.branching**level - 1) // (bed.branching - 1) + prefix, action] = 1.0
            prefix = prefix * bed.branching + action
    pi_b = jax.jit(lambda c: tree_buffer_prob(bed, base + c * towards))
    lo, hi = -20.0, 20.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if float(pi_b(mid)) < target_pi_buffer else (lo, mid)
    return base + 0.5 * (lo + hi) * towards


def exact_return_gradient(bed: TreeBed, params: jax.Array, *, outside_buffer_only: bool = False) -> jax.Array:
    """``∇_θ Σ_τ π_θ(τ) R(τ)`` (paper eq. 1) by enumeration; with ``outside_buffer_only`` the sum runs over
    ``τ ∉ B`` only (the second term of eq. 5, ``∇[(1 - π_B) E_{π-}[R]]``)."""
    rewards = jnp.asarray(bed.rewards)
    if outside_buffer_only:
        rewards = jnp.where(jnp.asarray(bed.in_buffer), 0.0, rewards)
    return jax.grad(lambda p: jnp.sum(jnp.exp(tree_log_probs(bed, p)) * rewards))(params)


def mapo_sample_batch(bed: TreeBed, params: jax.Array, buffer_programs: jax.Array, policy_program, *, enumerate_buffer: bool = False, acceptance_correction: bool = False) -> Tuple[SampleBatch, jax.Array]:
    """The MAPO actor's output for one example: ``k`` buffer programs then one on-policy program, which
    becomes a padding row if it is in ``B``. ``π_B`` is computed from ``params`` (``π_old = π_θ``).

    Buffer rows have ``sample_weight = 1/k`` (``k`` draws ∝ π within ``B``, WTQ mode) or, with
    ``enumerate_buffer``, ``π(τ)/π_B`` (every buffer program once, weighted by its probability within ``B``).
    ``acceptance_correction``: for an on-policy program drawn *once* from π and dropped if in ``B``, its
    ``sample_weight`` becomes ``1/(1 - π_B)`` (the inverse acceptance probability), which makes the one-draw
    estimator unbiased; leave it False for a program drawn from π restricted to outside ``B`` (rejection
    sampling repeated until a draw is accepted), or to reproduce the original's one draw without correction.
    """
    buffer_programs = jnp.asarray(buffer_programs)
    chex.assert_rank(buffer_programs, 1)
    k = buffer_programs.shape[0]
    programs = jnp.concatenate([buffer_programs, jnp.asarray(policy_program)[None]])
    log_p = tree_log_probs(bed, params)
    pi_b = tree_buffer_prob(bed, params)
    if enumerate_buffer:
        buffer_weights = jnp.exp(log_p[buffer_programs]) / pi_b
    else:
        buffer_weights = jnp.full((k,), 1.0 / k, jnp.float32)
    policy_weight = 1.0 / (1.0 - pi_b) if acceptance_correction else jnp.asarray(1.0, jnp.float32)
    policy_in_buffer = jnp.asarray(bed.in_buffer)[programs[-1]]
    batch = SampleBatch(
        reward=jnp.asarray(bed.rewards)[programs],
        in_buffer=jnp.arange(k + 1) < k,
        pi_buffer=jnp.full((k + 1,), pi_b),
        sample_weight=jnp.concatenate([buffer_weights, policy_weight[None]]),
        baseline=jnp.zeros((k + 1,), jnp.float32),
        valid=jnp.concatenate([jnp.ones((k,), bool), ~policy_in_buffer[None]]),
        n_examples=jnp.asarray(1.0, jnp.float32),
    )
    return batch, programs


def reinforce_sample_batch(bed: TreeBed, programs: jax.Array) -> Tuple[SampleBatch, jax.Array]:
    """``n`` on-policy samples of one example, ``sample_weight = 1/n``, no baseline."""
    chex.assert_rank(programs, 1)
    n = programs.shape[0]
    batch = SampleBatch(
        reward=jnp.asarray(bed.rewards)[programs],
        in_buffer=jnp.asarray(bed.in_buffer)[programs],
        pi_buffer=jnp.zeros((n,), jnp.float32),
        sample_weight=jnp.full((n,), 1.0 / n, jnp.float32),
        baseline=jnp.zeros((n,), jnp.float32),
        valid=jnp.ones((n,), bool),
        n_examples=jnp.asarray(1.0, jnp.float32),
    )
    return batch, programs


def estimator_gradient(loss_fn: LossFn, params: Params, batch_and_inputs) -> jax.Array:
    """The estimate ``-∇loss = Σ_b w_b ∇log π(τ_b)`` (entropy_coeff 0, one example), flattened."""
    grads = jax.grad(lambda p: loss_fn(p, batch_and_inputs)[0])(params)
    return -jnp.concatenate([jnp.ravel(g) for g in jax.tree_util.tree_leaves(grads)])


class EstimatorSpec(NamedTuple):
    """How an estimator draws its programs: one support per program, each ``"policy"`` (π), ``"buffer"``
    (π within ``B``), ``"outside"`` (π outside ``B``) or ``"all_buffer"`` (every buffer program, no draw)."""

    objective: str
    supports: Tuple[str, ...]
    acceptance_correction: bool = False
    description: str = ""


ESTIMATORS = {
    "mapo": EstimatorSpec(
        "mapo", ("buffer", "outside"), False,
        "eq. 5: 1 buffer program drawn ∝ π within B (weight max(π_B, α)) + 1 program from π outside B "
        "(rejection sampling repeated until a draw falls outside B; weight R(1 - max(π_B, α)))"),
    "mapo_single_draw": EstimatorSpec(
        "mapo", ("buffer", "policy"), True,
        "exactly 2 draws: 1 buffer program + 1 draw from π, dropped if in B, sample_weight 1/(1 - π_B)"),
    "mapo_original": EstimatorSpec(
        "mapo", ("buffer", "policy"), False,
        "the original code and the paper's Algorithm 1: 1 buffer program + 1 draw from π, dropped if in B, "
        "sample_weight 1; at α = 0 its mean is ∇O - π_B Σ_{τ∉B} π(τ) R(τ) ∇log π(τ)"),
    "mapo_enumerate": EstimatorSpec(
        "mapo", ("all_buffer", "outside"), False,
        "the buffer enumerated: every buffer program with sample_weight π(τ)/π_B (weight max(π_B, α)) + 1 program from π "
        "outside B; the buffer term has no variance"),
    "reinforce": EstimatorSpec("reinforce", ("policy", "policy"), False, "eq. 2: 2 draws from π, weight R/2"),
    "reinforce_1": EstimatorSpec("reinforce", ("policy",), False, "eq. 2: 1 draw from π, weight R"),
}


def _position_supports(bed: TreeBed, spec: EstimatorSpec) -> Tuple[str, ...]:
    """The supports with ``all_buffer`` expanded into one fixed position per buffer program."""
    out = []
    for support in spec.supports:
        out.extend([f"leaf:{leaf}" for leaf in bed.buffer] if support == "all_buffer" else [support])
    return tuple(out)


def _position_logits(bed: TreeBed, params: jax.Array, support: str) -> jax.Array:
    """Unnormalised log-probabilities of one position: π itself, π within/outside ``B``, or a fixed leaf."""
    leaves = jnp.arange(bed.n_leaves)
    if support.startswith("leaf:"):
        return jnp.where(leaves == int(support[5:]), 0.0, -jnp.inf)
    log_p = tree_log_probs(bed, params)
    in_buffer = jnp.asarray(bed.in_buffer)
    if support == "policy":
        return log_p
    if support in ("buffer", "outside"):
        return jnp.where(in_buffer if support == "buffer" else ~in_buffer, log_p, -jnp.inf)
    raise ValueError(f"unknown support {support!r}")


def _position_leaves(bed: TreeBed, support: str) -> np.ndarray:
    """The leaves a position can take (static: it does not depend on θ)."""
    if support.startswith("leaf:"):
        return np.array([int(support[5:])])
    mask = {"policy": np.ones(bed.n_leaves, bool), "buffer": bed.in_buffer, "outside": ~bed.in_buffer}[support]
    return np.flatnonzero(mask)


@functools.lru_cache(maxsize=None)
def _estimator(bed: TreeBed, estimator: str, alpha: float):
    """(gradient(params, programs [k]), position supports); cached per estimator."""
    if estimator not in ESTIMATORS:
        raise ValueError(f"unknown estimator {estimator!r}: valid estimators are {', '.join(ESTIMATORS)}")
    spec = ESTIMATORS[estimator]
    loss_fn = make_loss(spec.objective, make_tree_log_prob_fn(bed), alpha=alpha, entropy_coeff=0.0)

    def gradient(params, programs):
        if spec.objective == "mapo":
            batch = mapo_sample_batch(
                bed, params, programs[:-1], programs[-1],
                enumerate_buffer="all_buffer" in spec.supports,
                acceptance_correction=spec.acceptance_correction)
        else:
            batch = reinforce_sample_batch(bed, programs)
        return estimator_gradient(loss_fn, params, batch)

    return gradient, _position_supports(bed, spec)


def draw_programs(key: jax.Array, bed: TreeBed, params: jax.Array, estimator: str) -> jax.Array:
    """The programs an estimator of :data:`ESTIMATORS` uses, [k] (independent draws)."""
    _, supports = _estimator(bed, estimator, 0.0)
    keys = jax.random.split(key, len(supports))
    return jnp.stack([jax.random.categorical(k, _position_logits(bed, params, s)) for k, s in zip(keys, supports)])


@functools.lru_cache(maxsize=None)
def _monte_carlo_fn(bed: TreeBed, estimator: str, alpha: float, n_seeds: int):
    gradient, _ = _estimator(bed, estimator, alpha)

    def run(params, key):
        one = lambda k: gradient(params, draw_programs(k, bed, params, estimator))  # noqa: E731
        return jax.vmap(one)(jax.random.split(key, n_seeds))

    return jax.jit(run)


def monte_carlo_gradients(bed: TreeBed, params: jax.Array, estimator: str, key: jax.Array, n_seeds: int, *, alpha: float = 0.0) -> jax.Array:
    """``n_seeds`` independent estimates ``[n_seeds, n_params]`` of :data:`ESTIMATORS` ``[estimator]`` through
    :func:`make_loss` (vmapped over seeds, jitted). Estimators with the same supports get the same programs
    from the same key, and so does one estimator at different ``alpha`` (common random numbers)."""
    return _monte_carlo_fn(bed, estimator, float(alpha), int(n_seeds))(params, key)


@functools.lru_cache(maxsize=None)
def _enumeration_fn(bed: TreeBed, estimator: str, alpha: float):
    gradient, supports = _estimator(bed, estimator, alpha)
    grids = np.meshgrid(*[_position_leaves(bed, s) for s in supports], indexing="ij")
    combos = jnp.asarray(np.stack([g.reshape(-1) for g in grids], -1))

    def run(params):
        probs = jnp.ones(combos.shape[0], jnp.float32)
        for i, support in enumerate(supports):
            probs = probs * jax.nn.softmax(_position_logits(bed, params, support))[combos[:, i]]
        return jax.vmap(lambda prog: gradient(params, prog))(combos), probs

    return jax.jit(run)


def enumerated_gradient_moments(bed: TreeBed, params: jax.Array, estimator: str, *, alpha: float = 0.0) -> Tuple[np.ndarray, np.ndarray]:
    """Exact mean ``[P]`` and covariance ``[P, P]`` of an estimator of :func:`monte_carlo_gradients`, by
    enumerating every combination of programs it can draw, with its probability (float64 accumulation)."""
    grads, probs = _enumeration_fn(bed, estimator, float(alpha))(params)
    grads, probs = np.asarray(grads, np.float64), np.asarray(probs, np.float64)
    probs = probs / probs.sum()
    mean = probs @ grads
    centred = grads - mean
    return mean, (centred * probs[:, None]).T @ centred


def unbiasedness_test(samples: np.ndarray, target: np.ndarray, covariance: np.ndarray, *, eig_floor: float = 1e-6) -> Dict[str, float]:
    """Is the mean of ``samples [N, P]`` equal to ``target [P]``? A chi-square test with a known covariance.

    ``χ² = N dᵀ Σ⁺ d`` with ``d = mean - target`` and ``Σ⁺`` the pseudo-inverse of the (exact, enumerated)
    covariance on its range (eigenvalues above ``eig_floor × the largest``); under the null it is χ² with
    ``rank(Σ)`` degrees of freedom. The estimators' covariance is singular (softmax logits of a node move
    together, nodes above no reward get no gradient); ``off_range_norm`` is the part of ``d`` outside the
    range, which must be round-off only. Also returns the error norm, the per-coordinate z-scores' maximum
    (sample standard errors, coordinates of zero variance skipped) and the Monte Carlo noise floor
    ``sqrt(tr Σ / N)`` (the expected norm of ``d`` under the null).
    """
    samples = np.asarray(samples, np.float64)
    target = np.asarray(target, np.float64)
    covariance = np.asarray(covariance, np.float64)
    n = samples.shape[0]
    d = samples.mean(0) - target
    eigval, eigvec = np.linalg.eigh(covariance)
    keep = eigval > eig_floor * max(eigval.max(), 1e-300)
    proj = eigvec[:, keep].T @ d
    chi2 = float(n * np.sum(proj**2 / eigval[keep]))
    dof = int(keep.sum())
    p_value = float(jax.scipy.special.gammaincc(dof / 2.0, chi2 / 2.0)) if dof else 1.0
    se = samples.std(0, ddof=1) / math.sqrt(n)
    varying = se > 1e-12
    z = np.abs(d[varying]) / se[varying]
    return {
        "n_samples": n,
        "error_norm": float(np.linalg.norm(d)),
        "noise_floor": float(math.sqrt(max(np.trace(covariance), 0.0) / n)),
        "max_abs_z": float(z.max()) if z.size else 0.0,
        "chi2": chi2,
        "dof": dof,
        "p_value": p_value,
        "off_range_norm": float(np.linalg.norm(d - eigvec[:, keep] @ proj)),
    }
