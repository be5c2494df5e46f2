"""The encoder vocabulary and the pretrained vectors behind it (docs/architecture.md#data-and-preprocessing).

Ids: `<UNK>=0, <START>=1, <DECODE>=2, <END>=3`, then every token seen at least `min_count` times
whose GloVe lookup succeeds, ordered by (count desc, token desc). Only GloVe-backed words get ids
because every non-special id's embedding is a frozen GloVe row (projected by a trainable layer);
a word without a vector would have nothing to learn from. Counts are over *anonymised* tokens,
where number and date mentions have been replaced by `<START>` / `<DECODE>` (re-using the special
ids), so the model reads "how many points above 25" as "how many points above <START>".

Any other token (a rare word, one GloVe lacks, a word of a new split) is `<UNK>`, never an error.
A model package (mapo_jax/pretrained.py) appends the GloVe-backed words of a new split that the
training data never had (`extend_encoder_vocab`): their frozen rows are exact for the trained model.

The vocabulary is saved with a checkpoint (`to_json`) because ids depend on the data and the word
vectors it was built from. Numpy only: no JAX here.
"""

from __future__ import annotations

import collections
import logging
from dataclasses import dataclass, field
from typing import Dict, Iterable, Optional, Sequence, Tuple

import numpy as np

from mapo_jax.data.embeddings import WordVectors
from mapo_jax.data.example import DATETIME_LIST, NUM_LIST, Example
from mapo_jax.data.tables import Column

logger = logging.getLogger(__name__)

UNK, START, DECODE, END = "<UNK>", "<START>", "<DECODE>", "<END>"
SPECIAL_TOKENS = (UNK, START, DECODE, END)
UNK_ID, START_ID, DECODE_ID, END_ID = 0, 1, 2, 3
N_SPECIAL = len(SPECIAL_TOKENS)
DEFAULT_MIN_COUNT = 5
JSON_FORMAT = "mapo_jax.encoder_vocab/1"


@dataclass(frozen=True, eq=False)
class EncoderVocab:
    """Token <-> id for the encoder; `tokens[i]` is the token of id i (the first 4 are specials)."""

    tokens: Tuple[str, ...]
    min_count: Optional[int] = DEFAULT_MIN_COUNT  # None: unknown (an original-release file)
    token_to_id: Dict[str, int] = field(default=None, repr=False)  # built from `tokens`
    n_special: int = field(default=N_SPECIAL, init=False)

    def __post_init__(self):
        if tuple(self.tokens[:N_SPECIAL]) != SPECIAL_TOKENS:
            raise ValueError(f"an encoder vocabulary starts with {SPECIAL_TOKENS}, got {self.tokens[:N_SPECIAL]}")
        mapping = {token: i for i, token in enumerate(self.tokens)}
        if len(mapping) != len(self.tokens):
            raise ValueError("repeated token in the encoder vocabulary")
        object.__setattr__(self, "token_to_id", mapping)

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: str) -> bool:
        return token in self.token_to_id

    def __eq__(self, other) -> bool:
        return isinstance(other, EncoderVocab) and (self.tokens, self.min_count) == (other.tokens, other.min_count)

    @property
    def words(self) -> Tuple[str, ...]:
        """The GloVe-backed tokens, in id order (id = position + n_special)."""
        return self.tokens[N_SPECIAL:]

    def id(self, token: str) -> int:
        return self.token_to_id.get(token, UNK_ID)

    def encode(self, tokens: Sequence[str]) -> np.ndarray:
        """Ids of `tokens` (already anonymised, see `anonymize`); unknown tokens -> `<UNK>`."""
        get = self.token_to_id.get
        return np.fromiter((get(t, UNK_ID) for t in tokens), dtype=np.int32, count=len(tokens))

    def to_json(self) -> dict:
        """A JSON-serialisable record: the token list is the whole state (ids are positions)."""
        return {"format": JSON_FORMAT, "min_count": self.min_count, "tokens": list(self.tokens)}

    @classmethod
    def from_json(cls, data: dict) -> "EncoderVocab":
        """Reads `to_json`'s record, or an original-release `{token: id}` map (`en_vocab_*.json`)."""
        if data.get("format") == JSON_FORMAT:
            min_count = data.get("min_count")
            return cls(tuple(data["tokens"]), None if min_count is None else int(min_count))
        if all(isinstance(v, int) for v in data.values()):
            tokens = sorted(data, key=data.get)
            if [data[t] for t in tokens] != list(range(len(tokens))):
                raise ValueError("a {token: id} vocabulary needs the ids 0..n-1, each once")
            return cls(tuple(tokens), min_count=None)
        raise ValueError(f"not an encoder vocabulary record (format {data.get('format')!r})")


def anonymize(example: Example) -> Tuple[str, ...]:
    """The example's tokens with date mentions -> `<DECODE>` and number mentions -> `<START>`.

    Every num/date entity counts, whether or not its value occurs in the table. A year
    is both a number and a date entity here, so where spans overlap the date
    wins: the original's CoreNLP tagged such tokens DATE, never NUMBER.
    """
    tokens = list(example.tokens)
    for kind, replacement in ((NUM_LIST, START), (DATETIME_LIST, DECODE)):  # dates last: they win
        for entity in example.entities:
            if entity.type == kind:
                for i in range(max(entity.start, 0), min(entity.end, len(tokens))):
                    tokens[i] = replacement
    return tuple(tokens)


def count_tokens(examples: Iterable[Example], vectors: WordVectors) -> collections.Counter:
    """Counts of the anonymised, GloVe-backed, non-special tokens of `examples`."""
    counts: collections.Counter = collections.Counter()
    for example in examples:
        counts.update(anonymize(example))
    backed: Dict[str, bool] = {}
    out: collections.Counter = collections.Counter()
    for token, count in counts.items():
        if token in SPECIAL_TOKENS:
            continue
        if token not in backed:
            backed[token] = bool(vectors.resolve(token))
        if backed[token]:
            out[token] = count
    return out


def build_encoder_vocab(
    examples: Iterable[Example], vectors: WordVectors, min_count: int = DEFAULT_MIN_COUNT
) -> EncoderVocab:
    """The encoder vocabulary of `examples` (the original passed train + dev; so do our callers)."""
    if min_count < 1:
        raise ValueError("min_count must be >= 1")
    counts = count_tokens(examples, vectors)
    return EncoderVocab(SPECIAL_TOKENS + _by_count({t: c for t, c in counts.items() if c >= min_count}), min_count)


def _by_count(counts: Dict[str, int]) -> Tuple[str, ...]:
    """Tokens in id order: count desc, then token desc (deterministic whatever the dict order)."""
    return tuple(token for token, _ in sorted(counts.items(), key=lambda item: (item[1], item[0]), reverse=True))


def words_read_as_unk(vocab: EncoderVocab, examples: Iterable[Example], vectors: WordVectors) -> Tuple[str, ...]:
    """The GloVe-backed tokens of `examples` (the vocabulary's own data) that did not get an id:
    seen fewer than `min_count` times, so the model was trained reading them as `<UNK>`."""
    return tuple(sorted(token for token in count_tokens(examples, vectors) if token not in vocab))


def extend_encoder_vocab(vocab: EncoderVocab, examples: Iterable[Example], vectors: WordVectors,
                         read_as_unk: Iterable[str] = ()) -> EncoderVocab:
    """`vocab` plus the GloVe-backed tokens of new `examples` it lacks, appended after its ids.

    The same anonymisation and GloVe rule as `build_encoder_vocab`, but no `min_count`: an appended
    word's row is its frozen GloVe vector, exactly what training would have left it if it had been
    in the vocabulary, since a word absent from the training data never reached the learner. Tokens
    of the training data that were read as `<UNK>` (`read_as_unk`, see `words_read_as_unk`) stay
    `<UNK>`: the model was trained that way. Tokens GloVe does not know stay `<UNK>` too.
    """
    excluded = set(read_as_unk)
    counts = {t: c for t, c in count_tokens(examples, vectors).items() if t not in vocab and t not in excluded}
    return EncoderVocab(vocab.tokens + _by_count(counts), vocab.min_count)


def pretrained_matrix(vocab: EncoderVocab, vectors: WordVectors) -> np.ndarray:
    """float32 [len(vocab) - 4, dim]: row i is the (frozen) GloVe vector of id i + 4.

    A token the vectors cannot resolve (only possible for a vocabulary loaded from elsewhere) gets a
    zero row, with a warning.
    """
    out = np.zeros((len(vocab) - N_SPECIAL, vectors.dim), dtype=np.float32)
    missing = []
    for i, token in enumerate(vocab.words):
        vector = vectors.lookup(token)
        if vector is None:
            missing.append(token)
        else:
            out[i] = vector
    if missing:
        logger.warning("%d vocabulary tokens have no word vector (zero rows), e.g. %s", len(missing), missing[:5])
    return out


def column_value_embedding(column: Column, vectors: WordVectors) -> np.ndarray:
    """float32[dim]: (mean vector of the column-name words + vector of the kind word) / 2.

    Name words (the base split on `_`) are resolved with the GloVe lookup fallbacks and the mean is
    over all resolved words (a `a\\/b` word contributes two); if none resolve, the raw words are
    used, each missing one a zero vector. The kind word (`number`, `string`, `date`, `num2`) is an
    exact lookup, zero if missing (`num2` is in no GloVe release). Question entities get a zero
    value embedding instead (deliberate in the original, "to avoid overfitting").
    """
    zero = np.zeros(vectors.dim, dtype=np.float32)
    words = [w for word in column.words for w in vectors.resolve(word)] or list(column.words)
    if words:
        name = np.mean([_vector_or(vectors, w, zero) for w in words], axis=0)
    else:
        name = zero
    kind = _vector_or(vectors, column.kind, zero)
    return ((name + kind) / 2).astype(np.float32)


def _vector_or(vectors: WordVectors, word: str, default: np.ndarray) -> np.ndarray:
    vector = vectors.vector(word)
    return default if vector is None else vector
