"""Random-exploration warm start: finds reward-1 programs for every training question.

    python launch/explore.py --flagfile=wtq.flags --split=train [--n_examples=N] [--rollouts_per_example=K] --out=DIR
    python launch/explore.py --flagfile=toy.flags --split=train --out=runs/toy_explore

Runs in parallel processes with a progress line, and resumes after an interruption (finished
chunks are kept in DIR/parts). Writes DIR/programs.json and DIR/stats.json (format documented in
mapo_jax/explore/warm_start.py).
"""

import json

import _common  # noqa: F401  (sys.path)
from _common import friendly_errors
from absl import app, flags

from mapo_jax import config as config_lib
from mapo_jax.data import datasets
from mapo_jax.explore import warm_start

config_lib.define_flags()
flags.DEFINE_string("out", None, "Output directory (resumed if it holds an unfinished run).")
flags.DEFINE_integer("n_examples", None, "Explore only the first N examples of the split.")
FLAGS = flags.FLAGS


@friendly_errors(uses=(*config_lib.data_flags(), *config_lib.PROGRAM_FLAGS, *config_lib.WARM_START_FLAGS))
def main(argv):
    if not FLAGS.out:
        raise app.UsageError("--out is required")
    data_config = config_lib.data_config_from_flags()
    split = config_lib.split_parts(data_config)[0]  # --split=K explores the train part of split K
    dataset = datasets.load_dataset(data_config, split)
    stats = warm_start.run_warm_start(
        dataset, FLAGS.out, config_lib.warm_start_config_from_flags(), n_examples=FLAGS.n_examples
    )
    summary = {k: v for k, v in stats.items() if k not in ("top_program_shapes", "settings")}
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    app.run(main)
