#!/usr/bin/env bash
# Time to accuracy on WTQ random split 1, from nothing: an empty preprocessing cache, no warm start.
# Everything a new user waits for counts: preprocessing, the warm-start exploration, loading its
# programs, compilation, training and dev evaluations. One uninterrupted go (a resumed run would
# hide its restart costs), so an existing run directory is refused.
#
#     MAPO_DATA_DIR=../shared/data bash benchmarks/time_to_accuracy.sh [RUN_DIR [TRAIN FLAGS...]]
#
# It runs to the early stop (5 dev evaluations without a new best) or until TIME_BUDGET_S seconds
# since the start (default 9000 s = 2.5 h, warm start included, so that it fits one working session),
# whichever comes first: at the budget, training gets a Ctrl-C, finishes its step and checkpoints.
# Further flags go to launch/train.py (e.g. --actor_backend=processes).
#
# Writes benchmarks/results/wtq_time_to_accuracy.json: dev accuracy against wall seconds since the
# start (the warm start included), the best, and the learner steps/s median over logging windows.
# Targets (issue 10, 2 cores): 42.3% dev within 2 h, >= 3.5 steps/s.
set -euo pipefail
cd "$(dirname "$0")/.."
run=${1:-${MAPO_RUNS:-$HOME/mapo_runs}/wtq_time_to_accuracy}
shift || true
budget=${TIME_BUDGET_S:-9000}
if [ -e "$run" ]; then
  echo "error: $run exists; the benchmark runs once from nothing (remove it, or give another RUN_DIR)" >&2
  exit 2
fi
mkdir -p "$run"
export MAPO_CACHE_DIR="$run/cache"  # empty: preprocessing is timed too
start=$(date +%s.%N)
python launch/explore.py --flagfile=wtq.flags --out="$run/warm_start" 2>&1 | tee "$run/explore.log"
train_start=$(date +%s.%N)
left=$(python -c "print(max(1, int($budget - ($train_start - $start))))")
# Ctrl-C at the budget: the launcher checkpoints and exits 130, which ends the benchmark normally.
status=0
timeout -s INT "$left" python launch/train.py --flagfile=wtq.flags --workdir="$run/train" \
  --programs_file="$run/warm_start/programs.json" --early_stop_evals=5 "$@" 2>&1 | tee "$run/train.log" || status=$?
if [ "$status" -ne 0 ] && [ "$status" -ne 130 ] && [ "$status" -ne 124 ]; then
  echo "error: training failed (exit $status); see $run/train.log" >&2
  exit "$status"
fi
ended="early stop or the last step"
[ "$status" -ne 0 ] && ended="the time budget of $budget s"
# the learner's clock starts once the warm-start programs are loaded: add everything before it
loading=$(grep -o 'warm start: .* (\([0-9.]*\) s)' "$run/train.log" | head -1 | sed 's/.*(\([0-9.]*\) s)/\1/')
startup=$(python -c "print(round($train_start - $start + ${loading:-0}, 1))")
python benchmarks/training_run.py --workdir="$run/train" --name=wtq_time_to_accuracy --startup_s="$startup" \
  --command="MAPO_DATA_DIR=../shared/data TIME_BUDGET_S=$budget bash benchmarks/time_to_accuracy.sh RUN $*   # = launch/explore.py --flagfile=wtq.flags, then launch/train.py --flagfile=wtq.flags --programs_file=RUN/warm_start/programs.json --early_stop_evals=5 $*, empty MAPO_CACHE_DIR; ended by $ended"
