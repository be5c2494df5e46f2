"""Learner updates/s for the WTQ configuration and batched decoding-step latency.

    python benchmarks/learner_benchmark.py [--updates=20]

WTQ configuration (issue 4): 50 questions x 2 trajectories = 100 trajectories per update, up to 20
decoding steps, 60 valid slots, hidden size 200, GloVe
50-d, MAPO loss, Adam + clipping; and one jitted `step` for 25 / 50 / 100 environments.
Questions pad to the 24-token bucket: the longest of 50 random WTQ questions has median 22 tokens.
Random arrays of the real shapes (throughput does not depend on the values).
"""

import argparse
import time

import jax
import numpy as np
from common import write_result

from mapo_jax import learning, objectives
from mapo_jax.model import policy
from mapo_jax.model.networks import EncoderInputs, ModelConfig, StepInputs

CONFIG = ModelConfig(encoder_vocab_size=1921, pretrained_dim=50)


def random_inputs(config, batch, length=32, steps=20, seed=0, questions=None):
    """`batch` trajectories over `questions` distinct questions (default: one each)."""
    rng = np.random.default_rng(seed)
    questions = questions or batch
    c, v = config.max_mem, config.max_valid
    spans = -np.ones((questions, c, 2), np.int32)
    spans[:, 10] = [2, 3]
    inputs = EncoderInputs(
        tokens=rng.integers(0, config.encoder_vocab_size, (questions, length)).astype(np.int32),
        in_table=rng.integers(0, 2, (questions, length)).astype(np.float32),
        length=rng.integers(8, length + 1, questions).astype(np.int32),
        constant_spans=spans,
        constant_values=rng.normal(size=(questions, c, config.pretrained_dim)).astype(np.float32),
        n_constants=np.full(questions, 12, np.int32),
    )
    counts = rng.integers(1, v + 1, (batch, steps))
    mask = np.arange(v)[None, None] < counts[..., None]
    trajectories = policy.TrajectoryBatch(
        read_ids=rng.integers(0, config.n_slots, (batch, steps)).astype(np.int32),
        write_ids=np.where(rng.random((batch, steps)) < 0.2, config.n_builtin + 12, -1).astype(np.int32),
        valid_ids=(rng.integers(0, config.n_slots, (batch, steps, v)) * mask).astype(np.int32),
        valid_mask=mask,
        features=np.zeros((batch, steps, v), np.float32),
        actions=rng.integers(0, counts).astype(np.int32),
        length=rng.integers(8, steps + 1, batch).astype(np.int32),
        example_index=(np.arange(batch) % questions).astype(np.int32),
    )
    samples = objectives.SampleBatch(
        reward=np.ones(batch, np.float32), in_buffer=np.arange(batch) % 2 == 0,
        pi_buffer=np.full(batch, 0.3, np.float32), sample_weight=np.ones(batch, np.float32),
        baseline=np.zeros(batch, np.float32), valid=np.ones(batch, bool), n_examples=np.float32(batch // 2),
    )
    return learning.LearnerBatch(samples, inputs, trajectories)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--updates", type=int, default=20)
    parser.add_argument("--questions", type=int, default=50, help="questions per update (2 trajectories each)")
    parser.add_argument("--steps", type=int, default=20, help="decoding steps per trajectory")
    parser.add_argument("--name", default="learner", help="the result file: benchmarks/results/NAME.json")
    args = parser.parse_args()
    params = policy.init(jax.random.PRNGKey(0), CONFIG)
    optimizer = learning.make_optimizer()
    update = learning.make_update(learning.make_policy_loss("mapo", CONFIG), optimizer)
    state = learning.init_state(params, optimizer, jax.random.PRNGKey(1))
    batch = jax.device_put(random_inputs(CONFIG, 2 * args.questions, questions=args.questions, length=24,
                                         steps=args.steps))
    start = time.perf_counter()
    state, metrics = update(state, batch)
    jax.block_until_ready(metrics)
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(args.updates):
        state, metrics = update(state, batch)
    jax.block_until_ready(metrics)
    seconds = time.perf_counter() - start
    figures = {
        "learner": {
            "updates_per_s": round(args.updates / seconds, 2), "updates": args.updates,
            "seconds": round(seconds, 2), "first_update_with_compile_s": round(compile_s, 1),
            "batch": f"{2 * args.questions} trajectories ({args.questions} questions x 2), {args.steps} steps, 60 valid "
                     f"slots, questions padded to the 24-token bucket (median longest of 50 WTQ questions: 22)",
        },
        "step_latency_ms": {},
        "device": str(jax.devices()[0]),
        "parameters": policy.count_parameters(state.params),
    }
    print(figures["learner"])
    params = state.params
    for n in (25, 50, 100):
        data = random_inputs(CONFIG, n)
        encoded = policy.encode(params, data.inputs, CONFIG)
        decoder_state = policy.initial_state(encoded, CONFIG)
        t = data.trajectories
        step_inputs = StepInputs(t.read_ids[:, 0], t.write_ids[:, 0], t.valid_ids[:, 0], t.valid_mask[:, 0], t.features[:, 0])
        step_inputs = jax.device_put(step_inputs)
        out = policy.step(params, encoded, decoder_state, step_inputs, CONFIG)
        jax.block_until_ready(out)
        times = []
        for _ in range(100):
            start = time.perf_counter()
            out = policy.step(params, encoded, decoder_state, step_inputs, CONFIG)
            jax.block_until_ready(out)
            times.append(time.perf_counter() - start)
        figures["step_latency_ms"][str(n)] = {"median": round(1e3 * float(np.median(times)), 3),
                                               "p90": round(1e3 * float(np.percentile(times, 90)), 3)}
        print(n, figures["step_latency_ms"][str(n)])
    print("wrote", write_result(args.name, figures))


if __name__ == "__main__":
    main()
