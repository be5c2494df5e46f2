"""Predictions files: official line handling, scoring, and the evaluate.py command end to end."""

import subprocess
import sys
from pathlib import Path

import pytest

from mapo_jax.data import predictions, wtq
from mapo_jax.errors import UserInputError

REPO = Path(__file__).resolve().parents[1]

SPLIT = (
    "id\tutterance\tcontext\ttargetValue\n"
    "q-1\thow many?\tcsv/200-csv/0.csv\t12,467\n"
    "q-2\twhich ones?\tcsv/200-csv/0.csv\tParis|Rome\n"
    "q-3\twhen?\tcsv/200-csv/0.csv\tJune 25, 2008\n"
    "q-4\twho?\tcsv/200-csv/0.csv\tBob\n"
)


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return path


def test_scoring_follows_the_official_line_rules(tmp_path):
    split = _write(tmp_path, "split.tsv", SPLIT)
    preds = _write(
        tmp_path, "pred.tsv",
        "q-1\t12467.0\n"          # number vs thousands-separated gold: right with inferred canon
        "q-2\tRome\tParis\n"       # order-free list
        "q-3\t2008-06-25\r\n"      # CR stays in the field; the number/date parser strips it
        "\n",                      # an empty line holds no prediction
    )
    targets = wtq.read_targets(split)
    score = predictions.score_predictions(preds, targets, expected_ids=list(targets))
    assert [(line.id, line.correct) for line in score.lines] == [("q-1", True), ("q-2", True), ("q-3", True)]
    assert score.missing_ids == ["q-4"]
    assert (score.n_correct, score.n_scored) == (3, 3)
    raw = predictions.score_predictions(preds, wtq.read_targets(split, infer=False))
    assert [line.correct for line in raw.lines][:1] == [False]  # "12,467" stays a string


def test_an_id_alone_is_an_empty_answer(tmp_path):
    targets = wtq.read_targets(_write(tmp_path, "split.tsv", SPLIT))
    score = predictions.score_predictions(_write(tmp_path, "pred.tsv", "q-4\n"), targets)
    assert [(line.id, line.correct, line.predictions) for line in score.lines] == [("q-4", False, [])]


def _refusal(tmp_path, text):
    targets = wtq.read_targets(_write(tmp_path, "split.tsv", SPLIT))
    with pytest.raises(UserInputError) as error:
        predictions.score_predictions(_write(tmp_path, "pred.tsv", text), targets, gold_name="split.tsv")
    return str(error.value)


def test_a_duplicated_id_is_refused_not_scored_twice(tmp_path):
    message = _refusal(tmp_path, "q-1\t12467\nq-2\tRome\tParis\nq-1\t12467\nq-2\tRome\n")
    assert "pred.tsv: 2 ids have more than one line, e.g. 'q-1' on lines 1 and 3" in message


def test_a_file_for_another_split_is_refused(tmp_path):
    """Scored before on the one id the two splits share: `accuracy 1/1 = 1.0000`."""
    message = _refusal(tmp_path, "q-1\t12467\nnt-7\tfoo\nnt-8\tbar\n")
    assert "pred.tsv: 2 of 3 prediction ids are not in split.tsv (first: 'nt-7' on line 2)" in message


def test_a_line_without_a_tab_is_named(tmp_path):
    message = _refusal(tmp_path, "q-1\t12467\nq-2 Paris Rome\n")
    assert "pred.tsv:2: 'q-2 Paris Rome' is no question id of split.tsv, and the line has no tab" in message


def test_written_predictions_score_as_their_values(tmp_path):
    path = tmp_path / "out.tsv"
    predictions.write_predictions(path, {"q-1": [12467.0], "q-2": ["paris", "rome"], "q-4": ["a|b"]})
    assert path.read_text().splitlines()[0] == "q-1\t12467.0"
    assert predictions.read_prediction_lines(path)[2] == ("q-4", ["a\\pb"])


def _evaluate(*args):
    return subprocess.run(
        [sys.executable, str(REPO / "launch" / "evaluate.py"), *args],
        capture_output=True, text=True, timeout=120,
    )


def test_evaluate_command(tmp_path):
    split = _write(tmp_path, "split.tsv", SPLIT)
    preds = _write(tmp_path, "pred.tsv", "q-1\t12467\nq-2\tParis\tRome\nq-3\t2008\nq-4\tbob\n")
    details = tmp_path / "details.tsv"
    result = _evaluate(f"--predictions={preds}", f"--split_file={split}", f"--details={details}")
    assert result.returncode == 0, result.stderr
    assert "accuracy 3/4 = 0.7500" in result.stdout
    assert details.read_text() == "q-1\tTrue\nq-2\tTrue\nq-3\tFalse\nq-4\tTrue\n"


def test_evaluate_uses_target_canon_of_a_tagged_file(tmp_path):
    split = _write(tmp_path, "split.tsv", SPLIT)
    tagged = _write(
        tmp_path, "t.tagged",
        "id\tutterance\tcontext\ttargetValue\ttargetCanon\nq-4\twho?\tcsv/200-csv/0.csv\tBob\t7.0\n",
    )
    preds = _write(tmp_path, "pred.tsv", "q-4\t7\n")
    result = _evaluate(f"--predictions={preds}", f"--split_file={split}", f"--tagged_file={tagged}")
    assert "accuracy 1/1 = 1.0000" in result.stdout
    assert "missing predictions: 3" in result.stdout


def test_evaluate_reports_bad_input_without_a_traceback(tmp_path):
    result = _evaluate(f"--predictions={tmp_path / 'none.tsv'}", f"--split_file={tmp_path / 'none.tsv'}")
    assert result.returncode == 2
    assert "does not exist" in result.stderr and "Traceback" not in result.stderr
