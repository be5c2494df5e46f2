"""Training run directories as learning curves (paper Figure 3) and an ablation table (paper Table 2).

A run directory holds ``config.json`` (``{"data": {...}, "train": {...}, "model": {...}}``) and
``metrics.jsonl`` (one JSON object per line, each with ``"step"``; evaluation lines carry ``"dev/accuracy"``
in 0..1 and ``"wall_time"``, seconds since the start of training -- older runs wrote ``"seconds"``). Runs are
grouped into methods by ``(objective, alpha, systematic_exploration)``, then apart by any other learning setting
in which they differ (``MAPO (entropy_coeff=-0.01)``), and summarised over their seeds.
"""

from __future__ import annotations

import glob
import json
import math
from pathlib import Path
from typing import Dict, Iterable, List, NamedTuple, Optional, Sequence, Union

import numpy as np

__all__ = [
    "CONFIG_FILE",
    "METRICS_FILE",
    "METHOD_ORDER",
    "Run",
    "find_run_dirs",
    "load_run",
    "load_runs",
    "method_name",
    "group_by_method",
    "Curve",
    "mean_curve",
    "method_curves",
    "ablation_table",
    "format_ablation_table",
]

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
METHOD_ORDER = ("MAPO", "MAPO w/o systematic exploration", "MAPO w/o clip (alpha=0)",
                "MAPO w/o clip, w/o systematic exploration", "REINFORCE", "MML", "Hard EM", "IML")
_OBJECTIVE_NAMES = {"reinforce": "REINFORCE", "mml": "MML", "hard_em": "Hard EM", "iml": "IML"}


class Run(NamedTuple):
    """One training run: its directory, config and dev evaluations sorted by step."""

    path: Path
    config: dict
    steps: np.ndarray  # int [E]
    wall_time: np.ndarray  # float [E], seconds since training start when the learner reached the step (see load_run)
    dev_accuracy: np.ndarray  # float [E], 0..1
    eval_wall_time: np.ndarray  # float [E], the evaluation line's own time (NaN where it had none)

    @property
    def method(self) -> str:
        return method_name(self.config.get("train", {}))

    @property
    def seed(self) -> int:
        return int(self.config.get("train", {}).get("seed", 0))


def find_run_dirs(patterns: Union[str, Path, Iterable[Union[str, Path]]]) -> List[Path]:
    """Run directories (those holding ``metrics.jsonl``) named by paths or glob patterns, or found below them
    (one level of subdirectories); sorted, without duplicates."""
    if isinstance(patterns, (str, Path)):
        patterns = [patterns]
    found = set()
    for pattern in patterns:
        for name in sorted(glob.glob(str(pattern))) or []:
            path = Path(name)
            if (path / METRICS_FILE).is_file():
                found.add(path.resolve())
            elif path.is_dir():
                found.update(p.parent.resolve() for p in path.glob(f"*/{METRICS_FILE}"))
    return sorted(found)


def _number(value) -> float:
    return float(value) if isinstance(value, (int, float)) and value is not None else math.nan


def load_run(path: Union[str, Path]) -> Run:
    """Reads a run directory. Lines without ``dev/accuracy`` (training metrics) are skipped; a step evaluated
    twice (a resumed run) keeps its last line.

    The wall time of an evaluation is the time the *learner* reached its step: evaluation may run in its own
    thread and finish long after that step (and in bursts), which would distort a curve against wall time. It is
    interpolated between the training lines' ``(step, wall_time)`` (step 0 at 0 s); an evaluation beyond the last
    training line, or a run without training lines, keeps its own line's time (0 at step 0 when it has none).
    """
    path = Path(path)
    config_path = path / CONFIG_FILE
    if not config_path.is_file():
        raise FileNotFoundError(f"{path} has no {CONFIG_FILE}: cannot tell which method the run is")
    config = json.loads(config_path.read_text())
    evaluations: Dict[int, tuple] = {}
    learner: Dict[int, float] = {}
    with open(path / METRICS_FILE, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path / METRICS_FILE}:{number}: not JSON ({error})") from None
            if "step" not in record:
                continue
            step = int(record["step"])
            seconds = _number(record.get("wall_time", record.get("seconds")))
            accuracy = record.get("dev/accuracy")
            if accuracy is None:
                if not math.isnan(seconds):
                    learner[step] = seconds
                continue
            if math.isnan(seconds) and step == 0:
                seconds = 0.0
            evaluations[step] = (seconds, float(accuracy))
    steps = np.array(sorted(evaluations), dtype=np.int64)
    own_time = np.array([evaluations[s][0] for s in steps], dtype=np.float64)
    accuracy = np.array([evaluations[s][1] for s in steps], dtype=np.float64)
    wall_time = own_time.copy()
    if learner:
        known = np.array(sorted({0, *learner}), dtype=np.float64)
        times = np.array([learner.get(int(k), 0.0) for k in known])
        inside = steps <= known[-1]
        wall_time[inside] = np.interp(steps[inside], known, times)
    return Run(path, config, steps, wall_time, accuracy, own_time)


def load_runs(patterns) -> List[Run]:
    """:func:`load_run` of every directory :func:`find_run_dirs` finds; runs without evaluations dropped."""
    return [run for run in map(load_run, find_run_dirs(patterns)) if len(run.steps)]


def method_name(train: dict) -> str:
    """The paper's Table 2 row a training config belongs to, from ``objective``, ``alpha`` and
    ``systematic_exploration`` (MAPO's ablations; the other objectives by name)."""
    objective = train.get("objective", "mapo")
    if objective != "mapo":
        return _OBJECTIVE_NAMES.get(objective, objective)
    no_clip = float(train.get("alpha", 0.1)) == 0.0
    no_explore = not train.get("systematic_exploration", True)
    if no_clip and no_explore:
        return "MAPO w/o clip, w/o systematic exploration"
    if no_clip:
        return "MAPO w/o clip (alpha=0)"
    if no_explore:
        return "MAPO w/o systematic exploration"
    return "MAPO"


def _train_defaults() -> dict:
    import dataclasses

    from mapo_jax.config import TrainConfig

    return {field.name: field.default for field in dataclasses.fields(TrainConfig)}


def _not_learning_settings() -> frozenset:
    """Train settings that are not part of a method: runs that differ only in them are seeds of one
    method. Where actors and evaluation run, how long and how often change no metric; the seed and the
    number of actors change the draws (each actor's seed depends on its index), not the method."""
    from mapo_jax.config import RESUMABLE_CHANGES

    return frozenset(RESUMABLE_CHANGES) | {"seed", "n_actors", "queue_size"}


def _split_variants(name: str, group: Sequence[Run]) -> Dict[str, List[Run]]:
    """One method's runs apart by the learning settings in which they differ; a variant's name lists its
    settings that are not the defaults (a setting a run's config lacks reads as its default)."""
    defaults, ignored = _train_defaults(), _not_learning_settings()
    keys = sorted({k for run in group for k in run.config.get("train", {})} - ignored)
    value = lambda run, k: run.config.get("train", {}).get(k, defaults.get(k))  # noqa: E731
    varying = [k for k in keys if len({json.dumps(value(run, k)) for run in group}) > 1]
    variants: Dict[str, List[Run]] = {}
    for run in group:
        changed = [f"{k}={value(run, k)}" for k in varying if k not in defaults or value(run, k) != defaults[k]]
        variants.setdefault(f"{name} ({', '.join(changed)})" if changed else name, []).append(run)
    return variants


def group_by_method(runs: Sequence[Run]) -> Dict[str, List[Run]]:
    """Runs by method, in :data:`METHOD_ORDER` (unknown methods after, by name), each list sorted by seed.
    Runs of one method that differ in another learning setting are variants of their own."""
    by_name: Dict[str, List[Run]] = {}
    for run in runs:
        by_name.setdefault(run.method, []).append(run)
    groups: Dict[str, List[Run]] = {}
    for name, group in by_name.items():
        groups.update(_split_variants(name, group))
    order = {name: i for i, name in enumerate(METHOD_ORDER)}
    return {name: sorted(groups[name], key=lambda r: (r.seed, str(r.path)))
            for name in sorted(groups, key=lambda n: (order.get(n, len(order)), n))}


class Curve(NamedTuple):
    """Dev accuracy of one method over its seeds on a common x grid."""

    x: np.ndarray
    mean: np.ndarray
    std: np.ndarray  # population std over seeds (0 with one seed)
    low: np.ndarray  # min over seeds
    high: np.ndarray  # max over seeds
    n_seeds: int


def mean_curve(runs: Sequence[Run], x: str = "step", n_points: int = 50) -> Curve:
    """Mean, std, min and max of dev accuracy over runs against ``x`` (``"step"`` or ``"wall_time"``).

    Runs are linearly interpolated on a common grid over the x range that every run covers, so that each
    point averages all seeds; by steps the grid is the union of the evaluated steps in that range.
    """
    if x not in ("step", "wall_time"):
        raise ValueError(f"x must be 'step' or 'wall_time', got {x!r}")
    if not runs:
        raise ValueError("no runs")
    series = []
    for run in runs:
        xs = run.steps.astype(np.float64) if x == "step" else run.wall_time
        keep = np.isfinite(xs)
        order = np.argsort(xs[keep], kind="stable")
        series.append((xs[keep][order], run.dev_accuracy[keep][order]))
    if any(len(xs) == 0 for xs, _ in series):
        raise ValueError(f"a run has no evaluation with a {x}")
    lo, hi = max(xs[0] for xs, _ in series), min(xs[-1] for xs, _ in series)
    if lo > hi:
        raise ValueError(f"the runs' {x} ranges do not overlap")
    if x == "step":
        grid = np.unique(np.concatenate([xs[(xs >= lo) & (xs <= hi)] for xs, _ in series]))
    else:
        grid = np.linspace(lo, hi, n_points) if hi > lo else np.array([lo])
    values = np.stack([np.interp(grid, xs, ys) for xs, ys in series])
    return Curve(grid, values.mean(0), values.std(0), values.min(0), values.max(0), len(runs))


def method_curves(runs: Sequence[Run], x: str = "step", n_points: int = 50) -> Dict[str, Curve]:
    """:func:`mean_curve` of every method (paper Figure 3: dev accuracy, mean and spread over seeds)."""
    return {name: mean_curve(group, x, n_points) for name, group in group_by_method(runs).items()}


def _mean_std(values: Sequence[float]) -> tuple:
    values = np.asarray(values, np.float64)
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


def ablation_table(runs: Sequence[Run]) -> List[dict]:
    """One row per method (paper Table 2): ``method``, ``n_seeds``, ``seeds``, best dev accuracy (the maximum
    over a run's evaluations) and final dev accuracy (the last evaluation), each as mean and sample std over
    seeds (``best_mean``, ``best_std``, ``final_mean``, ``final_std``, fractions), and ``steps`` (the last step
    evaluated, the smallest over seeds)."""
    rows = []
    for name, group in group_by_method(runs).items():
        best_mean, best_std = _mean_std([run.dev_accuracy.max() for run in group])
        final_mean, final_std = _mean_std([run.dev_accuracy[-1] for run in group])
        rows.append({
            "method": name, "n_seeds": len(group), "seeds": [run.seed for run in group],
            "best_mean": best_mean, "best_std": best_std, "final_mean": final_mean, "final_std": final_std,
            "steps": int(min(run.steps[-1] for run in group)),
        })
    return rows


def format_ablation_table(rows: Sequence[dict], reference: Optional[str] = "MAPO") -> str:
    """The ablation table as Markdown, accuracies in percent ``mean ± std``; with ``reference``, a column
    with each method's best accuracy minus the reference method's."""
    ref = next((r for r in rows if r["method"] == reference), None) if reference else None
    header = ["Method", "Seeds", "Steps", "Best dev acc. (%)", "Final dev acc. (%)"]
    if ref is not None:
        header.append(f"Best vs {reference}")
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    for r in rows:
        cells = [r["method"], str(r["n_seeds"]), str(r["steps"]),
                 f"{100 * r['best_mean']:.1f} ± {100 * r['best_std']:.1f}",
                 f"{100 * r['final_mean']:.1f} ± {100 * r['final_std']:.1f}"]
        if ref is not None:
            cells.append(f"{100 * (r['best_mean'] - ref['best_mean']):+.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
