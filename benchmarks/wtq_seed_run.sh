#!/usr/bin/env bash
# One seed of the WTQ split-1 MAPO runs (paper settings from wtq.flags), in $MAPO_RUNS (default
# $HOME/mapo_runs), outside the work tree. Every seed shares one warm start, explored first if missing
# (resumable). Running the same command again resumes a stopped run; a finished or early-stopped run
# exits at once. Completion: 25k steps, or an early stop after 5 dev evaluations without a new best.
#
#     MAPO_DATA_DIR=../shared/data nice -n 5 bash benchmarks/wtq_seed_run.sh 0 [--actor_backend=ray ...]
#
# Further flags go to launch/train.py (resumable ones only, such as the actor backend). All seeds, one
# after the other, each resumed where it stopped (run it again after an interruption):
#
#     for seed in 0 1 2; do bash benchmarks/wtq_seed_run.sh $seed --actor_backend=ray || break; done
set -euo pipefail
cd "$(dirname "$0")/.."
seed=${1:?usage: benchmarks/wtq_seed_run.sh SEED [TRAIN FLAGS...]}
shift
runs=${MAPO_RUNS:-$HOME/mapo_runs}
warm=$runs/wtq_split1_warm_start
mkdir -p "$runs"
if [ ! -f "$warm/programs.json" ]; then
  python launch/explore.py --flagfile=wtq.flags --out="$warm"
fi
exec python launch/train.py --flagfile=wtq.flags --workdir="$runs/wtq_mapo_seed$seed" --train_seed="$seed" \
  --programs_file="$warm/programs.json" --early_stop_evals=5 "$@"
