"""A training run's scalars as TensorBoard event files and as a CSV, next to its checkpoints.

Written every `log_every` steps by the training loop: each loss term, the learning rate, clips/s and
the fraction of the interval spent waiting for data. `scalars.csv` (step, name, value) is for people
without TensorBoard. A resumed run first drops what the killed one logged after its last checkpoint
(TensorBoard's `purge_step`; the CSV is rewritten atomically to the rows up to that step), so every
step appears once. TensorBoard is optional: without the package, only the CSV is written.
"""
from __future__ import annotations

import csv
from pathlib import Path

from harness.storage import atomic_write

CSV_NAME = "scalars.csv"
EVENTS_DIR = "tensorboard"


class ScalarLog:
    def __init__(self, folder: Path, resume_step: int = 0):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.csv_path = self.folder / CSV_NAME
        kept: list[list[str]] = []
        if resume_step and self.csv_path.exists():
            with open(self.csv_path, newline="") as f:
                kept = [row for row in list(csv.reader(f))[1:] if row and int(row[0]) <= resume_step]
        atomic_write(self.csv_path, lambda f: csv.writer(f, lineterminator="\n").writerows([["step", "name", "value"],
                                                                                           *kept]))
        self._csv = open(self.csv_path, "a", newline="")
        self._rows = csv.writer(self._csv, lineterminator="\n")
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # the tensorboard package is not installed: the CSV alone
            self.writer = None
        else:
            self.writer = SummaryWriter(str(self.folder / EVENTS_DIR), purge_step=resume_step or None)

    def add(self, step: int, values: dict[str, float]) -> None:
        for name, value in values.items():
            self._rows.writerow([step, name, f"{value:.6g}"])
            if self.writer is not None:
                self.writer.add_scalar(name, value, step)
        self._csv.flush()

    def close(self) -> None:
        self._csv.close()
        if self.writer is not None:
            self.writer.close()


class NoLog:
    """What processes other than rank 0 (and callers that keep no log) get: nothing is written."""

    def add(self, step: int, values: dict[str, float]) -> None:
        pass

    def close(self) -> None:
        pass
