"""Preprocesses a dataset split into the cache, prints its statistics, checks known gold programs.

    python launch/preprocess.py --dataset=wtq [--split=training] [--stats_json=stats.json]
    python launch/preprocess.py --flagfile=toy.flags
"""

import json

import _common  # noqa: F401  (sys.path)
from _common import friendly_errors
from absl import app, flags

from mapo_jax import config as config_lib
from mapo_jax import env as env_lib
from mapo_jax.data import datasets

config_lib.define_flags()
flags.DEFINE_string("stats_json", None, "Also write the statistics as JSON to this file.")
FLAGS = flags.FLAGS


@friendly_errors(uses=config_lib.data_flags())
def main(argv):
    config = config_lib.data_config_from_flags()
    report = datasets.preprocess(config)
    failed = 0
    for part in config_lib.split_parts(config):
        dataset = datasets.load_dataset(config, part)
        if dataset.programs:  # generated data: its gold programs must earn reward 1
            check = env_lib.check_gold_programs(dataset)
            report["parts"][part].update(check)
            failed += check["gold_programs"] - check["gold_programs_correct"]
    text = json.dumps(report, indent=2)
    print(text)
    if FLAGS.stats_json:
        with open(FLAGS.stats_json, "w") as f:
            f.write(text + "\n")
    if failed:
        raise SystemExit(f"error: {failed} gold programs do not earn reward 1 (see 'failures' above)")


if __name__ == "__main__":
    app.run(main)
