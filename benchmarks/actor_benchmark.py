"""Actor throughput against the number of actors, for each actor backend (no learner running).

    python benchmarks/actor_benchmark.py [--dataset=wtq] [--questions=2000] [--seconds=60] [--actors=1,2,4]
                                         [--backends=threads,processes,ray] [--out=actors]

The actors own shards of `--questions` training questions (warm-started from a run's programs file
when given, else empty buffers) and make learner batches (25 questions: systematic exploration, buffer
scoring and draw, one on-policy sample) with fixed parameters, through the pool the training uses
(`actor_pool.create_actor_pool`): batches are taken in the learner's order (step s from actor s mod N)
for `--seconds`, after a warm-up of one pass over each actor's shard (`--warmup`: batches per actor
instead). The warm-up compiles the shapes a pass meets (row buckets vary with the questions) and
makes each question's first use: a first pass cost about 1.5x the core-seconds per batch of a later
one (one process actor 0.72 against 0.49, one thread 0.84 against 0.57), and a long run is almost all
later passes. Threads share the GIL
(the interpreter is Python; only XLA calls release it); worker processes and Ray actors do not, at the
price of sending parameters and batches between processes. Writes results/OUT.json.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from typing import Dict

import common  # noqa: F401  (sys.path)

FIXED_PARAMETERS = 10 ** 9  # publish_every: every batch of the benchmark is sampled with version 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", default="wtq")
    parser.add_argument("--questions", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--warmup", type=int, default=None,
                        help="batches per actor before the clock starts (default: one pass over its shard)")
    parser.add_argument("--actors", default="1,2,4")
    parser.add_argument("--backends", default="threads,processes,ray")
    parser.add_argument("--programs_file", default="runs/wtq_split1/warm_start/programs.json")
    parser.add_argument("--worker_xla_threads", type=int, default=None,
                        help="XLA threads of each worker process or Ray actor (default: the library's)")
    parser.add_argument("--out", default="actors", help="results/OUT.json")
    return parser.parse_args()


def prepare(args):
    """(setup with the first `--questions` training questions, warm-start buffer, initial parameters)."""
    import jax

    from mapo_jax.buffer import MemoryBuffer
    from mapo_jax.config import DataConfig, TrainConfig
    from mapo_jax.explore.warm_start import load_programs
    from mapo_jax.model import policy
    from mapo_jax.training import setup

    wtq = args.dataset == "wtq"
    s = setup(DataConfig(dataset=args.dataset, split="1"), TrainConfig(min_count=5 if wtq else 1,
                                                                       hidden_size=200 if wtq else 64))
    s = s._replace(train_envs=s.train_envs[: args.questions])
    buffer = MemoryBuffer()
    try:
        buffer.load_programs({env.example.id: env for env in s.train_envs}, load_programs(args.programs_file))
    except FileNotFoundError:
        print(f"no {args.programs_file}: empty buffers")
    for env in s.train_envs:
        env.release_memory()
    return s, buffer, policy.init(jax.random.PRNGKey(0), s.model_config, s.pretrained)


def measure(s, buffer, params, backend: str, n_actors: int, args) -> dict:
    """Batches per second of `n_actors` actors of `backend`, taken in the learner's order."""
    from mapo_jax.config import ProgramConfig, TrainConfig
    from mapo_jax.training.actor_pool import create_actor_pool

    if backend == "ray":
        start_ray(max(int(n) for n in args.actors.split(",")))
    cfg = TrainConfig(n_actors=n_actors, actor_backend=backend, publish_every=FIXED_PARAMETERS, policy_lag=0,
                      hidden_size=s.model_config.hidden_size, min_count=1)
    pool = create_actor_pool(s, cfg, ProgramConfig(), 0, buffer, None, log=print)
    pool.publish(0, params)
    pool.start()
    try:
        started = time.perf_counter()
        warmup = args.warmup or -(-len(s.train_envs) // (n_actors * cfg.questions_per_step))
        for step in range(warmup * n_actors):
            pool.next_batch(step, while_waiting=lambda: None)
        warm_seconds, start, batches = time.perf_counter() - started, time.perf_counter(), 0
        cpu_start = process_tree_cpu_seconds()
        while time.perf_counter() - start < args.seconds:
            pool.next_batch(warmup * n_actors + batches, while_waiting=lambda: None)
            batches += 1
        elapsed = time.perf_counter() - start
        core_seconds = sum(seconds - cpu_start.get(pid, 0.0) for pid, seconds in process_tree_cpu_seconds().items())
    finally:
        pool.stop()
    return {"backend": backend, "actors": n_actors, "batches": batches, "seconds": round(elapsed, 1),
            "batches_per_s": round(batches / elapsed, 3),
            "core_s_per_batch": round(core_seconds / batches, 3) if batches else None,
            "questions_per_s": round(batches * cfg.questions_per_step / elapsed, 1),
            "warmup_batches_per_actor": warmup, "warmup_seconds": round(warm_seconds, 1)}


def start_ray(n_cpus: int) -> None:
    """One local instance for every Ray pool, sized for the largest, started only when first needed (its
    daemons would count in the other backends' core-seconds)."""
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=n_cpus, include_dashboard=False, object_store_memory=512 * 1024 ** 2)


def process_tree_cpu_seconds() -> Dict[int, float]:
    """CPU seconds so far (user + system, every thread) of this process and each descendant (worker
    processes, Ray's raylet and workers), by pid. Core-seconds per batch hardly depend on what else the
    machine runs, unlike batches/s."""
    import psutil

    me = psutil.Process()
    snapshot = {}
    for process in [me] + me.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            times = process.cpu_times()
            snapshot[process.pid] = times.user + times.system
    return snapshot


def main() -> None:
    args = parse_args()
    backends = args.backends.split(",")
    sizes = [int(n) for n in args.actors.split(",")]
    from mapo_jax.config import TrainConfig
    from mapo_jax.training import process_pool

    if args.worker_xla_threads is not None:  # read when a worker starts
        process_pool.WORKER_XLA_THREADS = args.worker_xla_threads
    s, buffer, params = prepare(args)
    figures = {"dataset": args.dataset, "questions": len(s.train_envs),
               "worker_xla_threads": process_pool.WORKER_XLA_THREADS,
               "questions_per_batch": TrainConfig().questions_per_step,
               "buffer_coverage": buffer.coverage([env.example.id for env in s.train_envs]), "runs": []}
    for backend in backends:
        for n_actors in sizes:
            run = measure(s, buffer, params, backend, n_actors, args)
            figures["runs"].append(run)
            print(run, flush=True)
    base = {run["backend"]: run["batches_per_s"] for run in figures["runs"] if run["actors"] == sizes[0]}
    for run in figures["runs"]:
        run["speedup"] = round(run["batches_per_s"] / base[run["backend"]], 2) if base[run["backend"]] else None
    figures["scaling_model"] = scaling_model(figures["runs"])
    figures["note"] = ("batches/s of the actors alone with fixed parameters, taken in the learner's order "
                       f"(speedup: against {sizes[0]} actor(s) of the same backend); the learner needs one batch "
                       "per step, so this bounds end-to-end learner steps/s")
    print(common.write_result(args.out, figures))


def scaling_model(runs, cores=(16, 32), learner_cores: int = 2) -> dict:
    """Learner steps/s the actors can feed on a bigger machine with a GPU learner (one batch a step).

    One process actor keeps about one core busy, so its batches/s give the actor core-seconds per batch;
    the measured 2-actor speedup gives how much of a second core the next actor adds (the overhead of
    sending parameters and batches). With `learner_cores` kept for the learner's host side and the
    evaluator, the other cores run actors: steps/s <= (cores - learner_cores) * efficiency / core_s. The
    GPU learner's own updates/s (benchmarks/gpu_check.sh) caps it from the other side.
    """
    by = {(r["backend"], r["actors"]): r["batches_per_s"] for r in runs}
    one, two = by.get(("processes", 1)), by.get(("processes", 2))
    if not one or not two:
        return {"note": "needs the processes backend with 1 and 2 actors"}
    core_s, efficiency = 1.0 / one, min(1.0, two / (2 * one))
    return {"actor_core_s_per_batch": round(core_s, 3), "per_actor_efficiency": round(efficiency, 3),
            "predicted_steps_per_s_actor_bound": {str(n): round((n - learner_cores) * efficiency / core_s, 2)
                                                   for n in cores},
            "assumptions": f"process actors, one per core, {learner_cores} cores for the learner's host side "
                           "and the evaluator, the 2-actor efficiency holds for more actors, the GPU learner "
                           "keeps up (check its updates/s with benchmarks/gpu_check.sh)"}


if __name__ == "__main__":
    main()
