"""Answers a question about any CSV table with a trained run: its top programs, answers, probabilities.

    python launch/predict.py --workdir=runs/wtq_split1 --table=my_table.csv --question="which nation is before peru?"

The table goes through the same pipeline as WTQ tables (cells tagged for numbers and dates by
mapo_jax/data/csv_tables.py), the question through the same annotator, and beam search
(`--beam_size`, default 5) through the run's best (or `--checkpoint`) parameters. Input the model
cannot use (columns past its memory slots, a question without words) is named in a warning on stderr.
"""

import json
import sys

import _common  # noqa: F401  (sys.path)
from _common import existing_file, friendly_errors
from absl import app, flags

from mapo_jax import config as config_lib

config_lib.define_flags()
flags.DEFINE_string("table", None, "CSV file: a header row, then one row per table row.")
flags.DEFINE_string("question", None, "The question, in English.")
flags.DEFINE_string("checkpoint", "best", "Which parameters of the run: best, latest, or a step.")
flags.DEFINE_bool("json", False, "Print the beam as one JSON object instead of text.")
FLAGS = flags.FLAGS


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


def predict(workdir: str, table_path: str, question: str, checkpoint: str = "best", beam_size: int = 5):
    """(QuestionResult, Table, warnings about ignored input) for one question about one CSV table."""
    from mapo_jax import checkpointing, decoding, evaluation
    from mapo_jax.data.annotate import TableIndex
    from mapo_jax.data.csv_tables import read_csv_table
    from mapo_jax.data.wtq import Question, make_example
    from mapo_jax.env import QAEnvironment

    existing_file("table", table_path)
    restored = checkpointing.restore_policy(workdir, checkpoint)
    data_config = restored.data_config
    table = read_csv_table(table_path, **data_config.table_options)
    example = make_example(Question("q", question, table.name, "", None), table, data_config.annotation,
                           TableIndex(table), infer=False)
    program = restored.program_config  # the run's function set and limits
    env = QAEnvironment(example, table, program.function_set, program.limits, punish_extra_work=False)
    inputs = decoding.encoder_inputs(restored.featurizer, [env])
    (hypotheses,) = decoding.beam_search(restored.params, restored.model_config, [env], inputs, beam_size)
    beam = [c._replace(correct=False) for c in evaluation.candidates(env, hypotheses)]
    return evaluation.QuestionResult("q", question, beam), table, input_warnings(env)


@friendly_errors(uses=("workdir", "beam_size"))
def main(argv):
    if not (FLAGS.workdir and FLAGS.table and FLAGS.question):
        raise app.UsageError("give --workdir, --table and --question")
    result, table, warnings = predict(FLAGS.workdir, FLAGS.table, FLAGS.question, FLAGS.checkpoint,
                                      FLAGS.beam_size)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if FLAGS.json:
        record = result.to_json()
        for candidate in record["beam"]:
            candidate.pop("correct")
        print(json.dumps(record, ensure_ascii=False, indent=1))
        return
    print(f"table: {table.name} ({table.n_rows} rows; columns {', '.join(c.name for c in table.columns)})")
    print(f"question: {result.question}")
    if not result.beam:
        print("no program finished")
        return
    for rank, candidate in enumerate(result.beam, start=1):
        answer = ", ".join(candidate.answer) if candidate.answer else "(empty)"
        print(f"{rank}. p={candidate.prob:.3f}  {candidate.text}\n   answer: {answer}")


if __name__ == "__main__":
    app.run(main)
