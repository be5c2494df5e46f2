"""The random-exploration warm start on WTQ: wall time, throughput, coverage; trigger-word ablation.

    python benchmarks/warm_start_benchmark.py --run_dir=DIR        # figures of a finished full run
    python benchmarks/warm_start_benchmark.py --ablation=1000      # trigger words on/off, 1000 questions

The full run itself is `python launch/explore.py --flagfile=wtq.flags --split=train --out=DIR`.
"""

import argparse
import json
import tempfile
from pathlib import Path

from common import write_result

from mapo_jax.data.wtq import load_wtq
from mapo_jax.explore.warm_start import WarmStartConfig, run_warm_start


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--run_dir", type=Path, help="output directory of a finished launch/explore.py run")
    parser.add_argument("--ablation", type=int, default=0, help="questions for the trigger-word ablation")
    parser.add_argument("--rollouts", type=int, default=1000)
    args = parser.parse_args()
    figures = {}
    if args.run_dir:
        stats = json.loads((args.run_dir / "stats.json").read_text())
        figures["full_run"] = {k: v for k, v in stats.items() if k != "settings"}
        figures["full_run"]["command"] = (
            f"python launch/explore.py --flagfile=wtq.flags --split=train --out={args.run_dir}")
    if args.ablation:
        dataset = load_wtq("train")
        figures["trigger_ablation"] = {}
        for name, config in {
            "trigger_words_with_degree_words": WarmStartConfig(args.rollouts),
            "trigger_words_without_pos_triggers": WarmStartConfig(args.rollouts, degree_words=False),
            "no_trigger_words": WarmStartConfig(args.rollouts, trigger_words=False),
        }.items():
            with tempfile.TemporaryDirectory() as out:
                stats = run_warm_start(dataset, out, config, n_examples=args.ablation, log=lambda m: None)
            figures["trigger_ablation"][name] = {
                "examples": stats["examples"], "coverage": stats["coverage"],
                "programs_per_example": stats["programs_per_example"],
                "rollouts_per_second": stats["rollouts_per_second"], "wall_time_s": stats["wall_time_s"],
            }
            print(name, figures["trigger_ablation"][name])
    name = "warm_start" if args.run_dir else "warm_start_ablation"
    if args.run_dir and args.ablation:
        name = "warm_start"
    print("wrote", write_result(name, figures))


if __name__ == "__main__":
    main()
