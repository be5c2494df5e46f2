"""Exports a training run's parameters as a self-contained model package, evaluates the package on
dev and writes its model card.

    python launch/export_model.py --workdir=RUN --out=pretrained/wtq [--float16] [--checkpoint=best|latest|STEP]
                                  [--overwrite] [--beam_size=5] [--data_dir=...]
                                  [--records=benchmarks/results/RUN.json,...] [--card_notes=NOTES.md]
    python launch/export_model.py --refresh_card --out=pretrained/wtq [--records=...] [--card_notes=...]

The package (mapo_jax/pretrained.py: params.npz, config.json, vocab.json, package.json) is written
beside OUT and moved into place only when complete, then loaded back from disk and evaluated on the
run's dev part with beam search and official matching (the code path of launch/evaluate.py; outputs
in RUN/eval/export-CHECKPOINT/). MODEL_CARD.md and card.json record the figures: all of dev, its
first 200 questions, the run's dev curve, the training command; --records adds the exact commands of
benchmark records (a run resumed over several legs and commits, its warm start) and --card_notes a
hand-written "Choices and evidence" section (departures from the paper, why). With --float16 the run's float32
parameters are evaluated too, and a difference in accuracy is printed loudly. A non-empty OUT is
refused unless --overwrite, which replaces only an earlier package. Needs the run's data (train and
dev: the words the model reads as <UNK> come from them).

--refresh_card rewrites an existing package's card with the given --records or --card_notes (the others
are kept) and the directory's name as the model's name, and keeps everything measured: the figures,
the curve, the commits. The parameters are not touched, so evidence that arrives after a model is shipped (an
ablation) reaches its card without a new binary, and a package copied under another name (the best
seed as pretrained/wtq) shares its parameter file byte for byte.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import _common  # noqa: F401  (sys.path)
from _common import friendly_errors
from absl import app, flags

from mapo_jax import config as config_lib
from mapo_jax.errors import UserInputError

REPO = Path(__file__).resolve().parents[1]

config_lib.define_flags()
flags.DEFINE_string("out", None, "The package directory to write (e.g. pretrained/wtq).")
flags.DEFINE_bool("float16", False, "Store the parameters as float16 (half the size; loaded back as float32).")
flags.DEFINE_string("checkpoint", "best", "Which parameters of the run: best (by dev accuracy), latest, or a step.")
flags.DEFINE_bool("overwrite", False, "Replace an existing package at --out.")
flags.DEFINE_list("records", [], "Benchmark JSONs (benchmarks/results/) whose commands go into the card as run: the "
                  "training run's legs and commits, its warm start.")
flags.DEFINE_string("card_notes", None, "Markdown file that the card shows as 'Choices and evidence': where the run "
                    "departs from the paper, why, and the dev evidence.")
flags.DEFINE_bool("refresh_card", False, "Rewrite the card of the package at --out with the given --records or "
                  "--card_notes and its directory's name, keeping the rest and its measured figures; nothing is "
                  "evaluated and the parameters are not touched.")
FLAGS = flags.FLAGS


def check_out(out: Path, overwrite: bool) -> None:
    """OUT must be absent or empty; with --overwrite it may hold a package (nothing else is deleted)."""
    from mapo_jax import pretrained

    if out.exists() and not out.is_dir():
        raise UserInputError(f"--out={out} is a file; a directory for the package is expected")
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not overwrite:
        raise UserInputError(f"--out={out} is not empty: pass --overwrite to replace the package there, or choose "
                             f"another directory")
    if not pretrained.is_package(out):
        raise UserInputError(f"--out={out} holds files that are not a model package: refusing to delete them even "
                             f"with --overwrite")


def git_commit(repo: Path):
    """`HASH`, or `HASH (with uncommitted changes to FILES)`, of the code doing the export; None
    outside git. The files are named so that a reader can tell an edited note from edited code."""
    try:
        head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    changed = [line[3:] for line in dirty.stdout.splitlines() if line.strip()]
    if not changed:
        return head.stdout.strip()
    more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
    return f"{head.stdout.strip()} (with uncommitted changes to {', '.join(changed[:3])}{more})"


def card_extras(records: list, notes) -> dict:
    """The card's recorded commands and notes, read before the long evaluation so a bad path fails at once."""
    from mapo_jax.io_utils import read_json
    from mapo_jax.model_card import recorded_command

    extras = {"records": [], "notes": None}
    for path in records:
        if not Path(path).is_file():
            raise UserInputError(f"--records: {path} does not exist")
        try:
            extras["records"].append(recorded_command(read_json(Path(path)), path))
        except ValueError as error:
            raise UserInputError(f"--records: {error}") from None
    if notes is not None:
        if not Path(notes).is_file():
            raise UserInputError(f"--card_notes={notes} does not exist")
        extras["notes"] = Path(notes).read_text(encoding="utf-8")
    return extras


def load_data(policy):
    """(train + dev examples, the dev split) of the run's data."""
    from mapo_jax.data import datasets

    train_part, dev_part = config_lib.split_parts(policy.data_config)
    train = datasets.load_dataset(policy.data_config, train_part)
    dev = datasets.load_dataset(policy.data_config, dev_part)
    return train.examples + dev.examples, dev


def words_read_as_unk(policy, examples) -> tuple:
    """The run's training words below min_count; warns if its vocabulary is not the data's any more."""
    from mapo_jax.data.vocab import build_encoder_vocab, words_read_as_unk as below_min_count

    vocab, vectors = policy.featurizer.vocab, policy.featurizer.vectors
    if vocab.min_count is not None and build_encoder_vocab(examples, vectors, vocab.min_count) != vocab:
        print("warning: the run's vocabulary is not the one its data and word vectors give now; the list of "
              "words read as <UNK> may be inexact", file=sys.stderr)
    return below_min_count(vocab, examples, vectors)


def evaluate_dev(policy, dev, output_dir: Path, label: str) -> dict:
    """Figures of beam search on dev scored the official way: all questions and the first ones."""
    from mapo_jax import evaluation
    from mapo_jax.model_card import FIRST_QUESTIONS, figures

    print(f"[export] evaluating {label} on {dev.split} ({len(dev.examples)} questions, beam {FLAGS.beam_size}) ...",
          file=sys.stderr, flush=True)
    results = evaluation.decode_dataset(policy, dev, FLAGS.beam_size)
    targets, expected = evaluation.dataset_targets(dev)
    summary = {"split": dev.split, "beam_size": FLAGS.beam_size, "model": label, "step": policy.step}
    score = evaluation.official_score(output_dir, results, summary, targets, expected, f"the {dev.split} split")
    first = [ex.id for ex in dev.examples[:FIRST_QUESTIONS]]
    return {"dev": figures(score.lines), "dev_first": figures(score.lines, first), "answers": [r.answer for r in results]}


def compare_float16(half: dict, full: dict) -> None:
    """Says loudly when float16 rounding changed the dev accuracy (and always prints both figures)."""
    a16, a32 = half["dev"]["accuracy"], full["dev"]["accuracy"]
    changed = sum(x != y for x, y in zip(half["answers"], full["answers"]))
    line = (f"float32 {a32:.4f} ({full['dev']['correct']}/{full['dev']['questions']}) -> "
            f"float16 {a16:.4f} ({half['dev']['correct']}/{half['dev']['questions']}); {changed} answers changed")
    if a16 != a32:
        banner = "!" * 78
        print(f"{banner}\nWARNING: float16 CHANGES THE DEV ACCURACY: {line}\n{banner}", file=sys.stderr)
        print(f"WARNING: float16 changes the dev accuracy: {line}")
    else:
        print(f"float16 keeps the dev accuracy: {line}")


def run_facts(run: Path, policy) -> dict:
    """What the run directory tells about the model: dev curve, accuracy at the step, command."""
    from mapo_jax.analysis.runs import load_run

    curve = []
    if (run / "metrics.jsonl").is_file():
        loaded = load_run(run)
        curve = [[int(s), float(a)] for s, a in zip(loaded.steps, loaded.dev_accuracy)]
    at_step = next((a for s, a in curve if s == policy.step), None)
    command = card_command(policy.data_config, policy.program_config, policy.train_config, str(run))
    return {"dev_curve": curve, "training_dev_accuracy": at_step,
            "training_command": command, "training_commit": None,
            "export_commit": git_commit(REPO)}


def card_command(data, program, train, run: str) -> str:
    """The card's training command: the flags that rebuild these configs, and the run directory. Both
    the export and --refresh_card render it here."""
    from mapo_jax.model_card import training_command

    return training_command(config_lib.training_flags(data, program, train), run)


def write_card(directory: Path, facts: dict) -> dict:
    """card.json and MODEL_CARD.md from the gathered facts and the package's own files."""
    from mapo_jax import pretrained
    from mapo_jax.io_utils import read_json
    from mapo_jax.model_card import CARD_FORMAT

    files = sorted(p for p in directory.iterdir() if p.is_file())
    manifest = read_json(directory / pretrained.PACKAGE_FILE)
    card = {"format": CARD_FORMAT, **facts, "float16": manifest["float16"], "step": manifest["step"],
            "config": read_json(directory / "config.json"),
            "vocab_size": len(read_json(directory / "vocab.json")["tokens"]),
            "word_vectors": dict(manifest["word_vectors"], read_as_unk=len(manifest["words_read_as_unk"])),
            "package_files": ", ".join(p.name for p in files), "package_bytes": sum(p.stat().st_size for p in files)}
    return save_card(directory, card)


def save_card(directory: Path, card: dict) -> dict:
    """card.json and the MODEL_CARD.md rendered from it."""
    from mapo_jax import pretrained
    from mapo_jax.io_utils import atomic_write_text
    from mapo_jax.model_card import render_card

    atomic_write_text(directory / pretrained.CARD_JSON, json.dumps(card, indent=1) + "\n")
    atomic_write_text(directory / pretrained.CARD_MARKDOWN, render_card(card))
    return card


def refresh_card(out: Path, extras: dict) -> dict:
    """The package's card with OUT's name and the records and notes in `extras` (those absent are
    kept); its measurements are kept. The training command is rendered again from the package's
    configs, so a card made before a fix of the rendering gets the fix."""
    from mapo_jax import pretrained
    from mapo_jax.io_utils import read_json

    card = pretrained.read_card(out) if pretrained.is_package(out) else None
    if card is None:
        raise UserInputError(f"--refresh_card: {out} is not a model package with a card (launch/export_model.py "
                             f"--workdir=RUN --out={out} makes one)")
    data, program, _, train = config_lib.configs_from_json(read_json(out / pretrained.CONFIG_FILE))
    command = card_command(data, program, train, card["run"])
    return save_card(out, {**card, "name": out.resolve().name, "training_command": command, **extras})


def export(run: Path, out: Path, extras: dict) -> dict:
    """Writes the package into a staging directory beside OUT, evaluates it, writes its card, then
    moves it into place: a failed export leaves OUT as it was, and no staging directory."""
    stage = out.parent / f".{out.name}.partial"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    try:
        card = export_to(run, stage, out.resolve().name, extras)
        if out.exists():
            shutil.rmtree(out)  # check_out allowed only an empty directory or an earlier package
        stage.rename(out)
        return card
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def export_to(run: Path, stage: Path, name: str, extras: dict) -> dict:
    """The package of RUN's checkpoint in `stage`, evaluated on dev, with its card; returns the card."""
    from mapo_jax import checkpointing, pretrained
    from mapo_jax.model_card import shown_path

    policy = checkpointing.restore_policy(run, FLAGS.checkpoint)
    locations = {flag: getattr(FLAGS, flag) for flag in config_lib.DATA_LOCATION_FLAGS if FLAGS[flag].present}
    policy = policy._replace(data_config=policy.data_config.replace(**locations))
    examples, dev = load_data(policy)
    policy = policy._replace(read_as_unk=frozenset(words_read_as_unk(policy, examples)))
    source = {"run": str(run), "checkpoint": FLAGS.checkpoint}
    pretrained.save_package(stage, policy, source, policy.read_as_unk, float16=FLAGS.float16)
    package = pretrained.load_package(stage, vectors=policy.featurizer.vectors)  # evaluate what was written
    label = f"export-{FLAGS.checkpoint}" + ("-float16" if FLAGS.float16 else "")
    evaluated = evaluate_dev(package, dev, run / "eval" / label, f"the package ({label})")
    facts = {"name": name, "run": shown_path(run), "checkpoint": FLAGS.checkpoint, "dev_split": dev.split,
             "beam_size": FLAGS.beam_size, "dev": evaluated["dev"], "dev_first": evaluated["dev_first"],
             "dev_float32": None, **run_facts(run, policy), **extras}
    if FLAGS.float16:
        full = evaluate_dev(policy, dev, run / "eval" / f"export-{FLAGS.checkpoint}", "the float32 parameters")
        compare_float16(evaluated, full)
        facts["dev_float32"] = full["dev"]
    return write_card(stage, facts)


@friendly_errors(uses=("workdir", "beam_size", *config_lib.DATA_LOCATION_FLAGS))
def main(argv):
    if FLAGS.refresh_card:
        if not FLAGS.out or FLAGS.workdir:
            raise app.UsageError("--refresh_card rewrites the card of the package at --out: give --out, not --workdir")
        given = {"records": FLAGS["records"].present, "notes": FLAGS["card_notes"].present}
        extras = card_extras(FLAGS.records, FLAGS.card_notes)
        card = refresh_card(Path(FLAGS.out), {key: value for key, value in extras.items() if given[key]})
        print(f"refreshed {FLAGS.out}/MODEL_CARD.md, card.json ({len(card['records'])} records, "
              f"{'with' if card['notes'] else 'without'} notes); figures kept: dev {card['dev']['accuracy']:.4f}")
        return
    if not (FLAGS.workdir and FLAGS.out):
        raise app.UsageError("give --workdir=RUN (a training run) and --out=DIR (the package to write)")
    run, out = Path(FLAGS.workdir), Path(FLAGS.out)
    if not run.is_dir():
        raise FileNotFoundError(f"run directory {run} does not exist")
    check_out(out, FLAGS.overwrite)
    card = export(run, out, card_extras(FLAGS.records, FLAGS.card_notes))
    first = card["dev_first"]
    print(f"exported step {card['step']} of {run} to {out} ({card['package_bytes'] / 1e6:.2f} MB without the card)")
    print(f"dev accuracy (beam {card['beam_size']}, official matching): {card['dev']['accuracy']:.4f} "
          f"({card['dev']['correct']}/{card['dev']['questions']}); first {first['questions']} questions: "
          f"{first['accuracy']:.4f}")
    print(f"  -> {out}/MODEL_CARD.md, card.json")


if __name__ == "__main__":
    app.run(main)
