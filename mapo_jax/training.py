"""A synchronous MAPO training loop: one inline actor and the jitted learner, alternating.

This is the actor-learner system with the threads taken out: each iteration the actor decodes a
batch of questions with the current parameters (systematic exploration into the memory buffers,
one buffer program drawn in proportion to its probability, one on-policy program kept only if it is
outside the buffer), computes the MAPO sample weights' inputs, and the learner takes one step. The
threaded version (stale parameters, a bounded queue) wraps the same pieces.

Unbiased rejection (see objectives.mapo_weights): a single on-policy draw that is kept only when it
falls outside the buffer is accepted with probability 1 - pi_B, so it carries
`sample_weight = 1 / (1 - pi_B)`; the weight R * (1 - max(pi_B, alpha)) / (1 - pi_B) never exceeds R.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import jax
import numpy as np

from mapo_jax import decoding, learning, objectives
from mapo_jax.batching import Featurizer, trajectory_batch
from mapo_jax.buffer import MemoryBuffer
from mapo_jax.config import DataConfig, ModelConfig, TrainConfig
from mapo_jax.data import datasets
from mapo_jax.data.embeddings import load_glove
from mapo_jax.data.vocab import build_encoder_vocab, pretrained_matrix
from mapo_jax.env import QAEnvironment, Trajectory, Vocabulary
from mapo_jax.explore.systematic import SystematicExplorer, random_explore
from mapo_jax.explore.warm_start import load_programs
from mapo_jax.lisp.functions import TableView
from mapo_jax.lisp.interpreter import Limits
from mapo_jax.model import policy

MAX_STEPS = 20  # 3 expressions of at most 6 tokens, then <END>


def _environments(dataset, punish_extra_work: bool, vocabulary: Vocabulary) -> List[QAEnvironment]:
    views: Dict[str, TableView] = {}
    envs = []
    for example in dataset.examples:
        table = dataset.tables[example.table]
        view = views.setdefault(example.table, TableView(table))
        envs.append(QAEnvironment(example, table, punish_extra_work=punish_extra_work, view=view,
                                  vocabulary=vocabulary, limits=Limits()))
    return envs


def _buffer_log_probs(params, config: ModelConfig, trajectories: Sequence[Trajectory],
                      rows: Sequence[int], inputs) -> np.ndarray:
    """Sequence log-probs of buffer trajectories (trajectory i answers question `rows[i]` of
    `inputs`), padded to a row bucket so the call compiles once per bucket."""
    if not trajectories:
        return np.zeros(0)
    batch = trajectory_batch(trajectories, MAX_STEPS, config.max_valid,
                             decoding.row_bucket(len(trajectories)), rows)
    log_probs, _ = policy.sequence_log_probs(params, inputs, batch, config)
    return np.asarray(log_probs.sum(axis=1))[: len(trajectories)]


def accuracy(params, config: ModelConfig, envs: Sequence[QAEnvironment], featurizer: Featurizer,
             batch_size: int = 64) -> float:
    """Fraction of questions whose greedy program earns reward 1 (official matching)."""
    correct = 0
    for start in range(0, len(envs), batch_size):
        chunk = envs[start: start + batch_size]
        inputs = decoding.encoder_inputs(featurizer, chunk)
        for trajectory in decoding.greedy(params, config, chunk, inputs, MAX_STEPS):
            correct += trajectory is not None and trajectory.reward == 1.0
    return correct / max(len(envs), 1)


def train_and_evaluate(data_config: DataConfig, train_config: TrainConfig = TrainConfig(),
                       log: Optional[Callable[[str], None]] = None, workdir: Optional[str] = None) -> dict:
    """Trains on `data_config`'s train part, evaluates on its dev part; returns the history.

    With `workdir`, every evaluation is appended to `workdir/metrics.jsonl` (one JSON object a line).
    """
    log = log or print
    metrics_path = None
    if workdir is not None:
        Path(workdir).mkdir(parents=True, exist_ok=True)
        metrics_path = Path(workdir) / "metrics.jsonl"
    cfg = train_config
    rng = np.random.default_rng(cfg.seed)
    from mapo_jax.config import split_parts

    if not data_config.split.isdigit():
        raise ValueError(f"training takes a split pair: --split=1..5 (got {data_config.split!r})")
    train_split, dev_split = split_parts(data_config)
    train = datasets.load_dataset(data_config, train_split)
    dev = datasets.load_dataset(data_config, dev_split)
    vectors = load_glove()
    vocab = build_encoder_vocab(train.examples + dev.examples, vectors, min_count=cfg.min_count)
    featurizer = Featurizer(vocab, vectors)
    vocabulary = Vocabulary()
    train_envs = _environments(train, True, vocabulary)
    dev_envs = _environments(dev, False, vocabulary)
    config = ModelConfig(encoder_vocab_size=len(vocab), pretrained_dim=vectors.dim,
                         hidden_size=cfg.hidden_size, dropout=cfg.dropout, max_variables=Limits().max_n_exp)
    params = policy.init(jax.random.PRNGKey(cfg.seed), config, pretrained_matrix(vocab, vectors))
    optimizer = learning.make_optimizer(cfg.learning_rate, cfg.max_grad_norm)
    update = learning.make_update(
        learning.make_policy_loss(cfg.objective, config, cfg.alpha, cfg.entropy_coeff), optimizer)
    state = learning.init_state(params, optimizer, jax.random.PRNGKey(cfg.seed + 1))

    # Warm start: saved programs (launch/explore.py output), or random exploration in-process.
    start = time.perf_counter()
    buffer = MemoryBuffer()
    explorers = {}
    saved = load_programs(cfg.programs_file) if cfg.programs_file else None
    if saved is not None:
        stats = buffer.load_programs({env.example.id: env for env in train_envs}, saved)
        log(f"[train] loaded {stats['loaded']} programs from {cfg.programs_file} (skipped {stats['skipped']})")
    for i, env in enumerate(train_envs):
        explored = set(buffer.programs(env.example.id))
        if saved is None:
            found, _ = random_explore(env, cfg.warm_start_rollouts, explored, random.Random(cfg.seed * 7919 + i))
            for tokens in found:
                buffer.add(env.example.id, env.replay(tokens))
        explorers[env.example.id] = SystematicExplorer(env, explored, random.Random(cfg.seed + i))
    ids = [env.example.id for env in train_envs]
    log(f"[train] warm start: {buffer.coverage(ids):.1%} of {len(ids)} questions have a program "
        f"({time.perf_counter() - start:.1f} s)")

    history = [{"step": 0, "dev/accuracy": accuracy(state.params, config, dev_envs, featurizer)}]
    if metrics_path is not None:
        with open(metrics_path, "a") as f:
            f.write(json.dumps(history[0]) + "\n")
    log(f"[train] step 0: dev accuracy {history[0]['dev/accuracy']:.3f}")
    order = rng.permutation(len(train_envs))
    cursor = 0
    start = time.perf_counter()
    for step in range(1, cfg.n_steps + 1):
        if cursor + cfg.questions_per_step > len(order):
            order, cursor = rng.permutation(len(train_envs)), 0
        envs = [train_envs[i] for i in order[cursor: cursor + cfg.questions_per_step]]
        cursor += cfg.questions_per_step
        params = state.params
        inputs = decoding.encoder_inputs(featurizer, envs)
        # 1. systematic exploration with the current policy: new reward-1 programs join the buffers
        if cfg.systematic_exploration:
            explored = decoding.sample(params, config, envs, inputs, rng, max_steps=MAX_STEPS,
                                       explorers=[explorers[env.example.id] for env in envs])
            for env, samples in zip(envs, explored):
                for trajectory in samples:
                    buffer.add(env.example.id, trajectory)
        # 2. buffer probabilities under the current policy, pi_B, one buffer draw per question
        per_question = [buffer.trajectories(env.example.id) for env in envs]
        rows = [row for row, group in enumerate(per_question) for _ in group]
        buffered = [trajectory for group in per_question for trajectory in group]
        log_probs = _buffer_log_probs(params, config, buffered, rows, inputs)
        chosen, samples_rows = [], []
        reward, in_buffer, pi_buffer, weight = [], [], [], []
        pi_of_row = {}
        offset = 0
        for row, env in enumerate(envs):
            n = len(per_question[row])
            if n:
                probs = np.exp(log_probs[offset: offset + n])
                offset += n
                pi = buffer.pi_buffer(env.example.id, probs=probs)
                pi_of_row[row] = pi
                (drawn,) = buffer.sample(env.example.id, probs, 1, rng)
                chosen.append(drawn.trajectory)
                samples_rows.append(row)
                reward.append(drawn.trajectory.reward)
                in_buffer.append(True)
                pi_buffer.append(pi)
                weight.append(drawn.sample_weight)
        # 3. one on-policy program per question, kept only outside the buffer
        on_policy = decoding.sample(params, config, envs, inputs, rng, max_steps=MAX_STEPS)
        for row, (env, samples) in enumerate(zip(envs, on_policy)):
            for trajectory in samples:
                if buffer.contains(env.example.id, trajectory.tokens):
                    continue
                pi = pi_of_row.get(row, 0.0)
                chosen.append(trajectory)
                samples_rows.append(row)
                reward.append(trajectory.reward)
                in_buffer.append(False)
                pi_buffer.append(pi)
                weight.append(1.0 / max(1.0 - pi, 1e-6))
                buffer.add(env.example.id, trajectory)  # a new reward-1 program joins after use
        # 4. one learner step
        n_rows = decoding.row_bucket(2 * len(envs))
        pad = n_rows - len(chosen)

        def padded(values, dtype):
            return np.concatenate([np.asarray(values, dtype), np.zeros(pad, dtype)])

        samples = objectives.SampleBatch(
            reward=padded(reward, np.float32), in_buffer=padded(in_buffer, bool),
            pi_buffer=padded(pi_buffer, np.float32), sample_weight=padded(weight, np.float32),
            baseline=np.zeros(n_rows, np.float32), valid=padded([True] * len(chosen), bool),
            n_examples=np.float32(len(envs)))
        batch = learning.LearnerBatch(
            samples, inputs, trajectory_batch(chosen, MAX_STEPS, config.max_valid, n_rows, samples_rows))
        state, metrics = update(state, batch)
        if step % cfg.eval_every == 0 or step == cfg.n_steps:
            dev_accuracy = accuracy(state.params, config, dev_envs, featurizer)
            record = {"step": step, "dev/accuracy": dev_accuracy, "loss": float(metrics["loss"]),
                      "buffer_coverage": buffer.coverage(ids), "seconds": round(time.perf_counter() - start, 1)}
            history.append(record)
            if metrics_path is not None:
                with open(metrics_path, "a") as f:
                    f.write(json.dumps(record) + "\n")
            log(f"[train] step {step}: dev accuracy {dev_accuracy:.3f}  loss {record['loss']:.3f}  "
                f"buffer coverage {record['buffer_coverage']:.3f}  {record['seconds']:.0f} s")
            if not np.isfinite(record["loss"]):
                raise FloatingPointError(f"loss is {record['loss']} at step {step}")
    return {"history": history, "params": state.params, "config": config}
