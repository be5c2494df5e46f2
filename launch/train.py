"""Trains a semantic parser with MAPO (or a baseline), evaluating on dev with beam search as it goes.

    python launch/train.py --flagfile=toy.flags     # the embedded toy dataset: ~4 min on 2 CPU cores
    python launch/train.py --flagfile=wtq.flags     # WikiTableQuestions split 1, the paper's settings

The run lives in --workdir (config, checkpoints, metrics.jsonl, TensorBoard under tb/; the layout is
documented in mapo_jax/checkpointing.py). Running the same command again resumes a stopped run from
its latest checkpoint; Ctrl-C finishes the current step, writes a checkpoint and exits (a second
Ctrl-C aborts at once). Baselines and ablations are flags:
--objective=mapo|reinforce|mml|hard_em|iml, --alpha=0 (no clip), --nosystematic_exploration.
Warm-start programs come from --programs_file, else WORKDIR/warm_start/programs.json, which is
explored first when missing (launch/explore.py's settings flags apply).
"""

import contextlib
import signal
import sys
import threading

import _common  # noqa: F401  (sys.path)
from _common import friendly_errors
from absl import app, flags

from mapo_jax import config as config_lib

config_lib.define_flags()
FLAGS = flags.FLAGS
INTERRUPTED_EXIT_CODE = 130  # the shell convention for a program ended by Ctrl-C (128 + SIGINT)


@contextlib.contextmanager
def stop_on_ctrl_c():
    """Yields the stop request that Ctrl-C sets: the training finishes its step, writes a checkpoint and
    returns (exit 0). A second Ctrl-C aborts at once (KeyboardInterrupt). The previous handler is
    restored on exit."""
    stop = threading.Event()

    def on_sigint(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        print("[train] Ctrl-C: finishing this step and writing a checkpoint (Ctrl-C again to abort)", flush=True)

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


@friendly_errors
def main(argv):
    from mapo_jax import training

    try:
        with stop_on_ctrl_c() as stop:
            result = training.train_and_evaluate(
                config_lib.data_config_from_flags(), config_lib.train_config_from_flags(), workdir=FLAGS.workdir,
                warm_start_config=config_lib.warm_start_config_from_flags(),
                program_config=config_lib.program_config_from_flags(), stop=stop)
    except (training.TrainingFailed, FloatingPointError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    best = result["best"]
    if result["interrupted"]:
        print(f"interrupted at step {result['step']}; run the same command to resume", file=sys.stderr)
        sys.exit(INTERRUPTED_EXIT_CODE)  # not 0: a script that runs several trainings stops here too
    if best:
        how = "early stop" if result.get("early_stopped") else "done"
        print(f"{how}: step {result['step']}, best dev accuracy {best['dev/accuracy']:.4f} at step {best['step']}")


if __name__ == "__main__":
    app.run(main)
