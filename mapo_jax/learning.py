"""The learner: its state as an explicit pytree, and one jitted (or pmapped) update.

`update(state, batch) -> (state, metrics)` is pure; the state is donated so parameters and
optimiser moments are updated in place on the device. With several local devices the batch is
split along its leading axis, each device computes the gradient of its shard's share of the loss
(the loss is normalised by the *global* number of examples), and the shards' gradients are summed
with `psum` -- so one device and two devices give the same update.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, NamedTuple, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from mapo_jax import objectives
from mapo_jax.model import policy
from mapo_jax.model.networks import EncoderInputs, ModelConfig

AXIS = "devices"
FROZEN = ("pretrained_embeddings",)  # parameters the optimiser never changes


class TrainState(NamedTuple):
    params: Any
    opt_state: Any
    step: jax.Array  # int32 scalar
    rng: jax.Array  # PRNG key for dropout


def _labels(params):
    def label(path, _):
        return "frozen" if any(getattr(k, "key", None) in FROZEN for k in path) else "train"

    return jax.tree_util.tree_map_with_path(label, params)


def make_optimizer(learning_rate: float = 1e-3, max_grad_norm: float = 5.0,
                   beta1: float = 0.9) -> optax.GradientTransformation:
    """Adam (paper: lr 1e-3) after global-norm clipping at 5.0; frozen word vectors untouched."""
    trainable = optax.chain(optax.clip_by_global_norm(max_grad_norm), optax.adam(learning_rate, b1=beta1))
    return optax.multi_transform({"train": trainable, "frozen": optax.set_to_zero()}, _labels)


def init_state(params, optimizer: optax.GradientTransformation, rng: jax.Array) -> TrainState:
    return TrainState(params, optimizer.init(params), jnp.zeros((), jnp.int32), rng)


LossFn = Callable[[Any, Any], Tuple[jax.Array, Dict[str, jax.Array]]]
SUMMED_METRICS = ("loss", "weight_sum")  # sums over samples: add shards; other metrics: average


class LearnerBatch(NamedTuple):
    """One optimiser step's data: per-trajectory weights' inputs, questions, trajectories."""

    samples: objectives.SampleBatch
    inputs: EncoderInputs
    trajectories: policy.TrajectoryBatch


def make_policy_loss(objective: str, config: ModelConfig, alpha: float = 0.1,
                     entropy_coeff: float = 0.01) -> LossFn:
    """`loss_fn(params, (LearnerBatch, dropout_rng))` for an objective over the policy network."""
    loss = objectives.make_loss(objective, policy.make_log_prob_fn(config), alpha=alpha,
                                entropy_coeff=entropy_coeff)

    def loss_fn(params, batch_and_rng):
        batch, rng = batch_and_rng
        return loss(params, (batch.samples, (batch.inputs, batch.trajectories, rng)))

    return loss_fn


def _update_fn(loss_fn: LossFn, optimizer: optax.GradientTransformation, axis_name: Optional[str]):
    def update(state: TrainState, batch) -> Tuple[TrainState, Dict[str, jax.Array]]:
        rng, dropout_rng = jax.random.split(state.rng)
        if axis_name is not None:  # different dropout masks on different shards
            dropout_rng = jax.random.fold_in(dropout_rng, jax.lax.axis_index(axis_name))
        (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, (batch, dropout_rng))
        if axis_name is not None:
            grads = jax.lax.psum(grads, axis_name)
            metrics = {
                k: (jax.lax.psum if k in SUMMED_METRICS else jax.lax.pmean)(v, axis_name)
                for k, v in metrics.items()
            }
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics = dict(metrics)
        metrics["grad_norm"] = optax.tree.norm(grads)
        return TrainState(params, opt_state, state.step + 1, rng), metrics

    return update


def make_update(loss_fn: LossFn, optimizer: optax.GradientTransformation):
    """Single-device update, jitted, state donated. `loss_fn(params, (batch, rng))`."""
    return jax.jit(_update_fn(loss_fn, optimizer, None), donate_argnums=(0,))


def make_pmapped_update(loss_fn: LossFn, optimizer: optax.GradientTransformation):
    """Data-parallel update over all local devices: state replicated, batch sharded on axis 0.

    Trajectories point at their question's row (`example_index`), so shard `samples` and
    `trajectories` with `shard` and give every device all questions with `replicate(inputs)`.

    Metrics that are sums over samples come back summed over devices, the others averaged; every
    device holds the same values (take element 0).
    """
    return jax.pmap(_update_fn(loss_fn, optimizer, AXIS), axis_name=AXIS, donate_argnums=(0,))


def replicate(tree, n_devices: Optional[int] = None):
    n = n_devices or jax.local_device_count()
    return jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (n,) + jnp.shape(x)), tree)


def unreplicate(tree):
    return jax.tree_util.tree_map(lambda x: x[0], tree)


def shard(batch, n_devices: Optional[int] = None):
    """Splits every array's leading axis into [n_devices, B / n_devices]; scalars are replicated."""
    n = n_devices or jax.local_device_count()

    def split(x):
        x = np.asarray(x)
        if x.ndim == 0:
            return np.broadcast_to(x, (n,))
        if x.shape[0] % n:
            raise ValueError(f"batch of {x.shape[0]} cannot be split over {n} devices: pad it")
        return x.reshape((n, x.shape[0] // n) + x.shape[1:])

    return jax.tree_util.tree_map(split, batch)
