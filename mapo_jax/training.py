"""`train_and_evaluate`: wires actors, the learner, the evaluator and checkpoints
(docs/architecture.md#actors-and-learner).

    actors (threads)                      learner (this thread)                evaluator (thread)
    shard of questions, buffers,  --->    pmapped update on batch s,  ----->   beam search on dev every
    Bloom filter; batch s sampled  queue  publishes params every M      params  `eval_every` steps, keeps
    with params version v(s)              steps, checkpoints                   the best checkpoint

* Reproducible: batch s comes from actor s mod N and is sampled with the parameters published at
  step `policy_version(s)` (acting.py), so thread timing never changes what is learned; one actor
  and a fixed seed give identical metrics run after run.
* Resumable: a checkpoint every `checkpoint_every` steps holds the learner state and the actors'
  complete state (queued batches included); the same command continues a stopped run. Ctrl-C
  (SIGINT) finishes the current step, writes a checkpoint and returns.
* Fails loudly: an exception in an actor or the evaluator stops the run with its traceback; a
  non-finite loss stops it naming the step.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import json
import math
import random
import shutil
import signal
import threading
import time
import traceback
from pathlib import Path
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence

import jax
import numpy as np

from mapo_jax import checkpointing, evaluation, learning
from mapo_jax.acting import Actor, ActorStats, ActorThread, BatchQueue, ParameterServer
from mapo_jax.batching import Featurizer
from mapo_jax.buffer import MemoryBuffer
from mapo_jax.config import (RESUMABLE_CHANGES, RUN_CONFIG_PARTS, DataConfig, ModelConfig, ProgramConfig, TrainConfig,
                             configs_to_json, split_parts)
from mapo_jax.data import datasets
from mapo_jax.data.embeddings import load_glove
from mapo_jax.data.vocab import EncoderVocab, build_encoder_vocab, pretrained_matrix
from mapo_jax.env import QAEnvironment, Vocabulary
from mapo_jax.explore.systematic import example_seed, random_explore
from mapo_jax.errors import UserInputError
from mapo_jax.explore.warm_start import WarmStartConfig, load_programs
from mapo_jax.io_utils import atomic_write_text, read_json
from mapo_jax.lisp.functions import TableView
from mapo_jax.metrics import METRICS_FILE, TB_DIR, MetricsWriter, format_duration
from mapo_jax.model import policy

WARM_START_DIR = "warm_start"
BEST_BEAMS, BEST_PREDICTIONS = "dev_beams.jsonl", "dev_predictions.tsv"
# The warm start of a library call without flags: in-process, one process (a spawned pool needs the
# caller's `__main__` guard), a short random exploration.
LIBRARY_WARM_START = WarmStartConfig(rollouts_per_example=200, extra_rollouts_for_hard=0, processes=1)


def make_environments(dataset, punish_extra_work: bool, vocabulary: Vocabulary,
                      program: ProgramConfig = ProgramConfig()) -> List[QAEnvironment]:
    """One environment per question; questions on the same table share its `TableView` caches."""
    views: Dict[str, TableView] = {}
    envs = []
    for example in dataset.examples:
        table = dataset.tables[example.table]
        view = views.setdefault(example.table, TableView(table))
        envs.append(QAEnvironment(example, table, punish_extra_work=punish_extra_work, view=view,
                                  vocabulary=vocabulary, function_set=program.function_set,
                                  limits=program.limits))
    return envs


class Setup(NamedTuple):
    train_envs: List[QAEnvironment]
    dev_envs: List[QAEnvironment]
    featurizer: Featurizer
    vocab: EncoderVocab
    model_config: ModelConfig
    pretrained: np.ndarray
    train_dataset: object


def setup(data_config: DataConfig, cfg: TrainConfig, vocab: Optional[EncoderVocab] = None,
          program: ProgramConfig = ProgramConfig()) -> Setup:
    """Data, vocabulary (built, or the run's saved one), environments and the model config, all
    with the same program settings."""
    if not data_config.split.isdigit():
        raise UserInputError(f"training takes a split pair: --split=1..5 (got {data_config.split!r})")
    train_split, dev_split = split_parts(data_config)
    train = datasets.load_dataset(data_config, train_split)
    dev = datasets.load_dataset(data_config, dev_split)
    vectors = load_glove(cfg.glove_file)
    if vocab is None:
        vocab = build_encoder_vocab(train.examples + dev.examples, vectors, min_count=cfg.min_count)
    limits = program.limits
    featurizer = Featurizer(vocab, vectors, max_mem=limits.max_mem)
    vocabulary = Vocabulary(program.function_set, limits.max_mem)
    model_config = ModelConfig(encoder_vocab_size=len(vocab), pretrained_dim=vectors.dim, hidden_size=cfg.hidden_size,
                               n_builtin=vocabulary.n_builtin, dropout=cfg.dropout, max_variables=limits.max_n_exp,
                               max_mem=limits.max_mem, max_valid=limits.max_valid)
    return Setup(make_environments(train, True, vocabulary, program), make_environments(dev, False, vocabulary, program),
                 featurizer, vocab, model_config, pretrained_matrix(vocab, vectors), train)


def _warm_start_settings(warm_start_config: Optional[WarmStartConfig], program: ProgramConfig) -> WarmStartConfig:
    """The warm start explores with the run's own program settings (one source for both)."""
    return dataclasses.replace(warm_start_config or LIBRARY_WARM_START, **dataclasses.asdict(program))


def _warm_start(s: Setup, cfg: TrainConfig, workdir: Optional[Path], warm_start_config: WarmStartConfig,
                log) -> MemoryBuffer:
    """The buffers' first programs: `programs_file`, else WORKDIR/warm_start (explored now if missing),
    else (no workdir) a quick in-process random exploration."""
    start = time.perf_counter()
    buffer = MemoryBuffer()
    path = Path(cfg.programs_file) if cfg.programs_file else None
    if path is None and workdir is not None:
        path = workdir / WARM_START_DIR / "programs.json"
        if not path.exists():
            from mapo_jax.explore.warm_start import run_warm_start

            log(f"[train] no warm-start programs yet: exploring the training questions into {path.parent}")
            run_warm_start(s.train_dataset, path.parent, warm_start_config, log=log)
    envs_by_id = {env.example.id: env for env in s.train_envs}
    if path is not None:
        stats = buffer.load_programs(envs_by_id, load_programs(path))
        log(f"[train] loaded {stats['loaded']} warm-start programs from {path} (skipped {stats['skipped']})")
    else:
        for env in s.train_envs:
            rng = random.Random(example_seed(cfg.seed, env.example.id))
            found, _ = random_explore(env, warm_start_config.rollouts_per_example, set(), rng)
            for tokens in found:
                buffer.add(env.example.id, env.replay(tokens))
    for env in s.train_envs:  # replaying every program filled the interpreter memos: free them
        env.release_memory()
    coverage = buffer.coverage(list(envs_by_id))
    log(f"[train] warm start: {coverage:.1%} of {len(envs_by_id)} questions have a program "
        f"({time.perf_counter() - start:.1f} s)")
    return buffer


def _shard_buffer(buffer: MemoryBuffer, envs: Sequence[QAEnvironment]) -> MemoryBuffer:
    shard = MemoryBuffer()
    for env in envs:
        for trajectory in buffer.trajectories(env.example.id):
            shard.add(env.example.id, trajectory)
    return shard


def _prepare_workdir(workdir: Path, record: dict) -> bool:
    """Writes config.json for a new run; for an existing one checks that only resumable settings
    changed. Returns whether the directory already held this run."""
    path = workdir / checkpointing.CONFIG_FILE
    if not path.exists():
        atomic_write_text(path, json.dumps(record, indent=1) + "\n")
        return False
    saved = read_json(path)
    if saved.get("format") != record["format"]:
        raise UserInputError(f"{workdir} holds a run of config format {saved.get('format')!r} (this version writes "
                             f"{record['format']!r}); use another --workdir")
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


def _open_workdir(workdir: Path) -> checkpointing.WorkdirLock:
    """Creates the run directory if needed and takes its lock; a path that cannot be a run directory
    is named in one line."""
    if workdir.exists() and not workdir.is_dir():
        raise UserInputError(f"--workdir={workdir} is a file, not a directory")
    try:
        workdir.mkdir(parents=True, exist_ok=True)
        return checkpointing.WorkdirLock(workdir).acquire()
    except PermissionError as error:
        raise UserInputError(f"--workdir={workdir} is not writable ({error.strerror})") from None


def _start_over(workdir: Path, checkpointer: checkpointing.Checkpointer, log) -> None:
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


class _Evaluator(threading.Thread):
    """Beam-search dev evaluation off the learner's thread; keeps the best checkpoint.

    `pending()` -- the evaluation in progress and those waiting -- is saved with every checkpoint, so
    an evaluation cut short by a stop or a kill is done again by the resumed run.
    """

    def __init__(self, evaluate: Callable[[object], evaluation.EvalResult],
                 on_result: Callable[[int, object, evaluation.EvalResult], None]):
        super().__init__(name="evaluator", daemon=True)
        self._evaluate = evaluate
        self._on_result = on_result
        self._requests: "collections.deque" = collections.deque()
        self._current: Optional[tuple] = None
        self._cond = threading.Condition()
        self.error: Optional[str] = None

    def submit(self, step: int, params) -> None:
        with self._cond:
            self._requests.append((step, params))
            self._cond.notify_all()

    def pending(self) -> List[tuple]:
        """(step, params) of every evaluation not finished yet, oldest first."""
        with self._cond:
            return ([self._current] if self._current is not None else []) + [r for r in self._requests if r]

    def wait_before(self, step: int, check: Callable[[], None]) -> None:
        """Returns once every evaluation of a step before `step` is recorded; `check()` runs while
        waiting (it raises if the evaluator failed)."""
        with self._cond:
            while any(s < step for s, _ in self.pending()):
                check()
                self._cond.wait(0.1)

    @property
    def backlog(self) -> int:
        return len(self.pending())

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
                self._on_result(step, params, self._evaluate(params))
                with self._cond:
                    self._current = None
                    self._cond.notify_all()
        except BaseException:
            self.error = traceback.format_exc()

    def finish(self) -> None:
        """Evaluates what is pending, then ends the thread."""
        with self._cond:
            self._requests.append(None)
            self._cond.notify_all()
        self.join()


@functools.lru_cache(maxsize=8)
def _learner(make_policy_loss, config: ModelConfig, objective: str, alpha: float, entropy_coeff: float,
             learning_rate: float, max_grad_norm: float):
    """(optimizer, pmapped update), one per setting: another run in the same process (a notebook, the
    tests, a sweep) reuses its compiled executables instead of compiling again."""
    optimizer = learning.make_optimizer(learning_rate, max_grad_norm)
    loss_fn = make_policy_loss(objective, config, alpha, entropy_coeff)
    return optimizer, learning.make_pmapped_update(loss_fn, optimizer)


class TrainingFailed(RuntimeError):
    """An actor or the evaluator raised; the message carries its traceback."""


def _make_actor_threads(s: Setup, cfg: TrainConfig, buffer: Optional[MemoryBuffer], start_step: int,
                        restored: Optional[checkpointing.FullState], server: ParameterServer,
                        stop: threading.Event) -> List[ActorThread]:
    """Shard i holds questions i, i + N, ...; a new run fills its buffers from the warm start, a
    resumed one restores each actor's state and queued batches."""
    shards = [s.train_envs[i::cfg.n_actors] for i in range(cfg.n_actors)]
    if any(not shard for shard in shards):
        raise UserInputError(f"{cfg.n_actors} actors for {len(s.train_envs)} training questions: use fewer actors")
    threads = []
    for i, shard in enumerate(shards):
        actor = Actor(shard, s.featurizer, s.model_config, objective=cfg.objective,
                      questions_per_step=cfg.questions_per_step, systematic_exploration=cfg.systematic_exploration,
                      seed=cfg.seed * 1000 + i, buffer=_shard_buffer(buffer, shard) if buffer is not None else None,
                      bloom_capacity=max(1, cfg.bloom_capacity // cfg.n_actors), n_devices=jax.local_device_count())
        queue = BatchQueue(cfg.queue_size)
        first_step = start_step + (i - start_step) % cfg.n_actors
        if restored is not None:
            saved, arrays = restored.actors[i], restored.arrays[f"actor{i}"]
            actor.load_state_dict(saved, arrays["bloom"])
            first_step = int(saved["next_step"])
            for item in checkpointing.queue_from_checkpoint(saved["queued"], arrays.get("queued", {}), ActorStats):
                queue.put(item)
        threads.append(ActorThread(actor, i, cfg.n_actors, first_step, server, queue, stop))
    return threads


def _full_state(step: int, train_state, threads: Sequence[ActorThread], server: ParameterServer,
                pending_evaluations: Sequence[tuple], meta: dict) -> checkpointing.FullState:
    """Everything a resumed run needs (the actors are paused by the caller)."""
    actors_json, arrays = [], {}
    for i, t in enumerate(threads):
        actor_state, bloom = t.actor.state_dict()
        records, queued = checkpointing.queue_to_checkpoint(t.queue.snapshot())
        actors_json.append(dict(actor_state, next_step=t.next_step, queued=records))
        arrays[f"actor{i}"] = dict(bloom=bloom, **({"queued": queued} if queued else {}))
    arrays["policy"] = {str(v): p for v, p in server.snapshot().items()}
    if pending_evaluations:
        arrays["pending_eval"] = {str(s): p for s, p in pending_evaluations}
    return checkpointing.FullState(train_state, actors_json, arrays, dict(meta, step=step))


class _MetricsWindow:
    """Training metrics of the last `log_every` steps, averaged into one record."""

    def __init__(self):
        self.values: Dict[str, list] = collections.defaultdict(list)
        self.start, self.wait = time.perf_counter(), 0.0
        self.latest_stats: Dict[int, ActorStats] = {}

    def add(self, metrics: dict, actor_index: int, stats: ActorStats) -> None:
        for key, value in metrics.items():
            self.values[f"train/{key}"].append(float(value[0]))
        self.values["actor/on_policy_return"].append(stats.on_policy_return)
        self.values["actor/new_programs"].append(stats.new_programs)
        self.values["actor/batch_seconds"].append(stats.seconds)
        self.latest_stats[actor_index] = stats

    def record(self, step: int, n_actors: int) -> dict:
        """The window's record; starts the next window."""
        elapsed = time.perf_counter() - self.start
        n = len(self.values["train/loss"])
        returns = [r for r in self.values.pop("actor/on_policy_return") if math.isfinite(r)]
        new_programs = int(sum(self.values.pop("actor/new_programs")))
        record = {"step": step, **{key: float(np.mean(v)) for key, v in self.values.items()}}
        record.update({
            "actor/on_policy_return": float(np.mean(returns)) if returns else float("nan"),
            "actor/new_programs": new_programs,
            "actor/buffer_coverage": float(np.mean([st.coverage for st in self.latest_stats.values()])),
            "actor/batches_per_s": float(n / max(sum(self.values["actor/batch_seconds"]), 1e-9) * n_actors),
            "learner/steps_per_s": n / max(elapsed, 1e-9),
            "learner/wait_fraction": self.wait / max(elapsed, 1e-9),
        })
        self.values.clear()
        self.start, self.wait = time.perf_counter(), 0.0
        return record


def _console_line(record: dict, n_steps: int, best: dict) -> str:
    step, rate = record["step"], record["learner/steps_per_s"]
    dev = f"dev {best['dev/accuracy']:.3f} @ {best['step']}" if best else "dev -"
    return (f"[train] step {step}/{n_steps} ({step / max(n_steps, 1):.0%})  loss {record['train/loss']:.4f}  "
            f"return {record['actor/on_policy_return']:.3f}  coverage {record['actor/buffer_coverage']:.3f}  "
            f"{rate:.2f} steps/s (waiting {record['learner/wait_fraction']:.0%})  "
            f"ETA {format_duration((n_steps - step) / max(rate, 1e-9))}  best {dev}")


def evaluations_without_improvement(history: Sequence[dict]) -> int:
    """How many dev evaluations came after the best one (the first best, on ties)."""
    accuracies = [r["dev/accuracy"] for r in sorted(history, key=lambda r: r["step"])]
    return len(accuracies) - 1 - int(np.argmax(accuracies)) if accuracies else 0


def _best_of(history: Sequence[dict]) -> dict:
    best: dict = {}
    for record in history:
        if not best or record["dev/accuracy"] > best["dev/accuracy"]:
            best = {"step": record["step"], "dev/accuracy": record["dev/accuracy"]}
    return best


def train_and_evaluate(data_config: DataConfig, train_config: TrainConfig = TrainConfig(),
                       log: Optional[Callable[[str], None]] = None, workdir: Optional[str] = None,
                       warm_start_config=None, program_config: ProgramConfig = ProgramConfig()) -> dict:
    """Trains on the split's train part, evaluates on its dev part with beam search.

    With `workdir` the run is saved there (config, checkpoints, metrics.jsonl, TensorBoard; see
    mapo_jax/checkpointing.py) and an interrupted run resumes from its newest intact checkpoint; the
    directory is locked for the run. Returns {"history": dev evaluations [{step, dev/accuracy, ...}],
    "params", "config": ModelConfig, "best": the best evaluation, "step": the last step,
    "interrupted": bool}.
    """
    log = log or (lambda message: print(message, flush=True))
    workdir_path = Path(workdir) if workdir is not None else None
    lock = _open_workdir(workdir_path) if workdir_path is not None else None
    try:
        return _train(data_config, train_config, log, workdir_path, warm_start_config, program_config)
    finally:
        if lock is not None:
            lock.release()


def _train(data_config, cfg: TrainConfig, log, workdir_path: Optional[Path], warm_start_config,
           program: ProgramConfig) -> dict:
    vocab = None
    if workdir_path is not None and (workdir_path / checkpointing.VOCAB_FILE).exists():
        vocab = EncoderVocab.from_json(read_json(workdir_path / checkpointing.VOCAB_FILE))
    s = setup(data_config, cfg, vocab, program)
    config = s.model_config
    if workdir_path is not None:
        _prepare_workdir(workdir_path, configs_to_json(data_config, program, config, cfg))
        atomic_write_text(workdir_path / checkpointing.VOCAB_FILE, json.dumps(s.vocab.to_json()))

    n_devices = jax.local_device_count()
    optimizer, update = _learner(learning.make_policy_loss, config, cfg.objective, cfg.alpha, cfg.entropy_coeff,
                                 cfg.learning_rate, cfg.max_grad_norm)
    params = policy.init(jax.random.PRNGKey(cfg.seed), config, s.pretrained)
    host_state = learning.init_state(params, optimizer, jax.random.PRNGKey(cfg.seed + 1))

    checkpointer = checkpointing.Checkpointer(workdir_path, cfg.keep_checkpoints) if workdir_path else None
    restored = checkpointer.restore(host_state, log) if checkpointer is not None else None
    if restored is not None:
        if restored.meta.get("n_actors") != cfg.n_actors:
            raise UserInputError(f"the checkpoint was made with --n_actors={restored.meta.get('n_actors')}; "
                                 f"resume with the same number of actors")
        host_state = restored.train_state
        log(f"[train] resuming {workdir_path} from step {int(host_state.step)}")
    elif checkpointer is not None:
        _start_over(workdir_path, checkpointer, log)
    start_step = int(host_state.step)
    writer = MetricsWriter(workdir_path, log)
    if restored is not None:
        writer.resume_at(start_step)

    buffer = None
    if restored is None:
        buffer = _warm_start(s, cfg, workdir_path, _warm_start_settings(warm_start_config, program), log)
    stop = threading.Event()
    server = ParameterServer(cfg.publish_every, cfg.policy_lag)
    threads = _make_actor_threads(s, cfg, buffer, start_step, restored, server, stop)
    if restored is not None:
        log(f"[train] restored {cfg.n_actors} actors: "
            f"{sum(len(t.actor.buffer) for t in threads)} buffer programs, "
            f"{sum(len(t.queue) for t in threads)} queued batches")

    # Evaluator: beam search on dev; the best parameters are checkpointed with their beams.
    history: List[dict] = [r for r in writer.records if "dev/accuracy" in r]
    best = _best_of(history)  # also an evaluation finished after the checkpoint
    wall_offset = float(restored.meta.get("wall_time", 0.0)) if restored is not None else 0.0
    run_start = time.perf_counter()

    def wall_time() -> float:
        return wall_offset + time.perf_counter() - run_start

    def on_result(step: int, eval_params, result: evaluation.EvalResult) -> None:
        # best checkpoint and beams first, the record last: a record always has its best saved
        if not best or result.accuracy > best["dev/accuracy"]:
            if checkpointer is not None:
                checkpointer.save_best(step, eval_params, result.accuracy)
                evaluation.write_beams(workdir_path / BEST_BEAMS, result.results, {"step": step})
                evaluation.write_predictions(workdir_path / BEST_PREDICTIONS, result.results)
            best.clear()
            best.update({"step": step, "dev/accuracy": result.accuracy})
        record = {"step": step, "wall_time": round(wall_time(), 1), "dev/accuracy": result.accuracy,
                  "dev/oracle_accuracy": result.oracle_accuracy, "dev/seconds": round(result.seconds, 1)}
        writer.write(record)
        history.append(record)
        log(f"[eval] step {step}: dev accuracy {result.accuracy:.4f} (beam {cfg.beam_size}; oracle "
            f"{result.oracle_accuracy:.4f}; {result.seconds:.0f} s)  best {best['dev/accuracy']:.4f} @ {best['step']}")

    evaluator = _Evaluator(
        lambda p: evaluation.evaluate(p, config, s.dev_envs, s.featurizer, beam_size=cfg.beam_size), on_result)

    def check_failures() -> None:
        for t in threads:
            if t.error is not None:
                raise TrainingFailed(f"actor {t.index} failed:\n{t.error}")
        if evaluator.error is not None:
            raise TrainingFailed(f"the evaluator failed:\n{evaluator.error}")

    state = learning.replicate(host_state, n_devices)

    def current_params():
        return learning.unreplicate(state.params)  # a fresh array: safe from the next donation

    saved_steps = {start_step} if restored is not None else set()

    def save_checkpoint(step: int) -> None:
        if checkpointer is None or step in saved_steps:
            return
        saved_steps.add(step)
        for t in threads:
            t.pause()
        try:
            check_failures()
            meta = {"n_actors": cfg.n_actors, "best": dict(best), "wall_time": wall_time()}
            checkpointer.save(step, _full_state(step, learning.unreplicate(state), threads, server,
                                                evaluator.pending(), meta))
        finally:
            for t in threads:
                t.resume()

    # Ctrl-C: finish the step, checkpoint, return. A second Ctrl-C interrupts at once.
    interrupted = threading.Event()
    previous_handler = None
    if threading.current_thread() is threading.main_thread():
        def on_sigint(signum, frame):
            if interrupted.is_set():
                raise KeyboardInterrupt
            interrupted.set()
            log("[train] Ctrl-C: finishing this step and writing a checkpoint (Ctrl-C again to abort)")
        previous_handler = signal.signal(signal.SIGINT, on_sigint)

    if restored is not None:  # the older versions the actors' next batches are sampled with
        for version, saved_params in sorted((int(v), p) for v, p in restored.arrays.get("policy", {}).items()):
            if version < start_step:
                server.publish(version, saved_params)
    server.publish(start_step, current_params())
    for t in threads:
        t.start()
    evaluator.start()
    for step, eval_params in _due_evaluations(restored, history):
        evaluator.submit(step, eval_params)
    if restored is None:
        evaluator.submit(0, current_params())

    def plateaued(step: int) -> bool:
        """Early stopping, decided at evaluation steps from the evaluations of earlier steps only (waited
        for), so the step a run stops at does not depend on how fast the evaluator is."""
        if not cfg.early_stop_evals or step % cfg.eval_every:
            return False
        evaluator.wait_before(step, check_failures)
        return evaluations_without_improvement([r for r in history if r["step"] < step]) >= cfg.early_stop_evals

    step = start_step
    window = _MetricsWindow()
    early_stopped = False
    try:
        while step < cfg.n_steps and not interrupted.is_set():
            if plateaued(step):
                early_stopped = True
                log(f"[train] early stop at step {step}: {cfg.early_stop_evals} dev evaluations without a new best "
                    f"(best {best['dev/accuracy']:.4f} @ {best['step']})")
                break
            waited = time.perf_counter()
            actor_thread = threads[step % cfg.n_actors]
            batch_step, batch, stats = actor_thread.queue.get(check_failures)
            window.wait += time.perf_counter() - waited
            if batch_step != step:
                raise TrainingFailed(f"actor {actor_thread.index} sent the batch of step {batch_step} at step {step}")
            device_batch = learning.LearnerBatch(learning.shard(batch.samples, n_devices),
                                                 learning.replicate(batch.inputs, n_devices),
                                                 learning.shard(batch.trajectories, n_devices))
            state, metrics = update(state, device_batch)
            step += 1
            loss = float(metrics["loss"][0])
            if not math.isfinite(loss):
                raise FloatingPointError(f"the loss is {loss} at learner step {step} (objective {cfg.objective}); "
                                         f"the last checkpoint is before it")
            window.add(metrics, actor_thread.index, stats)
            if step % cfg.publish_every == 0:
                server.publish(step, current_params())
            if step % cfg.eval_every == 0 or step == cfg.n_steps:
                evaluator.submit(step, current_params())
            if step % cfg.log_every == 0 or step == cfg.n_steps:
                record = window.record(step, cfg.n_actors)
                record.update({"wall_time": round(wall_time(), 1), "eval/backlog": evaluator.backlog,
                               "queue/depth": sum(len(t.queue) for t in threads)})
                writer.write(record)
                log(_console_line(record, cfg.n_steps, best))
            if step % cfg.checkpoint_every == 0 and step < cfg.n_steps:
                save_checkpoint(step)
        save_checkpoint(step)
        if interrupted.is_set():
            log(f"[train] stopped at step {step}; checkpoint written. Run the same command to resume.")
        else:
            log("[train] waiting for the last dev evaluation")
            evaluator.finish()
            check_failures()
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
        # an evaluation still in flight after Ctrl-C is dropped with its daemon thread (the
        # checkpoint holds its parameters: the resumed run does it again)
        if previous_handler is not None:
            signal.signal(signal.SIGINT, previous_handler)
        writer.close()
        if checkpointer is not None:
            checkpointer.close()
    history.sort(key=lambda r: r["step"])
    return {"history": history, "params": jax.device_get(current_params()), "config": config,
            "best": dict(best), "step": step, "interrupted": interrupted.is_set(), "early_stopped": early_stopped}


def _due_evaluations(restored: Optional[checkpointing.FullState], history: Sequence[dict]) -> List[tuple]:
    """(step, params) of the evaluations a resumed run owes: those the checkpoint saw unfinished and
    that have no dev record (the evaluator was stopped or killed before writing it)."""
    if restored is None:
        return []
    done = {r["step"] for r in history}
    pending = restored.arrays.get("pending_eval", {})
    return [(int(step), params) for step, params in sorted(pending.items(), key=lambda kv: int(kv[0]))
            if int(step) not in done]
