"""The random-exploration warm start on WTQ: wall time, throughput, coverage; trigger-word ablation.

    python benchmarks/warm_start_benchmark.py --run_dir=DIR        # figures of a finished full run
    python benchmarks/warm_start_benchmark.py --ablation=1000      # trigger words on/off, 1000 questions

The full run itself is `python launch/explore.py --flagfile=wtq.flags --split=train --out=DIR`.
"""

import argparse
import json
import tempfile
from pathlib import Path

from common import RESULTS, write_result

from mapo_jax.data.wtq import load_wtq
from mapo_jax.explore.warm_start import WarmStartConfig, run_warm_start


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--run_dir", type=Path, help="output directory of a finished launch/explore.py run")
    parser.add_argument("--ablation", type=int, default=0, help="questions for the trigger-word ablation")
    parser.add_argument("--rollouts", type=int, default=1000)
    parser.add_argument("--reachability", type=int, default=0,
                        help="questions for the reachability estimate (large budget, no trigger words)")
    parser.add_argument("--reachability_rollouts", type=int, default=20000)
    args = parser.parse_args()
    previous = RESULTS / "warm_start.json"  # keep earlier sections (ablation, reachability)
    figures = json.loads(previous.read_text())["figures"] if previous.exists() else {}
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
    if args.reachability:
        # How many questions a much larger search (no trigger words) solves that 1000 rollouts miss:
        # an estimate of "every question whose answer is reachable within 3 expressions is found".
        dataset = load_wtq("train")
        n = args.reachability
        found = {}
        for name, config in {
            "standard": WarmStartConfig(args.rollouts),
            "large": WarmStartConfig(args.reachability_rollouts, trigger_words=False),
        }.items():
            with tempfile.TemporaryDirectory() as out:
                stats = run_warm_start(dataset, out, config, n_examples=n, log=lambda m: None)
                programs = json.loads((Path(out) / "programs.json").read_text())["programs"]
            found[name] = {i for i, p in programs.items() if p}
            figures.setdefault("reachability", {})[name] = {
                "rollouts_per_example": config.rollouts_per_example, "trigger_words": config.trigger_words,
                "coverage": stats["coverage"], "fully_explored": stats["examples_fully_explored"],
                "wall_time_s": stats["wall_time_s"]}
        figures["reachability"]["examples"] = n
        figures["reachability"]["found_by_large_only"] = len(found["large"] - found["standard"])
        figures["reachability"]["found_by_standard_only"] = len(found["standard"] - found["large"])
        print(figures["reachability"])
    print("wrote", write_result("warm_start", figures))


if __name__ == "__main__":
    main()
