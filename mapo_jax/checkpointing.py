"""Checkpoints with Orbax: the latest K training states, the best parameters by dev accuracy, and the
lock that gives a run directory one owner.

A run directory (`--workdir`) holds::

    LOCK                        held (flock) by the training that owns the directory; freed on exit or kill
    config.json                 data, program, model and training configs (a restarted run must match them)
    vocab.json                  the encoder vocabulary (ids depend on the data it was built from)
    metrics.jsonl               one JSON object per line: training metrics and dev accuracy by step
    tb/                         TensorBoard event files
    warm_start/                 programs.json of the random warm start, when the run made it
    checkpoints/latest/STEP/    the newest K full states (below)
    checkpoints/best/STEP/      the parameters with the best dev accuracy so far
    checkpoints/damaged/STEP/   checkpoints that failed to restore, moved aside (kept for inspection)
    dev_beams.jsonl, dev_predictions.tsv   the beams and predictions of the best evaluation

A full state is everything needed to continue as if never stopped: the learner's `TrainState`
(params, optimiser state, step, dropout RNG); each actor's positions, RNG states, buffer programs,
Bloom filter and the batches it had queued; the parameter versions actors still sample with; the
parameters of dev evaluations not finished yet; the evaluator's best so far. It is stored as arrays
(Orbax/TensorStore) and JSON only, with `FORMAT` in its metadata: nothing is pickled, so renaming a
class cannot break a saved run, and a checkpoint of another format is refused by name.

Orbax writes a step to a temporary directory and renames it when complete, so a run killed mid-save
resumes from the previous step; a checkpoint damaged later (a truncated file) is moved to
`checkpoints/damaged/` and the newest intact one is used.
"""

from __future__ import annotations

import datetime
import fcntl
import os
import shutil
import socket
import typing
from pathlib import Path
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple, Union

import jax
import numpy as np
import orbax.checkpoint as ocp

from mapo_jax.errors import UserInputError
from mapo_jax.io_utils import read_json

LATEST = "checkpoints/latest"
BEST = "checkpoints/best"
DAMAGED = "checkpoints/damaged"
CONFIG_FILE = "config.json"
VOCAB_FILE = "vocab.json"
LOCK_FILE = "LOCK"
FORMAT = "mapo_jax.checkpoint/2"  # bump when the saved structure changes


class CheckpointFormatError(UserInputError):
    """A checkpoint written by another version of the code: refused, never guessed at."""


class WorkdirBusy(UserInputError):
    """Another training owns the run directory."""


def _host(tree):
    """A host (numpy) copy: the learner donates its device buffers to the next update."""
    return jax.tree_util.tree_map(lambda x: np.array(x), jax.device_get(tree))


# ------------------------------------------------------------------------------- one owner per run
class WorkdirLock:
    """An exclusive `flock` on WORKDIR/LOCK for the life of a training.

    The kernel drops the lock when the process ends, however it ends (kill -9 included), so a killed
    run never leaves its directory stuck; a second training on the same directory is refused with the
    owner's pid and start time instead of interleaving its metrics and checkpoints with the first.
    """

    def __init__(self, workdir: Union[str, Path]):
        self.path = Path(workdir) / LOCK_FILE
        self._file = None

    def acquire(self) -> "WorkdirLock":
        handle = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "another process"
            handle.close()
            raise WorkdirBusy(f"{self.path.parent} is in use by another training ({owner}); wait for it to "
                              f"finish, stop it, or use another --workdir") from None
        handle.seek(0)
        handle.truncate()
        started = datetime.datetime.now().isoformat(timespec="seconds")
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}, started {started}\n")
        handle.flush()
        self._file = handle
        return self

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None

    def __enter__(self) -> "WorkdirLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


# ------------------------------------------------------------------------------- queued batches
def batch_to_arrays(batch) -> Dict[str, Dict[str, np.ndarray]]:
    """A `learning.LearnerBatch` as plain named arrays: {part: {field: array}}."""
    return {part: {name: np.asarray(value) for name, value in getattr(batch, part)._asdict().items()}
            for part in batch._fields}


def batch_from_arrays(arrays: Dict[str, Dict[str, Any]]):
    """The `learning.LearnerBatch` of `batch_to_arrays`; a missing part or field is a format error."""
    from mapo_jax import learning

    parts = {}
    for part, cls in typing.get_type_hints(learning.LearnerBatch).items():
        try:
            parts[part] = cls(**{name: np.asarray(arrays[part][name]) for name in cls._fields})
        except KeyError as missing:
            raise CheckpointFormatError(f"a queued batch lacks {part}.{missing.args[0]}") from None
    return learning.LearnerBatch(**parts)



def queue_to_checkpoint(items: List[tuple]) -> Tuple[List[dict], Dict[str, Any]]:
    """An actor's queued (step, batch, stats) as (JSON records, arrays by position)."""
    records, arrays = [], {}
    for position, (step, batch, stats) in enumerate(items):
        fields = {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in stats._asdict().items()}
        records.append({"step": int(step), "stats": fields})
        arrays[str(position)] = batch_to_arrays(batch)
    return records, arrays


def queue_from_checkpoint(records: List[dict], arrays: Dict[str, Any], stats_type) -> List[tuple]:
    """The inverse of `queue_to_checkpoint`; `stats_type` is the actor's stats NamedTuple."""
    items = []
    for position, record in enumerate(records):
        stats = stats_type(**{k: (float("nan") if v is None else v) for k, v in record["stats"].items()})
        items.append((int(record["step"]), batch_from_arrays(arrays[str(position)]), stats))
    return items


# ------------------------------------------------------------------------------- the managers
class FullState(NamedTuple):
    train_state: Any  # learning.TrainState (host arrays)
    actors: List[dict]  # per actor: JSON-able state (Actor.state_dict()[0], next_step, queued records)
    arrays: Dict[str, Any]  # actor{i}: {bloom, queued}; policy: {version: params}; pending_eval: {step: params}
    meta: dict  # format, step, n_actors, best, wall_time


def check_format(meta: dict, where: Path) -> None:
    found = meta.get("format", "mapo_jax.checkpoint/1 (pickled queues)")
    if found != FORMAT:
        raise CheckpointFormatError(
            f"{where} was written in checkpoint format {found!r}; this version reads {FORMAT!r}. "
            f"Resume it with the version that wrote it, or start a new run in another --workdir")


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:200] if text else ''}"


class Checkpointer:
    """The run's two Orbax managers. Saves are synchronous: the caller has paused the actors, and a
    checkpoint every few hundred steps costs well under a second."""

    def __init__(self, workdir: Union[str, Path], keep: int = 3):
        self.workdir = Path(workdir)
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True, enable_async_checkpointing=False)
        self.latest = ocp.CheckpointManager((self.workdir / LATEST).absolute(), options=options)
        best_options = ocp.CheckpointManagerOptions(
            max_to_keep=1, create=True, best_fn=lambda m: m["dev_accuracy"], best_mode="max",
            enable_async_checkpointing=False)
        self.best = ocp.CheckpointManager((self.workdir / BEST).absolute(), options=best_options)

    def latest_step(self) -> Optional[int]:
        return self.latest.latest_step()

    def save(self, step: int, state: FullState) -> None:
        train_state = _host(state.train_state._asdict())
        meta = dict(state.meta, format=FORMAT)
        self.latest.save(step, args=ocp.args.Composite(
            train_state=ocp.args.StandardSave(train_state),
            actors=ocp.args.JsonSave({"actors": state.actors}),
            arrays=ocp.args.StandardSave(state.arrays),
            meta=ocp.args.JsonSave(meta)), force=True)
        self.latest.wait_until_finished()

    def _restore_step(self, step: int, target_train_state) -> FullState:
        meta = self.latest.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
        check_format(meta, self.workdir / LATEST / str(step))
        target = _host(target_train_state._asdict())
        restored = self.latest.restore(step, args=ocp.args.Composite(
            train_state=ocp.args.StandardRestore(target), actors=ocp.args.JsonRestore(),
            arrays=ocp.args.StandardRestore(), meta=ocp.args.JsonRestore()))
        train_state = type(target_train_state)(**restored["train_state"])
        return FullState(train_state, restored["actors"]["actors"], restored["arrays"], restored["meta"])

    def restore(self, target_train_state, log: Callable[[str], None] = print) -> Optional[FullState]:
        """The newest intact full state, or None when there is no checkpoint.

        A checkpoint that fails to restore (a truncated or corrupted file) is moved to
        `checkpoints/damaged/` -- once an older intact one is found -- and said so; if none is
        intact nothing is moved and the run stops with every checkpoint's error (starting over
        silently would discard the run). A checkpoint of another format is refused outright.
        """
        failures = []
        for step in sorted(self.latest.all_steps(), reverse=True):
            try:
                state = self._restore_step(step, target_train_state)
            except CheckpointFormatError:
                raise
            except Exception as error:  # noqa: BLE001 -- whatever the damage, try the previous one
                failures.append((step, _first_line(error)))
                continue
            for bad_step, reason in failures:
                self._move_aside(bad_step)
                log(f"[train] skipped damaged checkpoint {bad_step} ({reason}); moved it to {DAMAGED}/{bad_step}")
            return state
        if failures:
            details = "; ".join(f"step {s}: {r}" for s, r in failures)
            raise UserInputError(f"no intact checkpoint in {self.workdir / LATEST} ({details}); "
                                 f"move the run directory away to start over")
        return None

    def _move_aside(self, step: int) -> None:
        target = self.workdir / DAMAGED / str(step)
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(self.workdir / LATEST / str(step)), str(target))
        self.latest.reload()

    def save_best(self, step: int, params, dev_accuracy: float) -> None:
        """Keeps `params` if `dev_accuracy` beats the kept one (Orbax's best_fn decides).

        Idempotent: a resumed run evaluates again the steps after its checkpoint, and may find the
        best checkpoint of such a step already written before the interruption; it is replaced.
        """
        if step in self.best.all_steps():
            self.best.delete(step)
        self.best.save(step, args=ocp.args.Composite(
            params=ocp.args.StandardSave(_host(params)),
            meta=ocp.args.JsonSave({"step": step, "dev_accuracy": dev_accuracy})),
            metrics={"dev_accuracy": float(dev_accuracy)}, force=True)
        self.best.wait_until_finished()

    def clear_best(self) -> None:
        """Forgets every best checkpoint (a run starting over from step 0)."""
        for step in self.best.all_steps():
            self.best.delete(step)

    def close(self) -> None:
        self.latest.close()
        self.best.close()


def restore_params(workdir: Union[str, Path], checkpoint: Union[str, int] = "best") -> Tuple[dict, int]:
    """(params, step) of a run: `best` (by dev accuracy), `latest`, or a step number of the latest
    checkpoints. Parameters come back as numpy arrays in the policy's nested-dict structure."""
    workdir = Path(workdir)
    kind = "best" if checkpoint == "best" else "latest"
    directory = (workdir / (BEST if kind == "best" else LATEST)).absolute()
    if not directory.is_dir():
        raise FileNotFoundError(f"{workdir} has no {kind} checkpoint ({directory} is missing)")
    manager = ocp.CheckpointManager(directory, options=ocp.CheckpointManagerOptions(create=False))
    try:
        steps = manager.all_steps()
        if not steps:
            raise FileNotFoundError(f"{directory} holds no checkpoint")
        if checkpoint in ("best", "latest"):
            step = max(steps)
        else:
            step = int(checkpoint)
            if step not in steps:
                raise FileNotFoundError(f"no checkpoint of step {step} in {directory} (kept: {sorted(steps)})")
        if kind == "best":
            restored = manager.restore(step, args=ocp.args.Composite(params=ocp.args.StandardRestore()))
            params = restored["params"]
        else:
            restored = manager.restore(step, args=ocp.args.Composite(train_state=ocp.args.StandardRestore()))
            params = restored["train_state"]["params"]
    finally:
        manager.close()
    return jax.tree_util.tree_map(np.asarray, params), step


def read_run_config(workdir: Union[str, Path]) -> dict:
    path = Path(workdir) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{workdir} is not a training run directory ({CONFIG_FILE} is missing)")
    return read_json(path)


class RestoredPolicy(NamedTuple):
    params: Any
    model_config: Any  # ModelConfig
    program_config: Any  # ProgramConfig: the function set and limits the model decodes with
    featurizer: Any  # batching.Featurizer
    data_config: Any  # DataConfig
    train_config: Any  # TrainConfig
    step: int
    # Words of the training data the model read as <UNK> (below min_count): known for a model
    # package, None for a run directory, where unseen words then stay <UNK> (mapo_jax/pretrained.py).
    read_as_unk: Optional[frozenset] = None


def restore_policy(workdir: Union[str, Path], checkpoint: Union[str, int] = "best") -> RestoredPolicy:
    """Everything needed to decode with a trained run: parameters, configs and the featurizer
    (vocabulary + word vectors) it was trained with."""
    from mapo_jax.batching import Featurizer
    from mapo_jax.config import configs_from_json
    from mapo_jax.data.embeddings import load_glove
    from mapo_jax.data.vocab import EncoderVocab

    data_config, program_config, model_config, train_config = configs_from_json(read_run_config(workdir))
    vocab = EncoderVocab.from_json(read_json(Path(workdir) / VOCAB_FILE))
    vectors = load_glove(train_config.glove_file)
    params, step = restore_params(workdir, checkpoint)
    return RestoredPolicy(params, model_config, program_config, Featurizer(vocab, vectors, max_mem=model_config.max_mem),
                          data_config, train_config, step)
