"""The history as plain records, and as a CSV file on disk."""

from __future__ import annotations

import csv
import numbers
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from skorch.callbacks import Callback


def history_records(history: Any) -> list[dict[str, Any]]:
    """The per-epoch scalar values of a skorch history, one dict per epoch.

    Keeps numbers only: drops the per-batch records and skorch's flags (``*_best``,
    ``event_cp``). ``pandas.DataFrame(history_records(est.history_))`` makes it a table.
    """
    return [{k: _plain(v) for k, v in row.items() if _is_number(v)} for row in history]


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)


def _plain(value: numbers.Real) -> int | float:
    """A Python int or float (not a numpy scalar)."""
    return int(value) if isinstance(value, numbers.Integral) else float(value)


class CSVHistoryLogger(Callback):
    """Write the per-epoch history to a CSV file after every epoch (atomically).

    The whole history is rewritten each time, so a run resumed from a checkpoint (whose
    history includes the earlier epochs) keeps one complete file.

    Parameters
    ----------
    path : str or path-like
        The CSV file.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = path

    def on_epoch_end(self, net: Any, **kwargs: Any) -> None:
        write_csv(Path(self.path), history_records(net.history))


def write_csv(path: Path, records: list[dict[str, Any]]) -> None:
    """Write dicts as CSV rows (columns: the union of keys, in first-seen order)."""
    columns = list(dict.fromkeys(k for r in records for k in r))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".csv.tmp")
    with os.fdopen(fd, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(records)
    os.replace(tmp, path)


def read_csv(path: str | os.PathLike) -> list[dict[str, float]]:
    """Read a history CSV back, numbers as floats (empty cells dropped)."""
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]
