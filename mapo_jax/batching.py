"""From examples and trajectories to the padded arrays the jitted policy takes.

Shapes are bucketed so that XLA compiles a handful of programs, never one per batch: question
lengths round up to a bucket, trajectories pad to `max_steps`, batches pad to a fixed row count
(padding rows have length 0 and are masked out of every loss).
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from mapo_jax.data.example import Example
from mapo_jax.data.embeddings import WordVectors
from mapo_jax.data.tables import Table
from mapo_jax.data.vocab import EncoderVocab, anonymize, column_value_embedding
from mapo_jax.env import Trajectory
from mapo_jax.model.networks import EncoderInputs
from mapo_jax.model.policy import TrajectoryBatch

LENGTH_BUCKETS = (16, 24, 32, 48, 64, 128)  # a batch of 50 WTQ questions: max ~22 tokens (median)


def bucket(length: int, buckets: Sequence[int] = LENGTH_BUCKETS) -> int:
    for size in buckets:
        if length <= size:
            return size
    return buckets[-1]


class Featurizer:
    """Encoder features of examples (token ids, in-table feature, constant spans and values).

    Column value embeddings are computed once per (table, column) and example features once per
    example, since actors featurise the same questions again and again.
    """

    def __init__(self, vocab: EncoderVocab, vectors: WordVectors, max_mem: int = 60,
                 max_length: int = LENGTH_BUCKETS[-1]):
        self.vocab = vocab
        self.vectors = vectors
        self.max_mem = max_mem
        self.max_length = max_length
        self._columns: Dict[Tuple[str, str], np.ndarray] = {}
        self._examples: Dict[str, tuple] = {}

    def _column_vector(self, table: Table, column) -> np.ndarray:
        key = (table.name, column.name)
        vector = self._columns.get(key)
        if vector is None:
            vector = self._columns[key] = column_value_embedding(column, self.vectors)
        return vector

    def features(self, example: Example, table: Table, n_constants: int) -> tuple:
        """(ids, in_table, spans [C, 2], values [C, dim]) for one example; `n_constants` as the
        interpreter kept them (columns first, then entities, truncated at max_mem - max_n_exp)."""
        cached = self._examples.get(example.id)
        if cached is not None:
            return cached
        ids = self.vocab.encode(anonymize(example))[: self.max_length]
        in_table = np.asarray(example.in_table[: self.max_length], np.float32)
        spans = -np.ones((self.max_mem, 2), np.int32)
        values = np.zeros((self.max_mem, self.vectors.dim), np.float32)
        columns = list(table.columns)
        for k in range(min(n_constants, self.max_mem)):
            if k < len(columns):
                values[k] = self._column_vector(table, columns[k])
            else:
                entity = example.entities[k - len(columns)]
                end = min(entity.end - 1, self.max_length - 1)
                spans[k] = (min(entity.start, end), end)
        cached = self._examples[example.id] = (ids, in_table, spans, values, n_constants)
        return cached

    def encoder_inputs(self, rows: Sequence[tuple], batch_size: Optional[int] = None,
                       min_length: int = 0) -> EncoderInputs:
        """Stacks `features(...)` rows, padding tokens to a length bucket (at least `min_length`)
        and rows to `batch_size`."""
        n = batch_size or len(rows)
        length = bucket(max([len(r[0]) for r in rows] + [1, min_length]))
        tokens = np.zeros((n, length), np.int32)
        in_table = np.zeros((n, length), np.float32)
        lengths = np.zeros(n, np.int32)
        spans = -np.ones((n, self.max_mem, 2), np.int32)
        values = np.zeros((n, self.max_mem, self.vectors.dim), np.float32)
        n_constants = np.zeros(n, np.int32)
        for i, (ids, feature, span, value, count) in enumerate(rows):
            tokens[i, : len(ids)] = ids
            in_table[i, : len(ids)] = feature[: len(ids)]
            lengths[i] = max(len(ids), 1)
            spans[i], values[i], n_constants[i] = span, value, count
        lengths[len(rows):] = 1  # padding rows: a one-token question of <UNK>
        return EncoderInputs(tokens, in_table, lengths, spans, values, n_constants)


def trajectory_batch(trajectories: Sequence[Trajectory], max_steps: int, max_valid: int,
                     batch_size: Optional[int] = None,
                     example_index: Optional[Sequence[int]] = None) -> TrajectoryBatch:
    """Pads trajectories to [batch_size, max_steps(, max_valid)]; padding rows have length 0.

    `example_index[b]`: the encoder-input row of trajectory b's question (default: row b).
    """
    n = batch_size or len(trajectories)
    read_ids = np.zeros((n, max_steps), np.int32)
    write_ids = -np.ones((n, max_steps), np.int32)
    valid_ids = np.zeros((n, max_steps, max_valid), np.int32)
    valid_mask = np.zeros((n, max_steps, max_valid), bool)
    features = np.zeros((n, max_steps, max_valid), np.float32)
    actions = np.zeros((n, max_steps), np.int32)
    lengths = np.zeros(n, np.int32)
    for i, trajectory in enumerate(trajectories):
        t = trajectory.length
        if t > max_steps:
            raise ValueError(f"trajectory of {t} steps exceeds max_steps={max_steps}: {trajectory.tokens}")
        read_ids[i, :t] = trajectory.read_ids
        write_ids[i, :t] = trajectory.write_ids
        valid_ids[i, :t] = trajectory.valid_ids
        valid_mask[i, :t] = trajectory.valid_mask
        features[i, :t] = trajectory.features
        actions[i, :t] = trajectory.actions
        lengths[i] = t
    index = np.zeros(n, np.int32)
    index[: len(trajectories)] = np.arange(len(trajectories)) if example_index is None else example_index
    return TrajectoryBatch(read_ids, write_ids, valid_ids, valid_mask, features, actions, lengths, index)
