"""A model package's card: its figures as data (`card.json`, which tests read) and as text
(`MODEL_CARD.md`, generated from the same dict, so the two never disagree).

Pure functions: launch/export_model.py gathers the facts (evaluations, the run's dev curve, commits)
and writes the files.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Iterable, List, Optional, Sequence

CARD_FORMAT = "mapo_jax.model_card/1"
FIRST_QUESTIONS = 200  # the quick check: accuracy on the first questions of the dev split


def figures(lines: Sequence, ids: Optional[Iterable[str]] = None) -> dict:
    """{questions, correct, accuracy} of scored predictions lines (`predictions.ScoredLine`),
    restricted to `ids` when given."""
    if ids is not None:
        keep = set(ids)
        lines = [line for line in lines if line.id in keep]
    correct = sum(line.correct for line in lines)
    return {"questions": len(lines), "correct": correct, "accuracy": correct / len(lines) if lines else 0.0}


def shown_path(path) -> str:
    """A path as a card shows it: under the home directory as `$HOME/...`, so that the card names no
    user's home and the command works in another's."""
    text, home = str(path), str(Path.home())
    return "$HOME" + text[len(home):] if text.startswith(home + "/") else text


def training_command(flags: Sequence[str], workdir: str) -> str:
    """The shell command that trains the run again (flags from `config.training_flags`). Every path
    value under the home directory is written `$HOME/...`, left outside the quotes so the shell expands it."""
    def word(flag: str) -> str:
        name, equals, value = flag.partition("=")
        shown = name + equals + shown_path(value) if equals else flag
        return "$HOME".join(shlex.quote(part) if part else "" for part in shown.split("$HOME"))

    return " ".join(["python", "launch/train.py", *map(word, [*flags, f"--workdir={workdir}"])])


def recorded_command(record: dict, source: str) -> dict:
    """{name, date, command} of a benchmark record (benchmarks/results/*.json): the exact commands of a
    run that resumed over several legs and commits, or of its warm start, which the run directory lacks."""
    if not isinstance(record, dict) or not isinstance(record.get("command"), str) or not record["command"].strip():
        raise ValueError(f"{source}: not a benchmark record with a 'command' (benchmarks/training_run.py writes them)")
    return {"name": str(record.get("name") or source), "date": str(record.get("date") or "undated"),
            "command": record["command"]}


def _records_lines(records: Sequence[dict]) -> List[str]:
    lines = ["Warm-start settings (rollouts) are not in the run's config" +
             (": see the recorded commands, where one is the warm start's." if records else " and are not shown."), ""]
    if not records:
        return lines
    lines += ["Recorded commands (benchmarks/results), as run:", ""]
    for record in records:
        lines += [f"- `{record['name']}` ({record['date']}):", "", "  ```", f"  {record['command']}", "  ```", ""]
    return lines


def _commit_note(card: dict) -> str:
    return ("not recorded in the run directory (see the recorded commands below, where they name one)"
            if card.get("records") else "not recorded in the run directory")


def _percent(figure: Optional[dict]) -> str:
    if not figure:
        return "n/a"
    return f"{100 * figure['accuracy']:.1f}% ({figure['correct']}/{figure['questions']})"


def _curve_lines(curve: Sequence[Sequence[float]]) -> List[str]:
    if not curve:
        return ["(the run's metrics.jsonl has no dev evaluation)"]
    return ["| step | dev accuracy |", "| ---: | ---: |"] + [f"| {int(s)} | {100 * a:.1f}% |" for s, a in curve]


def _limits(card: dict) -> List[str]:
    program, data = card["config"]["program"], card["config"]["data"]
    vectors = card["word_vectors"]
    return [
        f"- Figures are on the dev part of {data['dataset']} split {data['split']} (questions held out from "
        f"training, tables possibly shared), not on the official test set, which this card does not cover.",
        f"- Programs have at most {program['max_n_exp']} expressions over the `{program['function_set']}` functions; "
        f"questions needing more steps or other operations cannot be answered.",
        f"- At most {program['max_mem'] - program['max_n_exp']} constants (table properties, then question values) "
        f"fit in memory: the later columns of a wider table are invisible (predict.py warns).",
        "- A CSV table's numbers and dates are tagged by our own tagger (mapo_jax/data/csv_tables.py), not by "
        "CoreNLP as in training: unusual formats may be read as plain strings.",
        f"- Question words are read through {vectors['dim']}-d GloVe vectors ({vectors['source']}): a word GloVe "
        f"lacks is <UNK>, and so are the {vectors['read_as_unk']} words of the training data seen fewer than "
        f"min_count times; other new words get their GloVe vectors.",
        "- English questions about a single table only; the answer is the top program's of a beam of "
        f"{card['beam_size']}.",
    ]


def render_card(card: dict) -> str:
    """MODEL_CARD.md from the card dict that card.json holds."""
    data = card["config"]["data"]
    first = card["dev_first"]
    lines = [
        f"# Model card: {card['name']}", "",
        f"A MAPO-trained neural semantic parser (mapo_jax) for questions about tables: {data['dataset']} "
        f"split {data['split']}, step {card['step']} ({card['checkpoint']} checkpoint of `{card['run']}`).", "",
        "## Figures", "",
        f"- dev accuracy, beam {card['beam_size']}, official matching: **{_percent(card['dev'])}** "
        f"on `{card['dev_split']}`",
        f"- first {first['questions']} dev questions: {_percent(first)} (the figure tests/test_shipped_model.py checks)",
    ]
    if card.get("dev_float32"):
        lines.append(f"- the same parameters before float16 rounding: {_percent(card['dev_float32'])}")
    if card.get("training_dev_accuracy") is not None:
        lines.append(f"- dev accuracy recorded during training at this step: {100 * card['training_dev_accuracy']:.1f}%")
    lines += ["", "## Data", "",
              f"Trained on the train part of {data['dataset']} split {data['split']}; the encoder vocabulary "
              f"({card['vocab_size']} ids) comes from its train and dev parts.", "",
              "## Training", "", "```", card["training_command"], "```", "",
              f"Training commit: {card.get('training_commit') or _commit_note(card)}. "
              f"Exported with code at {card.get('export_commit') or 'an unknown commit'}.", "",
              *_records_lines(card.get("records") or []),
              "## Dev accuracy during training", "", *_curve_lines(card["dev_curve"]), "",
              *(["## Choices and evidence", "", card["notes"].strip(), ""] if card.get("notes") else []),
              "## Known limits", "", *_limits(card), "",
              "## Files", "",
              f"{card['package_files']} ({card['package_bytes'] / 1e6:.2f} MB); parameters stored as "
              f"{'float16' if card['float16'] else 'float32'}; produced by launch/export_model.py.", ""]
    return "\n".join(lines)
