"""Beam-search evaluation, beams files, ensembles, CSV tables and the checkpoint round trip."""

import numpy as np
import pytest

from mapo_jax import evaluation
from mapo_jax.data.csv_tables import read_csv_table, tag_cell
from mapo_jax.data.tables import TableFormatError
from mapo_jax.evaluation import Candidate, QuestionResult


def _candidate(program, prob, answer, correct):
    return Candidate(program, program, float(np.log(prob)), prob, tuple(answer), correct)


def _question(example_id, *candidates):
    return QuestionResult(example_id, "q", list(candidates))


def test_ensemble_by_program_sums_identical_programs():
    # model 1 prefers A (0.6) over B (0.4); model 2 prefers C (0.5), then B (0.45), then A (0.05).
    # Summed: A 0.65, B 0.85, C 0.5 -> B wins although no single model ranks it first.
    model1 = [_question("q1", _candidate("A", 0.6, ["x"], False), _candidate("B", 0.4, ["y"], True))]
    model2 = [_question("q1", _candidate("C", 0.5, ["z"], False), _candidate("B", 0.45, ["y"], True),
                        _candidate("A", 0.05, ["x"], False))]
    (combined,) = evaluation.ensemble([model1, model2], by="program")
    assert [c.program for c in combined.beam] == ["B", "A", "C"]
    assert combined.beam[0].prob == pytest.approx(0.85 / 2.0)
    assert combined.correct and evaluation.accuracy([combined]) == 1.0
    assert sum(c.prob for c in combined.beam) == pytest.approx(1.0)


def test_ensemble_by_answer_pools_different_programs_with_one_answer():
    # two programs answer "Peru" (0.3 + 0.3) against one answering "Chile" (0.4) in a single model
    model = [_question("q1", _candidate("C", 0.4, ["Chile"], False), _candidate("P1", 0.3, ["peru"], True),
                       _candidate("P2", 0.3, ["Peru "], True))]
    (by_program,) = evaluation.ensemble([model], by="program")
    (by_answer,) = evaluation.ensemble([model], by="answer")
    assert by_program.answer == ("Chile",) and not by_program.correct
    assert by_answer.beam[0].prob == pytest.approx(0.6) and by_answer.correct
    with pytest.raises(ValueError, match="program.*answer"):
        evaluation.ensemble([model], by="votes")


def test_ensemble_needs_the_same_questions():
    with pytest.raises(ValueError, match="different questions"):
        evaluation.ensemble([[_question("q1")], [_question("q2")]])


def test_beams_file_round_trip(tmp_path):
    results = [_question("q1", _candidate("( count all_rows ) <END>", 1.0, ["3"], True)), _question("q2")]
    evaluation.write_beams(tmp_path / "b.jsonl", results, {"step": 7})
    header, back = evaluation.read_beams(tmp_path / "b.jsonl")
    assert header["step"] == 7 and back == results
    evaluation.write_predictions(tmp_path / "p.tsv", results)
    assert (tmp_path / "p.tsv").read_text() == "q1\t3\nq2\n"


def test_evaluate_decodes_every_question_with_official_matching(toy_policy):
    from mapo_jax.env import Vocabulary
    from mapo_jax.training import make_environments

    toy, vocab, featurizer, config, params = toy_policy
    envs = make_environments(toy, False, Vocabulary())[:12]
    result = evaluation.evaluate(params, config, envs, featurizer, beam_size=3)
    assert [r.id for r in result.results] == [env.example.id for env in envs]
    for env, r in zip(envs, result.results):
        assert 1 <= len(r.beam) <= 3
        assert sum(c.prob for c in r.beam) == pytest.approx(1.0)
        assert [c.log_prob for c in r.beam] == sorted((c.log_prob for c in r.beam), reverse=True)
        for c in r.beam:  # the flag agrees with the environment's reward on a replay
            assert c.correct == (env.replay(c.program).reward == 1.0)
    assert result.oracle_accuracy >= result.accuracy


# --------------------------------------------------------------------------- CSV tables


def test_cells_are_tagged_like_corenlp():
    assert tag_cell("1,234").number == 1234.0
    assert tag_cell("2–1").num2 == 1.0 and tag_cell("2–1").number == 2.0
    assert tag_cell("June 4, 1990").date == "1990-06-04"
    assert tag_cell("1990").date == "1990-xx-xx" and tag_cell("1990").number == 1990.0
    assert tag_cell("Peru").number is None and tag_cell("Peru").date is None


def test_read_csv_table_types_columns(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("Nation,Gold,Year\nPeru,3,1990\nChile,5,1994\n\"Brazil, Rep.\",1,1998\n")
    table = read_csv_table(path)
    names = [c.name for c in table.columns]
    assert "r.nation-string" in names and "r.gold-number" in names and "r.year-date" in names
    assert table.values["r.gold-number"] == (3.0, 5.0, 1.0)
    assert table.n_rows == 3
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2,3\n")
    with pytest.raises(TableFormatError, match="line 2 has 3 cells"):
        read_csv_table(bad)
    with pytest.raises(TableFormatError, match="cannot read"):
        read_csv_table(tmp_path / "missing.csv")
