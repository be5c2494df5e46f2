"""Kill -9 a toy training at random moments; the same command must always finish the run exactly.

    python benchmarks/kill_resume.py [--kills=20] [--seed=0] [--steps=300] [--max_delay=40]

First one uninterrupted reference run. Then a second run directory is trained with the same command
and killed with SIGKILL `--kills` times: once the moment the first best checkpoint after step 0
appears (the fault where a best checkpoint newer than the last regular checkpoint blocked every
resume), the others at moments drawn uniformly in (0.5, `--max_delay`) seconds after each start, so
kills land in start-up, compilation, training steps, evaluations and checkpoint saves (an attempt
that outlives a checkpoint moves the run on). After every kill the same command is started again;
after the last one it runs to the end.

Checked at the end: the run finished (exit 0), its training metrics equal the reference's (timing
keys aside), and its dev records are exactly the reference's (no step duplicated or missing, same
accuracies). Writes results/kill_resume.json.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common

TIMING_KEYS = ("wall_time", "learner/", "actor/batch_seconds", "actor/batches_per_s", "queue/", "eval/", "dev/seconds")


def command(workdir: Path, steps: int) -> list:
    return [sys.executable, "launch/train.py", "--flagfile=toy.flags", "--hidden_size=16", f"--n_steps={steps}",
            "--eval_every=120", "--checkpoint_every=100", f"--workdir={workdir}"]


def records(workdir: Path):
    lines = (workdir / "metrics.jsonl").read_text().splitlines()
    all_records = [json.loads(line) for line in lines if line.strip()]
    train = [{k: v for k, v in r.items() if not k.startswith(TIMING_KEYS)} for r in all_records if "train/loss" in r]
    dev = sorted((r["step"], r["dev/accuracy"]) for r in all_records if "dev/accuracy" in r)
    return train, dev


def run_to_end(workdir: Path, steps: int) -> tuple:
    start = time.perf_counter()
    result = subprocess.run(command(workdir, steps), cwd=common.REPO, capture_output=True, text=True)
    return result, time.perf_counter() - start


def kill_after(workdir: Path, steps: int, delay: float = None, until_path: Path = None) -> str:
    """Starts the command, SIGKILLs it after `delay` seconds or once `until_path` exists; says how
    it ended (a run that finished before the kill is reported as such)."""
    process = subprocess.Popen(command(workdir, steps), cwd=common.REPO, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    start = time.perf_counter()
    while process.poll() is None:
        due = (until_path is not None and until_path.exists()) or (delay is not None and time.perf_counter() - start >= delay)
        if due:
            process.send_signal(signal.SIGKILL)
            process.wait()
            return f"killed after {time.perf_counter() - start:.1f} s"
        time.sleep(0.05)
    if process.returncode != 0:
        raise SystemExit(f"a restart failed (exit {process.returncode}):\n{process.stderr.read()[-3000:]}")
    return "finished before the kill"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--max_delay", type=float, default=40.0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    root = Path(tempfile.mkdtemp(prefix="kill_resume_"))
    try:
        reference, killed = root / "reference", root / "killed"
        result, seconds = run_to_end(reference, args.steps)
        if result.returncode != 0:
            raise SystemExit(f"the reference run failed:\n{result.stderr[-3000:]}")
        print(f"reference run: {seconds:.0f} s", flush=True)
        events = [kill_after(killed, args.steps, until_path=killed / "checkpoints/best/120")]
        print(f"kill 1 (best/120 appears): {events[-1]}", flush=True)
        for k in range(2, args.kills + 1):
            delay = rng.uniform(0.5, args.max_delay)
            events.append(f"at {delay:.1f} s: " + kill_after(killed, args.steps, delay=delay))
            print(f"kill {k}: {events[-1]}", flush=True)
        result, _ = run_to_end(killed, args.steps)
        train_ref, dev_ref = records(reference)
        train, dev = records(killed)
        figures = {
            "kills": args.kills,
            "kills_that_landed": sum(1 for e in events if "killed" in e),
            "events": events,
            "final_exit_code": result.returncode,
            "train_records_equal": train == train_ref,
            "n_train_records": [len(train), len(train_ref)],
            "dev_records": dev,
            "dev_records_equal": dev == dev_ref,
            "reference_seconds": round(seconds, 1),
            "damaged_checkpoints_skipped": sorted(p.name for p in (killed / "checkpoints/damaged").glob("*")),
        }
        figures["passed"] = bool(result.returncode == 0 and figures["train_records_equal"] and figures["dev_records_equal"])
        path = common.write_result("kill_resume", figures)
        print(json.dumps({k: v for k, v in figures.items() if k != "events"}, indent=1))
        print(f"wrote {path}")
        if not figures["passed"]:
            print(result.stderr[-3000:], file=sys.stderr)
            sys.exit(1)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
