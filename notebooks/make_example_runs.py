"""Trains the small toy runs that `learning_curves.ipynb` shows when it is given no run directories.

    python notebooks/make_example_runs.py                     # all methods, seeds 0 and 1
    python notebooks/make_example_runs.py --methods mapo reinforce --seeds 0 --n_steps 40

Every run trains in a scratch directory through `mapo_jax.training.train_and_evaluate(..., workdir=...)`; only
its `config.json` (written here if the training code did not write one) and `metrics.jsonl` are copied to
`OUT/<method>-seed<k>/`, a few KB per run, so the example runs can live in git. The settings are tiny (a
32-unit model, 60 steps of 10 questions): the curves show the shape of the comparison, not the paper's numbers.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

# The runs differ only in these settings (the rows of the paper's Table 2).
METHODS = {
    "mapo": {"objective": "mapo", "alpha": 0.1},
    "mapo_no_clip": {"objective": "mapo", "alpha": 0.0},
    "mapo_no_systematic": {"objective": "mapo", "alpha": 0.1, "systematic_exploration": False},
    "reinforce": {"objective": "reinforce"},
    "mml": {"objective": "mml"},
    "hard_em": {"objective": "hard_em"},
    "iml": {"objective": "iml"},
}
# Shared tiny settings; keys the TrainConfig of the checkout lacks are dropped.
BASE = {"hidden_size": 32, "min_count": 1, "n_steps": 60, "eval_every": 10, "questions_per_step": 10,
        "n_actors": 1, "checkpoint_every": 1000, "log_every": 10}
WARM_START_ROLLOUTS = 30
OUT = Path(__file__).resolve().parent / "example_runs"


def train_config(method: str, seed: int, **overrides):
    """The TrainConfig of one example run (fields unknown to this checkout's TrainConfig are ignored)."""
    from mapo_jax.config import TrainConfig

    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    settings = {**BASE, **METHODS[method], **overrides, "seed": seed}
    return TrainConfig(**{k: v for k, v in settings.items() if k in fields})


def config_record(data_config, train_cfg, model_config) -> dict:
    """`config.json` as the run-directory contract has it: {"data", "train", "model"} field dicts."""
    return {"data": dataclasses.asdict(data_config), "train": dataclasses.asdict(train_cfg),
            "model": dataclasses.asdict(model_config)}


def run_one(method: str, seed: int, out: Path, log, **overrides) -> Path:
    """Trains one run in a scratch workdir and copies its config.json and metrics.jsonl to `out/<name>`."""
    from mapo_jax.config import DataConfig
    from mapo_jax.training import train_and_evaluate

    data_config = DataConfig(dataset="toy", split="1")
    cfg = train_config(method, seed, **overrides)
    kwargs = {}
    if "warm_start_config" in inspect.signature(train_and_evaluate).parameters:
        from mapo_jax.explore.warm_start import WarmStartConfig

        # A small single-process warm start (the default explores 1000+ rollouts per question on all cores).
        kwargs["warm_start_config"] = WarmStartConfig(rollouts_per_example=WARM_START_ROLLOUTS,
                                                      extra_rollouts_for_hard=0, processes=1, seed=seed)
    target = out / f"{method}-seed{seed}"
    with tempfile.TemporaryDirectory(prefix="mapo_example_run_") as scratch:
        result = train_and_evaluate(data_config, cfg, log=log, workdir=scratch, **kwargs)
        scratch = Path(scratch)
        if not (scratch / "config.json").exists():
            record = config_record(data_config, cfg, result["config"])
            (scratch / "config.json").write_text(json.dumps(record, indent=1))
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        for name in ("config.json", "metrics.jsonl"):
            shutil.copy(scratch / name, target / name)
    return target


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--n_steps", type=int, default=BASE["n_steps"])
    parser.add_argument("--eval_every", type=int, default=BASE["eval_every"])
    parser.add_argument("--quiet", action="store_true", help="print one line per run only")
    args = parser.parse_args(argv)
    log = (lambda message: None) if args.quiet else (lambda message: print(message, flush=True))
    for method in args.methods:
        for seed in args.seeds:
            start = time.time()
            path = run_one(method, seed, args.out, log, n_steps=args.n_steps, eval_every=args.eval_every)
            print(f"{method} seed {seed}: {path} ({time.time() - start:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":  # the warm start may use worker processes: keep the main-module guard
    sys.exit(main())
