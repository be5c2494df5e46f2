"""A small content-addressed cache for preprocessing results.

An entry's file name is a hash of everything that determines its content (input file identities,
options, the preprocessing code version), so changing any of them simply misses the cache; stale
entries are never read. Writes are atomic (temp file + rename), so an interrupted run leaves no
half-written entry behind.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
from pathlib import Path
from typing import Any, Callable, Optional, Union

from mapo_jax.io_utils import atomic_write

logger = logging.getLogger(__name__)

# Bump when preprocessing output changes for the same inputs and options.
PREPROCESS_VERSION = 2


def default_cache_dir() -> Path:
    """`$MAPO_CACHE_DIR`, else `~/.cache/mapo_jax`."""
    env = os.environ.get("MAPO_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "mapo_jax"


def file_signature(path: Union[str, Path]) -> list:
    """Identity of an input file: path, size and modification time (cheap, like make)."""
    stat = os.stat(path)
    return [str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns]


def cache_key(*parts: Any) -> str:
    """A stable hash of JSON-serialisable parts (plus the preprocessing version)."""
    blob = json.dumps([PREPROCESS_VERSION, *parts], sort_keys=True, default=repr)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:24]


def cached(
    kind: str,
    key: str,
    build: Callable[[], Any],
    cache_dir: Optional[Union[str, Path]] = None,
    enabled: bool = True,
) -> tuple:
    """Returns `(value, hit)`: the cached value of `kind/key`, or `build()` stored under it."""
    if not enabled:
        return build(), False
    directory = Path(cache_dir) if cache_dir else default_cache_dir()
    path = directory / kind / f"{key}.pkl"
    if path.exists():
        try:
            with open(path, "rb") as f:
                return pickle.load(f), True
        except Exception as error:  # a corrupt entry is rebuilt, never fatal
            logger.warning("ignoring unreadable cache entry %s: %s", path, error)
    value = build()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: pickle.dump(value, f, protocol=pickle.HIGHEST_PROTOCOL))
    return value, False
