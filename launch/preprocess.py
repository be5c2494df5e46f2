"""Preprocesses a dataset split into the cache and prints its statistics.

    python launch/preprocess.py --dataset=wtq [--split=training] [--stats_json=stats.json]
    python launch/preprocess.py --flagfile=toy.flags
"""

import json

import _common  # noqa: F401  (sys.path)
from _common import friendly_errors
from absl import app, flags

from mapo_jax import config as config_lib
from mapo_jax.data import datasets

config_lib.define_flags()
flags.DEFINE_string("stats_json", None, "Also write the statistics as JSON to this file.")
FLAGS = flags.FLAGS


@friendly_errors
def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    config = config_lib.data_config_from_flags()
    report = datasets.preprocess(config)
    text = json.dumps(report, indent=2)
    print(text)
    if FLAGS.stats_json:
        with open(FLAGS.stats_json, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    app.run(main)
