"""Where training numbers go: `metrics.jsonl` (one JSON object per line), TensorBoard event files,
and the console. Safe to call from several threads (the learner and the evaluator both write)."""

from __future__ import annotations

import json
import math
import threading
from pathlib import Path
from typing import Callable, Dict, List, Optional, Union

from mapo_jax.errors import UserInputError
from mapo_jax.io_utils import atomic_write_text

METRICS_FILE = "metrics.jsonl"
TB_DIR = "tb"


def format_duration(seconds: float) -> str:
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


def read_metrics(path: Union[str, Path]) -> List[dict]:
    """The records of a `metrics.jsonl` (a run directory or the file itself).

    A last line without its newline is the record a killed run was writing: it is left out. Any
    other unreadable line is an error naming the file and line.
    """
    path = Path(path)
    if path.is_dir():
        path = path / METRICS_FILE
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    complete, partial = lines[:-1], lines[-1]  # text ending in "\n" leaves an empty `partial`
    records = []
    for number, line in enumerate(complete, 1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as error:
                raise UserInputError(f"{path}, line {number}: not a JSON record ({error.msg})") from None
    if partial.strip():
        try:
            records.append(json.loads(partial))
        except json.JSONDecodeError:
            pass  # cut short by a kill
    return records


class MetricsWriter:
    """Appends records to WORKDIR/metrics.jsonl and WORKDIR/tb; without a workdir, keeps them in memory.

    `resume_at(step)`: a restarted run drops the records of steps after its checkpoint (they will be
    written again), in the JSONL file and, through `purge_step`, in TensorBoard.
    """

    def __init__(self, workdir: Optional[Union[str, Path]] = None, log: Optional[Callable[[str], None]] = None,
                 tensorboard: bool = True):
        self.workdir = Path(workdir) if workdir is not None else None
        self.log = log or print
        self.records: List[dict] = []
        self._lock = threading.Lock()
        self._tensorboard = tensorboard and self.workdir is not None
        self._tb = None
        self._purge_step: Optional[int] = None

    def resume_at(self, step: int) -> None:
        if self.workdir is None:
            return
        path = self.workdir / METRICS_FILE
        if path.exists():
            kept = [r for r in read_metrics(path) if r.get("step", 0) <= step]
            atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in kept))
            self.records = kept
        self._purge_step = step + 1

    def _writer(self):
        if self._tb is None and self._tensorboard:
            from tensorboardX import SummaryWriter

            self._tb = SummaryWriter(str(self.workdir / TB_DIR), purge_step=self._purge_step)
        return self._tb

    def write(self, record: Dict[str, float]) -> None:
        """`record` has a "step"; its other numeric values become scalars of that step."""
        # strict JSON: a non-finite value (e.g. no on-policy sample in the window) is written as null
        record = {k: ((round(v, 6) if math.isfinite(v) else None) if isinstance(v, float) else v)
                  for k, v in record.items()}
        with self._lock:
            self.records.append(record)
            if self.workdir is None:
                return
            with open(self.workdir / METRICS_FILE, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
            writer = self._writer()
            if writer is not None:
                for key, value in record.items():
                    if key != "step" and isinstance(value, (int, float)) and math.isfinite(value):
                        writer.add_scalar(key, value, record["step"])
                writer.flush()

    def close(self) -> None:
        with self._lock:
            if self._tb is not None:
                self._tb.close()
                self._tb = None
