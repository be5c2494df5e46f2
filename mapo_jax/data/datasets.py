"""One entry point for every dataset: `load_dataset(config, split) -> Dataset`."""

from __future__ import annotations

from mapo_jax.config import DataConfig
from mapo_jax.data.example import Dataset


def load_dataset(config: DataConfig, split: str) -> Dataset:
    """Loads one split (a name from `config.split_parts`) of the configured dataset."""
    if config.dataset == "wtq":
        from mapo_jax.data import wtq

        return wtq.load_wtq(
            split,
            data_dir=config.data_dir,
            options=config.annotation,
            table_options=config.table_options,
            cache_dir=config.cache_dir,
            use_cache=config.use_cache,
            infer_canon_answers=config.infer_canon,
        )
    if config.dataset == "toy":
        from mapo_jax.data import synthetic

        name = split[:-1] if split in ("train1", "dev1") else split
        return synthetic.load_toy(name, synthetic.ToyConfig(seed=config.toy_seed))
    raise ValueError(f"unknown dataset {config.dataset!r}")


def preprocess(config: DataConfig, log=None) -> dict:
    """Loads (and so caches) every part of `config.split`; returns their stats with wall times."""
    import time

    from mapo_jax.config import split_parts

    import sys

    log = log or (lambda message: print(message, file=sys.stderr, flush=True))
    report = {"dataset": config.dataset, "split": config.split, "parts": {}}
    start = time.perf_counter()
    for part in split_parts(config):
        log(f"[preprocess] {config.dataset} {part}: reading and annotating ...")
        t0 = time.perf_counter()
        dataset = load_dataset(config, part)
        stats = dict(dataset.stats)
        stats["wall_time_s"] = round(time.perf_counter() - t0, 3)
        report["parts"][part] = stats
        log(f"[preprocess] {config.dataset} {part}: {stats.get('examples')} examples in {stats['wall_time_s']:.2f} s")
    report["wall_time_s"] = round(time.perf_counter() - start, 3)
    return report
