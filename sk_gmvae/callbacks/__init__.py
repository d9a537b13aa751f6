"""skorch callbacks: held-out clustering metrics every epoch, and the history on disk.

- :class:`ClusteringMonitor`: records H(Y|X), the loss and (with labels) accuracy, NMI
  and ARI on held-out data in the net's history.
- :class:`RunCheckpoint`: crash-safe checkpoints every epoch, and exact resume;
- :class:`FitProgressBar`: one bar over a run's epochs with the ELBO and the time left
  (plain log lines when the output is not a terminal); ``GMVAEClustering(verbose=1)``.
- :class:`KLWarmup`: the z-term KL's weight raised linearly from 0 to 1 over the first
  epochs; ``GMVAEClustering(kl_warmup=...)``.
- :class:`GMMPriorInit`: VaDE's initialisation of the mixture prior from a Gaussian
  mixture fitted to an autoencoder's codes; ``GMVAEClustering(pretrain_epochs=...)``.
- :class:`AutoencoderStart`: the start from a pre-trained autoencoder's codes (or the
  rows themselves), their first assignment, the per-cluster prior and q(y|x) set from it;
  ``GMVAEClustering(init="autoencoder" or "umap")``.
- :class:`CSVHistoryLogger`, :func:`history_records`, :func:`write_csv`, :func:`read_csv`:
  the per-epoch history as plain records and as a CSV file.

``DivergenceGuard`` (always on in ``GMVAEClustering``) lives with the training code and
is re-exported here.
"""

from .._guard import DivergenceGuard
from .._start import AutoencoderStart
from ._checkpoint import RunCheckpoint
from ._history import CSVHistoryLogger, history_records, read_csv, write_csv
from ._monitor import ClusteringMonitor
from ._progress import FitProgressBar
from ._warmup import GMMPriorInit, KLWarmup

__all__ = [
    "AutoencoderStart",
    "ClusteringMonitor",
    "CSVHistoryLogger",
    "DivergenceGuard",
    "RunCheckpoint",
    "FitProgressBar",
    "GMMPriorInit",
    "KLWarmup",
    "history_records",
    "read_csv",
    "write_csv",
]
