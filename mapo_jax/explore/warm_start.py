"""The random-exploration warm start over a whole split: parallel, resumable, with progress output.

Output directory layout (the format training reads to warm-start its memory buffers):

    OUT/parts/part-NNNNN.json   one per chunk of examples, written atomically when the chunk is done;
                                a restarted run skips chunks whose part exists (resumable)
    OUT/programs.json           {"format": "mapo_jax.programs/1", "dataset", "split", "function_set",
                                 "limits": {...}, "programs": {example_id: ["( hop v1 v2 ) <END>", ...]}}
                                reward-1 programs per example as space-separated interpreter tokens
                                (constants are `vK` in the deterministic namespace order of
                                `lisp.interpreter`), in the order found
    OUT/stats.json              coverage, programs per example, rollouts per second, wall time, ...

Parallelism: examples are split into fixed chunks handed to a pool of worker processes (the
interpreter is pure Python, so processes, not threads). Every example has its own seed derived
from (seed, example id), so results do not depend on how chunks land on processes.
"""

from __future__ import annotations

import collections
import contextlib
import json
import multiprocessing
import os
import random
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from mapo_jax.data.example import Dataset
from mapo_jax.env import QAEnvironment, Vocabulary
from mapo_jax.explore.bloom import BloomFilter
from mapo_jax.explore.systematic import (
    bloom_capacity,
    disabled_functions,
    example_seed,
    program_shape,
    random_explore,
    summarise_counts,
)
from mapo_jax.errors import UserInputError
from mapo_jax.io_utils import atomic_write_text, read_json
from mapo_jax.lisp.functions import TableView
from mapo_jax.lisp.interpreter import Limits

FORMAT = "mapo_jax.programs/1"


@dataclass(frozen=True)
class WarmStartConfig:
    rollouts_per_example: int = 1000
    # A question still unsolved after its rollouts gets this many more without the trigger-word
    # filter (a wrong trigger guess must not make a reachable answer unreachable).
    extra_rollouts_for_hard: int = 2000
    seed: int = 0
    processes: int = 0  # 0: all cores
    chunk_size: int = 40
    trigger_words: bool = True
    degree_words: bool = True  # comparatives/superlatives stand in for the POS-tag triggers
    explored_set: str = "set"  # "set" (exact) or "bloom"
    function_set: str = "wtq"
    max_n_exp: int = 3
    max_mem: int = 60
    max_valid: int = 60

    @property
    def limits(self) -> Limits:
        return Limits(self.max_n_exp, self.max_mem, self.max_valid)


# The dataset of a worker process, set by the pool's initializer (inherited without pickling when
# the pool forks).
_DATASET: Optional[Dataset] = None


def _set_dataset(dataset: Dataset) -> None:
    global _DATASET
    _DATASET = dataset


def explore_examples(dataset: Dataset, indices: Sequence[int], config: WarmStartConfig) -> dict:
    """Explores the examples at `indices`; returns programs, rollouts and shapes for them."""
    vocabulary = Vocabulary(config.function_set, config.max_mem)
    views: Dict[str, TableView] = {}
    programs: Dict[str, List[str]] = {}
    rollouts = 0
    exhausted = 0
    shapes: collections.Counter = collections.Counter()
    for index in indices:
        example = dataset.examples[index]
        table = dataset.tables[example.table]
        view = views.get(example.table) or views.setdefault(example.table, TableView(table))
        env = QAEnvironment(example, table, config.function_set, config.limits,
                            punish_extra_work=True, view=view, vocabulary=vocabulary)
        if config.explored_set == "bloom":
            explored = BloomFilter(bloom_capacity(config.rollouts_per_example), 1e-8)
        else:
            explored = set()
        disabled = disabled_functions(example.tokens, config.degree_words) if config.trigger_words else frozenset()
        rng = random.Random(example_seed(config.seed, example.id))
        found, n = random_explore(env, config.rollouts_per_example, explored, rng, disabled)
        if not found and config.extra_rollouts_for_hard > 0:
            found, extra = random_explore(env, config.extra_rollouts_for_hard, explored, rng, frozenset())
            n += extra
        rollouts += n
        exhausted += n < config.rollouts_per_example + (0 if found else config.extra_rollouts_for_hard)
        programs[example.id] = [" ".join(tokens) for tokens in found]
        shapes.update(program_shape(env, tokens) for tokens in found)
        env.context.reset_memo()
    return {"programs": programs, "rollouts": rollouts, "exhausted": exhausted, "shapes": dict(shapes)}


def _worker(job):
    chunk, indices, config = job
    start = time.perf_counter()
    result = explore_examples(_DATASET, indices, config)
    result["seconds"] = time.perf_counter() - start
    return chunk, result


def _write_json(path: Path, data) -> None:
    atomic_write_text(path, json.dumps(data))


def run_warm_start(
    dataset: Dataset,
    out_dir: str | Path,
    config: WarmStartConfig = WarmStartConfig(),
    n_examples: Optional[int] = None,
    log=None,
) -> dict:
    """Explores `dataset` (its first `n_examples`), resuming from `out_dir`; returns the stats."""
    log = log or (lambda message: print(message, file=sys.stderr, flush=True))
    out_dir = Path(out_dir)
    parts_dir = out_dir / "parts"
    parts_dir.mkdir(parents=True, exist_ok=True)
    settings = {"dataset": dataset.name, "split": dataset.split, "n_examples": n_examples, **asdict(config)}
    settings.pop("processes")
    settings_path = out_dir / "settings.json"
    if settings_path.exists():
        previous = read_json(settings_path)
        if previous != settings:
            raise UserInputError(
                f"{out_dir} holds a run with other settings ({previous}); use another --out or delete it"
            )
    else:
        _write_json(settings_path, settings)

    count = len(dataset.examples) if n_examples is None else min(n_examples, len(dataset.examples))
    chunks = [list(range(i, min(i + config.chunk_size, count))) for i in range(0, count, config.chunk_size)]
    done = {c for c in range(len(chunks)) if (parts_dir / f"part-{c:05d}.json").exists()}
    todo = [(c, chunks[c], config) for c in range(len(chunks)) if c not in done]
    if done:
        log(f"[explore] resuming: {len(done)}/{len(chunks)} chunks already done")
    processes = config.processes or os.cpu_count() or 1
    start = time.perf_counter()
    examples_done, rollouts_done = 0, 0
    if todo:
        # Forking a process whose JAX threads are running can deadlock: spawn workers then (a spawned
        # worker re-imports the main module, so a calling script needs `if __name__ == "__main__"`).
        # One process: no pool at all.
        context = multiprocessing.get_context("spawn" if "jax" in sys.modules else "fork")
        pool = context.Pool(processes, initializer=_set_dataset, initargs=(dataset,)) if processes > 1 else None
        if pool is None:
            _set_dataset(dataset)
        with pool if pool is not None else contextlib.nullcontext():
            last = 0.0
            results = pool.imap_unordered(_worker, todo) if pool is not None else map(_worker, todo)
            for chunk, result in results:
                _write_json(parts_dir / f"part-{chunk:05d}.json", result)
                examples_done += len(chunks[chunk])
                rollouts_done += result["rollouts"]
                now = time.perf_counter()
                if now - last > 2.0 or examples_done == sum(len(chunks[c]) for c, _, _ in todo):
                    last = now
                    elapsed = now - start
                    total = sum(len(chunks[c]) for c, _, _ in todo)
                    rate = rollouts_done / max(elapsed, 1e-9)
                    eta = elapsed / examples_done * (total - examples_done)
                    log(f"[explore] {examples_done}/{total} examples  {rate:,.0f} rollouts/s  "
                        f"elapsed {elapsed:,.0f} s  eta {eta:,.0f} s")
    wall = time.perf_counter() - start
    return _merge(out_dir, len(chunks), count, config, wall, rollouts_done, dataset)


def _merge(out_dir: Path, n_chunks: int, count: int, config: WarmStartConfig, wall: float,
           rollouts_this_run: int, dataset: Dataset) -> dict:
    programs: Dict[str, List[str]] = {}
    shapes: collections.Counter = collections.Counter()
    rollouts, exhausted, worker_seconds = 0, 0, 0.0
    for c in range(n_chunks):
        part = json.loads((out_dir / "parts" / f"part-{c:05d}.json").read_text())
        programs.update(part["programs"])
        shapes.update(part["shapes"])
        rollouts += part["rollouts"]
        exhausted += part["exhausted"]
        worker_seconds += part["seconds"]
    counts = [len(p) for p in programs.values()]
    covered = sum(c > 0 for c in counts)
    _write_json(out_dir / "programs.json", {
        "format": FORMAT,
        "dataset": dataset.name,
        "split": dataset.split,
        "function_set": config.function_set,
        "limits": asdict(config.limits),
        "programs": programs,
    })
    stats = {
        "examples": count,
        "coverage": covered / max(count, 1),
        "examples_with_program": covered,
        "programs_per_example": summarise_counts(counts),
        "programs_per_covered_example": summarise_counts([c for c in counts if c]),
        "rollouts": rollouts,
        "examples_fully_explored": exhausted,
        "rollouts_per_second": rollouts_this_run / wall if wall > 0 and rollouts_this_run else None,
        "rollouts_per_second_per_process": rollouts / worker_seconds if worker_seconds else None,
        "wall_time_s": round(wall, 2),
        "top_program_shapes": shapes.most_common(20),
        "settings": {k: v for k, v in asdict(config).items()},
    }
    _write_json(out_dir / "stats.json", stats)
    return stats


def load_programs(path: str | Path) -> Dict[str, List[str]]:
    """Reads `programs.json` (a warm start's output): example id -> program token strings."""
    data = read_json(path)
    if data.get("format") != FORMAT:
        raise UserInputError(f"{path}: not a mapo_jax programs file (format {data.get('format')!r})")
    return data["programs"]
