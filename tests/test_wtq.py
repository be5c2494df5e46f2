"""The WTQ release reader: question files, splits, cache, bad input."""

import pytest

from mapo_jax.data import wtq
from mapo_jax.data.values import NumberValue


def test_read_questions_of_a_split(wtq_root):
    questions = wtq.read_questions(wtq.split_path(wtq_root, "dev"))
    assert len(questions) == 2831
    questions = wtq.read_questions(wtq.split_path(wtq_root, "training"))
    assert len(questions) == 14152
    first = questions[0]
    assert first.id == "nt-0" and first.context == "csv/204-csv/590.csv" and first.target_value == "2004"
    assert first.target_canon is None


def test_split_names(wtq_root):
    assert wtq.split_path(wtq_root, "train3").name == "random-split-3-train.tsv"
    assert wtq.split_path(wtq_root, "dev").name == "random-split-1-dev.tsv"
    with pytest.raises(ValueError, match="valid splits are train, dev"):
        wtq.split_path(wtq_root, "validation")


def test_missing_data_dir_names_the_flag_the_variable_and_the_url(tmp_path):
    with pytest.raises(wtq.DataNotFoundError) as error:
        wtq.release_root(tmp_path)
    message = str(error.value)
    assert "MAPO_DATA_DIR" in message and "--data_dir" in message and wtq.DOWNLOAD_URL in message


def test_malformed_question_lines_are_skipped_and_counted(tmp_path):
    path = tmp_path / "q.tsv"
    path.write_text(
        "id\tutterance\tcontext\ttargetValue\n"
        "a-1\thow many?\tcsv/200-csv/0.csv\t3\n"
        "a-2\tbroken line without enough fields\n"
        "\tno id\tcsv/200-csv/0.csv\t3\n"
    )
    failures = []
    questions = wtq.read_questions(path, failures)
    assert [q.id for q in questions] == ["a-1"]
    assert len(failures) == 2 and "q.tsv:3" in failures[0] and "empty id" in failures[1]
    path.write_text("id\tquestion\n")
    with pytest.raises(ValueError, match="header lacks"):
        wtq.read_questions(path)


def test_tagged_question_files_bring_target_canon(tmp_path):
    path = tmp_path / "q.tagged"
    path.write_text(
        "id\tutterance\tcontext\ttargetValue\ttokens\ttargetCanon\n"
        "nu-1\thow many?\tcsv/200-csv/0.csv\t12,467\thow|many|?\t12467.0\n"
    )
    targets = wtq.read_targets(path)
    assert targets["nu-1"] == [NumberValue(12467)]


def test_load_split_annotates_and_caches(data_dir, cache_dir):
    first = wtq.load_wtq("training-before300", data_dir=data_dir, cache_dir=cache_dir)
    assert first.stats["examples"] == 300
    assert first.stats["tables_parsed"] == 2108 and first.stats["tables_failed"] == 0
    assert first.stats["cache"]["examples"] == "miss"
    example = next(ex for ex in first.examples if ex.id == "nt-2")
    assert example.question == "which team won previous to crettyard?"
    assert example.answer == ("Wolfe Tones",)
    table = first.tables[example.table]
    assert len(example.column_features) == len(table.columns)
    again = wtq.load_wtq("training-before300", data_dir=data_dir, cache_dir=cache_dir)
    assert again.stats["cache"] == {"tables": "hit", "examples": "hit"}
    assert again.examples == first.examples
    assert set(first.stats["answer_types"]) <= {"number", "date", "string", "list"}
