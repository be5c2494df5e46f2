"""The learner's training metrics between two log lines: averaged into one `metrics.jsonl` record
(train/*, actor/*, learner/*) and one console line."""

from __future__ import annotations

import collections
import math
import time
from typing import Dict

import numpy as np

from mapo_jax.acting import ActorStats
from mapo_jax.metrics import format_duration


class MetricsWindow:
    """Training metrics of the last `log_every` steps, averaged into one record."""

    def __init__(self):
        self.values: Dict[str, list] = collections.defaultdict(list)
        self.start, self.wait = time.perf_counter(), 0.0
        self.latest_stats: Dict[int, ActorStats] = {}

    def add(self, metrics: dict, actor_index: int, stats: ActorStats) -> None:
        for key, value in metrics.items():
            self.values[f"train/{key}"].append(float(value[0]))
        self.values["actor/on_policy_return"].append(stats.on_policy_return)
        self.values["actor/new_programs"].append(stats.new_programs)
        self.values["actor/batch_seconds"].append(stats.seconds)
        self.latest_stats[actor_index] = stats

    def record(self, step: int, n_actors: int) -> dict:
        """The window's record; starts the next window."""
        elapsed = time.perf_counter() - self.start
        n = len(self.values["train/loss"])
        returns = [r for r in self.values.pop("actor/on_policy_return") if math.isfinite(r)]
        new_programs = int(sum(self.values.pop("actor/new_programs")))
        record = {"step": step, **{key: float(np.mean(v)) for key, v in self.values.items()}}
        record.update({
            "actor/on_policy_return": float(np.mean(returns)) if returns else float("nan"),
            "actor/new_programs": new_programs,
            "actor/buffer_coverage": float(np.mean([st.coverage for st in self.latest_stats.values()])),
            "actor/batches_per_s": float(n / max(sum(self.values["actor/batch_seconds"]), 1e-9) * n_actors),
            "learner/steps_per_s": n / max(elapsed, 1e-9),
            "learner/wait_fraction": self.wait / max(elapsed, 1e-9),
        })
        self.values.clear()
        self.start, self.wait = time.perf_counter(), 0.0
        return record


def console_line(record: dict, n_steps: int, best: dict) -> str:
    """The console's view of a window record, with the best dev evaluation so far."""
    step, rate = record["step"], record["learner/steps_per_s"]
    dev = f"dev {best['dev/accuracy']:.3f} @ {best['step']}" if best else "dev -"
    return (f"[train] step {step}/{n_steps} ({step / max(n_steps, 1):.0%})  loss {record['train/loss']:.4f}  "
            f"return {record['actor/on_policy_return']:.3f}  coverage {record['actor/buffer_coverage']:.3f}  "
            f"{rate:.2f} steps/s (waiting {record['learner/wait_fraction']:.0%})  "
            f"ETA {format_duration((n_steps - step) / max(rate, 1e-9))}  best {dev}")
