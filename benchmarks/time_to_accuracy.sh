#!/usr/bin/env bash
# Time to accuracy on WTQ random split 1, from nothing: an empty preprocessing cache, no warm start.
# Everything a new user waits for counts: preprocessing, the warm-start exploration, loading its
# programs, compilation, training and dev evaluations. One uninterrupted go (a resumed run would
# hide its restart costs), so an existing run directory is refused.
#
#     MAPO_DATA_DIR=../shared/data bash benchmarks/time_to_accuracy.sh [RUN_DIR]
#
# Writes benchmarks/results/wtq_time_to_accuracy.json: dev accuracy against wall seconds since the
# start (the warm start included), the best, and the learner steps/s median over logging windows.
# Targets (issue 10, 2 cores): 42.3% dev within 2 h, >= 3.5 steps/s.
set -euo pipefail
cd "$(dirname "$0")/.."
run=${1:-${MAPO_RUNS:-$HOME/mapo_runs}/wtq_time_to_accuracy}
if [ -e "$run" ]; then
  echo "error: $run exists; the benchmark runs once from nothing (remove it, or give another RUN_DIR)" >&2
  exit 2
fi
mkdir -p "$run"
export MAPO_CACHE_DIR="$run/cache"  # empty: preprocessing is timed too
start=$(date +%s.%N)
python launch/explore.py --flagfile=wtq.flags --out="$run/warm_start" 2>&1 | tee "$run/explore.log"
train_start=$(date +%s.%N)
python launch/train.py --flagfile=wtq.flags --workdir="$run/train" --programs_file="$run/warm_start/programs.json" \
  --early_stop_evals=5 2>&1 | tee "$run/train.log"
# the learner's clock starts once the warm-start programs are loaded: add everything before it
loading=$(grep -o 'warm start: .* (\([0-9.]*\) s)' "$run/train.log" | head -1 | sed 's/.*(\([0-9.]*\) s)/\1/')
startup=$(python -c "print(round($train_start - $start + ${loading:-0}, 1))")
python benchmarks/training_run.py --workdir="$run/train" --name=wtq_time_to_accuracy --startup_s="$startup" \
  --command="MAPO_DATA_DIR=../shared/data bash benchmarks/time_to_accuracy.sh   # = launch/explore.py --flagfile=wtq.flags, then launch/train.py --flagfile=wtq.flags --programs_file=RUN/warm_start/programs.json --early_stop_evals=5, empty MAPO_CACHE_DIR"
