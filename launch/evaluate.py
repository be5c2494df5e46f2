"""Evaluates trained runs with beam search, or scores a predictions file, in the official WTQ way.

    python launch/evaluate.py --workdir=RUN [--checkpoint=best|latest|STEP] [--split_file=Q.tsv]
                              [--tagged_file=T.tagged] [--beam_size=5] [--output_dir=DIR]
    python launch/evaluate.py --model=PACKAGE [--split_file=Q.tsv] [--tagged_file=T.tagged] ...
    python launch/evaluate.py --ensemble=RUN1,RUN2,... [--split_file=Q.tsv] ...
    python launch/evaluate.py --ensemble=DIR [--split_file=Q.tsv] ...         # DIR holds packages
    python launch/evaluate.py --predictions=FILE --split_file=Q.tsv [--tagged_file=T.tagged] [--details=OUT]

With a run: beam search on the split (default: the run's dev part; `--split_file` any question file
of the release format, e.g. the test split), then OUTPUT_DIR/predictions.tsv (official format),
OUTPUT_DIR/beams.jsonl (every question's beam: programs, answers, probabilities) and
OUTPUT_DIR/summary.json. The accuracy printed is the official evaluator's, computed from the
predictions file. An ensemble decodes with every run and combines the beams by summing the
probabilities of identical programs (the paper's way) and, second, of identical answers.

A model package (`--model`, written by launch/export_model.py; mapo_jax/pretrained.py) is evaluated
the same way; its outputs go to ./eval-NAME-SPLIT unless `--output_dir` says otherwise. Ensemble
members may be runs or packages, and a directory of packages stands for all of them.

With `--tagged_file` (a tagged question file, or a directory of them, as the official evaluator's
`-t`), gold answers use its `targetCanon` column exactly as the official evaluator does. Without it,
canonical strings are approximated (`--infer_canon`, default on; see mapo_jax/data/values.py).
Accuracy is correct / scored lines, as the official script computes it; questions of the split
without a prediction line are reported separately, with the accuracy counting them as wrong. A
predictions file with an id on two lines, or with ids that are not questions of the split (a file
for another split), is refused rather than scored (mapo_jax/data/predictions.py).
"""

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
flags.DEFINE_string("model", None, "A model package directory (launch/export_model.py).")
flags.DEFINE_list("ensemble", [], "Run or package directories whose beams are combined (comma-separated), "
                  "or one directory holding packages.")
flags.DEFINE_string("output_dir", None, "Where predictions.tsv, beams.jsonl and summary.json go (default: "
                    "WORKDIR/eval/SPLIT-CHECKPOINT, ./eval-PACKAGE-SPLIT, or ./ensemble-SPLIT for an ensemble).")
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


def _write_details(score, details):
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
    """(results, step, dataset) of one run's or package's beam search on the split."""
    from mapo_jax import evaluation, pretrained
    from mapo_jax.data import datasets

    restored = pretrained.load_model(workdir, checkpoint)
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
    start = time.perf_counter()
    last = [0.0]

    def progress(done, total):
        now = time.perf_counter()
        if now - last[0] > 10 or done == total:
            last[0] = now
            rate = done / max(now - start, 1e-9)
            print(f"[evaluate] {workdir}: {done}/{total} questions  {rate:.1f}/s  "
                  f"eta {(total - done) / max(rate, 1e-9):.0f} s", file=sys.stderr, flush=True)

    results = evaluation.decode_dataset(restored, dataset, beam_size, progress)
    return results, restored.step, dataset


def _gold_for(dataset, split_file, tagged_file):
    """Official gold answers: from the split file (or tagged file); else the loaded split's own."""
    from mapo_jax import evaluation

    if split_file or tagged_file:
        return _read_gold(split_file, tagged_file, FLAGS.infer_canon)
    return evaluation.dataset_targets(dataset)


def _model_dirs():
    """The runs and packages to evaluate: --workdir, --model, or the --ensemble members (a
    directory that is neither a run nor a package stands for the packages inside it)."""
    from mapo_jax import pretrained

    names = FLAGS.ensemble or [FLAGS.workdir or FLAGS.model]
    expected = ("a training run's --workdir" if FLAGS.workdir else "a model package directory" if FLAGS.model
                else "a run or model package directory")
    for name in names:
        if Path(name).exists() and not Path(name).is_dir():
            raise UserInputError(f"{name} is a file; {expected} is expected")
        if not Path(name).is_dir():
            raise FileNotFoundError(f"run or package directory {name} does not exist")
    if FLAGS.model:
        pretrained.read_manifest(FLAGS.model)  # a run given as --model is refused here, by name
    if len(names) == 1 and FLAGS.ensemble and not _is_model(names[0]):
        names = [str(p) for p in pretrained.packages_in(names[0])]
        if not names:
            raise UserInputError(f"--ensemble={FLAGS.ensemble[0]}: no model package inside it and it is no run")
    if FLAGS["checkpoint"].present and any(pretrained.is_package(n) for n in names):
        raise UserInputError("--checkpoint chooses among a run's checkpoints; a model package has one set of "
                             "parameters: leave it out")
    return names


def _is_model(path) -> bool:
    from mapo_jax import checkpointing, pretrained

    return pretrained.is_package(path) or (Path(path) / checkpointing.CONFIG_FILE).is_file()


def _default_output(path, split_name) -> Path:
    """Beside a run's checkpoints; for a package, the current directory (a package stays as shipped)."""
    from mapo_jax import pretrained

    if pretrained.is_package(path):
        return Path(f"eval-{Path(path).resolve().name}-{split_name}")
    return Path(path) / "eval" / f"{split_name}-{FLAGS.checkpoint}"


def _source(path, step) -> dict:
    """Where a model's parameters came from, for summary.json."""
    from mapo_jax import pretrained

    if pretrained.is_package(path):
        return {"model": str(path), "step": step}
    return {"run": str(path), "checkpoint": FLAGS.checkpoint, "step": step}


def _evaluate_runs():
    from mapo_jax import evaluation

    runs = _model_dirs()
    split_name = Path(FLAGS.split_file).stem if FLAGS.split_file else "dev"
    models = []
    dataset = None
    for run in runs:
        results, step, dataset = _decode_run(run, FLAGS.checkpoint, FLAGS.split_file, FLAGS.beam_size)
        models.append((run, step, results))
    targets, expected = _gold_for(dataset, FLAGS.split_file, FLAGS.tagged_file)

    def report(label, results, output_dir, extra):
        summary = {"split": FLAGS.split_file or split_name, "beam_size": FLAGS.beam_size, **extra}
        score = evaluation.official_score(output_dir, results, summary, targets, expected, _gold_name())
        _print_score(label, _write_details(score, FLAGS.details))
        print(f"  -> {output_dir}/predictions.tsv, beams.jsonl, summary.json")

    if len(models) == 1:
        run, step, results = models[0]
        output = Path(FLAGS.output_dir or _default_output(run, split_name))
        report(f"{run} (step {step}): ", results, output, _source(run, step))
        return
    output = Path(FLAGS.output_dir or f"ensemble-{split_name}")
    for k, (run, step, results) in enumerate(models):
        report(f"model {k + 1} {run} (step {step}): ", results, output / f"model{k + 1}",
               _source(run, step))
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
    given = [name for name in ("workdir", "model", "ensemble", "predictions") if FLAGS[name].value]
    if len(given) > 1:
        raise app.UsageError(f"give one of --workdir, --model, --ensemble or --predictions, not "
                             f"{' and '.join('--' + name for name in given)}")
    if FLAGS.workdir or FLAGS.model or FLAGS.ensemble:
        _check_input_paths()
        _evaluate_runs()
        return
    if not FLAGS.predictions:
        raise app.UsageError("give a run (--workdir=RUN), a package (--model=DIR), an ensemble "
                             "(--ensemble=RUN1,RUN2 or a directory of packages) or --predictions=FILE")
    if not (FLAGS.split_file or FLAGS.tagged_file):
        raise app.UsageError("give --split_file (and/or --tagged_file)")
    existing_file("predictions", FLAGS.predictions)
    _check_input_paths()
    targets, expected = _read_gold(FLAGS.split_file, FLAGS.tagged_file, FLAGS.infer_canon)
    score = predictions_lib.score_predictions(FLAGS.predictions, targets, expected, _gold_name())
    _print_score("", _write_details(score, FLAGS.details))


if __name__ == "__main__":
    app.run(main)
