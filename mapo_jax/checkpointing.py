"""Checkpoints with Orbax: the latest K training states, and the best parameters by dev accuracy.

A run directory (`--workdir`) holds::

    config.json                 data, model and training configs (a restarted run must match them)
    vocab.json                  the encoder vocabulary (ids depend on the data it was built from)
    metrics.jsonl               one JSON object per line: training metrics and dev accuracy by step
    tb/                         TensorBoard event files
    warm_start/                 programs.json of the random warm start, when the run made it
    checkpoints/latest/STEP/    the newest K full states (below)
    checkpoints/best/STEP/      the parameters with the best dev accuracy so far
    dev_beams.jsonl, dev_predictions.tsv   the beams and predictions of the best evaluation

A full state is everything needed to continue as if never stopped: the learner's `TrainState`
(params, optimiser state, step, dropout RNG) and each actor's positions, RNG states, buffer programs,
Bloom filter and the batches it had queued, plus the evaluator's best so far. Orbax writes a step to a
temporary directory and renames it when complete, so a run killed mid-save resumes from the previous
step.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any, Dict, List, NamedTuple, Optional, Tuple, Union

import jax
import numpy as np
import orbax.checkpoint as ocp

LATEST = "checkpoints/latest"
BEST = "checkpoints/best"
CONFIG_FILE = "config.json"
VOCAB_FILE = "vocab.json"


def _host(tree):
    """A host (numpy) copy: the learner donates its device buffers to the next update."""
    return jax.tree_util.tree_map(lambda x: np.array(x), jax.device_get(tree))


def pack_object(obj) -> np.ndarray:
    """Python objects of our own making (queued batches) as bytes Orbax can store."""
    return np.frombuffer(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL), np.uint8).copy()


def unpack_object(array: np.ndarray):
    return pickle.loads(np.asarray(array, np.uint8).tobytes())


class FullState(NamedTuple):
    train_state: Any  # learning.TrainState (host arrays)
    actors: List[dict]  # per actor: JSON-able state (Actor.state_dict()[0] + next_step)
    arrays: Dict[str, Dict[str, np.ndarray]]  # per actor: Bloom filter arrays and packed queued batches
    meta: dict  # step, best dev accuracy, ...


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
        self.latest.save(step, args=ocp.args.Composite(
            train_state=ocp.args.StandardSave(train_state),
            actors=ocp.args.JsonSave({"actors": state.actors}),
            arrays=ocp.args.StandardSave(state.arrays),
            meta=ocp.args.JsonSave(state.meta)), force=True)
        self.latest.wait_until_finished()

    def restore(self, target_train_state, step: Optional[int] = None) -> FullState:
        """The full state at `step` (default: latest); `target_train_state` gives structure and dtypes."""
        step = self.latest.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self.workdir / LATEST}")
        target = _host(target_train_state._asdict())
        restored = self.latest.restore(step, args=ocp.args.Composite(
            train_state=ocp.args.StandardRestore(target), actors=ocp.args.JsonRestore(),
            arrays=ocp.args.StandardRestore(), meta=ocp.args.JsonRestore()))
        train_state = type(target_train_state)(**restored["train_state"])
        return FullState(train_state, restored["actors"]["actors"], restored["arrays"], restored["meta"])

    def save_best(self, step: int, params, dev_accuracy: float) -> None:
        """Keeps `params` if `dev_accuracy` beats the kept one (Orbax's best_fn decides)."""
        self.best.save(step, args=ocp.args.Composite(
            params=ocp.args.StandardSave(_host(params)),
            meta=ocp.args.JsonSave({"step": step, "dev_accuracy": dev_accuracy})),
            metrics={"dev_accuracy": float(dev_accuracy)}, force=True)
        self.best.wait_until_finished()

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
    return json.loads(path.read_text())


class RestoredPolicy(NamedTuple):
    params: Any
    model_config: Any  # ModelConfig
    featurizer: Any  # batching.Featurizer
    data_config: Any  # DataConfig
    train_config: Any  # TrainConfig
    step: int


def restore_policy(workdir: Union[str, Path], checkpoint: Union[str, int] = "best") -> RestoredPolicy:
    """Everything needed to decode with a trained run: parameters, configs and the featurizer
    (vocabulary + word vectors) it was trained with."""
    from mapo_jax.batching import Featurizer
    from mapo_jax.config import configs_from_json
    from mapo_jax.data.embeddings import load_glove
    from mapo_jax.data.vocab import EncoderVocab

    data_config, model_config, train_config = configs_from_json(read_run_config(workdir))
    vocab = EncoderVocab.from_json(json.loads((Path(workdir) / VOCAB_FILE).read_text()))
    vectors = load_glove(train_config.glove_file)
    params, step = restore_params(workdir, checkpoint)
    return RestoredPolicy(params, model_config, Featurizer(vocab, vectors, max_mem=model_config.max_mem),
                          data_config, train_config, step)
