"""Shared fixtures: where the WTQ release is, and a private preprocessing cache per test session."""

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _data_dir() -> Path:
    env = os.environ.get("MAPO_DATA_DIR")
    for candidate in ([Path(env)] if env else []) + [REPO.parent / "shared" / "data", REPO / "data"]:
        if (candidate / "WikiTableQuestions" / "tagged").is_dir():
            return candidate
    return None


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The directory holding WikiTableQuestions/; tests needing it skip when it is absent."""
    found = _data_dir()
    if found is None:
        pytest.skip("WikiTableQuestions not found (set MAPO_DATA_DIR or put ../shared/data beside the repo)")
    return found


@pytest.fixture(scope="session")
def wtq_root(data_dir) -> Path:
    return data_dir / "WikiTableQuestions"


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """A fresh preprocessing cache, so tests never read a user's cache."""
    return tmp_path_factory.mktemp("mapo_cache")


@pytest.fixture(scope="session")
def glove():
    """The package GloVe vectors; tests needing them skip when the package is unavailable."""
    embeddings = pytest.importorskip("mapo_jax.data.embeddings")
    try:
        return embeddings.load_glove()
    except (FileNotFoundError, ImportError) as error:
        pytest.skip(f"GloVe package unavailable: {error}")


def _all_programs(state):
    if state.done:
        return {state.tokens}
    out = set()
    for token in state.valid_tokens():
        out |= _all_programs(state.step(token))
    return out


@pytest.fixture(scope="session")
def all_programs():
    """Every complete program below an interpreter state, by exhaustive enumeration."""
    return _all_programs


@pytest.fixture(scope="session")
def toy_policy(glove):
    """A small policy over the toy dataset: (dataset, vocab, featurizer, config, params)."""
    import jax

    from mapo_jax.batching import Featurizer
    from mapo_jax.config import ModelConfig
    from mapo_jax.data.synthetic import load_toy
    from mapo_jax.data.vocab import build_encoder_vocab, pretrained_matrix
    from mapo_jax.model import policy

    toy = load_toy("train")
    vocab = build_encoder_vocab(toy.examples, glove, min_count=1)
    config = ModelConfig(encoder_vocab_size=len(vocab), pretrained_dim=glove.dim, hidden_size=32)
    params = policy.init(jax.random.PRNGKey(0), config, pretrained_matrix(vocab, glove))
    return toy, vocab, Featurizer(vocab, glove), config, params


# Metrics that depend on timing (rates, waits, queue depths, wall times): left out when runs are compared.
TIMING_KEYS = ("wall_time", "learner/", "actor/batch_seconds", "actor/batches_per_s", "queue/", "eval/", "dev/seconds")


def train_records(workdir, last_step=None):
    """The training records of a run directory without their timing metrics (what a fixed seed fixes)."""
    from mapo_jax.metrics import read_metrics

    records = [r for r in read_metrics(workdir) if "train/loss" in r]
    return [{k: v for k, v in r.items() if not k.startswith(TIMING_KEYS)}
            for r in records if last_step is None or r["step"] <= last_step]


def small_config(programs_file, **changes):
    """A toy training run shrunk for tests (30 steps, one actor, no dev evaluation); `changes` override."""
    from mapo_jax.config import TrainConfig

    settings = dict(hidden_size=32, min_count=1, questions_per_step=10, n_steps=30, eval_every=1000, log_every=5,
                    checkpoint_every=1000, programs_file=programs_file, n_actors=1, seed=0)
    return TrainConfig(**{**settings, **changes})


@pytest.fixture(scope="session")
def toy_programs(tmp_path_factory, glove):
    """Warm-start programs of the toy training questions (one process, a short exploration)."""
    from mapo_jax.data.synthetic import load_toy
    from mapo_jax.explore.warm_start import WarmStartConfig, run_warm_start

    out = tmp_path_factory.mktemp("toy_warm_start")
    run_warm_start(load_toy("train"), out, WarmStartConfig(rollouts_per_example=60, extra_rollouts_for_hard=0,
                                                           processes=1), log=lambda m: None)
    return str(out / "programs.json")
