"""Bloom filters over program prefixes, for MAPO's systematic exploration (Liang et al. 2018, Alg. 1).

Every training question keeps a filter of *fully explored* program prefixes (token sequences such as
``["(", "hop", "v3", "v7", ")", "<END>"]``) so that exploration never re-enters them. That means ~11k
filters that a checkpoint must hold, and a membership query at every decoding step of every actor, so:

* **Bits live in a packed ``numpy.uint8`` array** (bit ``i`` is bit ``i & 7`` of byte ``i >> 3``, the
  ``np.unpackbits(..., bitorder="little")`` order). A checkpoint (Orbax, ``np.savez``) stores plain arrays,
  so :meth:`BloomFilter.to_arrays` / :meth:`BloomFilter.from_arrays` are exact, copy-only round trips and
  :func:`pack_filters` folds thousands of filters into a handful of arrays. The array is a zero-copy view of
  a ``bytearray``; queries index the ``bytearray``, which is several times faster from Python than indexing
  numpy scalars, while union / popcount use numpy on the view.
* **One hash call per key** (Kirsch & Mitzenmacher 2006 double hashing): ``mmh3.hash64`` (the two 64-bit
  halves of MurmurHash3_x64_128) gives ``h1, h2`` and the ``k`` positions are ``g_i = (h1 + i * h2) mod m``.
  murmur3 is seeded explicitly and is the same on every machine and run; Python's ``hash()`` is salted per
  process and must never be used here.
* **Keys are encoded deterministically**: a token sequence becomes its tokens joined by ``"\\x1f"`` (ASCII
  unit separator, which is rejected inside tokens) and UTF-8 encoded, so ``["a", "b"]`` and ``["ab"]`` are
  different keys. ``str`` keys are UTF-8 encoded as they are and ``bytes`` keys are hashed as they are, so a
  one-token sequence ``["ab"]``, the string ``"ab"`` and ``b"ab"`` are the same key. Integer tokens (token
  ids) are written in decimal, so ``(3, 7)`` is the same key as ``("3", "7")``; use one kind per filter.
  (One unavoidable tie of a join encoding: the empty sequence and ``[""]`` are both ``b""``.)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Union

import mmh3
import numpy as np

__all__ = [
    "BloomFilter",
    "Key",
    "SEPARATOR",
    "encode_key",
    "optimal_num_bits",
    "optimal_num_hashes",
    "pack_filters",
    "unpack_filters",
]

SEPARATOR = "\x1f"
"""Joins the tokens of a sequence key; it may not occur inside a token (that would make keys ambiguous)."""

Key = Union[str, bytes, Sequence[str], Sequence[int]]

_LN2_SQ = math.log(2.0) ** 2
_MAX_SEED = 0xFFFFFFFF  # mmh3 seeds are unsigned 32-bit
_ARRAY_FIELDS = (
    "bits",
    "num_bits",
    "num_hashes",
    "seed",
    "num_added",
    "expected_items",
    "false_positive_rate",
)


def optimal_num_bits(expected_items: int, false_positive_rate: float) -> int:
    """``m = ceil(-n ln p / (ln 2)^2)`` rounded up to a whole byte, so the packed array has no partial byte."""
    _check_params(expected_items, false_positive_rate)
    m = math.ceil(-expected_items * math.log(false_positive_rate) / _LN2_SQ)
    return max(8, -(-m // 8) * 8)


def optimal_num_hashes(num_bits: int, expected_items: int) -> int:
    """``k = round((m / n) ln 2)``, at least 1: the k that minimises the false-positive rate at capacity."""
    return max(1, round(num_bits / expected_items * math.log(2.0)))


def _check_params(expected_items: int, false_positive_rate: float) -> None:
    if isinstance(expected_items, bool) or not isinstance(expected_items, (int, np.integer)):
        raise TypeError(f"expected_items must be an int, got {type(expected_items).__name__}")
    if expected_items < 1:
        raise ValueError(f"expected_items must be >= 1, got {expected_items}")
    p = float(false_positive_rate)
    if not (0.0 < p < 1.0):  # also rejects NaN
        raise ValueError(f"false_positive_rate must be in the open interval (0, 1), got {false_positive_rate}")


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed <= _MAX_SEED:
        raise ValueError(f"seed must be an int in [0, 2**32 - 1] (an mmh3 seed), got {seed!r}")
    return int(seed)


def _encode_sequence(key: Sequence) -> bytes:
    """Slow path of :func:`encode_key`: validates tokens and accepts integer token ids."""
    tokens = []
    for token in key:
        if isinstance(token, str):
            if SEPARATOR in token:
                raise ValueError(f"token {token!r} contains the key separator {SEPARATOR!r}")
            tokens.append(token)
        elif isinstance(token, (int, np.integer)) and not isinstance(token, bool):
            tokens.append(str(int(token)))
        else:
            raise TypeError(f"key tokens must be str or int, got {type(token).__name__} ({token!r})")
    return SEPARATOR.join(tokens).encode("utf-8")


def encode_key(key: Key) -> bytes:
    """The bytes that are hashed for ``key``; identical in every process and on every machine."""
    if isinstance(key, bytes):
        return key
    if isinstance(key, str):
        return key.encode("utf-8")
    if isinstance(key, (list, tuple)):
        try:
            joined = SEPARATOR.join(key)
        except TypeError:  # non-str tokens (e.g. int ids): validate one by one
            return _encode_sequence(key)
        # One C-level count instead of a per-token check: n tokens give exactly n - 1 separators.
        if joined.count(SEPARATOR) != max(len(key) - 1, 0):
            return _encode_sequence(key)  # raises, naming the offending token
        return joined.encode("utf-8")
    if isinstance(key, (bytearray, memoryview)):
        return bytes(key)
    if isinstance(key, Iterable):
        return encode_key(tuple(key))
    raise TypeError(f"a Bloom filter key must be str, bytes or a sequence of tokens, got {type(key).__name__}")


# Unsigned halves of MurmurHash3_x64_128. Pass ``signed=False`` by keyword: mmh3 5.3 ignores a positional
# ``signed`` argument (it returns signed halves), which would silently change every position.
_hash64 = mmh3.hash64


class BloomFilter:
    """A Bloom filter of token sequences with packed-bit numpy storage and exact array (de)serialisation.

    ``key in f`` is never a false negative; it is a false positive with probability about
    ``false_positive_rate`` once ``expected_items`` distinct keys have been added (more beyond that).
    """

    __slots__ = ("_buf", "_bits", "_m", "_k", "_seed", "_num_added", "_n", "_p")
    __hash__ = None  # mutable, so unhashable (like set)

    def __init__(self, expected_items: int, false_positive_rate: float = 0.01, *, seed: int = 0) -> None:
        """Size the filter for ``expected_items`` keys (n) at ``false_positive_rate`` (p).

        ``seed`` picks the murmur3 hash family; filters can be combined only if they share it.
        """
        _check_params(expected_items, false_positive_rate)
        m = optimal_num_bits(expected_items, false_positive_rate)
        self._init_storage(bytearray(m // 8), m, optimal_num_hashes(m, expected_items), _check_seed(seed))
        self._num_added = 0
        self._n = int(expected_items)
        self._p = float(false_positive_rate)

    def _init_storage(self, buf: bytearray, m: int, k: int, seed: int) -> None:
        self._buf = buf
        self._bits = np.frombuffer(buf, dtype=np.uint8)  # writable view sharing memory with _buf
        self._m = m
        self._k = k
        self._seed = seed

    # ----------------------------------------------------------------------------- parameters
    @property
    def num_bits(self) -> int:
        """m, the number of bits (a multiple of 8)."""
        return self._m

    @property
    def num_hashes(self) -> int:
        """k, the number of bit positions per key."""
        return self._k

    @property
    def seed(self) -> int:
        return self._seed

    @property
    def expected_items(self) -> int:
        """n, the capacity the filter was sized for."""
        return self._n

    @property
    def false_positive_rate(self) -> float:
        """p, the target false-positive rate at capacity."""
        return self._p

    @property
    def num_added(self) -> int:
        """How many :meth:`add` calls changed the filter (≈ distinct keys; repeats and false positives don't count).

        After :meth:`union` it is the sum of both operands', an upper bound on the distinct count.
        """
        return self._num_added

    @property
    def bits_per_item(self) -> float:
        """m / n; about 1.44 * log2(1 / p) for an optimally sized filter."""
        return self._m / self._n

    @property
    def bits(self) -> np.ndarray:
        """The packed bits as a read-only ``uint8`` view (use :meth:`to_arrays` for a copy to store)."""
        view = self._bits.view()
        view.flags.writeable = False
        return view

    @property
    def nbytes(self) -> int:
        return self._m // 8

    # ----------------------------------------------------------------------------- hashing
    def positions(self, key: Key) -> list[int]:
        """The k bit positions of ``key``: ``(h1 + i * h2) mod m`` for i = 0..k-1 (for tests and debugging)."""
        h1, h2 = _hash64(encode_key(key), self._seed, signed=False)
        m = self._m
        return [(h1 + i * h2) % m for i in range(self._k)]

    # ----------------------------------------------------------------------------- updates / queries
    def add(self, key: Key) -> bool:
        """Insert ``key``; True when it was not (reported) present before, i.e. some bit changed."""
        h1, h2 = _hash64(encode_key(key), self._seed, signed=False)
        m = self._m
        pos = h1 % m
        step = h2 % m  # incremental form of (h1 + i * h2) mod m, no big-int products
        buf = self._buf
        changed = False
        for _ in range(self._k):
            byte = pos >> 3
            mask = 1 << (pos & 7)
            old = buf[byte]
            if not old & mask:
                buf[byte] = old | mask
                changed = True
            pos += step
            if pos >= m:
                pos -= m
        if changed:
            self._num_added += 1
        return changed

    def add_many(self, keys: Iterable[Key]) -> int:
        """Insert every key; returns how many were new (see :meth:`add`)."""
        add = self.add
        return sum(1 for key in keys if add(key))

    def __contains__(self, key: Key) -> bool:
        """Probable membership: False is certain, True is wrong with probability ≈ p at capacity.

        This is the hot path (every decoding step), so encoding is inlined for the common list/tuple of
        str case and the loop stops at the first clear bit (about two probes for a miss).
        """
        if type(key) is list or type(key) is tuple:
            try:
                joined = SEPARATOR.join(key)
            except TypeError:
                data = _encode_sequence(key)
            else:
                if joined.count(SEPARATOR) != (len(key) - 1 if key else 0):
                    data = _encode_sequence(key)  # raises on a separator inside a token
                else:
                    data = joined.encode("utf-8")
        else:
            data = encode_key(key)
        h1, h2 = _hash64(data, self._seed, signed=False)
        m = self._m
        pos = h1 % m
        step = h2 % m
        buf = self._buf
        for _ in range(self._k):
            if not (buf[pos >> 3] >> (pos & 7)) & 1:
                return False
            pos += step
            if pos >= m:
                pos -= m
        return True

    def contains(self, key: Key) -> bool:
        """Same as ``key in self``."""
        return self.__contains__(key)

    # ----------------------------------------------------------------------------- statistics
    def popcount(self) -> int:
        """X, the number of set bits."""
        return int(np.bitwise_count(self._bits).sum(dtype=np.int64))

    def fill_ratio(self) -> float:
        """X / m; about 1/2 at capacity for an optimal k."""
        return self.popcount() / self._m

    def approximate_count(self) -> float:
        """Distinct keys inserted, estimated from the fill ratio (Swamidass & Baldi 2007): ``-m/k ln(1 - X/m)``.

        Unlike :attr:`num_added` this also holds after unions (it counts keys in both operands once). It is
        ``inf`` for a saturated filter. (Deliberately not ``__len__``: a length must be exact, and an empty
        filter would then be falsy.)
        """
        x = self.popcount()
        if x >= self._m:
            return math.inf
        return -self._m / self._k * math.log1p(-x / self._m)

    def estimated_false_positive_rate(self) -> float:
        """The current false-positive probability, ``(X / m) ** k``."""
        return self.fill_ratio() ** self._k

    # ----------------------------------------------------------------------------- combining
    def _check_compatible(self, other: "BloomFilter") -> None:
        if not isinstance(other, BloomFilter):
            raise TypeError(f"can only combine a BloomFilter with a BloomFilter, got {type(other).__name__}")
        if (self._m, self._k, self._seed) != (other._m, other._k, other._seed):
            raise ValueError(
                "cannot combine Bloom filters with different parameters: "
                f"(num_bits, num_hashes, seed) = {(self._m, self._k, self._seed)} vs "
                f"{(other._m, other._k, other._seed)}; build both with the same expected_items, "
                "false_positive_rate and seed"
            )

    def copy(self) -> "BloomFilter":
        new = BloomFilter.__new__(type(self))
        new._init_storage(bytearray(self._buf), self._m, self._k, self._seed)
        new._num_added, new._n, new._p = self._num_added, self._n, self._p
        return new

    def update(self, other: "BloomFilter") -> "BloomFilter":
        """In-place union (bitwise OR) with ``other``; returns self. Needs equal m, k and seed."""
        self._check_compatible(other)
        np.bitwise_or(self._bits, other._bits, out=self._bits)
        self._num_added += other._num_added
        return self

    def union(self, other: "BloomFilter") -> "BloomFilter":
        """A new filter holding the keys of both (e.g. merging actors' filters). Needs equal m, k and seed."""
        self._check_compatible(other)
        return self.copy().update(other)

    __or__ = union
    __ior__ = update

    # ----------------------------------------------------------------------------- (de)serialisation
    def to_arrays(self) -> dict[str, np.ndarray]:
        """Everything as numpy arrays (copies), so an Orbax / npz checkpoint can store the filter exactly."""
        return {
            "bits": self._bits.copy(),
            "num_bits": np.array(self._m, dtype=np.int64),
            "num_hashes": np.array(self._k, dtype=np.int64),
            "seed": np.array(self._seed, dtype=np.int64),
            "num_added": np.array(self._num_added, dtype=np.int64),
            "expected_items": np.array(self._n, dtype=np.int64),
            "false_positive_rate": np.array(self._p, dtype=np.float64),
        }

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> "BloomFilter":
        """Rebuild a filter from :meth:`to_arrays` output (the arrays are copied, never aliased)."""
        missing = [name for name in _ARRAY_FIELDS if name not in arrays]
        if missing:
            raise ValueError(f"Bloom filter arrays lack field(s) {missing}; expected {list(_ARRAY_FIELDS)}")

        def scalar(name: str) -> int:
            value = np.asarray(arrays[name])
            if value.size != 1 or not np.issubdtype(value.dtype, np.integer):
                raise ValueError(f"Bloom filter field {name!r} must be one integer, got {value!r}")
            return int(value.reshape(()))

        m, k, n, num_added = (scalar(name) for name in ("num_bits", "num_hashes", "expected_items", "num_added"))
        seed = _check_seed(scalar("seed"))
        p = float(np.asarray(arrays["false_positive_rate"]).reshape(()))
        _check_params(n, p)
        if m < 8 or m % 8 or k < 1 or num_added < 0:
            raise ValueError(f"invalid Bloom filter parameters: num_bits={m}, num_hashes={k}, num_added={num_added}")
        bits = np.asarray(arrays["bits"])
        if bits.dtype != np.uint8 or bits.shape != (m // 8,):
            raise ValueError(
                f"Bloom filter 'bits' must be uint8 with shape ({m // 8},), got {bits.dtype} {bits.shape}"
            )
        new = cls.__new__(cls)
        new._init_storage(bytearray(bits.tobytes()), m, k, seed)
        new._num_added, new._n, new._p = num_added, n, p
        return new

    # Pickling (e.g. sending filters to actor processes) must not split the bytearray from its numpy view.
    def __getstate__(self) -> dict[str, np.ndarray]:
        return self.to_arrays()

    def __setstate__(self, state: Mapping[str, np.ndarray]) -> None:
        other = BloomFilter.from_arrays(state)
        self._init_storage(other._buf, other._m, other._k, other._seed)
        self._num_added, self._n, self._p = other._num_added, other._n, other._p

    def __eq__(self, other: object) -> bool:
        """Equal when parameters, counters and bits all match (i.e. ``to_arrays`` would be equal)."""
        if not isinstance(other, BloomFilter):
            return NotImplemented
        return (
            (self._m, self._k, self._seed, self._num_added, self._n, self._p)
            == (other._m, other._k, other._seed, other._num_added, other._n, other._p)
            and self._buf == other._buf
        )

    def __repr__(self) -> str:
        return (
            f"BloomFilter(expected_items={self._n}, false_positive_rate={self._p:g}, seed={self._seed}; "
            f"num_bits={self._m}, num_hashes={self._k}, num_added={self._num_added})"
        )


# ----------------------------------------------------------------------------- many filters at once
def pack_filters(filters: Sequence[BloomFilter]) -> dict[str, np.ndarray]:
    """Fold many filters (one per question) into seven flat arrays for a checkpoint.

    A checkpoint with one small array per field per question (~11k questions x 7 fields) is slow to write
    and read; here all bits are concatenated and ``bit_offsets[i]:bit_offsets[i + 1]`` are filter i's bytes.
    """
    if any(not isinstance(f, BloomFilter) for f in filters):
        raise TypeError("pack_filters expects BloomFilter objects")
    sizes = np.array([f.nbytes for f in filters], dtype=np.int64)
    offsets = np.zeros(len(filters) + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    bits = np.concatenate([f._bits for f in filters]) if filters else np.zeros(0, dtype=np.uint8)
    return {
        "bits": bits,
        "byte_offsets": offsets,
        "num_hashes": np.array([f.num_hashes for f in filters], dtype=np.int64),
        "seed": np.array([f.seed for f in filters], dtype=np.int64),
        "num_added": np.array([f.num_added for f in filters], dtype=np.int64),
        "expected_items": np.array([f.expected_items for f in filters], dtype=np.int64),
        "false_positive_rate": np.array([f.false_positive_rate for f in filters], dtype=np.float64),
    }


def unpack_filters(arrays: Mapping[str, np.ndarray]) -> list[BloomFilter]:
    """Inverse of :func:`pack_filters`; exact."""
    fields = ("bits", "byte_offsets", "num_hashes", "seed", "num_added", "expected_items", "false_positive_rate")
    missing = [name for name in fields if name not in arrays]
    if missing:
        raise ValueError(f"packed Bloom filter arrays lack field(s) {missing}; expected {list(fields)}")
    bits = np.asarray(arrays["bits"])
    offsets = np.asarray(arrays["byte_offsets"])
    count = offsets.shape[0] - 1
    if count < 0 or offsets[0] != 0 or offsets[-1] != bits.shape[0] or np.any(np.diff(offsets) <= 0):
        raise ValueError("packed Bloom filter 'byte_offsets' do not partition 'bits'")
    out = []
    for i in range(count):
        lo, hi = int(offsets[i]), int(offsets[i + 1])
        out.append(
            BloomFilter.from_arrays(
                {
                    "bits": bits[lo:hi],
                    "num_bits": np.int64(8 * (hi - lo)),
                    "num_hashes": arrays["num_hashes"][i],
                    "seed": arrays["seed"][i],
                    "num_added": arrays["num_added"][i],
                    "expected_items": arrays["expected_items"][i],
                    "false_positive_rate": arrays["false_positive_rate"][i],
                }
            )
        )
    return out
