"""Interpreter throughput on real WTQ tables: steps/s and rollouts/s in one process.

    python benchmarks/interpreter_benchmark.py [--examples=300] [--rollouts=100]

Two regimes: `cold` (every question's first rollouts, where each prefix is analysed once) and
`warm` (rollouts once the question's trie of states is built). Uniform random walks over the valid
tokens, as the warm start does without its exploration bookkeeping.
"""

import argparse
import random
import time

from common import write_result

from mapo_jax.data.wtq import load_wtq
from mapo_jax.lisp.functions import TableView
from mapo_jax.lisp.interpreter import ProgramContext


def walk(context, rng):
    state = context.initial_state()
    steps = 0
    while not state.done:
        state = state.step(rng.choice(state.valid_tokens()))
        steps += 1
    return steps


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--examples", type=int, default=300)
    parser.add_argument("--rollouts", type=int, default=100)
    args = parser.parse_args()
    dataset = load_wtq("train")
    examples = dataset.examples[: args.examples]
    rng = random.Random(0)
    figures = {}
    for regime in ("cold", "warm"):
        steps = rollouts = 0
        seconds = 0.0
        for example in examples:
            table = dataset.tables[example.table]
            context = ProgramContext(table, example.entities, view=TableView(table))
            if regime == "warm":
                for _ in range(args.rollouts):
                    walk(context, rng)
            start = time.perf_counter()
            for _ in range(args.rollouts):
                steps += walk(context, rng)
                rollouts += 1
            seconds += time.perf_counter() - start
        figures[regime] = {
            "rollouts": rollouts,
            "steps": steps,
            "seconds": round(seconds, 3),
            "rollouts_per_s": round(rollouts / seconds, 1),
            "steps_per_s": round(steps / seconds, 1),
            "mean_program_length": round(steps / rollouts, 2),
        }
        print(regime, figures[regime])
    figures["setting"] = f"{len(examples)} random-split-1 training questions x {args.rollouts} uniform rollouts, one process"
    print("wrote", write_result("interpreter", figures))


if __name__ == "__main__":
    main()
