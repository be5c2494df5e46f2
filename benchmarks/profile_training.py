"""Where a learner step of the WTQ configuration spends its time, stage by stage.

    python benchmarks/profile_training.py --programs_file=RUN/warm_start/programs.json [--workdir=RUN]
                                          [--batches=60] [--eval_questions=400]

Runs the stages of training one after the other in one thread (no actor threads, no evaluator
thread), so each stage's cost is its own: wall seconds and CPU seconds of the whole process
(`time.process_time`, which counts XLA's worker threads too: core-seconds). Per learner step:

* actor stages, inside `Actor.make_batch` for `--batches` batches of 25 questions (actor 0's shard of
  the paper configuration): question encoding (once a batch, shared by the next three stages; the
  results of 2026-12-05 predate that and charge an encoding to each of them), systematic exploration,
  buffer scoring, the on-policy draw, featurisation (encoder inputs, trajectory arrays), and the rest
  of the actor (buffer bookkeeping, interpreter memos);
* queueing (a put and a get on a `BatchQueue`) and the learner update (pmapped, as in training);
* amortised: dev evaluation (beam 5 on `--eval_questions` dev questions, scaled to the whole dev set,
  every `--eval_every` steps), a checkpoint (every `--checkpoint_every` steps), and warm-start loading
  (buffer programs replayed through the interpreter at every start or resume, over a 25k-step run).

With `--workdir` the parameters are a trained run's latest checkpoint (a trained policy explores and
samples differently from a random one). Writes results/profile_training.json.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import functools
import tempfile
import time

import common


class StageClock:
    """Exclusive wall and CPU time per stage: a stage entered inside another is charged to itself only."""

    def __init__(self):
        self.wall = collections.defaultdict(float)
        self.cpu = collections.defaultdict(float)
        self._stack = []

    @contextlib.contextmanager
    def stage(self, name: str):
        now = (time.perf_counter(), time.process_time())
        if self._stack:
            self._charge(self._stack[-1], now)
        self._stack.append([name, now])
        try:
            yield
        finally:
            end = (time.perf_counter(), time.process_time())
            self._charge(self._stack.pop(), end)
            if self._stack:
                self._stack[-1][1] = end

    def _charge(self, entry, now) -> None:
        name, (wall, cpu) = entry
        self.wall[name] += now[0] - wall
        self.cpu[name] += now[1] - cpu
        entry[1] = now

    def charge_compilation(self, name: str, seconds: float, **_) -> None:
        """A JAX compilation inside a stage is charged to "compilation", not to the stage: shapes met
        for the first time would otherwise inflate whichever stage met them (a long run compiles
        each shape once)."""
        if name.startswith("/jax/core/compile/") and self._stack:
            stage = self._stack[-1][0]
            self.wall[stage] -= seconds
            self.cpu[stage] -= seconds
            self.wall["compilation"] += seconds
            self.cpu["compilation"] += seconds

    def wrap(self, name, fn):
        @functools.wraps(fn)
        def timed(*args, **kwargs):
            with self.stage(name(args, kwargs) if callable(name) else name):
                return fn(*args, **kwargs)
        return timed


def _blocking(fn):
    """`fn` that waits for its jitted result: JAX dispatches asynchronously, so a stage that returns
    device arrays would otherwise be charged to whichever stage waits next."""
    import jax

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return jax.block_until_ready(fn(*args, **kwargs))

    return wrapper


def instrument_actor(clock: StageClock, monkey: contextlib.ExitStack) -> None:
    """Charges the sub-steps of `Actor.make_batch` to their stages (by patching the names it calls)."""
    from unittest import mock

    from mapo_jax import acting, decoding

    sample_stage = lambda args, kwargs: "exploration rollout" if kwargs.get("explorers") else "on-policy draw"  # noqa: E731
    monkey.enter_context(mock.patch.object(decoding, "sample", clock.wrap(sample_stage, decoding.sample)))
    monkey.enter_context(mock.patch.object(decoding, "encoder_inputs", clock.wrap("featurisation", decoding.encoder_inputs)))
    monkey.enter_context(mock.patch.object(acting, "trajectory_batch", clock.wrap("featurisation", acting.trajectory_batch)))
    monkey.enter_context(mock.patch.object(acting, "buffer_program_probs",
                                           clock.wrap("buffer scoring", acting.buffer_program_probs)))
    monkey.enter_context(mock.patch.object(acting.Actor, "_encode", clock.wrap("question encoding",
                                                                                 _blocking(acting.Actor._encode))))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--programs_file", required=True)
    parser.add_argument("--workdir", default=None, help="take the parameters of this run's latest checkpoint")
    parser.add_argument("--batches", type=int, default=80)
    parser.add_argument("--warmup_batches", type=int, default=10)
    parser.add_argument("--eval_questions", type=int, default=400)
    parser.add_argument("--eval_every", type=int, default=1000)
    parser.add_argument("--checkpoint_every", type=int, default=500)
    parser.add_argument("--n_steps", type=int, default=25000)
    args = parser.parse_args()

    import jax

    from mapo_jax import checkpointing, evaluation, learning
    from mapo_jax.acting import BatchQueue
    from mapo_jax.buffer import MemoryBuffer
    from mapo_jax.config import DataConfig, TrainConfig
    from mapo_jax.explore.warm_start import load_programs
    from mapo_jax.model import policy
    from mapo_jax.training import setup
    from mapo_jax.training.actor_pool import ActorState, make_actor
    from mapo_jax.training.learner import compiled_update, to_devices
    from mapo_jax.training.run_state import RunState, to_checkpoint

    clock = StageClock()
    jax.monitoring.register_event_duration_secs_listener(clock.charge_compilation)
    cfg = TrainConfig()  # the paper's WTQ settings (wtq.flags changes only schedule settings)
    with clock.stage("setup (data, vectors, environments)"):
        s = setup(DataConfig(dataset="wtq", split="1"), cfg)
    with clock.stage("warm-start loading"):
        buffer = MemoryBuffer()
        stats = buffer.load_programs({env.example.id: env for env in s.train_envs}, load_programs(args.programs_file))
        for env in s.train_envs:
            env.release_memory()
    print(f"loaded {stats['loaded']} programs", flush=True)
    params = policy.init(jax.random.PRNGKey(0), s.model_config, s.pretrained)
    if args.workdir:
        params, step = checkpointing.restore_params(args.workdir, "latest")
        print(f"parameters of {args.workdir} step {step}", flush=True)
    shard = s.train_envs[0::cfg.n_actors]
    actor = make_actor(0, shard, s, cfg, buffer)
    optimizer, update = compiled_update(learning.make_policy_loss, s.model_config, cfg.objective, cfg.alpha,
                                        cfg.entropy_coeff, cfg.learning_rate, cfg.max_grad_norm)
    state = learning.replicate(learning.init_state(params, optimizer, jax.random.PRNGKey(1)), 1)
    queue = BatchQueue(2)

    def one_step(charge: bool):
        nonlocal state
        with (clock.stage("actor (other)") if charge else contextlib.nullcontext()):
            batch, _ = actor.make_batch(learning.unreplicate(state.params))
        with (clock.stage("queueing") if charge else contextlib.nullcontext()):
            queue.put((0, batch, None))
            _, batch, _ = queue.get(lambda: None)
        with (clock.stage("learner update") if charge else contextlib.nullcontext()):
            state, metrics = update(state, to_devices(batch, 1))
            float(metrics["loss"][0])

    with clock.stage("warm-up (compilation)"):
        for _ in range(args.warmup_batches):
            one_step(charge=False)
    with contextlib.ExitStack() as monkey:
        instrument_actor(clock, monkey)
        for _ in range(args.batches):
            one_step(charge=True)
    host_params = jax.device_get(learning.unreplicate(state.params))
    dev = s.dev_envs[: args.eval_questions]
    evaluation.evaluate(host_params, s.model_config, dev[:25], s.featurizer, beam_size=cfg.beam_size)  # compile
    with clock.stage("dev evaluation"):
        result = evaluation.evaluate(host_params, s.model_config, dev, s.featurizer, beam_size=cfg.beam_size)
    print(f"dev accuracy on {len(dev)} questions: {result.accuracy:.3f}", flush=True)
    with tempfile.TemporaryDirectory() as tmp, clock.stage("checkpoint"):
        checkpointer = checkpointing.Checkpointer(tmp)
        actor_state, bloom = actor.state_dict()
        actors = [ActorState(actor_state, bloom, 1, queue.snapshot())] * cfg.n_actors
        checkpointer.save(1, to_checkpoint(RunState(1, learning.unreplicate(state), actors, {}, [], {}, 0.0,
                                                    cfg.n_actors)))
        checkpointer.close()

    per_step = {}
    for name in ("question encoding", "exploration rollout", "buffer scoring", "on-policy draw", "featurisation",
                 "actor (other)", "queueing", "learner update"):
        per_step[name] = (clock.wall[name] / args.batches, clock.cpu[name] / args.batches)
    eval_scale = len(s.dev_envs) / len(dev) / args.eval_every
    per_step["dev evaluation (amortised)"] = (clock.wall["dev evaluation"] * eval_scale,
                                              clock.cpu["dev evaluation"] * eval_scale)
    per_step["checkpoint (amortised)"] = (clock.wall["checkpoint"] / args.checkpoint_every,
                                          clock.cpu["checkpoint"] / args.checkpoint_every)
    per_step["warm-start loading (amortised)"] = (clock.wall["warm-start loading"] / args.n_steps,
                                                  clock.cpu["warm-start loading"] / args.n_steps)
    total_cpu = sum(cpu for _, cpu in per_step.values())
    table = {name: {"wall_s": round(wall, 4), "core_s": round(cpu, 4), "share_of_core_s": round(cpu / total_cpu, 3)}
             for name, (wall, cpu) in per_step.items()}
    figures = {
        "per_learner_step": table,
        "total_core_s_per_step": round(total_cpu, 4),
        "bound_steps_per_s_on_2_cores": round(2 / total_cpu, 2),
        "one_off": {name: {"wall_s": round(clock.wall[name], 1), "core_s": round(clock.cpu[name], 1)}
                    for name in ("setup (data, vectors, environments)", "warm-start loading", "warm-up (compilation)",
                                 "compilation", "dev evaluation", "checkpoint")},
        "settings": {"batches": args.batches, "warmup_batches": args.warmup_batches, "questions_per_step": cfg.questions_per_step,
                     "eval_questions": len(dev), "dev_questions": len(s.dev_envs), "eval_every": args.eval_every,
                     "checkpoint_every": args.checkpoint_every, "n_steps": args.n_steps,
                     "warm_start_programs": stats["loaded"], "trained_parameters": bool(args.workdir)},
        "note": ("stages run one after the other in one thread; core_s = process CPU seconds (XLA worker threads "
                 "included); JAX compilations after the warm-up (new shapes) are counted apart, as 'compilation'; "
                 "bound = 2 cores / total core-seconds per step, if stages overlapped perfectly"),
    }
    for name, row in table.items():
        print(f"{name:34s} {row['wall_s'] * 1000:8.1f} ms wall {row['core_s'] * 1000:8.1f} ms core "
              f"{row['share_of_core_s']:6.1%}")
    print(common.write_result("profile_training", figures))


if __name__ == "__main__":
    main()
