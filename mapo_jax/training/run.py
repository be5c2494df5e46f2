"""`train_and_evaluate`: one training run, end to end. It prepares the data and the run directory,
restores the run state of a stopped run (or warm-starts a new one), wires the roles -- actor pool,
evaluator, learner loop -- runs the learner loop and cleans up, whatever happens."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Callable, Optional, Tuple

import jax

from mapo_jax import checkpointing, learning
from mapo_jax.config import DataConfig, ProgramConfig, TrainConfig
from mapo_jax.errors import UserInputError
from mapo_jax.metrics import MetricsWriter
from mapo_jax.model import policy
from mapo_jax.training import run_state
from mapo_jax.training.actor_pool import create_actor_pool
from mapo_jax.training.eval_process import dev_evaluation
from mapo_jax.training.evaluator import DevOutputs, Evaluator, dev_history
from mapo_jax.training.learner import LearnerLoop, compiled_update
from mapo_jax.training.preparation import Setup, setup_in_workdir, warm_start, warm_start_settings
from mapo_jax.training.workdir import open_workdir, start_over


def train_and_evaluate(data_config: DataConfig, train_config: TrainConfig = TrainConfig(),
                       log: Optional[Callable[[str], None]] = None, workdir: Optional[str] = None,
                       warm_start_config=None, program_config: ProgramConfig = ProgramConfig(), *,
                       stop: Optional[threading.Event] = None) -> dict:
    """Trains on the split's train part, evaluates on its dev part with beam search.

    With `workdir` the run is saved there (config, checkpoints, metrics.jsonl, TensorBoard; see
    mapo_jax/checkpointing.py) and an interrupted run resumes from its newest intact checkpoint; the
    directory is locked for the run. Setting `stop` (e.g. from a Ctrl-C handler; this function installs
    none) ends the run after the step in progress, with a checkpoint. Returns {"history": dev evaluations
    [{step, dev/accuracy, ...}], "params", "config": ModelConfig, "best": the best evaluation, "step": the
    last step, "interrupted": whether `stop` was set, "early_stopped": bool}.
    """
    log = log or (lambda message: print(message, flush=True))
    workdir_path = Path(workdir) if workdir is not None else None
    lock = open_workdir(workdir_path) if workdir_path is not None else None
    try:
        return _train(data_config, train_config, log, workdir_path, warm_start_config, program_config,
                      stop if stop is not None else threading.Event())
    finally:
        if lock is not None:
            lock.release()


def _train(data_config: DataConfig, cfg: TrainConfig, log, workdir: Optional[Path], warm_start_config,
           program: ProgramConfig, stop: threading.Event) -> dict:
    s = setup_in_workdir(data_config, cfg, program, workdir)
    optimizer, update = compiled_update(learning.make_policy_loss, s.model_config, cfg.objective, cfg.alpha,
                                        cfg.entropy_coeff, cfg.learning_rate, cfg.max_grad_norm)
    checkpointer = checkpointing.Checkpointer(workdir, cfg.keep_checkpoints) if workdir is not None else None
    host_state, resumed = _initial_state(s, cfg, optimizer, checkpointer, workdir, log)
    start_step = int(host_state.step)
    writer = MetricsWriter(workdir, log)
    if resumed is not None:
        writer.resume_at(start_step)
    buffer = warm_start(s, cfg, workdir, warm_start_settings(warm_start_config, program), log) if resumed is None else None
    pool = create_actor_pool(s, cfg, program, start_step, buffer, resumed.actors if resumed is not None else None, log)
    wall_time = _wall_clock(resumed.wall_time if resumed is not None else 0.0)
    evaluate, stop_evaluation = dev_evaluation(s, cfg, program)
    evaluator = Evaluator(evaluate, DevOutputs(writer, checkpointer, workdir, wall_time, log, cfg.beam_size),
                          dev_history(writer.records))
    learner = LearnerLoop(cfg, update, pool, evaluator, writer, checkpointer, wall_time, log, stop)
    try:
        outcome = learner.run(learning.replicate(host_state, jax.local_device_count()), start_step, resumed)
    finally:
        pool.stop()
        stop_evaluation()
        # an evaluation still in flight after a stop request is dropped with its daemon thread (the
        # checkpoint holds its parameters: the resumed run does it again)
        writer.close()
        if checkpointer is not None:
            checkpointer.close()
    history = evaluator.history()
    return {"history": sorted(history.records, key=lambda r: r["step"]),
            "params": jax.device_get(learning.unreplicate(outcome.state.params)), "config": s.model_config,
            "best": dict(history.best), "step": outcome.step, "interrupted": stop.is_set(),
            "early_stopped": outcome.early_stopped}


def _initial_state(s: Setup, cfg: TrainConfig, optimizer, checkpointer: Optional[checkpointing.Checkpointer],
                   workdir: Optional[Path], log) -> Tuple[learning.TrainState, Optional[run_state.RunState]]:
    """(host TrainState, restored run state): a resumed run's from its newest intact checkpoint; a new
    run's fresh from the seed (and a directory without a checkpoint is cleared to start over)."""
    params = policy.init(jax.random.PRNGKey(cfg.seed), s.model_config, s.pretrained)
    host_state = learning.init_state(params, optimizer, jax.random.PRNGKey(cfg.seed + 1))
    full = checkpointer.restore(host_state, log) if checkpointer is not None else None
    if full is None:
        if checkpointer is not None:
            start_over(workdir, checkpointer, log)
        return host_state, None
    resumed = run_state.from_checkpoint(full)
    if resumed.n_actors != cfg.n_actors:
        raise UserInputError(f"the checkpoint was made with --n_actors={resumed.n_actors}; "
                             f"resume with the same number of actors")
    log(f"[train] resuming {workdir} from step {resumed.step}")
    return resumed.train_state, resumed


def _wall_clock(offset: float) -> Callable[[], float]:
    """Seconds of training: `offset` (earlier attempts of the run) plus the time since this call."""
    start = time.perf_counter()
    return lambda: offset + time.perf_counter() - start
