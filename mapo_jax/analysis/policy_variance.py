"""Gradient variance of the estimators on a real policy (the toy dataset, or a WTQ checkpoint).

A real policy cannot be enumerated, so the strata moments of Appendix C are measured: for each question the
buffer ``B`` (its known reward-1 programs) is enumerated exactly -- ``π(τ)`` and ``∇log π(τ)`` of every buffer
program, hence ``π_B``, ``μ+`` and ``V+`` -- and ``M`` programs are sampled from the policy; those that fall
outside ``B`` are independent draws from ``π-`` and give ``μ-`` and ``V-``. The variance of every estimator
then follows from the formulas of :mod:`mapo_jax.analysis.variance`. The gradient is the full flattened
gradient of the trainable parameters (the frozen word vectors excluded), computed per trajectory with
``jax.jacrev`` of :func:`mapo_jax.model.policy.sequence_log_probs` (teacher forcing, no dropout: the
actor's policy). As a check, REINFORCE's one-draw variance is also measured directly, as the sample variance
of ``R ∇log π`` over the same ``M`` draws from π (``direct_reinforce_1``); it estimates the same quantity as
``REINFORCE (n=1)`` from the strata formula.

To see the variance against ``π_B`` without retraining, :func:`policy_variance_sweep` evaluates a path of
policies, e.g. the straight line from a fresh initialisation to the trained parameters
(:func:`interpolate_params`): ``π_B`` grows along it, question by question.
"""

from __future__ import annotations

import functools
import random
from typing import Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from mapo_jax import decoding
from mapo_jax.analysis.variance import (
    Estimator,
    StrataMoments,
    clip_bias,
    estimator_variance,
    reinforce_variance,
    sampled_strata_moments,
)
from mapo_jax.batching import Featurizer, trajectory_batch
from mapo_jax.config import DataConfig, ModelConfig
from mapo_jax.env import QAEnvironment, Trajectory, Vocabulary
from mapo_jax.lisp.functions import TableView
from mapo_jax.model import policy

__all__ = [
    "FROZEN",
    "Question",
    "load_featurizer",
    "environments",
    "find_buffers",
    "interpolate_params",
    "trajectory_scores",
    "question_moments",
    "policy_variance_sweep",
    "ratio_summary",
]

FROZEN = ("pretrained_embeddings",)  # parameters the optimiser never changes: not part of the gradient
_CHUNK = 32  # trajectories per jacrev call (one compilation, bounded memory)


class Question(NamedTuple):
    """One question and its memory buffer: distinct reward-1 programs."""

    env: QAEnvironment
    buffer: Tuple[Trajectory, ...]


def load_featurizer(data_config: DataConfig, min_count: int, vectors=None) -> Featurizer:
    """The encoder featuriser ``training.train_and_evaluate`` builds: GloVe, and the vocabulary of the train
    and dev parts of ``data_config`` with ``min_count`` (deterministic, so it matches a trained policy's)."""
    from mapo_jax.config import split_parts
    from mapo_jax.data import datasets
    from mapo_jax.data.embeddings import load_glove
    from mapo_jax.data.vocab import build_encoder_vocab

    vectors = vectors if vectors is not None else load_glove()
    examples = [e for part in split_parts(data_config) for e in datasets.load_dataset(data_config, part).examples]
    return Featurizer(build_encoder_vocab(examples, vectors, min_count=min_count), vectors)


def environments(dataset, n: Optional[int] = None, *, punish_extra_work: bool = True) -> List[QAEnvironment]:
    """Environments of the first ``n`` questions of a dataset (training rewards: ``punish_extra_work``)."""
    vocabulary = Vocabulary()
    views: Dict[str, TableView] = {}
    envs = []
    for example in dataset.examples[:n]:
        table = dataset.tables[example.table]
        view = views.setdefault(example.table, TableView(table))
        envs.append(QAEnvironment(example, table, punish_extra_work=punish_extra_work, view=view,
                                  vocabulary=vocabulary))
    return envs


def find_buffers(envs: Sequence[QAEnvironment], *, gold_programs: Optional[Mapping[str, str]] = None,
                 rollouts: int = 100, seed: int = 0) -> List[Question]:
    """Memory buffers as the training loop's warm start fills them: the known gold program (the toy
    dataset's ``dataset.programs``) plus the reward-1 programs of ``rollouts`` random systematic rollouts.
    Questions with no reward-1 program are left out (MAPO's estimator needs a non-empty buffer)."""
    from mapo_jax.explore.systematic import example_seed, random_explore

    out = []
    for env in envs:
        found: Dict[Tuple[str, ...], Trajectory] = {}
        text = (gold_programs or {}).get(env.example.id)
        candidates = [tuple(env.context.tokens_from_text(text))] if text else []
        if rollouts:
            rng = random.Random(example_seed(seed, env.example.id))
            candidates += list(random_explore(env, rollouts, set(), rng)[0])
        for tokens in candidates:
            tokens = tuple(tokens)
            if tokens in found:
                continue
            trajectory = env.replay(tokens)
            if trajectory.reward == 1.0:
                found[tokens] = trajectory
        if found:
            out.append(Question(env, tuple(found.values())))
    return out


def interpolate_params(start, end, t: float):
    """``start + t (end - start)`` leaf by leaf: a path of policies from ``start`` (t = 0) to ``end`` (t = 1)."""
    return jax.tree_util.tree_map(lambda a, b: a + t * (b - a), start, end)


def _split(params) -> Tuple[dict, dict]:
    trainable = {k: v for k, v in params.items() if k not in FROZEN}
    frozen = {k: v for k, v in params.items() if k in FROZEN}
    return trainable, frozen


@functools.partial(jax.jit, static_argnames=("config",))
def _scores_chunk(trainable, frozen, inputs, batch, config: ModelConfig):
    def log_probs(p):
        return policy.sequence_log_probs({**p, **frozen}, inputs, batch, config)[0].sum(axis=1)

    jac = jax.jacrev(log_probs)(trainable)
    flat = jnp.concatenate([x.reshape(x.shape[0], -1) for x in jax.tree_util.tree_leaves(jac)], axis=1)
    return log_probs(trainable), flat


def trajectory_scores(params, config: ModelConfig, inputs, trajectories: Sequence[Trajectory],
                      rows: Sequence[int], max_steps: int) -> Tuple[np.ndarray, np.ndarray]:
    """``(log π(τ) [T], ∇log π(τ) [T, P])`` of trajectories; trajectory ``i`` answers question ``rows[i]`` of
    the encoder ``inputs``. ``P`` counts the trainable parameters (frozen word vectors excluded);
    ``max_steps`` is the padded length (:func:`mapo_jax.decoding.max_program_steps` of the questions)."""
    trainable, frozen = _split(params)
    log_probs, scores = [], []
    for start in range(0, len(trajectories), _CHUNK):
        chunk = list(trajectories[start: start + _CHUNK])
        batch = trajectory_batch(chunk, max_steps, config.max_valid, _CHUNK, list(rows[start: start + _CHUNK]))
        lp, sc = _scores_chunk(trainable, frozen, inputs, batch, config)
        log_probs.append(np.asarray(lp, np.float64)[: len(chunk)])
        scores.append(np.asarray(sc, np.float64)[: len(chunk)])
    if not log_probs:
        return np.zeros(0), np.zeros((0, 0))
    return np.concatenate(log_probs), np.concatenate(scores)


def question_moments(params, config: ModelConfig, featurizer: Featurizer, questions: Sequence[Question],
                     n_samples: int, rng: np.random.Generator) -> List[Dict]:
    """Per question: ``π_B``, the number of buffer programs and of outside draws, the expected return
    ``b = π_B + (1 - π_B) mean_{τ∉B} R(τ)`` (the baseline), strata moments without (``moments``) and with
    (``moments_baseline``) the baseline, and ``direct_reinforce_1``, the sample variance of ``R ∇log π`` over
    the ``n_samples`` on-policy draws."""
    envs = [q.env for q in questions]
    inputs = decoding.encoder_inputs(featurizer, envs)
    samples = decoding.sample(params, config, envs, inputs, rng, n_samples=n_samples)
    trajectories, rows, kinds = [], [], []
    for row, (q, drawn) in enumerate(zip(questions, samples)):
        for t in q.buffer:
            trajectories.append(t), rows.append(row), kinds.append("buffer")
        for t in drawn:
            trajectories.append(t), rows.append(row), kinds.append("sample")
    log_probs, scores = trajectory_scores(params, config, inputs, trajectories, rows,
                                          decoding.max_program_steps(envs))
    rows, kinds = np.asarray(rows), np.asarray(kinds)
    out = []
    for row, q in enumerate(questions):
        in_buffer_tokens = {t.tokens for t in q.buffer}
        mine = rows == row
        buf = mine & (kinds == "buffer")
        drawn = [i for i in np.flatnonzero(mine & (kinds == "sample"))]
        outside = [i for i in drawn if trajectories[i].tokens not in in_buffer_tokens]
        out_rewards = np.array([trajectories[i].reward for i in outside], np.float64)
        buffer_probs = np.exp(log_probs[buf])
        pi_b = float(buffer_probs.sum())
        value = pi_b + (1.0 - pi_b) * (float(out_rewards.mean()) if len(outside) else 0.0)
        plain = sampled_strata_moments(scores[buf], buffer_probs, scores[outside], out_rewards)
        with_b = sampled_strata_moments(scores[buf], buffer_probs, scores[outside], out_rewards, baseline=value)
        rho = np.array([trajectories[i].reward for i in drawn])[:, None] * scores[drawn]
        direct = float(np.sum(rho.var(0, ddof=1))) if len(drawn) >= 2 else float("nan")
        out.append({
            "question": q.env.example.id,
            "pi_buffer": pi_b,
            "n_buffer": len(q.buffer),
            "n_drawn": len(drawn),
            "n_outside": len(outside),
            "expected_return": value,
            "moments": plain,
            "moments_baseline": with_b,
            "direct_reinforce_1": direct,
        })
    return out


def policy_variance_sweep(policies: Mapping[float, object], config: ModelConfig, featurizer: Featurizer,
                          questions: Sequence[Question], estimators: Sequence[Estimator], *, n_samples: int = 32,
                          alpha: float = 0.1, seed: int = 0) -> List[Dict]:
    """Variance of every estimator for every question under every policy of ``policies`` (``{label: params}``,
    e.g. interpolation factors), one row per (policy, question): ``policy``, ``question``, ``pi_buffer``,
    ``n_buffer``, ``n_outside``, ``expected_return``, ``grad_norm`` (‖∇O‖ estimated), ``variance[label]``,
    ``reinforce_1`` (the strata formula) and ``direct_reinforce_1`` (measured directly), ``clip_bias``
    (‖bias‖ of MAPO 1+1 with the clip ``alpha``) and ``relative_clip_bias`` (over ‖∇O‖)."""
    rows = []
    for k, (label, params) in enumerate(policies.items()):
        rng = np.random.default_rng([seed, k])
        for q in question_moments(params, config, featurizer, questions, n_samples, rng):
            plain: StrataMoments = q["moments"]
            grad_norm = float(np.linalg.norm(plain.gradient))
            bias = float(np.linalg.norm(clip_bias(plain, alpha)))
            rows.append({
                "policy": label,
                **{key: q[key] for key in ("question", "pi_buffer", "n_buffer", "n_outside", "expected_return",
                                           "direct_reinforce_1")},
                "grad_norm": grad_norm,
                "variance": {e.label: estimator_variance(e, plain, q["moments_baseline"]) for e in estimators},
                "reinforce_1": reinforce_variance(plain, 1),
                "clip_bias": bias,
                "relative_clip_bias": bias / grad_norm if grad_norm > 0 else float("nan"),
            })
    return rows


def ratio_summary(rows: Sequence[Dict], numerator: str, denominator: str,
                  edges: Sequence[float] = (0.0, 0.01, 0.1, 0.3, 0.6, 1.0)) -> List[Dict]:
    """Median and quartiles of ``variance[numerator] / variance[denominator]`` over the rows of
    :func:`policy_variance_sweep` (or any rows with ``pi_buffer`` and ``variance``), binned by ``π_B``;
    rows whose denominator is 0 are skipped. One dict per non-empty bin: ``low``, ``high``, ``n``, ``median``,
    ``q25``, ``q75``."""
    out = []
    for low, high in zip(edges[:-1], edges[1:]):
        ratios = [r["variance"][numerator] / r["variance"][denominator] for r in rows
                  if r["variance"][denominator] > 0
                  and (low <= r["pi_buffer"] < high or (high == edges[-1] and r["pi_buffer"] == high))]
        ratios = [x for x in ratios if np.isfinite(x)]
        if ratios:
            q25, median, q75 = np.percentile(ratios, [25, 50, 75])
            out.append({"low": low, "high": high, "n": len(ratios), "median": float(median),
                        "q25": float(q25), "q75": float(q75)})
    return out
