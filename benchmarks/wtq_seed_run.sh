#!/usr/bin/env bash
# One seed of the WTQ split-1 MAPO runs (paper settings from wtq.flags), in $MAPO_RUNS (default
# $HOME/mapo_runs), outside the work tree. Every seed shares one warm start, explored first if missing
# (resumable). Running the same command again resumes a stopped run; a finished or early-stopped run
# exits at once. Completion: 25k steps, or an early stop after 5 dev evaluations without a new best.
#
#     MAPO_DATA_DIR=../shared/data nice -n 5 bash benchmarks/wtq_seed_run.sh 0 [--actor_backend=ray ...]
#
# Further flags go to launch/train.py. A resumed run accepts changes only to resumable ones, such as the
# actor backend; a learning flag must be given the same on every resume. All seeds, one
# after the other, each resumed where it stopped (run it again after an interruption):
#
#     for seed in 0 1 2; do bash benchmarks/wtq_seed_run.sh $seed --actor_backend=ray || break; done
#
# A variant of the paper settings gets runs of its own name ($MAPO_RUN_NAME, default wtq_mapo, the
# directory being NAME_seedN), e.g. the original's entropy sign and out-of-buffer weight:
#
#     MAPO_RUN_NAME=wtq_mapo_original_weights bash benchmarks/wtq_seed_run.sh 0 \
#         --entropy_coeff=-0.01 --outside_draw_weight=original
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
exec python launch/train.py --flagfile=wtq.flags --workdir="$runs/${MAPO_RUN_NAME:-wtq_mapo}_seed$seed" --train_seed="$seed" \
  --programs_file="$warm/programs.json" --early_stop_evals=5 "$@"
