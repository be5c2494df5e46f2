"""Bad input is named in one line with exit status 2; our own bugs keep their traceback."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mapo_jax.data import wtq
from mapo_jax.data.annotate import has_words
from mapo_jax.data.tables import TableFormatError
from mapo_jax.errors import UserInputError
from mapo_jax.lisp.interpreter import ProgramError

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "launch"))
import _common  # noqa: E402

SPLIT = "id\tutterance\tcontext\ttargetValue\nq-1\thow many?\tcsv/200-csv/0.csv\t3\nq-2\twho?\tcsv/200-csv/0.csv\tBob\n"


# --------------------------------------------------------------------------- launcher error handling
def _exit_of(error):
    """The exit status of a launcher main that raises `error` (None if the error propagated)."""

    @_common.friendly_errors
    def main(argv):
        raise error

    try:
        main(["prog"])
    except SystemExit as exit_:
        return exit_.code
    return None


def test_user_errors_are_one_line_and_exit_2(capsys, tmp_path):
    a_file = tmp_path / "run"
    a_file.write_text("")
    cases = [
        (UserInputError("--alpha must be in [0, 1], got 2"), "error: --alpha must be in [0, 1], got 2\n"),
        (TableFormatError("t.tagged:9: 4 fields"), "error: t.tagged:9: 4 fields\n"),
        (PermissionError(13, "Permission denied", "/runs/x"), "error: /runs/x: Permission denied\n"),
        (IsADirectoryError(21, "Is a directory", "/data"), "error: /data: is a directory where a file is expected\n"),
        (FileExistsError(17, "File exists", str(a_file)),
         f"error: {a_file}: is a file where a directory is expected\n"),
        (FileNotFoundError("--table: t.csv does not exist"), "error: --table: t.csv does not exist\n"),
    ]
    for error, expected in cases:
        assert _exit_of(error) == 2
        assert capsys.readouterr().err == expected


def test_internal_errors_keep_their_traceback():
    """The interpreter's ProgramError is a ValueError: it used to become `error: ...` and exit 2."""
    for error in (ProgramError("example q: token v9 may not come next"), ValueError("a bug"),
                  OSError(28, "No space left on device")):
        with pytest.raises(type(error)):
            _exit_of(error)


def test_existing_file_names_a_directory_and_a_missing_file(tmp_path):
    with pytest.raises(UserInputError, match=r"--table: .* is a directory; a file is expected"):
        _common.existing_file("table", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"--table: .*none.csv does not exist"):
        _common.existing_file("table", str(tmp_path / "none.csv"))


def _evaluate(*args):
    return subprocess.run([sys.executable, str(REPO / "launch" / "evaluate.py"), *args],
                          capture_output=True, text=True, timeout=120)


def test_evaluate_names_bad_paths_and_refuses_another_split(tmp_path):
    split = tmp_path / "split.tsv"
    split.write_text(SPLIT)
    preds = tmp_path / "pred.tsv"
    preds.write_text("q-1\t3\n")
    run_file = tmp_path / "run"
    run_file.write_text("")
    other = tmp_path / "other.tsv"
    other.write_text("q-1\t3\nnt-5\tx\nnt-6\ty\n")
    checks = [
        ([f"--predictions={tmp_path}", f"--split_file={split}"], "is a directory; a file is expected"),
        ([f"--predictions={preds}", f"--split_file={split}", f"--details={tmp_path}"],
         f"{tmp_path}: is a directory where a file is expected"),
        ([f"--workdir={run_file}"], "is a file; a training run's --workdir is expected"),
        ([f"--predictions={other}", f"--split_file={split}"], "2 of 3 prediction ids are not in"),
    ]
    for args, message in checks:
        result = _evaluate(*args)
        assert (result.returncode, result.stdout) == (2, ""), result.stderr
        assert message in result.stderr and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_evaluate_names_a_read_only_directory(tmp_path):
    split = tmp_path / "split.tsv"
    split.write_text(SPLIT)
    preds = tmp_path / "pred.tsv"
    preds.write_text("q-1\t3\n")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    result = _evaluate(f"--predictions={preds}", f"--split_file={split}", f"--details={locked / 'd.tsv'}")
    assert result.returncode == 2 and "d.tsv: Permission denied" in result.stderr
    assert "Traceback" not in result.stderr


# --------------------------------------------------------------------------- a damaged release
def _release(tmp_path, wtq_root, cut_table=False):
    """A copy of the release with two of its tables; the second one cut off mid-line if asked."""
    root = tmp_path / "data" / "WikiTableQuestions"
    (root / "data").mkdir(parents=True)
    (root / "tagged" / "200-tagged").mkdir(parents=True)
    for name in ("0.tagged", "1.tagged"):
        shutil.copy(wtq_root / "tagged" / "200-tagged" / name, root / "tagged" / "200-tagged" / name)
    if cut_table:
        damaged = root / "tagged" / "200-tagged" / "1.tagged"
        text = damaged.read_text(encoding="utf-8")
        damaged.write_text(text[: len(text) // 2], encoding="utf-8")
    questions = tmp_path / "questions.tsv"
    questions.write_text("id\tutterance\tcontext\ttargetValue\n"
                         "q-1\twhich album came first?\tcsv/200-csv/0.csv\tx\n"
                         "q-2\t?!\tcsv/200-csv/0.csv\tx\n")
    return tmp_path / "data", questions


def test_a_release_table_cut_off_mid_line_is_refused_naming_it(tmp_path, wtq_root):
    """Used to load with half the table's rows, exit 0, and only `table_line_warnings: 2` to show."""
    data_dir, questions = _release(tmp_path, wtq_root, cut_table=True)
    with pytest.raises(TableFormatError, match=r"1 tagged tables .* damaged[\s\S]*200-tagged/1\.tagged:\d+: "):
        wtq.load_wtq(str(questions), data_dir=data_dir, cache_dir=tmp_path / "cache")
    result = subprocess.run(
        [sys.executable, str(REPO / "launch" / "preprocess.py"), "--dataset=wtq", f"--split={questions}",
         f"--data_dir={data_dir}", f"--cache_dir={tmp_path / 'cache'}"],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "200-tagged/1.tagged:" in result.stderr and "Traceback" not in result.stderr


def test_a_question_without_words_is_counted_and_loads(tmp_path, wtq_root, caplog):
    data_dir, questions = _release(tmp_path, wtq_root)
    dataset = wtq.load_wtq(str(questions), data_dir=data_dir, cache_dir=tmp_path / "cache")
    assert [ex.id for ex in dataset.examples] == ["q-1", "q-2"]
    assert dataset.stats["questions_without_words"] == 1
    assert "1 questions have no words (e.g. q-2)" in caplog.text


def test_has_words():
    assert has_words(["who", "?"]) and has_words(["2"])
    assert not has_words(["?", "!"]) and not has_words([])


# --------------------------------------------------------------------------- every flag honoured or refused
def test_flags_written_on_the_command_line_are_told_from_flagfile_ones():
    known = {"alpha", "systematic_exploration", "workdir"}
    args = ["--flagfile=wtq.flags", "--alpha=0.2", "--nosystematic_exploration", "--workdir", "runs/x", "value"]
    assert _common.command_line_flags(args, known) == {"flagfile", "alpha", "systematic_exploration", "workdir"}


def test_an_unused_flag_is_refused_from_the_command_line_and_noted_from_a_flagfile():
    project = {"learning_rate", "n_steps", "workdir", "beam_size"}
    refused, noted = _common.unused_flags(given={"learning_rate", "n_steps", "workdir"},
                                          on_command_line={"learning_rate", "workdir"},
                                          project_flags=project, used={"workdir", "beam_size"})
    assert (refused, noted) == (["learning_rate"], ["n_steps"])


def test_evaluate_refuses_a_training_flag(tmp_path):
    result = subprocess.run([sys.executable, "launch/evaluate.py", f"--workdir={tmp_path}", "--learning_rate=0.1"],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "evaluate.py does not use --learning_rate" in result.stderr
