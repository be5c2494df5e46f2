"""Pure policy functions: init, encode, a batched decoding step, and whole-sequence log-probs.

Every function takes the parameters explicitly and is jitted with the (hashable) `ModelConfig` as a
static argument. Shapes are static: questions are padded to a bucketed length, trajectories to
`max_steps`, valid tokens to `max_valid`, so each function compiles once per bucket.

`step` is what actors call once per decoding step for all their live environments;
`sequence_log_probs` recomputes, in one `lax.scan`, the per-step log-probabilities and entropies of
whole trajectories (teacher forcing) for the learner. The two agree (tests check it to 1e-5).
`encoded_log_probs` is the same scan from questions already encoded: an actor encodes its batch once
and uses the encoding for exploration, buffer scoring and its on-policy draw.
"""

from __future__ import annotations

import functools
from typing import NamedTuple, Optional, Tuple

import chex
import jax
import jax.numpy as jnp
import numpy as np

from mapo_jax.model.networks import (
    DecoderState,
    Encoded,
    EncoderInputs,
    ModelConfig,
    Policy,
    StepInputs,
    initial_state,  # noqa: F401  (part of this module's interface: decoding starts from it)
)

Params = dict


class TrajectoryBatch(NamedTuple):
    """Whole trajectories, padded to T steps (shapes [B, T] or [B, T, V])."""

    read_ids: jax.Array
    write_ids: jax.Array
    valid_ids: jax.Array
    valid_mask: jax.Array
    features: jax.Array
    actions: jax.Array  # int32: index into the valid list
    length: jax.Array  # int32 [B]
    example_index: jax.Array  # int32 [B]: row of the EncoderInputs this trajectory answers


def network(config: ModelConfig) -> Policy:
    return Policy(config)


def dummy_inputs(config: ModelConfig, batch: int = 1, length: int = 4) -> Tuple[EncoderInputs, StepInputs]:
    """Inputs of the right shapes and dtypes (for init and compilation)."""
    c, v = config.max_mem, config.max_valid
    inputs = EncoderInputs(
        tokens=jnp.zeros((batch, length), jnp.int32),
        in_table=jnp.zeros((batch, length), jnp.float32),
        length=jnp.full((batch,), length, jnp.int32),
        constant_spans=-jnp.ones((batch, c, 2), jnp.int32),
        constant_values=jnp.zeros((batch, c, config.pretrained_dim), jnp.float32),
        n_constants=jnp.zeros((batch,), jnp.int32),
    )
    step = StepInputs(
        read_id=jnp.full((batch,), 2, jnp.int32),
        write_id=-jnp.ones((batch,), jnp.int32),
        valid_ids=jnp.zeros((batch, v), jnp.int32),
        valid_mask=jnp.ones((batch, v), bool).at[:, 1:].set(False),
        features=jnp.zeros((batch, v), jnp.float32),
    )
    return inputs, step


def init(rng: jax.Array, config: ModelConfig, pretrained: Optional[np.ndarray] = None) -> Params:
    """Fresh parameters; `pretrained` ([vocab - 4, dim] word vectors) fills the frozen table."""
    params = _init(rng, config)
    if pretrained is not None:
        expected = params["pretrained_embeddings"].shape
        if tuple(pretrained.shape) != tuple(expected):
            raise ValueError(f"pretrained matrix has shape {pretrained.shape}, the model expects {expected}")
        params = dict(params)
        params["pretrained_embeddings"] = jnp.asarray(pretrained, jnp.float32)
    return params


@functools.partial(jax.jit, static_argnames=("config",))
def _init(rng: jax.Array, config: ModelConfig) -> Params:
    inputs, step = dummy_inputs(config)
    return network(config).init(rng, inputs, step)["params"]


def count_parameters(params: Params, trainable_only: bool = True) -> int:
    leaves = jax.tree_util.tree_leaves_with_path(params)
    return sum(
        int(np.prod(x.shape)) for path, x in leaves
        if not (trainable_only and "pretrained_embeddings" in jax.tree_util.keystr(path))
    )


@functools.partial(jax.jit, static_argnames=("config", "deterministic"))
def encode(params: Params, inputs: EncoderInputs, config: ModelConfig,
           rng: Optional[jax.Array] = None, deterministic: bool = True) -> Encoded:
    """Encodes a batch of questions and builds their initial memories."""
    chex.assert_rank([inputs.tokens, inputs.constant_spans], [2, 3])
    rngs = None if deterministic else {"dropout": rng}
    return network(config).apply({"params": params}, inputs, deterministic, method=Policy.encode, rngs=rngs)


@functools.partial(jax.jit, static_argnames=("config",))
def step(params: Params, encoded: Encoded, state: DecoderState, inputs: StepInputs,
         config: ModelConfig) -> Tuple[DecoderState, jax.Array]:
    """One decoding step for every environment of a batch: (new state, log-probs [B, V]).

    Log-probs are over the valid slots (invalid and padded slots get about -1e9).
    """
    chex.assert_rank([inputs.read_id, inputs.valid_ids], [1, 2])
    state, logits = network(config).apply(
        {"params": params}, encoded, state, inputs, True, method=Policy.decode_step)
    return state, jax.nn.log_softmax(logits, axis=-1)


def _entropy(log_probs: jax.Array, mask: jax.Array) -> jax.Array:
    probs = jnp.exp(log_probs)
    return -jnp.sum(jnp.where(mask, probs * log_probs, 0.0), axis=-1)


@functools.partial(jax.jit, static_argnames=("config", "deterministic"))
def sequence_log_probs(params: Params, inputs: EncoderInputs, trajectories: TrajectoryBatch,
                       config: ModelConfig, rng: Optional[jax.Array] = None,
                       deterministic: bool = True) -> Tuple[jax.Array, jax.Array]:
    """Per-step log pi(a_t | s_t) and policy entropies of whole trajectories: ([B, T], [B, T]).

    `inputs` holds the distinct questions (any number of rows); trajectory b answers question
    `example_index[b]`. Steps at or beyond a trajectory's length are 0 in both outputs.
    """
    encode_rng, decode_rng = (None, None) if deterministic else jax.random.split(rng)
    rngs = None if deterministic else {"dropout": encode_rng}
    encoded = network(config).apply({"params": params}, inputs, deterministic, method=Policy.encode, rngs=rngs)
    return _teacher_forced(params, encoded, trajectories, config, decode_rng, deterministic)


@functools.partial(jax.jit, static_argnames=("config",))
def encoded_log_probs(params: Params, encoded: Encoded, trajectories: TrajectoryBatch,
                      config: ModelConfig) -> Tuple[jax.Array, jax.Array]:
    """`sequence_log_probs` (no dropout) of questions already encoded by `encode`: an actor encodes
    its batch once for exploration, buffer scoring and the on-policy draw."""
    return _teacher_forced(params, encoded, trajectories, config, None, True)


def _teacher_forced(params: Params, encoded: Encoded, trajectories: TrajectoryBatch, config: ModelConfig,
                    rng: Optional[jax.Array], deterministic: bool) -> Tuple[jax.Array, jax.Array]:
    """The decoding scan of `sequence_log_probs` from encoded questions."""
    chex.assert_rank([trajectories.read_ids, trajectories.valid_ids], [2, 3])
    chex.assert_equal_shape([trajectories.read_ids, trajectories.actions])
    net = network(config)
    # Each question is encoded once, however many of its trajectories the batch holds.
    encoded = jax.tree_util.tree_map(lambda x: x[trajectories.example_index], encoded)
    n_steps = trajectories.read_ids.shape[1]

    def one_step(state, t):
        step_inputs = StepInputs(
            read_id=trajectories.read_ids[:, t],
            write_id=trajectories.write_ids[:, t],
            valid_ids=trajectories.valid_ids[:, t],
            valid_mask=trajectories.valid_mask[:, t],
            features=trajectories.features[:, t],
        )
        step_rngs = None if deterministic else {"dropout": jax.random.fold_in(rng, t)}
        state, logits = net.apply({"params": params}, encoded, state, step_inputs, deterministic,
                                  method=Policy.decode_step, rngs=step_rngs)
        log_probs = jax.nn.log_softmax(logits, axis=-1)
        chosen = jnp.take_along_axis(log_probs, trajectories.actions[:, t, None], axis=-1)[:, 0]
        return state, (chosen, _entropy(log_probs, step_inputs.valid_mask))

    _, (log_probs, entropies) = jax.lax.scan(one_step, initial_state(encoded, config), jnp.arange(n_steps))
    live = jnp.arange(n_steps)[:, None] < trajectories.length[None, :]  # [T, B]
    log_probs = jnp.where(live, log_probs, 0.0).T
    entropies = jnp.where(live, entropies, 0.0).T
    chex.assert_shape([log_probs, entropies], [trajectories.read_ids.shape] * 2)
    return log_probs, entropies


def make_log_prob_fn(config: ModelConfig, deterministic: bool = False):
    """`log_prob_fn(params, (inputs, trajectories, rng)) -> (seq_log_prob [B], entropy [B])`,
    the form the objectives take (mapo_jax.objectives.make_loss)."""

    def log_prob_fn(params, batch_inputs):
        inputs, trajectories, rng = batch_inputs
        log_probs, entropies = sequence_log_probs(params, inputs, trajectories, config, rng, deterministic)
        return log_probs.sum(axis=1), entropies.sum(axis=1)

    return log_prob_fn
