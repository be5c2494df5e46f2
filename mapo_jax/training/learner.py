"""The learner loop (docs/architecture.md#actors-and-learner), in the main thread.

At step s it takes batch s from the actor pool (made by actor s mod N with the parameters of version
`policy_version(s)`), applies the pmapped update and stops naming the step on a non-finite loss; every
`publish_every` steps it publishes its parameters to the actors, every `eval_every` steps it submits
them to the evaluator, every `log_every` steps it writes the metrics window, every `checkpoint_every`
steps it saves the run state. It stops at `n_steps`, on a stop request (after the step in progress,
with a checkpoint) or when early stopping says the dev accuracy has plateaued.
"""

from __future__ import annotations

import functools
import math
import threading
import time
from typing import Any, Callable, NamedTuple, Optional, Tuple

import jax

from mapo_jax import checkpointing, learning
from mapo_jax.config import ModelConfig, TrainConfig
from mapo_jax.metrics import MetricsWriter
from mapo_jax.training import run_state
from mapo_jax.training.actor_pool import ActorPool
from mapo_jax.training.evaluator import Evaluator, due_evaluations, evaluations_without_improvement
from mapo_jax.training.metrics_window import MetricsWindow, console_line


@functools.lru_cache(maxsize=8)
def compiled_update(make_policy_loss, config: ModelConfig, objective: str, alpha: float, entropy_coeff: float,
                    learning_rate: float, max_grad_norm: float):
    """(optimizer, pmapped update), one per setting: another run in the same process (a notebook, the
    tests, a sweep) reuses its compiled executables instead of compiling again."""
    optimizer = learning.make_optimizer(learning_rate, max_grad_norm)
    loss_fn = make_policy_loss(objective, config, alpha, entropy_coeff)
    return optimizer, learning.make_pmapped_update(loss_fn, optimizer)


def to_devices(batch: learning.LearnerBatch, n_devices: int) -> learning.LearnerBatch:
    """Rows sharded over the local devices; the encoder inputs, indexed by row, on every device."""
    return learning.LearnerBatch(learning.shard(batch.samples, n_devices), learning.replicate(batch.inputs, n_devices),
                                 learning.shard(batch.trajectories, n_devices))


def current_params(state):
    """The parameters of a replicated TrainState, as a fresh array: safe from the next donation."""
    return learning.unreplicate(state.params)


class LearnerOutcome(NamedTuple):
    state: Any  # the replicated TrainState after the last step
    step: int
    early_stopped: bool


class LearnerLoop:
    """Consumes the pool's batches in step order and drives publication, evaluation, logs and
    checkpoints. `stop` is the caller's stop request (e.g. set by a Ctrl-C handler)."""

    def __init__(self, cfg: TrainConfig, update, pool: ActorPool, evaluator: Evaluator, writer: MetricsWriter,
                 checkpointer: Optional[checkpointing.Checkpointer], wall_time: Callable[[], float],
                 log: Callable[[str], None], stop: threading.Event):
        self.cfg, self.update, self.pool, self.evaluator = cfg, update, pool, evaluator
        self.writer, self.checkpointer, self.wall_time, self.log, self.stop = writer, checkpointer, wall_time, log, stop
        self.n_devices = jax.local_device_count()

    def run(self, state, start_step: int, resumed: Optional[run_state.RunState]) -> LearnerOutcome:
        """From `start_step` (the replicated TrainState `state`'s) to `n_steps`, a stop request or early
        stopping; `resumed` is the run state a resumed run was restored from."""
        cfg = self.cfg
        step, early_stopped = start_step, False
        saved_step = start_step if resumed is not None else None  # the checkpoint it resumed from
        self._start(state, step, resumed)
        window = MetricsWindow()
        while step < cfg.n_steps and not self.stop.is_set():
            if self._plateaued(step):
                early_stopped = True
                break
            state, step = self._train_step(state, step, window)
            if step % cfg.publish_every == 0:
                self.pool.publish(step, current_params(state))
            if step % cfg.eval_every == 0 or step == cfg.n_steps:
                self.evaluator.submit(step, current_params(state))
            if step % cfg.log_every == 0 or step == cfg.n_steps:
                self._log_window(window, step)
            if step % cfg.checkpoint_every == 0 and step < cfg.n_steps:
                saved_step = self._save_checkpoint(state, step, saved_step)
        self._save_checkpoint(state, step, saved_step)
        self._wind_down(step)
        return LearnerOutcome(state, step, early_stopped)

    def _start(self, state, step: int, resumed: Optional[run_state.RunState]) -> None:
        """Publishes the versions the actors' next batches are sampled with, starts actors and evaluator,
        and submits the evaluations owed: step 0's, or those a resumed run's checkpoint saw unfinished."""
        if resumed is not None:
            for version, params in sorted(resumed.policy_versions.items()):
                if version < step:
                    self.pool.publish(version, params)
        self.pool.publish(step, current_params(state))
        self.pool.start()
        self.evaluator.start()
        if resumed is not None:
            for eval_step, params in due_evaluations(resumed.pending_evaluations, self.evaluator.history().records):
                self.evaluator.submit(eval_step, params)
        else:
            self.evaluator.submit(0, current_params(state))

    def _train_step(self, state, step: int, window: MetricsWindow) -> Tuple[Any, int]:
        waited = time.perf_counter()
        actor, batch, stats = self.pool.next_batch(step, while_waiting=self.evaluator.raise_if_failed)
        window.wait += time.perf_counter() - waited
        state, metrics = self.update(state, to_devices(batch, self.n_devices))
        step += 1
        loss = float(metrics["loss"][0])
        if not math.isfinite(loss):
            raise FloatingPointError(f"the loss is {loss} at learner step {step} (objective {self.cfg.objective}); "
                                     f"the last checkpoint is before it")
        window.add(metrics, actor, stats)
        return state, step

    def _plateaued(self, step: int) -> bool:
        """Early stopping (logged when it stops), decided at evaluation steps from the evaluations of
        earlier steps only (waited for), so the step a run stops at does not depend on how fast the
        evaluator is."""
        cfg = self.cfg
        if not cfg.early_stop_evals or step % cfg.eval_every:
            return False
        records = self.evaluator.records_before(step, while_waiting=self._raise_if_failed)
        if evaluations_without_improvement(records) < cfg.early_stop_evals:
            return False
        best = self.evaluator.history().best
        self.log(f"[train] early stop at step {step}: {cfg.early_stop_evals} dev evaluations without a new best "
                 f"(best {best['dev/accuracy']:.4f} @ {best['step']})")
        return True

    def _log_window(self, window: MetricsWindow, step: int) -> None:
        record = window.record(step, self.cfg.n_actors)
        record.update({"wall_time": round(self.wall_time(), 1), "eval/backlog": self.evaluator.backlog,
                       "queue/depth": self.pool.queue_depth()})
        self.writer.write(record)
        self.log(console_line(record, self.cfg.n_steps, self.evaluator.history().best))

    def _save_checkpoint(self, state, step: int, saved_step: Optional[int]) -> Optional[int]:
        """Saves the run state of `step` (once per step) with the actors paused, so it is consistent;
        returns the step now saved."""
        if self.checkpointer is None or step == saved_step:
            return saved_step
        with self.pool.paused():
            self._raise_if_failed()
            actors = self.pool.collect()
            pending, history = self.evaluator.snapshot()
            saved = run_state.RunState(step, learning.unreplicate(state), actors.actors, actors.policy_versions,
                                       pending, history.best, self.wall_time(), self.cfg.n_actors)
            self.checkpointer.save(step, run_state.to_checkpoint(saved))
        return step

    def _wind_down(self, step: int) -> None:
        if self.stop.is_set():
            self.log(f"[train] stopped at step {step}; checkpoint written. Run the same command to resume.")
        else:
            self.log("[train] waiting for the last dev evaluation")
            self.evaluator.finish()
            self._raise_if_failed()

    def _raise_if_failed(self) -> None:
        self.pool.raise_if_failed()
        self.evaluator.raise_if_failed()
