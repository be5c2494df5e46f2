"""Flax modules of the NSM/MAPO policy (paper section 5.1; docs/architecture.md#the-model).

Encoder: frozen word vectors projected to `hidden` (plus trainable rows for the 4 special tokens)
and the binary in-table feature, a 2-layer bidirectional LSTM whose second layer is residual,
dropout on every layer output, and a projection of [forward; backward] back to `hidden`.

Decoder: a 2-layer LSTM (residual second layer) started from the encoder's forward final states,
additive attention over the encoder outputs, and a *key-variable memory*: one key per decoder token
(builtin tokens: trainable rows; table columns and question entities: a projection of their value
embedding plus the mean encoder output at the mention's boundaries; variables: the decoder output of
the step that created them). Logits are dot products of the decoder output with the keys of the
valid tokens, plus a learned weight times each token's column-name overlap feature.
"""

from __future__ import annotations

from typing import NamedTuple, Tuple

import jax
import jax.numpy as jnp
import flax.linen as nn

from mapo_jax.config import ModelConfig  # noqa: F401  (re-exported: the model's sizes)

NEG_INF = -1e9  # masked logits; finite so that 0 * NEG_INF stays finite in entropies


def lstm_update(c: jax.Array, gates: jax.Array) -> Tuple[jax.Array, jax.Array]:
    """The LSTM rule of TF1's BasicLSTMCell, shared by the encoder and the decoder: gate
    pre-activations [..., 4H] split as (i, j, f, o), forget bias +1; returns the new (c, h)."""
    i, j, f, o = jnp.split(gates, 4, axis=-1)
    c = c * jax.nn.sigmoid(f + 1.0) + jax.nn.sigmoid(i) * jnp.tanh(j)
    return c, jnp.tanh(c) * jax.nn.sigmoid(o)


class LSTMCell(nn.Module):
    """One decoder step of :func:`lstm_update` with one kernel on [x; h]."""

    features: int

    @nn.compact
    def __call__(self, carry, inputs):
        c, h = carry
        gates = nn.Dense(4 * self.features, kernel_init=nn.initializers.glorot_uniform(), name="gates")(
            jnp.concatenate([inputs, h], axis=-1)
        )
        c, h = lstm_update(c, gates)
        return (c, h), h


class EncoderInputs(NamedTuple):
    """A batch of questions with their constants (shapes: B questions, L tokens, C = max_mem)."""

    tokens: jax.Array  # int32 [B, L] encoder vocabulary ids
    in_table: jax.Array  # float32 [B, L]
    length: jax.Array  # int32 [B]
    constant_spans: jax.Array  # int32 [B, C, 2] inclusive token span of an entity; -1 for columns/padding
    constant_values: jax.Array  # float32 [B, C, pretrained_dim] value embeddings (columns), 0 else
    n_constants: jax.Array  # int32 [B]


class Encoded(NamedTuple):
    """What decoding needs from the encoder, computed once per question."""

    outputs: jax.Array  # [B, L, H]
    mask: jax.Array  # bool [B, L]
    attention_keys: jax.Array  # [B, L, H]
    attention_values: jax.Array  # [B, L, H]
    memory: jax.Array  # [B, n_slots, H]: builtin keys, then constants (fixed during decoding)
    n_constants: jax.Array  # int32 [B]: variables take the slots after the constants
    state: Tuple  # decoder LSTM carry: ((c, h) of layer 1, (c, h) of layer 2), each [B, H]


class StepInputs(NamedTuple):
    """One decoding step of a batch (the environment's observation)."""

    read_id: jax.Array  # int32 [B]
    write_id: jax.Array  # int32 [B], -1 if nothing was created
    valid_ids: jax.Array  # int32 [B, V]
    valid_mask: jax.Array  # bool [B, V]
    features: jax.Array  # float32 [B, V]


class DecoderState(NamedTuple):
    """What changes while decoding: the LSTM carry and the keys of the variables created so far.

    Only variable keys are carried (not the whole memory): the decoding scan then stores a few
    keys per step instead of a copy of every slot, which keeps the learner's backward pass cheap.
    """

    lstm: Tuple
    variables: jax.Array  # [B, max_variables, H]; variable j lives in slot n_builtin + n_constants + j


def initial_state(encoded: Encoded, config: ModelConfig) -> DecoderState:
    """The decoder state before the first step: encoder final states, no variables yet."""
    batch = encoded.memory.shape[0]
    return DecoderState(encoded.state, jnp.zeros((batch, config.max_variables, config.hidden_size)))


class _LSTMLayer(nn.Module):
    """One LSTM layer (:func:`lstm_update`) over a padded sequence [B, L, D].

    The input half of the gate kernel is applied to all timesteps in one matmul before the scan,
    so the scan only does the recurrent half (same parameters as one [D + H, 4H] kernel).
    `reverse` reads each sequence backwards within its own length; padding steps keep the carry.
    """

    hidden: int
    reverse: bool

    @nn.compact
    def __call__(self, x, length):
        h = self.hidden
        batch, steps = x.shape[:2]
        t = jnp.arange(steps)[None, :]
        live = t < length[:, None]  # [B, L]
        if self.reverse:  # position t of the reversed sequence is position length-1-t
            order = jnp.where(live, length[:, None] - 1 - t, t)
            x = jnp.take_along_axis(x, order[..., None], axis=1)
        projected = nn.Dense(4 * h, kernel_init=nn.initializers.glorot_uniform(), name="input")(x)
        recurrent = self.param("recurrent", nn.initializers.glorot_uniform(), (h, 4 * h))

        def step(carry, inputs):
            c, hidden = carry
            z, alive = inputs
            new_c, new_h = lstm_update(c, z + hidden @ recurrent)
            alive = alive[:, None]
            carry = (jnp.where(alive, new_c, c), jnp.where(alive, new_h, hidden))
            return carry, jnp.where(alive, new_h, 0.0)

        zeros = jnp.zeros((batch, h), x.dtype)
        carry, outputs = jax.lax.scan(step, (zeros, zeros),
                                      (jnp.swapaxes(projected, 0, 1), jnp.swapaxes(live, 0, 1)))
        outputs = jnp.swapaxes(outputs, 0, 1)
        if self.reverse:
            outputs = jnp.take_along_axis(outputs, order[..., None], axis=1)
        return outputs, carry


def _stacked_lstm(x, length, hidden, dropout, deterministic, reverse, name):
    """Two LSTM layers over [B, L, D]; the second is residual. Returns outputs and final carries."""
    out1, carry1 = _LSTMLayer(hidden, reverse, name=f"{name}_1")(x, length)
    out1 = nn.Dropout(dropout)(out1, deterministic=deterministic)
    out2, carry2 = _LSTMLayer(hidden, reverse, name=f"{name}_2")(out1, length)
    out2 = nn.Dropout(dropout)(out1 + out2, deterministic=deterministic)
    return out2, (carry1, carry2)


class _BiLayer(nn.Module):
    """One direction of the encoder: two stacked LSTM layers, the second residual."""

    hidden: int
    dropout: float
    reverse: bool

    @nn.compact
    def __call__(self, x, length, deterministic):
        return _stacked_lstm(x, length, self.hidden, self.dropout, deterministic, self.reverse, "lstm")


class Policy(nn.Module):
    """The whole policy network; `encode` and `decode_step` are its two entry points."""

    config: ModelConfig

    def setup(self):
        cfg = self.config
        h = cfg.hidden_size
        normal = nn.initializers.truncated_normal(0.1)
        self.special_embeddings = self.param("special_embeddings", normal, (4, h))
        # Frozen: loaded from GloVe after init, never updated (gradient stopped, optimiser masks it).
        self.pretrained_embeddings = self.param(
            "pretrained_embeddings", nn.initializers.zeros, (cfg.encoder_vocab_size - 4, cfg.pretrained_dim)
        )
        self.pretrained_projection = nn.Dense(h, name="pretrained_projection")
        self.output_projection = nn.Dense(h, name="encoder_output_projection")
        self.value_projection = nn.Dense(h, name="constant_value_projection")
        self.builtin_embeddings = self.param("builtin_embeddings", normal, (cfg.n_builtin, h))
        self.attention_query = nn.Dense(h, name="attention_query")
        self.attention_key = nn.Dense(h, name="attention_key")
        self.attention_value = nn.Dense(h, name="attention_value")
        self.attention_v = self.param(
            "attention_v", lambda k, s: nn.initializers.glorot_uniform()(k, (1, s[0]))[0], (h,))
        self.attention_output = nn.Dense(h, name="attention_output")
        self.decoder_cell_1 = LSTMCell(h, name="decoder_1")
        self.decoder_cell_2 = LSTMCell(h, name="decoder_2")
        self.feature_weight = self.param("feature_weight", nn.initializers.zeros, ())
        self.dropout = nn.Dropout(cfg.dropout)
        self.encoder_forward = _BiLayer(h, cfg.dropout, reverse=False)
        self.encoder_backward = _BiLayer(h, cfg.dropout, reverse=True)

    # --- encoder ------------------------------------------------------------------------------

    def _embed(self, tokens):
        pretrained = jax.lax.stop_gradient(self.pretrained_embeddings)
        rows = self.pretrained_projection(pretrained[jnp.maximum(tokens - 4, 0)])
        special = self.special_embeddings[jnp.minimum(tokens, 3)]
        return jnp.where((tokens < 4)[..., None], special, rows)

    def encode(self, inputs: EncoderInputs, deterministic: bool = True) -> Encoded:
        cfg = self.config
        x = jnp.concatenate([self._embed(inputs.tokens), inputs.in_table[..., None]], axis=-1)
        forward, (fw1, fw2) = self._run_direction(x, inputs.length, deterministic, reverse=False)
        backward, _ = self._run_direction(x, inputs.length, deterministic, reverse=True)
        outputs = self.output_projection(jnp.concatenate([forward, backward], axis=-1))
        mask = jnp.arange(inputs.tokens.shape[1])[None, :] < inputs.length[:, None]
        # Constants: value projection + mean encoder output at the span's two ends (entities only).
        spans = inputs.constant_spans
        is_entity = spans[..., 0] >= 0
        gather = jax.vmap(lambda out, idx: out[idx])
        start = gather(outputs, jnp.maximum(spans[..., 0], 0))
        end = gather(outputs, jnp.maximum(spans[..., 1], 0))
        span_part = 0.5 * (start + end) * is_entity[..., None]
        constants = self.value_projection(inputs.constant_values) + span_part
        present = jnp.arange(cfg.max_mem)[None, :] < inputs.n_constants[:, None]
        constants = constants * present[..., None]
        builtin = jnp.broadcast_to(self.builtin_embeddings, (inputs.tokens.shape[0],) + self.builtin_embeddings.shape)
        memory = jnp.concatenate([builtin, constants], axis=1)
        return Encoded(
            outputs=outputs,
            mask=mask,
            attention_keys=self.attention_key(outputs),
            attention_values=self.attention_value(outputs),
            memory=memory,
            n_constants=inputs.n_constants,
            state=(fw1, fw2),
        )

    def _run_direction(self, x, length, deterministic, reverse):
        layer = self.encoder_backward if reverse else self.encoder_forward
        return layer(x, length, deterministic)

    # --- decoder ------------------------------------------------------------------------------

    def decode_step(self, encoded: Encoded, state: DecoderState, step: StepInputs,
                    deterministic: bool = True):
        """One step for a batch: returns the new state and logits over the valid slots [B, V]."""
        batch = jnp.arange(step.read_id.shape[0])
        first_variable = self.config.n_builtin + encoded.n_constants  # [B]

        def keys(ids, variables):
            """Keys of decoder ids [B, ...]: variable slots from `variables`, others static."""
            shape = (-1,) + (1,) * (ids.ndim - 1)
            rows = batch.reshape(shape)
            j = ids - first_variable.reshape(shape)
            is_variable = (j >= 0) & (j < self.config.max_variables)
            variable = variables[rows, jnp.clip(j, 0, self.config.max_variables - 1)]
            return jnp.where(is_variable[..., None], variable, encoded.memory[rows, ids])

        x = keys(step.read_id, state.variables)
        carry1, out1 = self.decoder_cell_1(state.lstm[0], x)
        out1 = self.dropout(out1, deterministic=deterministic)
        carry2, out2 = self.decoder_cell_2(state.lstm[1], out1)
        output = self.dropout(out1 + out2, deterministic=deterministic)
        query = self.attention_query(output)
        scores = jnp.einsum("blh,h->bl", jnp.tanh(encoded.attention_keys + query[:, None, :]), self.attention_v)
        scores = jnp.where(encoded.mask, scores, NEG_INF)
        weights = jax.nn.softmax(scores, axis=-1)
        context = jnp.einsum("bl,blh->bh", weights, encoded.attention_values)
        hidden = self.attention_output(jnp.concatenate([output, context], axis=-1))
        # A new variable's key is the decoder output of the step after its `)`.
        j = step.write_id - first_variable
        writes = (step.write_id >= 0) & (j >= 0) & (j < self.config.max_variables)
        slot = jnp.clip(j, 0, self.config.max_variables - 1)
        current = state.variables[batch, slot]
        variables = state.variables.at[batch, slot].set(jnp.where(writes[:, None], hidden, current))
        logits = self._slot_scores(hidden, encoded.memory, variables, step.valid_ids, first_variable)
        logits = logits + self.feature_weight * step.features
        logits = jnp.where(step.valid_mask, logits, NEG_INF)
        return DecoderState((carry1, carry2), variables), logits

    def _slot_scores(self, hidden, memory, variables, valid_ids, first_variable):
        """hidden . key(id) for every valid id [B, V]. Scoring every memory slot and variable, then
        picking the valid ones, equals gathering the valid keys first, but moves [B, n_slots] scores
        instead of [B, V, H] keys (and their scatter-add in the backward pass): much cheaper."""
        fixed = jnp.einsum("bh,bsh->bs", hidden, memory)  # [B, n_slots]
        per_variable = jnp.einsum("bh,bjh->bj", hidden, variables)  # [B, max_variables]
        j = valid_ids - first_variable[:, None]
        is_variable = (j >= 0) & (j < self.config.max_variables)
        from_variables = jnp.take_along_axis(per_variable, jnp.clip(j, 0, self.config.max_variables - 1), axis=1)
        from_memory = jnp.take_along_axis(fixed, jnp.clip(valid_ids, 0, memory.shape[1] - 1), axis=1)
        return jnp.where(is_variable, from_variables, from_memory)

    def __call__(self, inputs: EncoderInputs, step: StepInputs, deterministic: bool = True):
        """Encode + one step: used only to create every parameter at init."""
        encoded = self.encode(inputs, deterministic)
        return self.decode_step(encoded, initial_state(encoded, self.config), step, deterministic)
