"""The data files ``sk-gmvae cluster`` and ``predict`` read (CSV or TSV with or without a
header, ``.npy``, ``.npz``, Parquet) and the labels file they write."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .options import UsageError

if TYPE_CHECKING:
    import pandas as pd

FORMATS = ".csv, .tsv, .npy, .npz or .parquet"


def read_table(path: str | Path, key: str | None = None) -> np.ndarray:
    """The rows of a data file as a 2-D numeric array, one row per data row.

    Parameters
    ----------
    path : str or Path
        A ``.csv`` (commas) or ``.tsv`` (tabs) file, whose first row is a header when
        any of its cells is not a number (read with pandas when it is installed, else
        numpy); a ``.npy`` file; a ``.npz`` file (its one array, or ``key``); a
        ``.parquet`` file (needs pandas with pyarrow or fastparquet). An array of more
        than two dimensions (images) is flattened to one row per first index.
    key : str, default=None
        The array of a ``.npz`` file that holds several.

    Returns
    -------
    X : ndarray of shape (n_rows, n_columns)
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".tsv", ".npy", ".npz", ".parquet"):
        raise UsageError(f"{path}: unknown file type {suffix or '(none)'}; use {FORMATS}")
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    try:
        if suffix == ".npy":
            X = np.load(path, allow_pickle=False)
        elif suffix == ".npz":
            X = _npz_array(path, key)
        elif suffix == ".parquet":
            X = _parquet(path)
        else:
            X = _text(path, "\t" if suffix == ".tsv" else ",")
    except UsageError:
        raise
    except (OSError, ValueError) as exc:  # unreadable, a bad cell, a corrupt file
        raise UsageError(f"{path}: {exc}") from None
    return _numeric_rows(path, np.asarray(X))


def _npz_array(path: Path, key: str | None) -> np.ndarray:
    with np.load(path, allow_pickle=False) as arrays:
        names = list(arrays.keys())
        if key is None and len(names) == 1:
            key = names[0]
        if key not in names:
            wanted = f"has no array {key!r}" if key is not None else "holds several arrays"
            raise UsageError(f"{path} {wanted}; choose one of {', '.join(names)} with --key")
        return arrays[key]


def _parquet(path: Path) -> np.ndarray:
    try:
        import pandas as pd

        frame = pd.read_parquet(path)
    except ImportError:
        raise UsageError(
            f"{path}: reading Parquet needs pandas with pyarrow (pip install pandas pyarrow)"
        ) from None
    return _frame_values(path, frame)


def _has_header(path: Path, delimiter: str) -> bool:
    """Whether the first row is a header: any cell in it that is neither a number nor
    empty (a missing value)."""
    with open(path, newline="") as f:
        first = next(csv.reader(f, delimiter=delimiter), None)
    if first is None:
        raise UsageError(f"{path} is empty")

    def number(cell: str) -> bool:
        try:
            float(cell)
        except ValueError:
            return not cell.strip()
        return True

    return not all(number(cell) for cell in first)


def _text(path: Path, delimiter: str) -> np.ndarray:
    header = _has_header(path, delimiter)
    try:
        import pandas as pd
    except ImportError:
        try:
            return np.loadtxt(path, delimiter=delimiter, skiprows=int(header), ndmin=2)
        except ValueError:  # an empty or text cell: NaN there, found by _numeric_rows
            return np.genfromtxt(path, delimiter=delimiter, skip_header=int(header), ndmin=2)
    return _frame_values(path, pd.read_csv(path, sep=delimiter, header=0 if header else None))


def _frame_values(path: Path, frame: pd.DataFrame) -> np.ndarray:
    text = frame.select_dtypes(exclude=["number", "bool"]).columns
    if len(text):
        raise UsageError(f"{path}: column {text[0]!r} is not numeric")
    return frame.to_numpy(dtype=np.float64)


def _numeric_rows(path: Path, X: np.ndarray) -> np.ndarray:
    """``X`` as rows x columns of numbers, every value finite."""
    if X.dtype.kind not in "biuf":  # booleans, integers, floats
        raise UsageError(f"{path}: the values are not numbers ({X.dtype})")
    if X.ndim == 0 or len(X) == 0:
        raise UsageError(f"{path} has no rows")
    X = X.reshape(len(X), -1)  # a column of values, or images flattened
    bad = ~np.isfinite(X)
    if bad.any():
        row, column = np.argwhere(bad)[0]
        raise UsageError(
            f"{path}: data row {row + 1}, column {column + 1} is not a finite number "
            f"({int(bad.sum())} such values in all)"
        )
    return X


def write_labels(path: str | Path, proba: np.ndarray) -> None:
    """Write ``label,proba_0,...,proba_{K-1}``: a header, then one line per row of
    ``proba``, its most probable cluster and the probability of each cluster."""
    n_clusters = proba.shape[1]
    header = ",".join(["label", *(f"proba_{k}" for k in range(n_clusters))])
    np.savetxt(
        path,
        np.column_stack([proba.argmax(axis=1), proba]),
        fmt=["%d"] + ["%.6g"] * n_clusters,
        delimiter=",",
        header=header,
        comments="",
    )
