"""Scores a predictions file in the official WikiTableQuestions format.

    python launch/evaluate.py --predictions=FILE --split_file=Q.tsv [--tagged_file=T.tagged] [--details=OUT]

With `--tagged_file` (a tagged question file, or a directory of them, as the official evaluator's
`-t`), gold answers use its `targetCanon` column exactly as the official evaluator does. Without it,
canonical strings are approximated (`--infer_canon`, default on; see mapo_jax/data/values.py).
Accuracy is correct / scored lines, as the official script computes it; questions of the split
without a prediction line are reported separately, with the accuracy counting them as wrong.
"""

import sys
from pathlib import Path

import _common  # noqa: F401  (sys.path)
from _common import friendly_errors
from absl import app, flags

from mapo_jax import config as config_lib
from mapo_jax.data import predictions as predictions_lib
from mapo_jax.data import wtq

config_lib.define_flags()
flags.DEFINE_string("predictions", None, "Predictions file: id<TAB>answer<TAB>answer... per line.")
flags.DEFINE_string("split_file", None, "Question file of the release format (id, utterance, context, targetValue).")
flags.DEFINE_string("tagged_file", None, "Tagged question file (or directory of them) whose targetCanon is used.")
flags.DEFINE_string("details", None, "Write one line per scored example: id<TAB>True|False.")
FLAGS = flags.FLAGS


def _read_gold(split_file, tagged_file, infer):
    targets, expected = {}, []
    if split_file:
        targets = wtq.read_targets(split_file, infer=infer)
        expected = list(targets)
    if tagged_file:
        path = Path(tagged_file)
        files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
        tagged = {}
        for file in files:
            tagged.update(wtq.read_targets(file, infer=False))
        if split_file:
            absent = [i for i in expected if i not in tagged]
            if absent:
                print(f"warning: {len(absent)} split ids have no tagged answer (e.g. {absent[0]}); "
                      f"their untagged answers are used", file=sys.stderr)
        targets.update(tagged)
        expected = expected or list(tagged)
    return targets, expected


@friendly_errors
def main(argv):
    if not FLAGS.predictions:
        raise app.UsageError("--predictions is required")
    if not (FLAGS.split_file or FLAGS.tagged_file):
        raise app.UsageError("give --split_file (and/or --tagged_file)")
    for name in ("predictions", "split_file", "tagged_file"):
        value = getattr(FLAGS, name)
        if value and not Path(value).exists():
            raise FileNotFoundError(f"--{name}: {value} does not exist")
    targets, expected = _read_gold(FLAGS.split_file, FLAGS.tagged_file, FLAGS.infer_canon)
    score = predictions_lib.score_predictions(FLAGS.predictions, targets, expected)
    for example_id in score.unknown_ids[:10]:
        print(f"warning: example id {example_id!r} not found in the gold answers; skipped", file=sys.stderr)
    if len(score.unknown_ids) > 10:
        print(f"warning: {len(score.unknown_ids)} unknown ids in all", file=sys.stderr)
    if FLAGS.details:
        with open(FLAGS.details, "w", encoding="utf-8") as f:
            for line in score.lines:
                f.write(f"{line.id}\t{line.correct}\n")
    print(f"accuracy {score.n_correct}/{score.n_scored} = {score.accuracy:.4f}")
    if score.missing_ids:
        total = score.n_scored + len(score.missing_ids)
        print(f"missing predictions: {len(score.missing_ids)} questions of the split have no line; "
              f"counting them as wrong: {score.n_correct}/{total} = {score.n_correct / total:.4f}")


if __name__ == "__main__":
    app.run(main)
