"""`train_and_evaluate`: wires actors, the learner, the evaluator and checkpoints (DESIGN §3, §7).

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
import functools
import json
import math
import random
import signal
import threading
import time
import traceback
from pathlib import Path
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence

import jax
import numpy as np

from mapo_jax import checkpointing, evaluation, learning
from mapo_jax.acting import Actor, ActorThread, BatchQueue, ParameterServer
from mapo_jax.batching import Featurizer
from mapo_jax.buffer import MemoryBuffer
from mapo_jax.config import RESUMABLE_CHANGES, DataConfig, ModelConfig, TrainConfig, configs_to_json, split_parts
from mapo_jax.data import datasets
from mapo_jax.data.embeddings import load_glove
from mapo_jax.data.vocab import EncoderVocab, build_encoder_vocab, pretrained_matrix
from mapo_jax.env import QAEnvironment, Vocabulary
from mapo_jax.explore.systematic import random_explore
from mapo_jax.explore.warm_start import load_programs
from mapo_jax.lisp.functions import TableView
from mapo_jax.lisp.interpreter import Limits
from mapo_jax.metrics import MetricsWriter, format_duration
from mapo_jax.model import policy

WARM_START_DIR = "warm_start"


def make_environments(dataset, punish_extra_work: bool, vocabulary: Vocabulary) -> List[QAEnvironment]:
    """One environment per question; questions on the same table share its `TableView` caches."""
    views: Dict[str, TableView] = {}
    envs = []
    for example in dataset.examples:
        table = dataset.tables[example.table]
        view = views.setdefault(example.table, TableView(table))
        envs.append(QAEnvironment(example, table, punish_extra_work=punish_extra_work, view=view,
                                  vocabulary=vocabulary, limits=Limits()))
    return envs


class Setup(NamedTuple):
    train_envs: List[QAEnvironment]
    dev_envs: List[QAEnvironment]
    featurizer: Featurizer
    vocab: EncoderVocab
    model_config: ModelConfig
    pretrained: np.ndarray
    train_dataset: object


def setup(data_config: DataConfig, cfg: TrainConfig, vocab: Optional[EncoderVocab] = None) -> Setup:
    """Data, vocabulary (built, or the run's saved one), environments and the model config."""
    if not data_config.split.isdigit():
        raise ValueError(f"training takes a split pair: --split=1..5 (got {data_config.split!r})")
    train_split, dev_split = split_parts(data_config)
    train = datasets.load_dataset(data_config, train_split)
    dev = datasets.load_dataset(data_config, dev_split)
    vectors = load_glove(cfg.glove_file)
    if vocab is None:
        vocab = build_encoder_vocab(train.examples + dev.examples, vectors, min_count=cfg.min_count)
    limits = Limits()
    featurizer = Featurizer(vocab, vectors, max_mem=limits.max_mem)
    vocabulary = Vocabulary()
    model_config = ModelConfig(encoder_vocab_size=len(vocab), pretrained_dim=vectors.dim, hidden_size=cfg.hidden_size,
                               dropout=cfg.dropout, max_variables=limits.max_n_exp, max_mem=limits.max_mem,
                               max_valid=limits.max_valid)
    return Setup(make_environments(train, True, vocabulary), make_environments(dev, False, vocabulary),
                 featurizer, vocab, model_config, pretrained_matrix(vocab, vectors), train)


def _warm_start(s: Setup, cfg: TrainConfig, workdir: Optional[Path], warm_start_config, log) -> MemoryBuffer:
    """The buffers' first programs: `programs_file`, else WORKDIR/warm_start (explored now if missing),
    else (no workdir) a quick in-process random exploration."""
    start = time.perf_counter()
    buffer = MemoryBuffer()
    path = Path(cfg.programs_file) if cfg.programs_file else None
    if path is None and workdir is not None:
        path = workdir / WARM_START_DIR / "programs.json"
        if not path.exists():
            from mapo_jax.explore.warm_start import WarmStartConfig, run_warm_start

            log(f"[train] no warm-start programs yet: exploring the training questions into {path.parent}")
            # Library default: one process (a spawned pool needs the caller's `__main__` guard).
            config = warm_start_config or WarmStartConfig(rollouts_per_example=cfg.warm_start_rollouts,
                                                          extra_rollouts_for_hard=0, processes=1)
            run_warm_start(s.train_dataset, path.parent, config, log=log)
    envs_by_id = {env.example.id: env for env in s.train_envs}
    if path is not None:
        stats = buffer.load_programs(envs_by_id, load_programs(path))
        log(f"[train] loaded {stats['loaded']} warm-start programs from {path} (skipped {stats['skipped']})")
    else:
        for i, env in enumerate(s.train_envs):
            found, _ = random_explore(env, cfg.warm_start_rollouts, set(), random.Random(cfg.seed * 7919 + i))
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
        workdir.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record, indent=1) + "\n")
        return False
    saved = json.loads(path.read_text())
    differences = []
    for part in ("data", "model", "train"):
        for key in sorted(set(saved.get(part, {})) | set(record[part])):
            old, new = saved.get(part, {}).get(key), record[part].get(key)
            if old != new and not (part == "train" and key in RESUMABLE_CHANGES):
                differences.append(f"{part}.{key}: {old!r} -> {new!r}")
    if differences:
        raise ValueError(f"{workdir} holds a run with other settings ({'; '.join(differences)}); "
                         f"use another --workdir, or the run's own settings to resume it")
    path.write_text(json.dumps(record, indent=1) + "\n")  # e.g. a longer n_steps
    return True


class _Evaluator(threading.Thread):
    """Beam-search dev evaluation off the learner's thread; keeps the best checkpoint."""

    def __init__(self, evaluate: Callable[[object], evaluation.EvalResult],
                 on_result: Callable[[int, object, evaluation.EvalResult], None]):
        super().__init__(name="evaluator", daemon=True)
        self._evaluate = evaluate
        self._on_result = on_result
        self._requests: "collections.deque" = collections.deque()
        self._cond = threading.Condition()
        self.error: Optional[str] = None
        self.busy = False

    def submit(self, step: int, params) -> None:
        with self._cond:
            self._requests.append((step, params))
            self._cond.notify_all()

    @property
    def backlog(self) -> int:
        return len(self._requests) + int(self.busy)

    def run(self) -> None:
        try:
            while True:
                with self._cond:
                    while not self._requests:
                        self._cond.wait()
                    item = self._requests.popleft()
                    self.busy = item is not None
                if item is None:
                    return
                step, params = item
                self._on_result(step, params, self._evaluate(params))
                self.busy = False
        except BaseException:
            self.error = traceback.format_exc()
        finally:
            self.busy = False

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


def train_and_evaluate(data_config: DataConfig, train_config: TrainConfig = TrainConfig(),
                       log: Optional[Callable[[str], None]] = None, workdir: Optional[str] = None,
                       warm_start_config=None) -> dict:
    """Trains on the split's train part, evaluates on its dev part with beam search.

    With `workdir` the run is saved there (config, checkpoints, metrics.jsonl, TensorBoard; see
    mapo_jax/checkpointing.py) and an interrupted run resumes from its latest checkpoint. Returns
    {"history": dev evaluations [{step, dev/accuracy, ...}], "params", "config": ModelConfig,
    "best": the best evaluation, "step": the last step, "interrupted": bool}.
    """
    log = log or (lambda message: print(message, flush=True))
    cfg = train_config
    workdir_path = Path(workdir) if workdir is not None else None
    vocab = None
    if workdir_path is not None and (workdir_path / checkpointing.VOCAB_FILE).exists():
        vocab = EncoderVocab.from_json(json.loads((workdir_path / checkpointing.VOCAB_FILE).read_text()))
    s = setup(data_config, cfg, vocab)
    config = s.model_config
    if workdir_path is not None:
        _prepare_workdir(workdir_path, configs_to_json(data_config, config, cfg))
        (workdir_path / checkpointing.VOCAB_FILE).write_text(json.dumps(s.vocab.to_json()))

    n_devices = jax.local_device_count()
    optimizer, update = _learner(learning.make_policy_loss, config, cfg.objective, cfg.alpha, cfg.entropy_coeff,
                                 cfg.learning_rate, cfg.max_grad_norm)
    params = policy.init(jax.random.PRNGKey(cfg.seed), config, s.pretrained)
    host_state = learning.init_state(params, optimizer, jax.random.PRNGKey(cfg.seed + 1))

    checkpointer = checkpointing.Checkpointer(workdir_path, cfg.keep_checkpoints) if workdir_path else None
    restored = None
    if checkpointer is not None and checkpointer.latest_step() is not None:
        restored = checkpointer.restore(host_state)
        if restored.meta.get("n_actors") != cfg.n_actors:
            raise ValueError(f"the checkpoint was made with --n_actors={restored.meta.get('n_actors')}; "
                             f"resume with the same number of actors")
        host_state = restored.train_state
        log(f"[train] resuming {workdir_path} from step {int(host_state.step)}")
    start_step = int(host_state.step)
    writer = MetricsWriter(workdir_path, log)
    if restored is not None:
        writer.resume_at(start_step)

    # Actors: shard i holds questions i, i + N, ...; their buffers start from the warm start.
    shards = [s.train_envs[i::cfg.n_actors] for i in range(cfg.n_actors)]
    if any(not shard for shard in shards):
        raise ValueError(f"{cfg.n_actors} actors for {len(s.train_envs)} training questions: use fewer actors")
    buffer = _warm_start(s, cfg, workdir_path, warm_start_config, log) if restored is None else None
    stop = threading.Event()
    server = ParameterServer(cfg.publish_every, cfg.policy_lag)
    threads: List[ActorThread] = []
    for i, shard in enumerate(shards):
        actor = Actor(shard, s.featurizer, config, objective=cfg.objective, questions_per_step=cfg.questions_per_step,
                      systematic_exploration=cfg.systematic_exploration, seed=cfg.seed * 1000 + i,
                      buffer=_shard_buffer(buffer, shard) if buffer is not None else None,
                      bloom_capacity=max(1, cfg.bloom_capacity // cfg.n_actors), n_devices=n_devices)
        queue = BatchQueue(cfg.queue_size)
        first_step = start_step + (i - start_step) % cfg.n_actors
        if restored is not None:
            saved = restored.actors[i]
            actor.load_state_dict(saved, restored.arrays[f"actor{i}"]["bloom"])
            first_step = int(saved["next_step"])
            for item in checkpointing.unpack_object(restored.arrays[f"actor{i}"]["queued"]):
                queue.put(item)
        threads.append(ActorThread(actor, i, cfg.n_actors, first_step, server, queue, stop))
    if restored is not None:
        log(f"[train] restored {cfg.n_actors} actors: "
            f"{sum(len(t.actor.buffer) for t in threads)} buffer programs, "
            f"{sum(len(t.queue) for t in threads)} queued batches")

    # Evaluator: beam search on dev; the best parameters are checkpointed with their beams.
    history: List[dict] = [r for r in writer.records if "dev/accuracy" in r]
    best: dict = {}
    for record in history:  # the best evaluation so far, also one finished after the checkpoint
        if not best or record["dev/accuracy"] > best["dev/accuracy"]:
            best = {"step": record["step"], "dev/accuracy": record["dev/accuracy"]}
    wall_offset = float(restored.meta.get("wall_time", 0.0)) if restored is not None else 0.0
    run_start = time.perf_counter()

    def wall_time() -> float:
        return wall_offset + time.perf_counter() - run_start

    def on_result(step: int, eval_params, result: evaluation.EvalResult) -> None:
        record = {"step": step, "wall_time": round(wall_time(), 1), "dev/accuracy": result.accuracy,
                  "dev/oracle_accuracy": result.oracle_accuracy, "dev/seconds": round(result.seconds, 1)}
        writer.write(record)
        history.append(record)
        if not best or result.accuracy > best["dev/accuracy"]:
            best.clear()
            best.update({"step": step, "dev/accuracy": result.accuracy})
            if checkpointer is not None:
                checkpointer.save_best(step, eval_params, result.accuracy)
                evaluation.write_beams(workdir_path / "dev_beams.jsonl", result.results, {"step": step})
                evaluation.write_predictions(workdir_path / "dev_predictions.tsv", result.results)
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
            actors_json, arrays = [], {}
            for i, t in enumerate(threads):
                actor_state, bloom = t.actor.state_dict()
                actor_state["next_step"] = t.next_step
                actors_json.append(actor_state)
                arrays[f"actor{i}"] = {"bloom": bloom, "queued": checkpointing.pack_object(t.queue.snapshot())}
            arrays["policy"] = {str(v): p for v, p in server.snapshot().items()}
            meta = {"step": step, "n_actors": cfg.n_actors, "best": dict(best), "wall_time": wall_time()}
            checkpointer.save(step, checkpointing.FullState(learning.unreplicate(state), actors_json, arrays, meta))
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
    # evaluate the starting parameters: a new run, or a resumed one whose due evaluation was lost
    last_evaluated = max((r["step"] for r in history), default=-1)
    if start_step == 0 or last_evaluated < 0 or (last_evaluated < start_step and start_step % cfg.eval_every == 0):
        evaluator.submit(start_step, current_params())

    step = start_step
    window: Dict[str, list] = collections.defaultdict(list)
    window_start, window_wait = time.perf_counter(), 0.0
    latest_stats: Dict[int, object] = {}
    try:
        while step < cfg.n_steps and not interrupted.is_set():
            waited = time.perf_counter()
            actor_thread = threads[step % cfg.n_actors]
            batch_step, batch, stats = actor_thread.queue.get(check_failures)
            window_wait += time.perf_counter() - waited
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
            for key, value in metrics.items():
                window[f"train/{key}"].append(float(value[0]))
            window["actor/on_policy_return"].append(stats.on_policy_return)
            window["actor/new_programs"].append(stats.new_programs)
            window["actor/batch_seconds"].append(stats.seconds)
            latest_stats[actor_thread.index] = stats
            if step % cfg.publish_every == 0:
                server.publish(step, current_params())
            if step % cfg.eval_every == 0 or step == cfg.n_steps:
                evaluator.submit(step, current_params())
            if step % cfg.log_every == 0 or step == cfg.n_steps:
                elapsed = time.perf_counter() - window_start
                n = len(window["train/loss"])
                returns = [r for r in window["actor/on_policy_return"] if math.isfinite(r)]
                record = {"step": step, "wall_time": round(wall_time(), 1)}
                for key, values in window.items():
                    if key in ("actor/on_policy_return", "actor/new_programs"):
                        continue
                    record[key] = float(np.mean(values))
                record.update({
                    "actor/on_policy_return": float(np.mean(returns)) if returns else float("nan"),
                    "actor/new_programs": int(sum(window["actor/new_programs"])),
                    "actor/buffer_coverage": float(np.mean([st.coverage for st in latest_stats.values()])),
                    "actor/batches_per_s": float(n / max(sum(window["actor/batch_seconds"]), 1e-9) * cfg.n_actors),
                    "learner/steps_per_s": n / max(elapsed, 1e-9),
                    "learner/wait_fraction": window_wait / max(elapsed, 1e-9),
                    "queue/depth": sum(len(t.queue) for t in threads),
                    "eval/backlog": evaluator.backlog,
                })
                writer.write(record)
                rate = record["learner/steps_per_s"]
                dev = f"dev {best['dev/accuracy']:.3f} @ {best['step']}" if best else "dev -"
                log(f"[train] step {step}/{cfg.n_steps} ({step / max(cfg.n_steps, 1):.0%})  "
                    f"loss {record['train/loss']:.4f}  return {record['actor/on_policy_return']:.3f}  "
                    f"coverage {record['actor/buffer_coverage']:.3f}  {rate:.2f} steps/s "
                    f"(waiting {record['learner/wait_fraction']:.0%})  "
                    f"ETA {format_duration((cfg.n_steps - step) / max(rate, 1e-9))}  best {dev}")
                window.clear()
                window_start, window_wait = time.perf_counter(), 0.0
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
        # an evaluation still in flight after Ctrl-C is dropped with its daemon thread
        if previous_handler is not None:
            signal.signal(signal.SIGINT, previous_handler)
        writer.close()
        if checkpointer is not None:
            checkpointer.close()
    history.sort(key=lambda r: r["step"])
    return {"history": history, "params": jax.device_get(current_params()), "config": config,
            "best": dict(best), "step": step, "interrupted": interrupted.is_set()}
