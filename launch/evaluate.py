"""Evaluates trained runs with beam search, or scores a predictions file, in the official WTQ way.

    python launch/evaluate.py --workdir=RUN [--checkpoint=best|latest|STEP] [--split_file=Q.tsv]
                              [--tagged_file=T.tagged] [--beam_size=5] [--output_dir=DIR]
    python launch/evaluate.py --ensemble=RUN1,RUN2,... [--split_file=Q.tsv] ...
    python launch/evaluate.py --predictions=FILE --split_file=Q.tsv [--tagged_file=T.tagged] [--details=OUT]

With a run: beam search on the split (default: the run's dev part; `--split_file` any question file
of the release format, e.g. the test split), then OUTPUT_DIR/predictions.tsv (official format),
OUTPUT_DIR/beams.jsonl (every question's beam: programs, answers, probabilities) and
OUTPUT_DIR/summary.json. The accuracy printed is the official evaluator's, computed from the
predictions file. An ensemble decodes with every run and combines the beams by summing the
probabilities of identical programs (the paper's way) and, second, of identical answers.

With `--tagged_file` (a tagged question file, or a directory of them, as the official evaluator's
`-t`), gold answers use its `targetCanon` column exactly as the official evaluator does. Without it,
canonical strings are approximated (`--infer_canon`, default on; see mapo_jax/data/values.py).
Accuracy is correct / scored lines, as the official script computes it; questions of the split
without a prediction line are reported separately, with the accuracy counting them as wrong. A
predictions file with an id on two lines, or with ids that are not questions of the split (a file
for another split), is refused rather than scored (mapo_jax/data/predictions.py).
"""

import json
import sys
import time
from pathlib import Path

import _common  # noqa: F401  (sys.path)
from _common import existing_file, friendly_errors
from absl import app, flags

from mapo_jax import config as config_lib
from mapo_jax.data import predictions as predictions_lib
from mapo_jax.data import wtq
from mapo_jax.errors import UserInputError

config_lib.define_flags()
flags.DEFINE_string("predictions", None, "Predictions file: id<TAB>answer<TAB>answer... per line.")
flags.DEFINE_string("split_file", None, "Question file of the release format (id, utterance, context, targetValue).")
flags.DEFINE_string("tagged_file", None, "Tagged question file (or directory of them) whose targetCanon is used.")
flags.DEFINE_string("details", None, "Write one line per scored example: id<TAB>True|False.")
flags.DEFINE_string("checkpoint", "best", "Which parameters of a run: best (by dev accuracy), latest, or a step.")
flags.DEFINE_list("ensemble", [], "Run directories whose beams are combined (comma-separated).")
flags.DEFINE_string("output_dir", None, "Where predictions.tsv, beams.jsonl and summary.json go "
                    "(default: WORKDIR/eval/SPLIT-CHECKPOINT, or ./ensemble-SPLIT for an ensemble).")
FLAGS = flags.FLAGS


def _read_gold(split_file, tagged_file, infer):
    """(gold Values by id, ids to score): the split's questions, with the tagged files' canonical
    answers where they have one; the tagged files' other questions are not the split's."""
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
            tagged = {i: values for i, values in tagged.items() if i in targets}  # score the split only
        targets.update(tagged)
        expected = expected or list(tagged)
    return targets, expected


def _gold_name() -> str:
    """The gold answers' source, as messages name it."""
    return FLAGS.split_file or FLAGS.tagged_file or "the run's dev split"


def _score_file(predictions_file, targets, expected, details=None):
    score = predictions_lib.score_predictions(predictions_file, targets, expected, _gold_name())
    if details:
        with open(details, "w", encoding="utf-8") as f:
            for line in score.lines:
                f.write(f"{line.id}\t{line.correct}\n")
    return score


def _print_score(label, score):
    print(f"{label}accuracy {score.n_correct}/{score.n_scored} = {score.accuracy:.4f}")
    if score.missing_ids:
        total = score.n_scored + len(score.missing_ids)
        print(f"missing predictions: {len(score.missing_ids)} questions of the split have no line; "
              f"counting them as wrong: {score.n_correct}/{total} = {score.n_correct / total:.4f}")


def _decode_run(workdir, checkpoint, split_file, beam_size):
    """(results, split name, dataset) of one run's beam search on the split."""
    from mapo_jax import checkpointing, evaluation
    from mapo_jax.data import datasets
    from mapo_jax.env import Vocabulary
    from mapo_jax.training import make_environments

    restored = checkpointing.restore_policy(workdir, checkpoint)
    # where the data lives may differ from training time; how it is preprocessed may not
    data_config = restored.data_config.replace(**{name: getattr(FLAGS, name) for name in config_lib.DATA_LOCATION_FLAGS
                                                 if FLAGS[name].present})
    if split_file:
        if data_config.dataset != "wtq":
            raise UserInputError(f"--split_file needs a WTQ run; {workdir} was trained on {data_config.dataset}")
        split = split_file
    else:
        split = config_lib.split_parts(data_config)[-1]  # the run's dev part
    dataset = datasets.load_dataset(data_config, split)
    program = restored.program_config  # the run's function set and limits
    envs = make_environments(dataset, False, Vocabulary(program.function_set, program.max_mem), program)
    start = time.perf_counter()
    last = [0.0]

    def progress(done, total):
        now = time.perf_counter()
        if now - last[0] > 10 or done == total:
            last[0] = now
            rate = done / max(now - start, 1e-9)
            print(f"[evaluate] {workdir}: {done}/{total} questions  {rate:.1f}/s  "
                  f"eta {(total - done) / max(rate, 1e-9):.0f} s", file=sys.stderr, flush=True)

    result = evaluation.evaluate(restored.params, restored.model_config, envs, restored.featurizer,
                                 beam_size=beam_size, progress=progress)
    return result.results, restored.step, dataset


def _write(output_dir, results, summary):
    from mapo_jax import evaluation

    output_dir.mkdir(parents=True, exist_ok=True)
    evaluation.write_predictions(output_dir / "predictions.tsv", results)
    evaluation.write_beams(output_dir / "beams.jsonl", results, summary)
    (output_dir / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")


def _gold_for(dataset, split_file, tagged_file):
    """Official gold answers: from the split file (or tagged file); for the toy data, its answers."""
    if split_file or tagged_file:
        return _read_gold(split_file, tagged_file, FLAGS.infer_canon)
    return {ex.id: ex.gold_values() for ex in dataset.examples}, [ex.id for ex in dataset.examples]


def _evaluate_runs():
    from mapo_jax import evaluation

    runs = FLAGS.ensemble or [FLAGS.workdir]
    for run in runs:
        if Path(run).exists() and not Path(run).is_dir():
            raise UserInputError(f"run directory {run} is a file; a training run's --workdir is expected")
        if not Path(run).is_dir():
            raise FileNotFoundError(f"run directory {run} does not exist")
    split_name = Path(FLAGS.split_file).stem if FLAGS.split_file else "dev"
    models = []
    dataset = None
    for run in runs:
        results, step, dataset = _decode_run(run, FLAGS.checkpoint, FLAGS.split_file, FLAGS.beam_size)
        models.append((run, step, results))
    targets, expected = _gold_for(dataset, FLAGS.split_file, FLAGS.tagged_file)

    def report(label, results, output_dir, extra):
        summary = {"split": FLAGS.split_file or split_name, "beam_size": FLAGS.beam_size, **extra,
                   "questions": len(results), "beam_accuracy": evaluation.accuracy(results)}
        _write(output_dir, results, summary)
        score = _score_file(output_dir / "predictions.tsv", targets, expected, FLAGS.details)
        summary["official_accuracy"] = score.accuracy
        (output_dir / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
        _print_score(label, score)
        print(f"  -> {output_dir}/predictions.tsv, beams.jsonl, summary.json")
        return summary

    if len(models) == 1:
        run, step, results = models[0]
        output = Path(FLAGS.output_dir or Path(run) / "eval" / f"{split_name}-{FLAGS.checkpoint}")
        report(f"{run} (step {step}): ", results, output, {"run": run, "checkpoint": FLAGS.checkpoint, "step": step})
        return
    output = Path(FLAGS.output_dir or f"ensemble-{split_name}")
    for k, (run, step, results) in enumerate(models):
        report(f"model {k + 1} {run} (step {step}): ", results, output / f"model{k + 1}",
               {"run": run, "checkpoint": FLAGS.checkpoint, "step": step})
    for by in ("program", "answer"):
        combined = evaluation.ensemble([results for _, _, results in models], by=by)
        report(f"ensemble of {len(models)} by {by}: ", combined, output / f"by_{by}",
               {"runs": [run for run, _, _ in models], "ensemble_by": by})


def _check_input_paths():
    """--split_file must be a file; --tagged_file a file or a directory of them."""
    if FLAGS.split_file:
        existing_file("split_file", FLAGS.split_file)
    if FLAGS.tagged_file and not Path(FLAGS.tagged_file).exists():
        raise FileNotFoundError(f"--tagged_file: {FLAGS.tagged_file} does not exist")


@friendly_errors(uses=("workdir", "beam_size", "infer_canon", *config_lib.DATA_LOCATION_FLAGS))
def main(argv):
    if FLAGS.workdir or FLAGS.ensemble:
        if FLAGS.predictions:
            raise app.UsageError("give either a run (--workdir / --ensemble) or --predictions, not both")
        _check_input_paths()
        _evaluate_runs()
        return
    if not FLAGS.predictions:
        raise app.UsageError("give a run (--workdir=RUN or --ensemble=RUN1,RUN2) or --predictions=FILE")
    if not (FLAGS.split_file or FLAGS.tagged_file):
        raise app.UsageError("give --split_file (and/or --tagged_file)")
    existing_file("predictions", FLAGS.predictions)
    _check_input_paths()
    targets, expected = _read_gold(FLAGS.split_file, FLAGS.tagged_file, FLAGS.infer_canon)
    _print_score("", _score_file(FLAGS.predictions, targets, expected, FLAGS.details))


if __name__ == "__main__":
    app.run(main)
