"""The evaluator: beam search on dev with the parameters of submitted learner steps, in a thread of its
own so the learner never waits for it (docs/architecture.md#actors-and-learner).

Each result, in this order: a new best saves the best checkpoint, `dev_beams.jsonl` and
`dev_predictions.tsv`; then the `dev/*` record is written (so a record always has its best saved);
then the `DevHistory` that the learner reads (under the evaluator's lock) gains the record. Evaluations
submitted and not recorded yet are `pending()`: a checkpoint saves their parameters, so one cut short
by a stop or a kill is done again by the resumed run.
"""

from __future__ import annotations

import collections
import threading
import traceback
from pathlib import Path
from typing import Callable, Deque, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from mapo_jax import checkpointing, evaluation
from mapo_jax.errors import TrainingFailed
from mapo_jax.metrics import MetricsWriter
from mapo_jax.training.workdir import BEST_BEAMS, BEST_PREDICTIONS

POLL_S = 0.1  # how often a learner waiting for evaluations checks for failures


class DevHistory(NamedTuple):
    """The dev evaluations recorded so far and the best of them ({} before the first)."""

    records: Tuple[dict, ...] = ()
    best: dict = {}


def is_new_best(history: DevHistory, accuracy: float) -> bool:
    """Strictly better than the best so far: on ties the earlier evaluation stays the best."""
    return not history.best or accuracy > history.best["dev/accuracy"]


def with_record(history: DevHistory, record: dict) -> DevHistory:
    best = history.best
    if is_new_best(history, record["dev/accuracy"]):
        best = {"step": record["step"], "dev/accuracy": record["dev/accuracy"]}
    return DevHistory(history.records + (record,), best)


def dev_history(records: Sequence[dict]) -> DevHistory:
    """The history of the dev records of a run's metrics (those of a resumed run's earlier attempts)."""
    history = DevHistory()
    for record in records:
        if "dev/accuracy" in record:
            history = with_record(history, record)
    return history


def evaluations_without_improvement(history: Sequence[dict]) -> int:
    """How many dev evaluations came after the best one (the first best, on ties)."""
    accuracies = [r["dev/accuracy"] for r in sorted(history, key=lambda r: r["step"])]
    return len(accuracies) - 1 - int(np.argmax(accuracies)) if accuracies else 0


def dev_record(step: int, wall_time: float, result: evaluation.EvalResult) -> dict:
    return {"step": step, "wall_time": round(wall_time, 1), "dev/accuracy": result.accuracy,
            "dev/oracle_accuracy": result.oracle_accuracy, "dev/seconds": round(result.seconds, 1)}


def eval_line(step: int, result: evaluation.EvalResult, best: dict, beam_size: int) -> str:
    return (f"[eval] step {step}: dev accuracy {result.accuracy:.4f} (beam {beam_size}; oracle "
            f"{result.oracle_accuracy:.4f}; {result.seconds:.0f} s)  best {best['dev/accuracy']:.4f} @ {best['step']}")


class DevOutputs(NamedTuple):
    """Where evaluation results go."""

    writer: MetricsWriter  # dev/* records
    checkpointer: Optional[checkpointing.Checkpointer]  # the best parameters (None: a run without workdir)
    workdir: Optional[Path]  # the best evaluation's beams and predictions
    wall_time: Callable[[], float]  # the run's training seconds so far
    log: Callable[[str], None]
    beam_size: int


def keep_best(outputs: DevOutputs, step: int, params, result: evaluation.EvalResult) -> None:
    if outputs.checkpointer is not None:
        outputs.checkpointer.save_best(step, params, result.accuracy)
        evaluation.write_beams(outputs.workdir / BEST_BEAMS, result.results, {"step": step})
        evaluation.write_predictions(outputs.workdir / BEST_PREDICTIONS, result.results)


class Evaluator(threading.Thread):
    """Evaluates submitted (step, params) in order; the learner reads the results through `history()`,
    `records_before()` and `snapshot()`, all under the evaluator's lock.

    An exception ends the thread and is kept with its traceback: `raise_if_failed()` raises it as
    `TrainingFailed`. A daemon: an evaluation in flight when the run stops is dropped with it.
    """

    def __init__(self, evaluate: Callable[[object], evaluation.EvalResult], outputs: DevOutputs,
                 history: DevHistory = DevHistory()):
        super().__init__(name="evaluator", daemon=True)
        self._evaluate = evaluate
        self._outputs = outputs
        self._history = history
        self._requests: Deque[Optional[tuple]] = collections.deque()
        self._current: Optional[tuple] = None
        self._cond = threading.Condition()
        self.error: Optional[str] = None

    def submit(self, step: int, params) -> None:
        with self._cond:
            self._requests.append((step, params))
            self._cond.notify_all()

    def pending(self) -> List[tuple]:
        """(step, params) of every evaluation not recorded yet, oldest first."""
        with self._cond:
            return ([self._current] if self._current is not None else []) + [r for r in self._requests if r]

    def history(self) -> DevHistory:
        with self._cond:
            return self._history

    def snapshot(self) -> Tuple[List[tuple], DevHistory]:
        """(pending evaluations, history) at one moment: what a checkpoint saves of the evaluator."""
        with self._cond:
            return self.pending(), self._history

    def records_before(self, step: int, while_waiting: Callable[[], None]) -> List[dict]:
        """The records of every evaluation of a step before `step`, once all are recorded;
        `while_waiting()` runs every poll until then (it raises to abort the wait)."""
        with self._cond:
            while any(s < step for s, _ in self.pending()):
                while_waiting()
                self._cond.wait(POLL_S)
            return [r for r in self._history.records if r["step"] < step]

    @property
    def backlog(self) -> int:
        return len(self.pending())

    def raise_if_failed(self) -> None:
        if self.error is not None:
            raise TrainingFailed(f"the evaluator failed:\n{self.error}")

    def finish(self) -> None:
        """Evaluates what is pending, then ends the thread."""
        with self._cond:
            self._requests.append(None)
            self._cond.notify_all()
        self.join()

    def run(self) -> None:
        try:
            while True:
                with self._cond:
                    while not self._requests:
                        self._cond.wait()
                    item = self._current = self._requests.popleft()
                if item is None:
                    return
                step, params = item
                self._record(step, params, self._evaluate(params))
        except BaseException:
            self.error = traceback.format_exc()

    def _record(self, step: int, params, result: evaluation.EvalResult) -> None:
        """Best checkpoint and beams first, the record last: a record always has its best saved."""
        out = self._outputs
        if is_new_best(self._history, result.accuracy):  # only this thread replaces the history
            keep_best(out, step, params, result)
        record = dev_record(step, out.wall_time(), result)
        history = with_record(self._history, record)
        out.writer.write(record)
        out.log(eval_line(step, result, history.best, out.beam_size))
        with self._cond:
            self._history = history
            self._current = None
            self._cond.notify_all()


def due_evaluations(pending: Sequence[Tuple[int, object]], records: Sequence[dict]) -> List[tuple]:
    """(step, params) of the evaluations a resumed run owes: those its checkpoint saw unfinished and
    that have no dev record (the evaluator was stopped or killed before writing it)."""
    done = {r["step"] for r in records}
    return [(step, params) for step, params in pending if step not in done]
