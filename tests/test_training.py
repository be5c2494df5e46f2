"""The synchronous MAPO loop on a shrunken toy configuration: dev accuracy must rise."""

import pytest

from mapo_jax.config import DataConfig
from mapo_jax.training import TrainConfig, train_and_evaluate


def test_mapo_learns_the_toy_dataset(glove):
    messages = []
    result = train_and_evaluate(
        DataConfig(dataset="toy"),
        TrainConfig(n_steps=160, eval_every=80, warm_start_rollouts=60, hidden_size=32, min_count=1, seed=0),
        log=messages.append,
    )
    history = result["history"]
    assert [h["step"] for h in history] == [0, 80, 160]
    assert any("warm start" in m for m in messages)
    assert history[-1]["dev/accuracy"] >= history[0]["dev/accuracy"] + 0.15  # learning, not luck
    assert history[-1]["buffer_coverage"] > 0.5
    assert all(h["loss"] == h["loss"] for h in history[1:])  # no NaN
