"""The README's main command runs end to end on the embedded toy dataset (no download)."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_quickstart_command_on_the_toy_dataset(tmp_path):
    stats = tmp_path / "stats.json"
    result = subprocess.run(
        [sys.executable, "launch/preprocess.py", "--flagfile=toy.flags", f"--stats_json={stats}",
         f"--cache_dir={tmp_path / 'cache'}"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(stats.read_text())
    for part in ("train", "dev"):
        assert report["parts"][part]["examples"] > 0
        assert report["parts"][part]["gold_programs"] == report["parts"][part]["gold_programs_correct"] > 0


def test_unknown_flag_and_missing_data_fail_clearly(tmp_path):
    result = subprocess.run([sys.executable, "launch/preprocess.py", "--no_such_flag=1"],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "no_such_flag" in result.stderr
    result = subprocess.run([sys.executable, "launch/preprocess.py", "--flagfile=wtq.flags",
                             f"--data_dir={tmp_path}"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "MAPO_DATA_DIR" in result.stderr and "Traceback" not in result.stderr


def _run(args, timeout=600):
    return subprocess.run([sys.executable] + args, cwd=REPO, capture_output=True, text=True, timeout=timeout)


def test_train_evaluate_and_predict_commands(tmp_path):
    """`launch/train.py` on the toy flagfile, shrunk to a few steps, then the run is evaluated,
    asked a question about a CSV table, and restarted (it is complete: nothing to do)."""
    run = tmp_path / "run"
    train = ["launch/train.py", "--flagfile=toy.flags", "--n_steps=6", "--eval_every=3", "--rollouts_per_example=10",
             f"--workdir={run}", f"--cache_dir={tmp_path / 'cache'}"]
    result = _run(train)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "best dev accuracy" in result.stdout
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "dev/accuracy" in r] == [0, 3, 6]
    assert all(0.0 <= r["dev/accuracy"] <= 1.0 for r in records if "dev/accuracy" in r)

    result = _run(["launch/evaluate.py", f"--workdir={run}", "--beam_size=2", "--checkpoint=latest",
                   f"--cache_dir={tmp_path / 'cache'}"])
    assert result.returncode == 0, result.stderr[-2000:]
    assert "accuracy" in result.stdout and "(step 6)" in result.stdout
    out = run / "eval" / "dev-latest"
    assert len((out / "predictions.tsv").read_text().splitlines()) == 160
    assert json.loads((out / "summary.json").read_text())["questions"] == 160

    result = _run(["launch/evaluate.py", f"--ensemble={run},{run}", "--beam_size=2", f"--output_dir={tmp_path / 'ens'}",
                   f"--cache_dir={tmp_path / 'cache'}"])
    assert result.returncode == 0, result.stderr[-2000:]
    assert "ensemble of 2 by program" in result.stdout and "ensemble of 2 by answer" in result.stdout

    table = tmp_path / "medals.csv"
    table.write_text("Nation,Gold,Silver\nPeru,3,1\nChile,5,2\nBrazil,1,4\n")
    result = _run(["launch/predict.py", f"--workdir={run}", f"--table={table}",
                   "--question=which nation has the most gold?", "--beam_size=3"])
    assert result.returncode == 0, result.stderr[-2000:]
    assert "1. p=" in result.stdout and "answer:" in result.stdout
    assert "warning" not in result.stderr
    wide = tmp_path / "wide.csv"  # 40 columns of strings and numbers: 80 properties, more than memory holds
    wide.write_text(",".join(f"c{k}" for k in range(40)) + "\n" + ",".join(str(k) for k in range(40)) + "\n")
    result = _run(["launch/predict.py", f"--workdir={run}", f"--table={wide}", "--question=??", "--beam_size=2"])
    assert result.returncode == 0, result.stderr[-2000:]
    assert "the question '??' has no words" in result.stderr
    assert "offers 80 properties" in result.stderr and "cannot use the properties " in result.stderr
    assert "r.c39-number" in result.stderr
    result = _run(["launch/predict.py", f"--workdir={run}", f"--table={tmp_path / 'none.csv'}", "--question=x"])
    assert result.returncode == 2 and "none.csv" in result.stderr

    result = _run(train)  # the same command again: the run is complete
    assert result.returncode == 0, result.stderr[-2000:]
    assert "resuming" in result.stdout and "step 6" in result.stdout


def _wait_for(predicate, process, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        if process.poll() is not None:
            raise AssertionError(f"the run ended early: {process.stderr.read()[-2000:]}")
        time.sleep(0.5)
    process.kill()
    raise AssertionError("timed out")


def _trained_steps(run):
    path = run / "metrics.jsonl"
    if not path.exists():
        return 0
    steps = [json.loads(line)["step"] for line in path.read_text().splitlines() if '"train/loss"' in line]
    return max(steps, default=0)


def test_ctrl_c_checkpoints_and_a_killed_run_resumes(tmp_path):
    run = tmp_path / "run"
    command = [sys.executable, "launch/train.py", "--flagfile=toy.flags", "--n_steps=100000", "--eval_every=100000",
               "--rollouts_per_example=10", "--log_every=2", "--checkpoint_every=4", f"--workdir={run}",
               f"--cache_dir={tmp_path / 'cache'}"]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: _trained_steps(run) >= 4, process)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err[-2000:]  # stopped, not finished
    assert "checkpoint written" in out and "Traceback" not in err
    stopped_at = _trained_steps(run)
    latest = max(int(p.name) for p in (run / "checkpoints" / "latest").iterdir() if p.name.isdigit())
    assert latest >= stopped_at - 1  # the checkpoint is of the step it stopped at

    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: _trained_steps(run) >= latest + 8, process)  # two more periodic checkpoints
    process.kill()  # SIGKILL: no chance to save anything
    process.communicate(timeout=60)
    result = subprocess.run(command[:3] + ["--n_steps=1"] + command[4:], cwd=REPO, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    resumed = int(result.stdout.split("resuming")[1].split("from step ")[1].split()[0])
    assert resumed >= latest + 8 - 4  # from the newest checkpoint the killed run wrote
