"""Throughput of mapo_jax.explore.bloom.BloomFilter on program-prefix keys (a script, not a test).

Keys are token sequences of length 5-19 drawn from a 91-token vocabulary, like MAPO program prefixes.
For each target false-positive rate it fills a filter to capacity (n keys), then measures inserts/s,
lookups/s for added keys (hits: all k probes) and for other keys (misses: stop at the first clear bit),
bits per item and the measured false-positive rate over the miss keys. Prints a table and writes
benchmarks/results/bloom.json.

    python benchmarks/bloom_benchmark.py
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import mmh3
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from mapo_jax.explore.bloom import BloomFilter, encode_key  # noqa: E402

VOCAB_SIZE = 91
MIN_LEN, MAX_LEN = 5, 19


def make_vocab() -> list[str]:
    """91 tokens shaped like the WTQ program vocabulary: brackets, functions, variables, <END>."""
    functions = ["hop", "filter_eq", "filter_str_contain_any", "filter_greater", "filter_less", "argmax",
                 "argmin", "first", "last", "previous", "next", "count", "max", "min", "average", "sum",
                 "diff", "mode", "same", "filter_in", "filter_not_in", "all_rows"]
    vocab = ["(", ")", "<END>"] + functions + [f"v{i}" for i in range(VOCAB_SIZE)]
    return vocab[:VOCAB_SIZE]


def make_keys(count: int, rng: np.random.Generator, vocab: list[str], exclude: set = frozenset()) -> list[list[str]]:
    """``count`` distinct random token sequences (lists, as an actor holds them), none in ``exclude``."""
    seen: set[tuple[str, ...]] = set()
    keys: list[list[str]] = []
    while len(keys) < count:
        lengths = rng.integers(MIN_LEN, MAX_LEN + 1, size=count)
        ids = rng.integers(0, len(vocab), size=int(lengths.sum()))
        tokens = np.array(vocab, dtype=object)[ids].tolist()
        start = 0
        for length in lengths.tolist():
            key = tuple(tokens[start:start + length])
            start += length
            if key not in seen and key not in exclude:
                seen.add(key)
                keys.append(list(key))
                if len(keys) == count:
                    break
    return keys


def best_and_median(fn, repeats: int) -> tuple[float, float]:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times)


def run(n: int, rates: list[float], repeats: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    vocab = make_vocab()
    added = make_keys(n, rng, vocab)
    others = make_keys(n, rng, vocab, exclude={tuple(k) for k in added})
    mean_len = float(np.mean([len(k) for k in added]))

    # Lower bound on any query: encode + one murmur3 call, no bit probes.
    def hash_only() -> None:
        hash64 = mmh3.hash64
        for key in added:
            hash64(encode_key(key), 0, signed=False)

    hash_best, _ = best_and_median(hash_only, repeats)
    rows = []
    for p in rates:
        filters: list[BloomFilter] = []

        def insert() -> None:
            f = BloomFilter(n, p)
            add = f.add
            for key in added:
                add(key)
            filters.append(f)

        ins_best, ins_med = best_and_median(insert, repeats)
        f = filters[-1]

        def lookup_hits() -> None:
            for key in added:
                if key not in f:
                    raise AssertionError("false negative")

        def lookup_misses() -> None:
            for key in others:
                key in f  # noqa: B015

        hit_best, hit_med = best_and_median(lookup_hits, repeats)
        miss_best, miss_med = best_and_median(lookup_misses, repeats)
        false_positives = sum(key in f for key in others)

        t0 = time.perf_counter()
        arrays = f.to_arrays()
        restored = BloomFilter.from_arrays(arrays)
        roundtrip_s = time.perf_counter() - t0
        assert restored == f

        rows.append({
            "target_fp_rate": p,
            "n": n,
            "num_bits": f.num_bits,
            "num_hashes": f.num_hashes,
            "bytes": f.nbytes,
            "bits_per_item": f.bits_per_item,
            "bits_per_item_theory_1_44_log2_inv_p": 1.4427 * float(np.log2(1 / p)),
            "fill_ratio": f.fill_ratio(),
            "approximate_count": f.approximate_count(),
            "num_added": f.num_added,
            "inserts_per_s": n / ins_best,
            "inserts_per_s_median": n / ins_med,
            "insert_us": ins_best / n * 1e6,
            "hit_lookups_per_s": n / hit_best,
            "hit_lookups_per_s_median": n / hit_med,
            "hit_lookup_us": hit_best / n * 1e6,
            "miss_lookups_per_s": n / miss_best,
            "miss_lookups_per_s_median": n / miss_med,
            "miss_lookup_us": miss_best / n * 1e6,
            "fp_trials": len(others),
            "false_positives": false_positives,
            "measured_fp_rate": false_positives / len(others),
            "estimated_fp_rate_from_fill": f.estimated_false_positive_rate(),
            "to_arrays_from_arrays_roundtrip_s": roundtrip_s,
        })
    return {
        "keys": {"vocab_size": len(vocab), "length_range": [MIN_LEN, MAX_LEN], "mean_length": mean_len,
                 "type": "list[str]", "distinct_added": n, "distinct_non_added": len(others)},
        "encode_plus_hash_only_us": hash_best / n * 1e6,
        "repeats": repeats,
        "timing": "best of `repeats` wall-clock passes over all keys (median also given), one Python thread",
        "rows": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="keys added (= filter capacity)")
    parser.add_argument("--rates", type=float, nargs="+", default=[1e-8, 0.01], help="target fp rates")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "bloom.json")
    args = parser.parse_args()

    started = time.perf_counter()
    figures = run(args.n, args.rates, args.repeats, args.seed)
    total_s = time.perf_counter() - started

    print(f"n = {args.n:,} keys (token sequences, length {MIN_LEN}-{MAX_LEN}, vocab {VOCAB_SIZE}); "
          f"encode+hash alone {figures['encode_plus_hash_only_us']:.2f} us/key")
    header = (f"{'target p':>9} {'k':>3} {'bits/item':>9} {'MB':>6} {'inserts/s':>11} {'hits/s':>11} "
              f"{'misses/s':>11} {'hit us':>7} {'miss us':>7} {'fp measured':>18}")
    print(header)
    print("-" * len(header))
    for r in figures["rows"]:
        fp = f"{r['false_positives']}/{r['fp_trials']} = {r['measured_fp_rate']:.2e}"
        print(f"{r['target_fp_rate']:>9.0e} {r['num_hashes']:>3} {r['bits_per_item']:>9.2f} "
              f"{r['bytes'] / 1e6:>6.2f} {r['inserts_per_s']:>11,.0f} {r['hit_lookups_per_s']:>11,.0f} "
              f"{r['miss_lookups_per_s']:>11,.0f} {r['hit_lookup_us']:>7.2f} {r['miss_lookup_us']:>7.2f} {fp:>18}")
    print(f"total {total_s:.1f} s")

    result = {
        "name": "bloom_filter_throughput",
        "figures": figures,
        "command": " ".join(["python"] + [os.path.relpath(sys.argv[0]) if i == 0 else a
                                          for i, a in enumerate(sys.argv)]),
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "mmh3": importlib.metadata.version("mmh3"),
        },
        "device": "cpu",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "total_seconds": total_s,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
