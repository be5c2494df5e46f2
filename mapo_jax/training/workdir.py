"""The run directory of a training (docs/architecture.md#checkpoints-and-resume): one owner (a lock),
settings that a restart must match, and a clean start over when no checkpoint was ever written.
The full layout is documented in mapo_jax/checkpointing.py."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from mapo_jax import checkpointing
from mapo_jax.config import RESUMABLE_CHANGES, RUN_CONFIG_PARTS, configs_from_json, configs_to_json
from mapo_jax.errors import UserInputError
from mapo_jax.io_utils import atomic_write_text, read_json
from mapo_jax.metrics import METRICS_FILE, TB_DIR

WARM_START_DIR = "warm_start"
BEST_BEAMS, BEST_PREDICTIONS = "dev_beams.jsonl", "dev_predictions.tsv"


def open_workdir(workdir: Path) -> checkpointing.WorkdirLock:
    """Creates the run directory if needed and takes its lock; a path that cannot be a run directory
    is named in one line."""
    if workdir.exists() and not workdir.is_dir():
        raise UserInputError(f"--workdir={workdir} is a file, not a directory")
    try:
        workdir.mkdir(parents=True, exist_ok=True)
        return checkpointing.WorkdirLock(workdir).acquire()
    except PermissionError as error:
        raise UserInputError(f"--workdir={workdir} is not writable ({error.strerror})") from None


def prepare_workdir(workdir: Path, record: dict) -> bool:
    """Writes config.json for a new run; for an existing one checks that only resumable settings
    changed. Returns whether the directory already held this run."""
    path = workdir / checkpointing.CONFIG_FILE
    if not path.exists():
        atomic_write_text(path, json.dumps(record, indent=1) + "\n")
        return False
    try:  # a setting added since the run was made reads as its default (TrainConfig's rule for new fields)
        saved = configs_to_json(*configs_from_json(read_json(path)))
    except TypeError as error:
        raise UserInputError(f"{path} has settings this version does not know ({error}); use another --workdir") \
            from None
    except UserInputError as error:
        raise UserInputError(f"{path}: {error}; use another --workdir") from None
    differences = []
    for part in RUN_CONFIG_PARTS:
        for key in sorted(set(saved.get(part, {})) | set(record[part])):
            old, new = saved.get(part, {}).get(key), record[part].get(key)
            if old != new and not (part == "train" and key in RESUMABLE_CHANGES):
                differences.append(f"{part}.{key}: {old!r} -> {new!r}")
    if differences:
        raise UserInputError(f"{workdir} holds a run with other settings ({'; '.join(differences)}); "
                             f"use another --workdir, or the run's own settings to resume it")
    atomic_write_text(path, json.dumps(record, indent=1) + "\n")  # e.g. a longer n_steps
    return True


def start_over(workdir: Path, checkpointer: checkpointing.Checkpointer, log) -> None:
    """A run directory without a checkpoint restarts from step 0: what an interrupted first attempt
    left (dev records, the best checkpoint, beams) would otherwise be duplicated or contradicted."""
    leftovers = [workdir / name for name in (METRICS_FILE, TB_DIR, BEST_BEAMS, BEST_PREDICTIONS)]
    if not any(p.exists() for p in leftovers) and not checkpointer.best.all_steps():
        return
    for path in leftovers:
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    checkpointer.clear_best()
    log(f"[train] {workdir} has no checkpoint yet: starting over from step 0 (earlier metrics and best removed)")
