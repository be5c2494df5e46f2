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
