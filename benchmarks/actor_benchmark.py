"""Actor throughput against the number of actor threads (no learner running).

    python benchmarks/actor_benchmark.py [--dataset=wtq] [--questions=2000] [--seconds=60] [--threads=1,2,4]

Each thread owns a shard of `--questions` training questions (warm-started from a run's programs
file when given, else empty buffers) and makes learner batches (25 questions: systematic
exploration, buffer scoring and draw, one on-policy sample) with fixed parameters for `--seconds`.
Threads share the GIL: the interpreter is Python, the policy steps are XLA calls that release it,
so this measures how far threads scale on this machine. Writes results/actors.json.
"""

from __future__ import annotations

import argparse
import threading
import time

import common  # noqa: F401  (sys.path)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", default="wtq")
    parser.add_argument("--questions", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--threads", default="1,2,4")
    parser.add_argument("--programs_file", default="runs/wtq_split1/warm_start/programs.json")
    args = parser.parse_args()

    import jax

    from mapo_jax.acting import Actor
    from mapo_jax.buffer import MemoryBuffer
    from mapo_jax.config import DataConfig, TrainConfig
    from mapo_jax.explore.warm_start import load_programs
    from mapo_jax.model import policy
    from mapo_jax.training import setup

    cfg = TrainConfig(min_count=5 if args.dataset == "wtq" else 1, hidden_size=200 if args.dataset == "wtq" else 64)
    s = setup(DataConfig(dataset=args.dataset, split="1"), cfg)
    envs = s.train_envs[: args.questions]
    buffer = MemoryBuffer()
    try:
        buffer.load_programs({env.example.id: env for env in envs}, load_programs(args.programs_file))
    except FileNotFoundError:
        print(f"no {args.programs_file}: empty buffers")
    for env in envs:
        env.release_memory()
    params = policy.init(jax.random.PRNGKey(0), s.model_config, s.pretrained)

    figures = {"dataset": args.dataset, "questions": len(envs), "questions_per_batch": cfg.questions_per_step,
               "buffer_coverage": buffer.coverage([env.example.id for env in envs]), "runs": []}
    for n_threads in [int(t) for t in args.threads.split(",")]:
        actors = []
        for i in range(n_threads):
            shard = envs[i::n_threads]
            shard_buffer = MemoryBuffer()
            for env in shard:
                shard_buffer.add_many(env.example.id, buffer.trajectories(env.example.id))
            actors.append(Actor(shard, s.featurizer, s.model_config, buffer=shard_buffer, seed=i))
        for actor in actors:  # compile every shape once, outside the clock
            for _ in range(3):
                actor.make_batch(params)
        counts = [0] * n_threads
        stop = threading.Event()

        def loop(i: int) -> None:
            while not stop.is_set():
                actors[i].make_batch(params)
                counts[i] += 1

        threads = [threading.Thread(target=loop, args=(i,)) for i in range(n_threads)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        time.sleep(args.seconds)
        stop.set()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - start
        batches = sum(counts)
        run = {"threads": n_threads, "batches": batches, "seconds": round(elapsed, 1),
               "batches_per_s": round(batches / elapsed, 3),
               "questions_per_s": round(batches * cfg.questions_per_step / elapsed, 1)}
        figures["runs"].append(run)
        print(run, flush=True)
    base = figures["runs"][0]["batches_per_s"]
    for run in figures["runs"]:
        run["speedup"] = round(run["batches_per_s"] / base, 2)
    figures["note"] = ("batches/s of the actors alone with fixed parameters; the learner needs one batch "
                       "per step, so this bounds end-to-end learner steps/s")
    print(common.write_result("actors", figures))


if __name__ == "__main__":
    main()
