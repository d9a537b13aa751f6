"""``RunCheckpoint``: crash-safe checkpoints of a training run, and exact resume.

One checkpoint is one file, ``checkpoint.pt``, holding everything a resumed run needs to
go on exactly as an uninterrupted one would: the module's weights, the optimizer's
state, the training random stream and the number of epochs it holds. It is written to a
temporary file, flushed to disk and renamed into place (``os.replace``), so at every
moment the folder holds a complete checkpoint: the previous one survives, renamed to
``checkpoint.prev.pt``, until the new one is complete.

The per-epoch history goes to ``history.jsonl``, one line appended per epoch (per-batch
records are not written), so the cost of an epoch's writes does not grow with the
number of epochs done. The checkpoint says how many of its lines belong to it; lines
beyond (an epoch logged just before a kill) are dropped on resume.
"""

from __future__ import annotations

import io
import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from skorch.callbacks import Callback
from skorch.history import History

from ._history import history_records

CHECKPOINT, PREVIOUS, HISTORY = "checkpoint.pt", "checkpoint.prev.pt", "history.jsonl"
FORMAT = "sk_gmvae.checkpoint/1"


def _fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable (where the platform allows it)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_bytes_atomic(path: Path, data: bytes, previous: Path | None = None) -> None:
    """Write ``data`` to ``path`` so that ``path`` always holds either its previous
    content or all of ``data``: a temporary file, flushed to disk, then renamed into
    place. With ``previous``, the old content is first renamed there (so between the two
    renames the complete old version is in ``previous``)."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        _write(f, data)
        f.flush()
        os.fsync(f.fileno())
    if previous is not None and path.exists():
        os.replace(path, previous)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _write(f: Any, data: bytes) -> None:
    """``f.write(data)``; the crash tests replace it to die half-way through a file."""
    f.write(data)


def read_checkpoint(path: Path) -> dict[str, Any] | None:
    """The checkpoint in ``path`` (a file), or None if it is missing or not a complete
    checkpoint of ours."""
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - any unreadable file is "not a checkpoint"
        return None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        return None
    return state


def read_history(dirname: str | os.PathLike, epochs: int) -> list[dict[str, Any]] | None:
    """The first ``epochs`` records of ``history.jsonl`` (a torn last line ignored), or
    None if it holds fewer."""
    rows: list[dict[str, Any]] = []
    path = Path(dirname) / HISTORY
    if path.exists():
        with open(path, "rb") as f:
            for line in f:
                if len(rows) == epochs:
                    break
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    break
    return rows if len(rows) == epochs else None


def resume_point(dirname: str | os.PathLike) -> tuple[dict[str, Any], list[dict]] | None:
    """The newest complete checkpoint in ``dirname`` whose history is complete too, with
    that history: the current checkpoint, else the previous one (with a warning); None
    if there is none (a warning says so when files were there)."""
    folder = Path(dirname)
    skipped = []
    for path in (folder / CHECKPOINT, folder / PREVIOUS):
        state = read_checkpoint(path)
        rows = None if state is None else read_history(folder, int(state["epochs"]))
        if rows is not None:
            if skipped:
                warnings.warn(
                    f"{', '.join(skipped)} unusable; resuming from {path.name} "
                    f"(epoch {state['epochs']}).",
                    RuntimeWarning,
                    stacklevel=2,
                )
            return state, rows
        if path.exists():
            skipped.append(f"{path} (incomplete or its history is)")
    if skipped:
        warnings.warn(
            f"{', '.join(skipped)} unusable; the run starts over.", RuntimeWarning, stacklevel=2
        )
    return None


def last_checkpoint(dirname: str | os.PathLike) -> dict[str, Any] | None:
    """The state of the checkpoint a run in ``dirname`` would resume from (None if
    none)."""
    point = resume_point(dirname)
    return None if point is None else point[0]


def epochs_done(dirname: str | os.PathLike) -> int:
    """Epochs a run in ``dirname`` would resume from (0 if none)."""
    point = resume_point(dirname)
    return 0 if point is None else int(point[0]["epochs"])


class RunCheckpoint(Callback):
    """Checkpoint a ``GMVAEClustering`` training run every epoch, crash-safely, and
    resume it exactly.

    After every epoch the run's state (weights, optimizer state, training random stream)
    is written as one atomic checkpoint and the epoch's record appended to
    ``history.jsonl``. When training begins and the folder holds a checkpoint, the net
    is put back in that state, with its history, so training continues as the
    uninterrupted run would have (the same draws, the same numbers): pass
    ``max_epochs`` = the epochs still to do.

    Parameters
    ----------
    dirname : str or path-like
        The run's folder (created if missing).
    """

    def __init__(self, dirname: str | os.PathLike) -> None:
        self.dirname = dirname

    def initialize(self) -> RunCheckpoint:
        self.folder_ = Path(self.dirname)
        self.resumed_from_ = 0
        return self

    def on_train_begin(self, net: Any, **kwargs: Any) -> None:
        self.folder_.mkdir(parents=True, exist_ok=True)
        if len(net.history):
            return  # a net that trained already goes on; nothing to load
        point = resume_point(self.folder_)
        if point is None:
            if (self.folder_ / "params.pt").exists():
                warnings.warn(
                    f"{self.folder_} holds a checkpoint of an older format (params.pt, "
                    "history.json), which is not resumed: the run starts over.",
                    RuntimeWarning,
                    stacklevel=2,
                )
            (self.folder_ / HISTORY).unlink(missing_ok=True)
            return
        state, rows = point
        net.load_training_state(state)
        net.history = History(rows)
        self.resumed_from_ = len(rows)
        # Drop records of epochs the checkpoint does not hold (written before a kill).
        write_bytes_atomic(self.folder_ / HISTORY, "".join(_line(r) for r in rows).encode())

    def on_epoch_end(self, net: Any, **kwargs: Any) -> None:
        record = history_records(net.history[-1:])[0]
        with open(self.folder_ / HISTORY, "ab") as f:
            _write(f, _line(record).encode())
            f.flush()
            os.fsync(f.fileno())
        state = {"format": FORMAT, "epochs": len(net.history), **net.training_state()}
        buffer = io.BytesIO()
        torch.save(state, buffer)
        write_bytes_atomic(
            self.folder_ / CHECKPOINT, buffer.getvalue(), previous=self.folder_ / PREVIOUS
        )


def _line(record: dict[str, Any]) -> str:
    return json.dumps(record) + "\n"
