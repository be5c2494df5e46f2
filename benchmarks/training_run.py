"""Summarises a training run directory as a benchmark result: the dev-accuracy curve against steps and
wall time, accuracy after 1 h and 2.5 h, learner and actor throughput, and the original release's
curve for comparison.

    python benchmarks/training_run.py --workdir=runs/wtq_split1 --name=wtq_mapo_training \
        --command="python launch/train.py --flagfile=wtq.flags"
"""

from __future__ import annotations

import argparse

import numpy as np

import common  # noqa: F401  (sys.path)

# The original release on WTQ (32 vCPUs, 2 GPUs): dev accuracy by learner step (issue 5's figures).
ORIGINAL_CURVE = {5000: 0.30, 10000: 0.36, 16000: 0.42}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--command", default=None, help="the training command the run was made with")
    parser.add_argument("--startup_s", type=float, default=None,
                        help="seconds from the user's start to the learner's clock (preprocessing, warm start, "
                             "loading): adds a curve against the total wall time and the time to the paper's mean")
    parser.add_argument("--keep_in", default=None,
                        help="also copy the run, kept small, into this directory (e.g. notebooks/wtq_runs/NAME): "
                             "config.json, every dev record and one training record per --keep_every steps")
    parser.add_argument("--keep_every", type=int, default=100)
    args = parser.parse_args()
    if args.keep_in:
        keep_small_copy(args.workdir, args.keep_in, args.keep_every)

    from mapo_jax.analysis.runs import load_run
    from mapo_jax.metrics import read_metrics

    run = load_run(args.workdir)
    records = read_metrics(args.workdir)
    train = [r for r in records if "train/loss" in r]
    curve = [{"step": int(s), "learner_wall_time_s": round(float(w), 1), "dev_accuracy": round(float(a), 4)}
             for s, w, a in zip(run.steps, run.wall_time, run.dev_accuracy)]

    def accuracy_after(seconds: float):
        """The last evaluation of parameters the learner had after `seconds` (None if the run was shorter)."""
        if not train or train[-1]["wall_time"] < seconds:
            return None
        reached = [c for c in curve if c["learner_wall_time_s"] <= seconds]
        return reached[-1] if reached else None

    steps_per_s = [r["learner/steps_per_s"] for r in train]
    last = train[-1] if train else {}
    figures = {
        "dev_curve": curve,
        "best": max(curve, key=lambda c: c["dev_accuracy"]) if curve else None,
        "after_1h": accuracy_after(3600),
        "after_2.5h": accuracy_after(9000),
        "steps": int(last.get("step", 0)),
        "training_wall_time_s": round(float(last.get("wall_time", 0.0)), 1),
        "learner_steps_per_s": {
            "overall": round(last.get("step", 0) / max(last.get("wall_time", 1.0), 1e-9), 3),
            "median_window": round(float(np.median(steps_per_s)), 3) if steps_per_s else None,
        },
        "actor_batch_seconds_median": round(float(np.median([r["actor/batch_seconds"] for r in train])), 3)
        if train else None,
        "learner_wait_fraction_median": round(float(np.median([r["learner/wait_fraction"] for r in train])), 3)
        if train else None,
        "original_release_curve": ORIGINAL_CURVE,
        "note": "learner_wall_time_s: seconds of training (warm-start loading excluded) when the learner "
                "reached the step; the overall rate includes dev evaluations, checkpoints and compilation",
    }
    if args.startup_s is not None:
        figures.update(time_to_accuracy(curve, args.startup_s))
    print(common.write_result(args.name, figures, args.command))


def keep_small_copy(workdir: str, out: str, every: int) -> None:
    """What the learning-curves notebook reads of a run (its config and metrics), small enough for the
    repository: a 25k-step run logs a training record every 10 steps, the copy one every `every`."""
    import json
    import shutil
    from pathlib import Path

    from mapo_jax.io_utils import atomic_write_text
    from mapo_jax.metrics import METRICS_FILE, read_metrics

    Path(out).mkdir(parents=True, exist_ok=True)
    shutil.copyfile(Path(workdir) / "config.json", Path(out) / "config.json")
    kept = [r for r in read_metrics(workdir) if "train/loss" not in r or r["step"] % every == 0]
    atomic_write_text(Path(out) / METRICS_FILE, "".join(json.dumps(r) + "\n" for r in kept))


PAPER_MEAN_DEV = 0.423  # MAPO on WTQ dev, mean of 5 runs (paper Table 1)


def time_to_accuracy(curve, startup_s: float) -> dict:
    """The dev curve against seconds since the user started (startup included), and when it first
    reached the paper's mean (None if it has not)."""
    total = [{"step": c["step"], "wall_time_s": round(startup_s + c["learner_wall_time_s"], 1),
              "dev_accuracy": c["dev_accuracy"]} for c in curve]
    reached = [c for c in total if c["dev_accuracy"] >= PAPER_MEAN_DEV]
    return {"startup_s": round(startup_s, 1), "dev_curve_total_wall_time": total,
            "time_to_paper_mean_s": reached[0]["wall_time_s"] if reached else None}


if __name__ == "__main__":
    main()
