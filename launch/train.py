"""Trains a semantic parser with MAPO (or a baseline) and evaluates it on dev as it goes.

    python launch/train.py --flagfile=toy.flags                 # the embedded toy dataset, ~3 min on 2 cores
    python launch/train.py --flagfile=wtq.flags --programs_file=runs/wtq_explore/programs.json --workdir=runs/wtq

This runs the synchronous loop of mapo_jax/training.py (one inline actor, the jitted learner).
Dev accuracy goes to WORKDIR/metrics.jsonl. Checkpoints, actor threads and beam-search evaluation
are the next step (issue 5).
"""

import json

import _common  # noqa: F401  (sys.path)
from _common import friendly_errors
from absl import app, flags

from mapo_jax import config as config_lib

config_lib.define_flags()
flags.DEFINE_string("workdir", None, "Run directory (metrics.jsonl).")
FLAGS = flags.FLAGS


@friendly_errors
def main(argv):
    from mapo_jax import training

    data_config = config_lib.data_config_from_flags()
    result = training.train_and_evaluate(
        data_config, config_lib.train_config_from_flags(), workdir=FLAGS.workdir)
    print(json.dumps(result["history"][-1]))


if __name__ == "__main__":
    app.run(main)
