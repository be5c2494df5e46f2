"""Model packages: a trained parser in one directory that can be copied and used without its run.

`launch/export_model.py` writes one from a run's checkpoint; `launch/evaluate.py --model` and
`launch/predict.py --model` (or the shipped `pretrained/wtq`) read it::

    DIR/
      package.json   format, the run and step it came from, float16 or not, the word-vector record,
                     the training words the model reads as <UNK> (written last: it marks a complete package)
      config.json    the run's configs in the run config format, data locations cleared
      vocab.json     the encoder vocabulary
      params.npz     the trained parameters, one array per path (`decoder_1/gates/kernel`), float32,
                     or float16 with --float16 (read back as float32); plus `word_vector_check`
      MODEL_CARD.md, card.json   the model card and its figures (launch/export_model.py)

The frozen word-vector table (`pretrained_embeddings`, most of a WTQ model's bytes) is not stored
when the run's GloVe vectors rebuild it from the vocabulary: the loader rebuilds it and compares it
with `word_vector_check` (each row projected on a fixed direction, which tells a wrong or moved row
while tolerating last-bit rounding differences between machines, which a hash would not). The
vectors are needed at load time anyway: they embed the column names of every new table.

A package knows which training words the model read as <UNK>, so a new split's words can be added
exactly (`with_words`); a run directory does not, and leaves them <UNK>.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Union

import numpy as np

from mapo_jax.checkpointing import CONFIG_FILE, VOCAB_FILE, RestoredPolicy, restore_policy
from mapo_jax.errors import UserInputError
from mapo_jax.io_utils import atomic_write, atomic_write_text, read_json

FORMAT = "mapo_jax.model_package/1"
PACKAGE_FILE, PARAMS_FILE = "package.json", "params.npz"
CARD_JSON, CARD_MARKDOWN = "card.json", "MODEL_CARD.md"
WORD_VECTORS = "pretrained_embeddings"  # the frozen parameter (learning.FROZEN)
CHECK_KEY = "word_vector_check"  # in params.npz beside the parameters (no parameter path has this name)
CHECK_TOLERANCE = 1e-4  # on a projection of unit vectors: far above rounding, far below any other word


# ------------------------------------------------------------------------------- parameter arrays
def flatten_params(params: Mapping, prefix: str = "") -> Dict[str, np.ndarray]:
    """{`a/b/c`: array} of a nested parameter dict: the names npz files and readers understand."""
    flat = {}
    for key, value in params.items():
        if "/" in key:
            raise ValueError(f"parameter name {prefix}{key!r} contains '/', the path separator")
        if isinstance(value, Mapping):
            flat.update(flatten_params(value, f"{prefix}{key}/"))
        else:
            flat[f"{prefix}{key}"] = np.asarray(value)
    return flat


def unflatten_params(flat: Mapping[str, np.ndarray]) -> dict:
    """The nested dict of `flatten_params`."""
    params: dict = {}
    for path, value in flat.items():
        *parents, leaf = path.split("/")
        node = params
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return params


def to_float16(flat: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Floating arrays as float16 (half the bytes). A value float16 cannot hold is refused: it
    would silently become inf and break every prediction."""
    out = {}
    for path, value in flat.items():
        if np.issubdtype(value.dtype, np.floating):
            largest = float(np.abs(value[np.isfinite(value)]).max(initial=0.0))
            if largest > float(np.finfo(np.float16).max):
                raise UserInputError(f"parameter {path} holds {largest:g}, beyond float16's range: export without --float16")
            value = value.astype(np.float16)
        out[path] = value
    return out


def to_float32(flat: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Floating arrays as float32, what the policy computes with."""
    return {path: value.astype(np.float32) if np.issubdtype(value.dtype, np.floating) else value
            for path, value in flat.items()}


def vector_check(matrix: np.ndarray) -> np.ndarray:
    """float64 [rows]: every row projected on one fixed pseudo-random direction."""
    direction = np.random.default_rng(0).standard_normal(matrix.shape[1])
    return np.asarray(matrix, np.float64) @ direction


def same_vectors(check: np.ndarray, matrix: np.ndarray) -> bool:
    """Whether `matrix` has the rows `check` (a `vector_check`) was computed from."""
    return check.shape == (matrix.shape[0],) and bool(np.all(np.abs(vector_check(matrix) - check) <= CHECK_TOLERANCE))


# ------------------------------------------------------------------------------- writing
def save_package(directory: Union[str, Path], policy: RestoredPolicy, source: dict,
                 read_as_unk: Iterable[str], float16: bool = False) -> dict:
    """Writes a package (all but the card) into the existing `directory`; returns the manifest.

    `source` names where the parameters came from (run, checkpoint); `read_as_unk` are the training
    words below min_count (`vocab.words_read_as_unk`)."""
    from mapo_jax.config import DATA_LOCATION_FLAGS, DataConfig, configs_to_json
    from mapo_jax.data.embeddings import PACKAGE
    from mapo_jax.data.vocab import pretrained_matrix

    directory = Path(directory)
    vocab, vectors = policy.featurizer.vocab, policy.featurizer.vectors
    flat = flatten_params(policy.params)
    matrix = flat.pop(WORD_VECTORS)
    stored = not same_vectors(vector_check(matrix), pretrained_matrix(vocab, vectors))
    if stored:  # the run's vectors no longer rebuild it (another GloVe file or version): keep it
        flat[WORD_VECTORS] = matrix
    arrays = dict(to_float16(flat) if float16 else flat, **{CHECK_KEY: vector_check(matrix)})
    atomic_write(directory / PARAMS_FILE, lambda f: np.savez_compressed(f, **arrays))
    locations = {name: getattr(DataConfig(), name) for name in DATA_LOCATION_FLAGS}  # the user's, not ours
    record = configs_to_json(policy.data_config.replace(**locations), policy.program_config, policy.model_config,
                             policy.train_config)
    atomic_write_text(directory / CONFIG_FILE, json.dumps(record, indent=1) + "\n")
    atomic_write_text(directory / VOCAB_FILE, json.dumps(vocab.to_json()) + "\n")
    manifest = {"format": FORMAT, **source, "step": int(policy.step), "float16": bool(float16),
                "word_vectors": {"stored": stored, "rows": int(matrix.shape[0]), "dim": int(matrix.shape[1]),
                                 "source": policy.train_config.glove_file or PACKAGE.replace("_", "-")},
                "words_read_as_unk": sorted(read_as_unk)}
    atomic_write_text(directory / PACKAGE_FILE, json.dumps(manifest, indent=1) + "\n")
    return manifest


# ------------------------------------------------------------------------------- reading
def is_package(path: Union[str, Path]) -> bool:
    """Whether `path` holds a complete package (package.json is written last)."""
    return (Path(path) / PACKAGE_FILE).is_file()


def read_manifest(directory: Union[str, Path]) -> dict:
    """package.json of a package directory; anything else is a user error that says what to give."""
    directory = Path(directory)
    if not directory.is_dir():
        raise UserInputError(f"model package {directory} does not exist (make one with launch/export_model.py)")
    if (directory / CONFIG_FILE).is_file() and not is_package(directory):
        raise UserInputError(f"{directory} is a training run, not a model package: pass it as --workdir, or "
                             f"package it with launch/export_model.py --workdir={directory} --out=DIR")
    if not is_package(directory):
        raise UserInputError(f"{directory} is not a model package ({PACKAGE_FILE} is missing); "
                             f"make one with launch/export_model.py --workdir=RUN --out=DIR")
    manifest = read_json(directory / PACKAGE_FILE)
    if manifest.get("format") != FORMAT:
        raise UserInputError(f"{directory}: package format {manifest.get('format')!r} is not {FORMAT!r}: "
                             f"it was made by another version of mapo_jax")
    return manifest


def _read_params(path: Path) -> tuple:
    """(float32 parameter arrays by path, the word-vector check) of params.npz."""
    if not path.is_file():
        raise UserInputError(f"{path} is missing: the model package is incomplete")
    with np.load(path, allow_pickle=False) as data:
        flat = {name: data[name] for name in data.files}
    check = flat.pop(CHECK_KEY)
    return to_float32(flat), check


def load_package(directory: Union[str, Path], vectors=None) -> RestoredPolicy:
    """Everything needed to decode with a package, as `checkpointing.restore_policy` gives it for a
    run; the frozen word vectors are rebuilt from `vectors` (default: the GloVe the run used) and
    checked."""
    from mapo_jax.batching import Featurizer
    from mapo_jax.config import configs_from_json
    from mapo_jax.data.embeddings import load_glove
    from mapo_jax.data.vocab import EncoderVocab, pretrained_matrix

    directory = Path(directory)
    manifest = read_manifest(directory)
    data, program, model, train = configs_from_json(read_json(directory / CONFIG_FILE))
    vocab = EncoderVocab.from_json(read_json(directory / VOCAB_FILE))
    vectors = vectors if vectors is not None else load_glove(train.glove_file)
    flat, check = _read_params(directory / PARAMS_FILE)
    if WORD_VECTORS not in flat:
        flat[WORD_VECTORS] = pretrained_matrix(vocab, vectors)
        if not same_vectors(check, flat[WORD_VECTORS]):
            raise UserInputError(f"{directory}: the word vectors of {vectors.source} are not those the model was "
                                 f"trained with ({manifest['word_vectors']['source']}): install those")
    return RestoredPolicy(unflatten_params(flat), model, program, Featurizer(vocab, vectors, max_mem=model.max_mem),
                          data, train, int(manifest["step"]), frozenset(manifest["words_read_as_unk"]))


def load_model(path: Union[str, Path], checkpoint: Union[str, int] = "best") -> RestoredPolicy:
    """A package, or a training run's `checkpoint` (best, latest or a step)."""
    path = Path(path)
    if is_package(path):
        return load_package(path)
    if path.is_dir() and not (path / CONFIG_FILE).is_file():
        raise UserInputError(f"{path} is neither a model package ({PACKAGE_FILE}) nor a training run ({CONFIG_FILE})")
    return restore_policy(path, checkpoint)


def packages_in(directory: Union[str, Path]) -> List[Path]:
    """The packages directly inside `directory` (an ensemble's members), by name."""
    return sorted(p for p in Path(directory).iterdir() if p.is_dir() and is_package(p))


# ------------------------------------------------------------------------------- unseen words
def with_words(policy: RestoredPolicy, examples) -> RestoredPolicy:
    """The policy with the GloVe-backed words of `examples` it has no id for appended to its
    vocabulary and frozen table (`vocab.extend_encoder_vocab`: exact, since the table is frozen).
    Unchanged for a run directory, which does not know its words read as <UNK>."""
    from mapo_jax.batching import Featurizer
    from mapo_jax.data.vocab import N_SPECIAL, extend_encoder_vocab, pretrained_matrix

    if policy.read_as_unk is None:
        return policy
    old = policy.featurizer
    vocab = extend_encoder_vocab(old.vocab, examples, old.vectors, policy.read_as_unk)
    if len(vocab) == len(old.vocab):
        return policy
    rows = pretrained_matrix(vocab, old.vectors)[len(old.vocab) - N_SPECIAL:]
    params = dict(policy.params, **{WORD_VECTORS: np.concatenate([np.asarray(policy.params[WORD_VECTORS]), rows])})
    model = dataclasses.replace(policy.model_config, encoder_vocab_size=len(vocab))
    featurizer = Featurizer(vocab, old.vectors, max_mem=old.max_mem, max_length=old.max_length)
    return policy._replace(params=params, model_config=model, featurizer=featurizer)


def read_card(directory: Union[str, Path]) -> Optional[dict]:
    """The package's card.json (its figures), or None before the exporter wrote it."""
    path = Path(directory) / CARD_JSON
    return read_json(path) if path.is_file() else None
