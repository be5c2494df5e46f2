"""Tests for mapo_jax.explore.bloom: sizing, no false negatives, calibrated false positives, key encoding,
determinism across processes, union, and exact array / pickle round trips."""

import io
import math
import os
import pickle
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from mapo_jax.explore.bloom import (
    SEPARATOR,
    BloomFilter,
    encode_key,
    optimal_num_bits,
    optimal_num_hashes,
    pack_filters,
    unpack_filters,
)

REPO = Path(__file__).resolve().parents[1]
PROGRAM = ["(", "hop", "v3", "v7", ")", "<END>"]


def _program_keys(count: int, tag: str) -> list[list[str]]:
    """Distinct program-like token sequences of varying length; ``tag`` keeps different sets disjoint."""
    vocab = ["(", ")", "hop", "filter_eq", "argmax", "count", "<END>"] + [f"v{i}" for i in range(20)]
    rng = np.random.default_rng(zlib.crc32(tag.encode()))  # fixed per tag (never the salted hash())
    lengths = rng.integers(2, 12, size=count)
    tokens = np.array(vocab, dtype=object)[rng.integers(0, len(vocab), size=int(lengths.sum()))].tolist()
    ends = np.cumsum(lengths).tolist()
    starts = [0] + ends[:-1]
    keys = [[tag, str(i)] + tokens[lo:hi] for i, (lo, hi) in enumerate(zip(starts, ends))]
    return keys


# ----------------------------------------------------------------------------- sizing
def test_sizing_follows_the_formulas():
    f = BloomFilter(20_000, 0.01)
    raw_m = math.ceil(-20_000 * math.log(0.01) / math.log(2) ** 2)  # 191702
    assert f.num_bits == 191_704 == -(-raw_m // 8) * 8
    assert f.num_hashes == 7 == round(f.num_bits / 20_000 * math.log(2))
    arrays = f.to_arrays()
    assert arrays["bits"].dtype == np.uint8 and arrays["bits"].shape == (f.num_bits // 8,)
    assert optimal_num_bits(1, 0.5) == 8  # never a partial byte
    assert optimal_num_hashes(8, 100) == 1  # at least one hash


@pytest.mark.parametrize("p", [0.1, 0.01, 0.001, 1e-8])
def test_bits_per_item_is_1_44_log2_inverse_p(p):
    f = BloomFilter(100_000, p)
    assert f.bits_per_item == pytest.approx(1.44 * math.log2(1 / p), rel=0.01)
    assert f.num_hashes == round(math.log2(1 / p))  # (m/n) ln 2 = log2(1/p)


# ----------------------------------------------------------------------------- correctness
def test_no_false_negatives_and_add_reports_new_keys():
    f = BloomFilter(20_000, 0.01)
    keys = _program_keys(20_000, "in")
    assert f.add_many(keys) >= 20_000 - 20_000 * 0.01 * 2  # a few adds may hit already-set bits
    assert all(key in f for key in keys)
    assert all(f.contains(tuple(key)) for key in keys[:1000])
    assert not f.add(keys[0])  # repeat: nothing changes
    assert f.num_added <= 20_000


@pytest.mark.parametrize("p", [0.01, 0.001])
def test_false_positive_rate_at_capacity_is_within_1_5x_of_target(p):
    n, trials = 20_000, 100_000
    f = BloomFilter(n, p)
    f.add_many(_program_keys(n, "in"))
    false_positives = sum(key in f for key in _program_keys(trials, "out"))
    rate = false_positives / trials
    assert rate <= 1.5 * p, (rate, p)
    assert rate >= p / 1.5, (rate, p)  # calibrated, not just oversized
    assert f.estimated_false_positive_rate() == pytest.approx(p, rel=0.2)


def test_approximate_count_within_5_percent_at_capacity():
    f = BloomFilter(20_000, 0.01)
    assert f.approximate_count() == 0.0 and f.fill_ratio() == 0.0
    f.add_many(_program_keys(20_000, "in"))
    assert f.approximate_count() == pytest.approx(20_000, rel=0.05)
    assert f.fill_ratio() == pytest.approx(0.5, abs=0.02)  # optimal k fills half the bits


def test_positions_are_the_set_bits_in_little_endian_packed_order():
    f = BloomFilter(1_000, 0.01)
    f.add(PROGRAM)
    unpacked = np.unpackbits(f.to_arrays()["bits"], bitorder="little")
    assert sorted(np.flatnonzero(unpacked).tolist()) == sorted(set(f.positions(PROGRAM)))
    assert f.popcount() == len(set(f.positions(PROGRAM)))


# ----------------------------------------------------------------------------- keys
def test_token_sequences_are_not_confused_with_joined_strings():
    assert encode_key(["a", "b"]) != encode_key(["ab"])
    assert encode_key(["a", "b"]) != encode_key("a b")
    f = BloomFilter(1_000, 1e-6)
    f.add(["a", "b"])
    assert ["a", "b"] in f and ("a", "b") in f
    assert ["ab"] not in f and "ab" not in f and ["a", "b", ""] not in f and ["b", "a"] not in f


def test_str_bytes_one_token_and_int_token_keys():
    assert encode_key("ab") == encode_key(b"ab") == encode_key(["ab"]) == b"ab"
    assert encode_key("é") == "é".encode("utf-8")
    assert encode_key((3, 7)) == encode_key(["3", "7"]) == encode_key(np.array([3, 7])) == b"3\x1f7"
    assert encode_key(iter(PROGRAM)) == encode_key(PROGRAM)
    f = BloomFilter(100, 1e-6)
    f.add("ab")
    assert b"ab" in f and ["ab"] in f
    f.add((3, 7))
    assert ["3", "7"] in f


def test_separator_inside_a_token_and_bad_tokens_are_rejected():
    f = BloomFilter(100, 0.01)
    with pytest.raises(ValueError, match="separator"):
        f.add(["a" + SEPARATOR + "b"])
    with pytest.raises(ValueError, match="separator"):
        _ = ["x", SEPARATOR] in f
    with pytest.raises(TypeError):
        f.add(["a", 1.5])
    with pytest.raises(TypeError):
        f.add(3.0)


# ----------------------------------------------------------------------------- determinism
def test_positions_are_fixed_numbers():
    # Hand-checked: mmh3.hash64(b"(\x1fhop\x1fv3\x1fv7\x1f)\x1f<END>", 7, signed=False)
    #   = (14181932405468977472, 13933366450747669152); m = 9592, k = 7; g_i = (h1 + i*h2) mod m.
    h1, h2 = 14181932405468977472, 13933366450747669152
    f = BloomFilter(1_000, 0.01, seed=7)
    assert (f.num_bits, f.num_hashes) == (9592, 7)
    expected = [(h1 + i * h2) % 9592 for i in range(7)]
    assert expected == [4008, 4664, 5320, 5976, 6632, 7288, 7944]
    assert f.positions(PROGRAM) == expected
    assert BloomFilter(1_000, 0.01, seed=8).positions(PROGRAM) != expected  # the seed matters


def test_independently_built_filters_have_equal_arrays():
    keys = _program_keys(5_000, "in")
    a, b = BloomFilter(5_000, 0.001), BloomFilter(5_000, 0.001)
    a.add_many(keys)
    b.add_many([list(k) for k in keys])
    assert a == b
    for name, value in a.to_arrays().items():
        np.testing.assert_array_equal(value, b.to_arrays()[name])
    c = BloomFilter(5_000, 0.001)
    c.add_many(reversed(keys))  # insertion order does not change the bits
    np.testing.assert_array_equal(a.to_arrays()["bits"], c.to_arrays()["bits"])


def test_positions_do_not_depend_on_the_python_hash_seed():
    code = "from mapo_jax.explore.bloom import BloomFilter; print(BloomFilter(1000, 0.01, seed=7).positions({!r}))"
    outs = set()
    for hash_seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=hash_seed, PYTHONPATH=str(REPO))
        run = subprocess.run([sys.executable, "-c", code.format(PROGRAM)], env=env, capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
        outs.add(run.stdout.strip())
    assert outs == {"[4008, 4664, 5320, 5976, 6632, 7288, 7944]"}


# ----------------------------------------------------------------------------- union
def test_union_contains_both_sets_and_equals_building_from_all():
    left, right = _program_keys(3_000, "L"), _program_keys(3_000, "R")
    a, b, both = BloomFilter(6_000, 0.01), BloomFilter(6_000, 0.01), BloomFilter(6_000, 0.01)
    a.add_many(left)
    b.add_many(right)
    both.add_many(left + right)
    a_before = a.copy()
    u = a.union(b)
    assert a == a_before  # union does not mutate
    assert all(k in u for k in left) and all(k in u for k in right)
    np.testing.assert_array_equal(u.to_arrays()["bits"], both.to_arrays()["bits"])
    assert u == (a | b)
    assert u.num_added == a.num_added + b.num_added  # an upper bound on distinct keys
    assert u.approximate_count() == pytest.approx(6_000, rel=0.05)
    a.update(b)
    np.testing.assert_array_equal(a.to_arrays()["bits"], u.to_arrays()["bits"])
    assert all(k in a for k in right)


def test_union_of_mismatched_filters_raises():
    base = BloomFilter(1_000, 0.01)
    for other in (BloomFilter(2_000, 0.01), BloomFilter(1_000, 0.001), BloomFilter(1_000, 0.01, seed=1)):
        with pytest.raises(ValueError, match="different parameters"):
            base.union(other)
        with pytest.raises(ValueError, match="different parameters"):
            base.update(other)
    with pytest.raises(TypeError):
        base.union({"bits": 0})


# ----------------------------------------------------------------------------- serialisation
def test_array_round_trip_is_exact_and_independent():
    f = BloomFilter(2_000, 1e-4, seed=123)
    f.add_many(_program_keys(1_500, "in"))
    arrays = f.to_arrays()
    assert all(isinstance(v, np.ndarray) for v in arrays.values())
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    buffer.seek(0)
    g = BloomFilter.from_arrays(dict(np.load(buffer)))
    assert g == f and g.num_added == f.num_added and g.seed == 123
    assert g.false_positive_rate == 1e-4 and g.expected_items == 2_000
    for name, value in arrays.items():
        np.testing.assert_array_equal(value, g.to_arrays()[name])
    # Neither side aliases the other.
    f.add(["only", "in", "f"])
    assert f != g and ["only", "in", "f"] not in g
    np.testing.assert_array_equal(arrays["bits"], g.to_arrays()["bits"])


def test_pickle_round_trip_keeps_the_numpy_view_live():
    f = BloomFilter(500, 0.01)
    f.add(PROGRAM)
    g = pickle.loads(pickle.dumps(f))
    assert g == f
    g.add(["new"])
    assert ["new"] in g and g.popcount() > f.popcount()
    assert g.to_arrays()["bits"].sum() != f.to_arrays()["bits"].sum()


def test_pack_and_unpack_many_filters():
    filters = [BloomFilter(n, p, seed=s) for n, p, s in [(10, 0.01, 0), (1_000, 1e-6, 3), (77, 0.2, 9)]]
    for i, f in enumerate(filters):
        f.add_many(_program_keys(5 * (i + 1), f"q{i}"))
    packed = pack_filters(filters)
    assert packed["bits"].dtype == np.uint8 and len(packed) == 7
    assert unpack_filters(packed) == filters
    assert unpack_filters(pack_filters([])) == []
    with pytest.raises(ValueError, match="byte_offsets"):
        unpack_filters({**packed, "byte_offsets": packed["byte_offsets"][:-1]})


def test_from_arrays_with_missing_or_bad_fields_raises():
    arrays = BloomFilter(100, 0.01).to_arrays()
    for name in ("bits", "num_hashes", "seed"):
        broken = {k: v for k, v in arrays.items() if k != name}
        with pytest.raises(ValueError, match=name):
            BloomFilter.from_arrays(broken)
    with pytest.raises(ValueError, match="bits"):
        BloomFilter.from_arrays({**arrays, "bits": arrays["bits"][:-1]})
    with pytest.raises(ValueError, match="bits"):
        BloomFilter.from_arrays({**arrays, "bits": arrays["bits"].astype(np.int32)})
    with pytest.raises(ValueError):
        BloomFilter.from_arrays({**arrays, "num_hashes": np.array(0)})


# ----------------------------------------------------------------------------- parameters / misc
@pytest.mark.parametrize("n, p", [(0, 0.01), (-5, 0.01), (10, 0.0), (10, 1.0), (10, 1.5), (10, -0.1), (10, math.nan)])
def test_bad_parameters_raise_value_error(n, p):
    with pytest.raises(ValueError):
        BloomFilter(n, p)


def test_bad_types_and_seeds_raise():
    with pytest.raises(TypeError):
        BloomFilter(10.5, 0.01)
    for seed in (-1, 2**32):
        with pytest.raises(ValueError, match="seed"):
            BloomFilter(10, 0.01, seed=seed)


def test_equality_and_hashability():
    a, b = BloomFilter(100, 0.01), BloomFilter(100, 0.01)
    assert a == b and a != BloomFilter(100, 0.01, seed=1) and a != "not a filter"
    a.add("x")
    assert a != b
    b.add("x")
    assert a == b
    with pytest.raises(TypeError):
        hash(a)
    assert "num_bits=" in repr(a)
