"""The README's main command runs end to end on the embedded toy dataset (no download)."""

import json
import subprocess
import sys
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


def test_train_command_runs(tmp_path):
    """`launch/train.py` on the toy flagfile, shrunk to a few steps: it trains and writes metrics."""
    result = subprocess.run(
        [sys.executable, "launch/train.py", "--flagfile=toy.flags", "--n_steps=4", "--eval_every=2",
         "--warm_start_rollouts=10", f"--workdir={tmp_path}", f"--cache_dir={tmp_path / 'cache'}"],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [0, 2, 4]
    assert 0.0 <= records[-1]["dev/accuracy"] <= 1.0
