"""Files that are either wholly written or not there: a kill at any moment never leaves half a file
for the next run to trip over."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable, Union

from mapo_jax.errors import UserInputError


def atomic_write(path: Union[str, Path], write: Callable[[BinaryIO], None]) -> None:
    """Calls `write(f)` on a temporary file beside `path`, then renames it over `path`."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would hide run files from the user's other accounts and tools
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Union[str, Path], text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def read_json(path: Union[str, Path]):
    """A JSON file we wrote; a damaged one is named (file, line), not a bare JSONDecodeError."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise UserInputError(f"{path} is not valid JSON ({error.msg}, line {error.lineno})") from None
