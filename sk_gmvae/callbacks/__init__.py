"""skorch callbacks: held-out clustering metrics every epoch, and the history on disk.

- :class:`ClusteringMonitor`: records H(Y|X), the loss and (with labels) accuracy, NMI
  and ARI on held-out data in the net's history.
- :class:`RunCheckpoint`: crash-safe checkpoints every epoch, and exact resume;
- :class:`CSVHistoryLogger`, :func:`history_records`, :func:`write_csv`, :func:`read_csv`:
  the per-epoch history as plain records and as a CSV file.

``DivergenceGuard`` (always on in ``GMVAEClustering``) lives with the training code and
is re-exported here.
"""

from .._guard import DivergenceGuard
from ._checkpoint import RunCheckpoint
from ._history import CSVHistoryLogger, history_records, read_csv, write_csv
from ._monitor import ClusteringMonitor

__all__ = [
    "ClusteringMonitor",
    "CSVHistoryLogger",
    "DivergenceGuard",
    "RunCheckpoint",
    "history_records",
    "read_csv",
    "write_csv",
]
