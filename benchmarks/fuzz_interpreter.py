"""Fuzz run: random valid tokens on real WTQ tables; counts exceptions and checks every program.

    python benchmarks/fuzz_interpreter.py [--steps=100000]

Every finished program is re-executed from its token string in a fresh context (no shared memo)
and must give the same answer, end well (no row-set answer, no unused variable) and score through
the official matching without error. Exits non-zero on any failure.
"""

import argparse
import random
import sys
import time
import traceback

from common import write_result

from mapo_jax.data.values import denotation_values
from mapo_jax.data.wtq import load_wtq
from mapo_jax.lisp import types as T
from mapo_jax.lisp.interpreter import ProgramContext


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    dataset = load_wtq("training")
    rng = random.Random(args.seed)
    examples = list(dataset.examples)
    rng.shuffle(examples)
    steps = programs = exceptions = failures = dead_ends = 0
    tables = set()
    messages = []
    start = time.perf_counter()
    for example in examples:
        if steps >= args.steps:
            break
        table = dataset.tables[example.table]
        tables.add(example.table)
        context = ProgramContext(table, example.entities, example_id=example.id)
        for _ in range(20):
            try:
                state = context.initial_state()
                while not state.done:
                    valid = state.valid_tokens()
                    if not valid:
                        dead_ends += 1
                        break
                    state = state.step(rng.choice(valid))
                    steps += 1
                if not state.done:
                    continue
                programs += 1
                fresh = ProgramContext(table, example.entities, example_id=example.id)
                again = fresh.replay(" ".join(state.tokens))
                denotation_values(again.denotation())
                ok = (again.denotation() == state.denotation() and again.result.type != T.ENTITY_LIST
                      and not again.unused_variables())
                if not ok:
                    failures += 1
                    messages.append(f"{example.id}: {' '.join(state.tokens)}")
            except Exception:  # counted, never hidden
                exceptions += 1
                messages.append(traceback.format_exc(limit=3))
    seconds = time.perf_counter() - start
    figures = {
        "steps": steps, "programs": programs, "tables": len(tables), "exceptions": exceptions, "replay_failures": failures,
        "dead_ends": dead_ends, "seconds": round(seconds, 1), "first_problems": messages[:5],
    }
    print(figures)
    print("wrote", write_result("fuzz_interpreter", figures))
    sys.exit(1 if exceptions or failures or dead_ends else 0)


if __name__ == "__main__":
    main()
