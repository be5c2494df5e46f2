"""Answers a question about any CSV table with a trained parser: its top programs, answers, probabilities.

    python launch/predict.py --table=my_table.csv --question="which nation is before peru?"        # pretrained/wtq
    python launch/predict.py --model=DIR --table=my_table.csv --question="..." [--explain]        # a model package
    python launch/predict.py --workdir=runs/wtq_split1 --table=my_table.csv --question="..."      # a training run

Without --workdir or --model the shipped package `pretrained/wtq` (beside launch/, wherever the
command runs from) answers. The table goes through the same pipeline as WTQ tables (cells tagged for
numbers and dates by mapo_jax/data/csv_tables.py), the question through the same annotator, and beam
search (`--beam_size`, default 5) through the package's parameters or the run's best (or
`--checkpoint`) ones. A package also reads the question's words that it never saw in training but
GloVe knows (mapo_jax/pretrained.py). `--explain` prints each expression of the top program with
its result (mapo_jax/lisp/explain.py). Input the model cannot use (columns past its memory slots, a
question without words) is named in a warning on stderr.
"""

import json
import sys
from pathlib import Path
from typing import NamedTuple

import _common  # noqa: F401  (sys.path)
from _common import existing_file, friendly_errors
from absl import app, flags

from mapo_jax import config as config_lib
from mapo_jax.errors import UserInputError

SHIPPED_MODEL = Path(__file__).resolve().parents[1] / "pretrained" / "wtq"

config_lib.define_flags()
flags.DEFINE_string("model", None, "A model package directory (launch/export_model.py); default: pretrained/wtq.")
flags.DEFINE_string("table", None, "CSV file: a header row, then one row per table row.")
flags.DEFINE_string("question", None, "The question, in English.")
flags.DEFINE_string("checkpoint", "best", "Which parameters of a run (--workdir): best, latest, or a step.")
flags.DEFINE_bool("json", False, "Print the beam as one JSON object instead of text.")
flags.DEFINE_bool("explain", False, "Print each expression of the top program with its result.")
FLAGS = flags.FLAGS


class Prediction(NamedTuple):
    result: object  # evaluation.QuestionResult
    table: object  # the CSV file as a typed table
    warnings: list  # what the model cannot see of the input, in words
    context: object  # the question's interpreter context (programs replay in it)


def input_warnings(env) -> list:
    """What the model cannot see of the question and its table, in words for the user: a prediction
    is still made, but the user must know that it ignores part of their input."""
    from mapo_jax.data.annotate import has_words

    example, context = env.example, env.context
    warnings = []
    if not has_words(example.tokens):
        warnings.append(f"the question {example.question!r} has no words: its answer can only be a guess")
    kept = {constant.value for constant in context.constants}
    table_columns = context.view.table.columns
    columns = [c.name for c in table_columns if c.name not in kept]
    values = [list(e.value) for e in example.entities if tuple(e.value) not in kept]
    lost = ([f"the properties {', '.join(columns)}"] if columns else []) + (
        [f"the question's values {values}"] if values else [])
    if lost:
        warnings.append(
            f"the model has memory for {context.limits.max_constants} properties and question values; "
            f"{example.table} offers {len(table_columns)} properties (one per column and kind: string, number, "
            f"num2, date) and the question {len(example.entities)} values, so programs cannot use "
            f"{' nor '.join(lost)}")
    return warnings


def model_path(workdir, model) -> str:
    """The run or package to answer with: the one given, else the shipped package."""
    if workdir and model:
        raise app.UsageError("give --workdir (a training run) or --model (a package), not both")
    from mapo_jax import pretrained

    if model:
        pretrained.read_manifest(model)  # a missing directory or a run directory is refused by name
    if workdir or model:
        return workdir or model
    if not pretrained.is_package(SHIPPED_MODEL):
        raise UserInputError(f"no trained model is shipped yet ({SHIPPED_MODEL} is missing): pass --workdir=RUN "
                             f"(a training run) or --model=DIR (a package from launch/export_model.py)")
    return str(SHIPPED_MODEL)


def predict(path: str, table_path: str, question: str, checkpoint: str = "best", beam_size: int = 5) -> Prediction:
    """The beam, table, warnings about ignored input and context of one question about one CSV
    table, answered by a run or a package (`path`)."""
    from mapo_jax import decoding, evaluation, pretrained
    from mapo_jax.data.annotate import TableIndex
    from mapo_jax.data.csv_tables import read_csv_table
    from mapo_jax.data.wtq import Question, make_example
    from mapo_jax.env import QAEnvironment

    existing_file("table", table_path)
    restored = pretrained.load_model(path, checkpoint)
    data_config = restored.data_config
    table = read_csv_table(table_path, **data_config.table_options)
    example = make_example(Question("q", question, table.name, "", None), table, data_config.annotation,
                           TableIndex(table), infer=False)
    restored = pretrained.with_words(restored, [example])  # a package reads new words GloVe knows
    program = restored.program_config  # the run's function set and limits
    env = QAEnvironment(example, table, program.function_set, program.limits, punish_extra_work=False)
    inputs = decoding.encoder_inputs(restored.featurizer, [env])
    (hypotheses,) = decoding.beam_search(restored.params, restored.model_config, [env], inputs, beam_size)
    beam = [c._replace(correct=False) for c in evaluation.candidates(env, hypotheses)]
    return Prediction(evaluation.QuestionResult("q", question, beam), table, input_warnings(env), env.context)


def _explanation(prediction: Prediction) -> list:
    """(expression, result) pairs of the top program; empty when no program finished."""
    from mapo_jax.lisp.explain import explain_program

    beam = prediction.result.beam
    return explain_program(prediction.context, beam[0].program) if beam else []


def _print_json(prediction: Prediction) -> None:
    record = prediction.result.to_json()
    for candidate in record["beam"]:
        candidate.pop("correct")
    if FLAGS.explain:
        record["explanation"] = [{"expression": e, "result": r} for e, r in _explanation(prediction)]
    print(json.dumps(record, ensure_ascii=False, indent=1))


@friendly_errors(uses=("workdir", "beam_size"))
def main(argv):
    if not (FLAGS.table and FLAGS.question):
        raise app.UsageError("give --table and --question (and --model=DIR or --workdir=RUN, or use the shipped "
                             "pretrained/wtq)")
    path = model_path(FLAGS.workdir, FLAGS.model)
    if FLAGS["checkpoint"].present and not FLAGS.workdir:
        raise UserInputError("--checkpoint chooses among a run's checkpoints (--workdir); a model package has one "
                             "set of parameters: leave it out")
    prediction = predict(path, FLAGS.table, FLAGS.question, FLAGS.checkpoint, FLAGS.beam_size)
    for warning in prediction.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if FLAGS.json:
        _print_json(prediction)
        return
    result, table = prediction.result, prediction.table
    print(f"table: {table.name} ({table.n_rows} rows; columns {', '.join(c.name for c in table.columns)})")
    print(f"question: {result.question}")
    if not result.beam:
        print("no program finished")
        return
    for rank, candidate in enumerate(result.beam, start=1):
        answer = ", ".join(candidate.answer) if candidate.answer else "(empty)"
        print(f"{rank}. p={candidate.prob:.3f}  {candidate.text}\n   answer: {answer}")
    if FLAGS.explain:
        print("how the top program computes its answer:")
        for expression, value in _explanation(prediction):
            print(f"  {expression}\n      -> {value}")


if __name__ == "__main__":
    app.run(main)
