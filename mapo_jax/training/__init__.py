"""Training: actor threads, a learner, an evaluator and checkpoints (docs/architecture.md#actors-and-learner).

    actors (actor_pool.py)              learner loop (learner.py)            evaluator (evaluator.py)
    shard of questions, buffers,  --->  pmapped update on batch s,  ----->   beam search on dev every
    Bloom filter; batch s sampled  queue publishes params every M    params  `eval_every` steps, keeps
    with params version v(s)            steps, checkpoints, logs             the best checkpoint

One module per role, read in this order:

* `run.py` -- `train_and_evaluate`: prepares, restores or warm-starts, wires the roles below, cleans up;
* `learner.py` -- the learner loop: consumes batch s from actor s mod N, updates, publishes parameters,
  submits evaluations, logs, checkpoints, stops early;
* `actor_pool.py` -- the `ActorPool` interface the learner sees, `ThreadActorPool`, its implementation
  with `acting.ActorThread`s, and `create_actor_pool`, which picks the `--actor_backend`;
* `remote_pool.py` -- actors in workers (`--actor_backend=processes|ray`): what a worker rebuilds its actor
  from, and the pool that drives workers through the same `ActorThread`s; `process_pool.py` and
  `ray_pool.py` -- the two kinds of workers (Ray is imported only when asked for);
* `evaluator.py` -- the evaluator thread and `DevHistory`, the dev records and best that the learner reads;
* `run_state.py` -- `RunState`, what a checkpoint saves, and its stored layout;
* `metrics_window.py` -- training metrics averaged over `log_every` steps, and the console line;
* `preparation.py` -- data, environments, vocabulary, model config, warm start;
* `workdir.py` -- the run directory: lock, settings check, starting over.

* Reproducible: batch s comes from actor s mod N and is sampled with the parameters published at
  step `policy_version(s)` (acting.py), so thread timing never changes what is learned; a fixed
  number of actors and a fixed seed give identical metrics run after run.
* Resumable: a checkpoint every `checkpoint_every` steps holds the learner state and the actors'
  complete state (queued batches included); the same command continues a stopped run. A stop request
  (`train_and_evaluate(..., stop=event)`; `launch/train.py` sets it on Ctrl-C) finishes the current
  step, writes a checkpoint and returns.
* Fails loudly: an exception in an actor or the evaluator stops the run with its traceback
  (`TrainingFailed`); a non-finite loss stops it naming the step (`FloatingPointError`).
"""

from mapo_jax.errors import TrainingFailed
from mapo_jax.training.evaluator import evaluations_without_improvement
from mapo_jax.training.preparation import LIBRARY_WARM_START, Setup, make_environments, setup
from mapo_jax.training.run import train_and_evaluate

__all__ = ["LIBRARY_WARM_START", "Setup", "TrainingFailed", "evaluations_without_improvement", "make_environments",
           "setup", "train_and_evaluate"]
