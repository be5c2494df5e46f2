"""Shared launcher plumbing: importable package without install, friendly errors for bad input."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

# `python launch/x.py` from a clone works even before `pip install -e .`.
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)


def friendly_errors(main):
    """Rejects stray arguments, and turns expected user errors (missing data, bad split, bad
    file) into one message and exit status 2 instead of a traceback."""

    @functools.wraps(main)
    def wrapper(argv):
        from absl import app

        from mapo_jax.data.tables import TableFormatError

        from absl import flags
        from absl import logging as absl_logging

        if not flags.FLAGS["verbosity"].present:  # Orbax and JAX log every step at INFO
            absl_logging.set_verbosity(absl_logging.WARNING)
        if len(argv) > 1:
            raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
        try:
            return main(argv)
        except (FileNotFoundError, ValueError, TableFormatError) as error:
            print(f"error: {error}", file=sys.stderr)
            sys.exit(2)

    return wrapper
