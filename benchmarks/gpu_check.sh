#!/usr/bin/env bash
# The GPU check (at most 8 minutes), for a session lent a GPU machine:
#   1. the learner's updates/s on the GPU with the WTQ configuration's shapes (25 questions x 2
#      trajectories, 19 steps, random data): benchmarks/results/gpu_learner.json;
#   2. with MAPO_DATA_DIR and a warm start (PROGRAMS), the end-to-end learner steps/s of the WTQ
#      configuration with 14 process actors (JAX pinned to the CPU in them) and the learner on the GPU,
#      4 minutes of training: benchmarks/results/gpu_end_to_end.json.
#
#     bash benchmarks/gpu_check.sh                  # part 1
#     MAPO_DATA_DIR=... PROGRAMS=.../programs.json bash benchmarks/gpu_check.sh
#
# Results are also copied to $OUT when it is set (the device tool returns what is there).
set -uo pipefail
cd "$(dirname "$0")/.."
python -c "import jax; print('devices:', jax.devices())"
timeout 150 python benchmarks/learner_benchmark.py --updates=200 --questions=25 --steps=19 --name=gpu_learner
if [ -n "${MAPO_DATA_DIR:-}" ] && [ -f "${PROGRAMS:-}" ]; then
  run=$(mktemp -d)/run
  # stopped by the timeout while training: the steps/s come from the logging windows written so far
  timeout 300 python launch/train.py --flagfile=wtq.flags --workdir="$run" --programs_file="$PROGRAMS" \
    --actor_backend=processes --n_actors=14 --eval_every=100000 --checkpoint_every=100000
  python benchmarks/training_run.py --workdir="$run" --name=gpu_end_to_end \
    --command="MAPO_DATA_DIR=... PROGRAMS=... bash benchmarks/gpu_check.sh   # 14 process actors, GPU learner, 300 s"
else
  echo "part 2 skipped: set MAPO_DATA_DIR and PROGRAMS (a warm start's programs.json)"
fi
if [ -n "${OUT:-}" ]; then cp benchmarks/results/gpu_*.json "$OUT"/ 2>/dev/null; fi
