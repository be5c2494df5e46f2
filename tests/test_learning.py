"""The learner update: frozen vectors, learning on a fixed batch, one vs two devices."""

import subprocess
import sys
import textwrap
from pathlib import Path

import chex
import jax
import jax.numpy as jnp
import numpy as np

from mapo_jax import learning, objectives
from mapo_jax.model import policy
from mapo_jax.model.networks import ModelConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_policy import random_batch  # noqa: E402

CONFIG = ModelConfig(encoder_vocab_size=24, pretrained_dim=8, hidden_size=16, max_mem=12, max_valid=7,
                     dropout=0.0)
REPO = Path(__file__).resolve().parents[1]


def learner_batch(batch=4, seed=0):
    inputs, trajectories = random_batch(CONFIG, batch=3, seed=seed)
    trajectories = trajectories._replace(length=jnp.asarray([5, 3, 4], jnp.int32))
    samples = objectives.SampleBatch(
        reward=jnp.ones(3), in_buffer=jnp.asarray([True, False, True]),
        pi_buffer=jnp.asarray([0.3, 0.3, 0.05]), sample_weight=jnp.ones(3),
        baseline=jnp.zeros(3), valid=jnp.ones(3, bool), n_examples=jnp.float32(2.0))
    return learning.LearnerBatch(samples, inputs, trajectories)


def test_update_learns_and_keeps_word_vectors_frozen():
    params = policy.init(jax.random.PRNGKey(0), CONFIG, np.ones((20, 8), np.float32))
    frozen = np.asarray(params["pretrained_embeddings"]).copy()
    optimizer = learning.make_optimizer(learning_rate=1e-2)
    update = learning.make_update(learning.make_policy_loss("mml", CONFIG), optimizer)
    state = learning.init_state(params, optimizer, jax.random.PRNGKey(1))
    batch = learner_batch()
    losses = []
    for _ in range(15):
        state, metrics = update(state, batch)
        losses.append(float(metrics["loss"]))
    assert int(state.step) == 15
    assert losses[-1] < losses[0] - 0.5  # buffer programs become likelier
    chex.assert_tree_all_finite(state.params)
    np.testing.assert_array_equal(np.asarray(state.params["pretrained_embeddings"]), frozen)
    assert np.isfinite(float(metrics["grad_norm"]))


def test_one_and_two_devices_give_the_same_update():
    """Runs in a subprocess: the host-device count must be set before JAX starts."""
    script = textwrap.dedent(f"""
        import os, sys
        os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
        sys.path.insert(0, {str(REPO / 'tests')!r})
        import jax, numpy as np
        from mapo_jax import learning
        from mapo_jax.model import policy
        from test_learning import CONFIG, learner_batch
        assert jax.local_device_count() == 2
        batch = learner_batch()
        # 4 trajectories (pad one row: valid=False, length 0) so that 2 devices get 2 each.
        batch = jax.tree_util.tree_map(lambda x: np.concatenate([x, x[:1]]) if np.ndim(x) else x, batch)
        batch = batch._replace(samples=batch.samples._replace(valid=np.array([True, True, True, False])),
                               trajectories=batch.trajectories._replace(length=np.array([5, 3, 4, 0], np.int32),
                                                                        example_index=np.array([0, 1, 2, 0], np.int32)))
        batch = batch._replace(inputs=jax.tree_util.tree_map(lambda x: x[:3], batch.inputs))
        optimizer = learning.make_optimizer()
        loss = learning.make_policy_loss("mapo", CONFIG)
        params = policy.init(jax.random.PRNGKey(0), CONFIG)
        one = learning.make_update(loss, optimizer)(learning.init_state(params, optimizer, jax.random.PRNGKey(1)), batch)
        params = policy.init(jax.random.PRNGKey(0), CONFIG)
        state = learning.replicate(learning.init_state(params, optimizer, jax.random.PRNGKey(1)))
        # Each device needs every question: replicate the questions, shard the trajectories.
        sharded = learning.LearnerBatch(learning.shard(batch.samples), learning.replicate(batch.inputs),
                                        learning.shard(batch.trajectories))
        two = learning.make_pmapped_update(loss, optimizer)(state, sharded)
        diff = jax.tree_util.tree_map(lambda a, b: float(np.abs(np.asarray(a) - np.asarray(b[0])).max()),
                                      one[0].params, two[0].params)
        print("max_diff", max(jax.tree_util.tree_leaves(diff)))
        print("loss", float(one[1]["loss"]), float(two[1]["loss"][0]))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                            cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in result.stdout.strip().splitlines())
    assert float(lines["max_diff"]) < 1e-5
    one_loss, two_loss = map(float, lines["loss"].split())
    np.testing.assert_allclose(one_loss, two_loss, rtol=1e-5)
