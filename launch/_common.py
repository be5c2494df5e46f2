"""Shared launcher plumbing: importable package without install, friendly errors for bad input."""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Set, Tuple

# `python launch/x.py` from a clone works even before `pip install -e .`.
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from mapo_jax.errors import UserInputError  # noqa: E402  (after the sys.path line)


# OS errors about a path the user gave (a file that is a directory, a read-only workdir, a workdir
# that is a file): one line naming the path. Other OS errors (a full disk, a broken pipe) keep
# their traceback.
_PATH_ERRORS = (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError, FileExistsError)
_HINTS = {
    IsADirectoryError: "is a directory where a file is expected",
    NotADirectoryError: "a part of this path is a file where a directory is expected",
}


def describe_error(error: BaseException) -> str:
    """The one line a user sees for a user error: the message, or for an OS error its path."""
    if isinstance(error, OSError) and error.filename is not None:
        hint = next((text for kind, text in _HINTS.items() if isinstance(error, kind)), error.strerror)
        if isinstance(error, FileExistsError) and Path(error.filename).is_file():
            hint = "is a file where a directory is expected"
        return f"{error.filename}: {hint}"
    return str(error)


def existing_file(flag: str, value: str) -> Path:
    """The path of `--flag=value`, which must be an existing file (not a directory)."""
    path = Path(value)
    if path.is_dir():
        raise UserInputError(f"--{flag}: {value} is a directory; a file is expected")
    if not path.is_file():
        raise FileNotFoundError(f"--{flag}: {value} does not exist")
    return path


def command_line_flags(args: Sequence[str], known: Iterable[str]) -> Set[str]:
    """The flag names written on the command line itself (not read from a flagfile): `--name=v`,
    `--name v`, `--name`, `--noname` for a boolean."""
    known = set(known)
    names = set()
    for arg in args:
        if not arg.startswith("-") or arg in ("-", "--"):
            continue
        name = arg.lstrip("-").split("=", 1)[0]
        if name not in known and name.startswith("no") and name[2:] in known:
            name = name[2:]
        names.add(name)
    return names


def unused_flags(given: Iterable[str], on_command_line: Iterable[str], project_flags: Iterable[str],
                 used: Iterable[str]) -> Tuple[List[str], List[str]]:
    """(refused, noted): project flags given to a launcher that does not read them, split by where
    they came from. A shared flagfile (`wtq.flags`) legitimately carries other commands' settings,
    so those get a note; on the command line such a flag is a mistake that would otherwise pass
    silently."""
    unused = (set(given) & set(project_flags)) - set(used)
    command_line = set(on_command_line)
    return sorted(unused & command_line), sorted(unused - command_line)


def check_flag_use(used: Iterable[str], launcher: str) -> None:
    from absl import flags

    from mapo_jax import config as config_lib

    values = flags.FLAGS
    given = [name for name in config_lib.PROJECT_FLAGS if values[name].present]
    refused, noted = unused_flags(given, command_line_flags(sys.argv[1:], values), config_lib.PROJECT_FLAGS, used)
    if refused:
        raise UserInputError(f"{launcher} does not use {', '.join('--' + n for n in refused)}: "
                             f"leave {'it' if len(refused) == 1 else 'them'} out (did you mean another command?)")
    if noted:
        print(f"note: {launcher} does not use {', '.join('--' + n for n in noted)} (from a flagfile)",
              file=sys.stderr)


def friendly_errors(main=None, *, uses: Optional[Iterable[str]] = None):
    """Rejects stray arguments and project flags the launcher does not read (`uses`: the project
    flags it reads; None: all of them), and turns errors in what the user gave (`UserInputError`, a
    missing or unusable path) into one line and exit status 2. Any other exception is a bug: it
    keeps its traceback."""
    if main is None:
        return functools.partial(friendly_errors, uses=uses)

    @functools.wraps(main)
    def wrapper(argv):
        from absl import app, flags
        from absl import logging as absl_logging

        if not flags.FLAGS["verbosity"].present:  # Orbax and JAX log every step at INFO
            absl_logging.set_verbosity(absl_logging.WARNING)
        if len(argv) > 1:
            raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
        try:
            if uses is not None:
                check_flag_use(uses, Path(sys.argv[0]).name)
            return main(argv)
        except (UserInputError, *_PATH_ERRORS) as error:
            print(f"error: {describe_error(error)}", file=sys.stderr)
            sys.exit(2)

    return wrapper
