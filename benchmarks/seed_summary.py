"""Issue 10's seed report: each seed's best dev accuracy, their mean ± sample std against the paper's
42.3 ± 0.3, and the seeds' ensemble on dev by program and by answer.

    python launch/evaluate.py --ensemble=$HOME/mapo_runs/wtq_mapo_seed0,...,seed2 --output_dir=/tmp/wtq_ensemble
    python benchmarks/seed_summary.py --runs="$HOME/mapo_runs/wtq_mapo_seed[0-9]" --ensemble_dir=/tmp/wtq_ensemble \
        [--name=wtq_mapo_seeds]

Reads the runs' metrics.jsonl (mapo_jax.analysis.runs: best = the maximum over a run's dev evaluations,
which is the checkpoint `--checkpoint=best` keeps) and the ensemble's summary.json files (written by
launch/evaluate.py: beam 5, official matching). The runs must be one method (same objective and
settings): a mean over different configurations is no seed spread.
"""

from __future__ import annotations

import argparse
import collections
import json
from pathlib import Path

from common import write_result

from mapo_jax.analysis import runs as R

PAPER_DEV = {"mean": 0.423, "std": 0.003, "runs": 5}


def seed_figures(runs) -> dict:
    """Per-seed best (and its step) and the table row of their one method."""
    rows = R.ablation_table(runs)
    if len(rows) != 1:
        raise SystemExit(f"the runs are {len(rows)} methods ({', '.join(r['method'] for r in rows)}), not one")
    duplicated = sorted(seed for seed, count in collections.Counter(run.seed for run in runs).items() if count > 1)
    if duplicated:
        raise SystemExit(f"seed(s) {duplicated} appear twice (a run and a copy of it?): give each run once")
    seeds = []
    for run in sorted(runs, key=lambda r: r.seed):
        best = int(run.dev_accuracy.argmax())
        seeds.append({"seed": run.seed, "run": str(run.path), "best_dev": round(float(run.dev_accuracy[best]), 6),
                      "best_step": int(run.steps[best]), "last_step_evaluated": int(run.steps[-1])})
    row = rows[0]
    return {"method": row["method"], "seeds": seeds, "best_dev_mean": round(row["best_mean"], 6),
            "best_dev_std": round(row["best_std"], 6), "paper_dev": PAPER_DEV}


def ensemble_figures(directory: Path) -> dict:
    """Accuracy of each member and of the two ensembles, from launch/evaluate.py's summaries."""
    figures = {}
    for summary_path in sorted(directory.glob("*/summary.json")):
        summary = json.loads(summary_path.read_text())
        figures[summary_path.parent.name] = {"accuracy": round(summary["official_accuracy"], 6),
                                             "questions": summary["questions"], "beam_size": summary["beam_size"],
                                             "source": summary.get("runs") or summary.get("run") or summary.get("model")}
    missing = {"by_program", "by_answer"} - set(figures)
    if missing:
        raise SystemExit(f"{directory} lacks {', '.join(sorted(missing))}: run launch/evaluate.py --ensemble first")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", required=True, help="run directories or a glob pattern, comma-separated")
    parser.add_argument("--ensemble_dir", help="launch/evaluate.py --ensemble's --output_dir")
    parser.add_argument("--name", default="wtq_mapo_seeds")
    parser.add_argument("--command", help="the commands that made the runs and the ensemble, as recorded")
    args = parser.parse_args()
    runs = R.load_runs([pattern for pattern in args.runs.split(",") if pattern])
    if not runs:
        raise SystemExit(f"no run directory matches --runs={args.runs}")
    figures = seed_figures(runs)
    if args.ensemble_dir:
        figures["ensemble"] = ensemble_figures(Path(args.ensemble_dir))
    print(json.dumps(figures, indent=1))
    print("wrote", write_result(args.name, figures, args.command))


if __name__ == "__main__":
    main()
