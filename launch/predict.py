"""Answers a question about any CSV table with a trained run: its top programs, answers, probabilities.

    python launch/predict.py --workdir=runs/wtq_split1 --table=my_table.csv --question="which nation is before peru?"

The table goes through the same pipeline as WTQ tables (cells tagged for numbers and dates by
mapo_jax/data/csv_tables.py), the question through the same annotator, and beam search
(`--beam_size`, default 5) through the run's best (or `--checkpoint`) parameters.
"""

import json

import _common  # noqa: F401  (sys.path)
from _common import friendly_errors
from absl import app, flags

from mapo_jax import config as config_lib

config_lib.define_flags()
flags.DEFINE_string("table", None, "CSV file: a header row, then one row per table row.")
flags.DEFINE_string("question", None, "The question, in English.")
flags.DEFINE_string("checkpoint", "best", "Which parameters of the run: best, latest, or a step.")
flags.DEFINE_bool("json", False, "Print the beam as one JSON object instead of text.")
FLAGS = flags.FLAGS


def predict(workdir: str, table_path: str, question: str, checkpoint: str = "best", beam_size: int = 5):
    """(QuestionResult, Table) for one question about one CSV table."""
    from pathlib import Path

    from mapo_jax import checkpointing, decoding, evaluation
    from mapo_jax.data.annotate import TableIndex
    from mapo_jax.data.csv_tables import read_csv_table
    from mapo_jax.data.wtq import Question, make_example
    from mapo_jax.env import QAEnvironment
    from mapo_jax.lisp.interpreter import Limits

    if not Path(table_path).is_file():
        raise FileNotFoundError(f"--table: {table_path} does not exist")
    restored = checkpointing.restore_policy(workdir, checkpoint)
    data_config = restored.data_config
    table = read_csv_table(table_path, **data_config.table_options)
    example = make_example(Question("q", question, table.name, "", None), table, data_config.annotation,
                           TableIndex(table), infer=False)
    env = QAEnvironment(example, table, punish_extra_work=False, limits=Limits())
    inputs = decoding.encoder_inputs(restored.featurizer, [env])
    (hypotheses,) = decoding.beam_search(restored.params, restored.model_config, [env], inputs, beam_size,
                                         evaluation.MAX_STEPS)
    beam = [c._replace(correct=False) for c in evaluation.candidates(env, hypotheses)]
    return evaluation.QuestionResult("q", question, beam), table


@friendly_errors
def main(argv):
    if not (FLAGS.workdir and FLAGS.table and FLAGS.question):
        raise app.UsageError("give --workdir, --table and --question")
    result, table = predict(FLAGS.workdir, FLAGS.table, FLAGS.question, FLAGS.checkpoint, FLAGS.beam_size)
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
