"""The run state: everything a checkpoint saves so that a resumed run continues exactly as if it had
never stopped (docs/architecture.md#checkpoints-and-resume), and its translation to and from the
stored layout of `checkpointing.FullState` (format `checkpointing.FORMAT`).

Stored layout, kept stable so that saved runs restore:

* `train_state`: the learner's `TrainState` (host arrays);
* `actors[i]`: actor i's `Actor.state_dict()` JSON plus `next_step` and `queued` (records of its queued
  batches); `arrays["actor{i}"]`: `bloom` and, when it had queued batches, `queued`;
* `arrays["policy"]`: {version: params}; `arrays["pending_eval"]`: {step: params}, when any;
* `meta`: `n_actors`, `best`, `wall_time`, `step` (the checkpointer adds `format`).
"""

from __future__ import annotations

from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

from mapo_jax import checkpointing
from mapo_jax.acting import ActorStats
from mapo_jax.training.actor_pool import ActorState


class RunState(NamedTuple):
    """Everything a resumed run needs to go on exactly as an uninterrupted one, as plain data."""

    step: int
    train_state: Any  # learning.TrainState, host arrays
    actors: Sequence[ActorState]
    policy_versions: Dict[int, Any]  # parameters by version that actors may still sample with
    pending_evaluations: Sequence[Tuple[int, Any]]  # (step, params) of dev evaluations not recorded yet
    best: dict  # the best dev evaluation so far, {"step", "dev/accuracy"} (informative: resume reads metrics)
    wall_time: float  # seconds of training so far, over every attempt
    n_actors: Optional[int]  # a checkpoint resumes only with the same number of actors


def to_checkpoint(state: RunState) -> checkpointing.FullState:
    actors_json, arrays = [], {}
    for index, actor in enumerate(state.actors):
        records, queued = checkpointing.queue_to_checkpoint(actor.queued)
        actors_json.append(dict(actor.actor, next_step=actor.next_step, queued=records))
        arrays[f"actor{index}"] = dict(bloom=actor.bloom, **({"queued": queued} if queued else {}))
    arrays["policy"] = {str(version): params for version, params in state.policy_versions.items()}
    if state.pending_evaluations:
        arrays["pending_eval"] = {str(step): params for step, params in state.pending_evaluations}
    meta = {"n_actors": state.n_actors, "best": dict(state.best), "wall_time": state.wall_time, "step": state.step}
    return checkpointing.FullState(state.train_state, actors_json, arrays, meta)


def from_checkpoint(full: checkpointing.FullState) -> RunState:
    actors: List[ActorState] = []
    for index, saved in enumerate(full.actors):
        arrays = full.arrays[f"actor{index}"]
        queued = checkpointing.queue_from_checkpoint(saved["queued"], arrays.get("queued", {}), ActorStats)
        actor = {key: value for key, value in saved.items() if key not in ("next_step", "queued")}
        actors.append(ActorState(actor, arrays["bloom"], int(saved["next_step"]), queued))
    versions = {int(version): params for version, params in full.arrays.get("policy", {}).items()}
    pending = sorted(((int(step), params) for step, params in full.arrays.get("pending_eval", {}).items()),
                     key=lambda item: item[0])
    meta = full.meta
    return RunState(int(full.train_state.step), full.train_state, actors, versions, pending, dict(meta.get("best", {})),
                    float(meta.get("wall_time", 0.0)), meta.get("n_actors"))
