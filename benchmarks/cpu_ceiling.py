"""The machine's own ceiling for process actors: how much more pure-Python work N processes do than
one, with nothing shared between them. Process actors share nothing but their queues, so their
speed-up over one actor cannot beat this one (issue 11 asks 1.8x for 2 actors).

    python benchmarks/cpu_ceiling.py [--processes=1,2] [--seconds=20]

Run it on an idle machine: anything else running takes cores from it.
"""

from __future__ import annotations

import argparse
import multiprocessing
import time

import common


def python_work(seconds: float) -> int:
    """Rounds of dict, list and string work, the interpreter's kind of load, done in `seconds`."""
    rounds, end = 0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        table = {f"row{i}": i * 3 for i in range(200)}
        [key for key, value in table.items() if value % 2 == 0]
        rounds += 1
    return rounds


def rounds_per_s(processes: int, seconds: float) -> float:
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        pool.map(python_work, [0.5] * processes)  # start every worker before the clock
        return sum(pool.map(python_work, [seconds] * processes)) / seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--processes", default="1,2")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--out", default="cpu_ceiling")
    args = parser.parse_args()
    counts = [int(n) for n in args.processes.split(",")]
    rates = {n: rounds_per_s(n, args.seconds) for n in counts}
    runs = [{"processes": n, "rounds_per_s": round(rate, 1), "speedup": round(rate / rates[counts[0]], 3)}
            for n, rate in rates.items()]
    figures = {"runs": runs, "note": f"pure-Python work in independent processes, {args.seconds:g} s each; "
                                     f"speedup against {counts[0]} process(es): the ceiling for process actors"}
    print(common.write_result(args.out, figures))


if __name__ == "__main__":
    main()
