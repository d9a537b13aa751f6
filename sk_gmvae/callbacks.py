"""skorch callbacks for monitoring clustering during training and logging it to disk."""

from __future__ import annotations

import copy
import csv
import numbers
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from skorch.callbacks import Callback

from ._inference import posterior_and_elbo
from .metrics import clustering_report, conditional_entropy


class ClusteringMonitor(Callback):
    """Record clustering metrics on held-out data in the net's history, every epoch.

    Pass it to ``GMVAEClustering(callbacks=[...])``. After each ``every``-th epoch it
    evaluates the model on ``X`` and records, under ``<name>_...``:

    - ``entropy``: H(Y|X), the mean entropy of q(y|x), nats;
    - ``loss``: the negative ELBO per row, nats (one-sample estimate in z, y summed out);
    - with labels ``y``: ``accuracy`` (majority vote), ``hungarian_accuracy``, ``nmi``
      and ``ari``.

    Evaluation uses its own random generator, so training is the same with or without
    the monitor.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Held-out rows, e.g. the (binarized) test images.
    y : array-like of shape (n_samples,), default=None
        Their true classes, for the accuracy metrics.
    name : str, default="valid"
        Prefix of the history keys.
    every : int, default=1
        Evaluate every this many epochs.
    seed : int, default=0
        Seed of the ELBO's noise.

    Examples
    --------
    >>> from sklearn.datasets import make_blobs
    >>> from sk_gmvae import GMVAEClustering
    >>> from sk_gmvae.callbacks import ClusteringMonitor
    >>> X, y = make_blobs(n_samples=60, centers=3, random_state=0)
    >>> est = GMVAEClustering(3, latent_dim=2, hidden_layer_sizes=(16,), max_epochs=2,
    ...                       callbacks=[ClusteringMonitor(X, y, name="test")],
    ...                       random_state=0).fit(X)
    >>> [k for k in sorted(est.history_[-1]) if k.startswith("test_")][:4]
    ['test_accuracy', 'test_ari', 'test_entropy', 'test_hungarian_accuracy']
    """

    def __init__(
        self,
        X: np.ndarray,
        y: np.ndarray | None = None,
        name: str = "valid",
        every: int = 1,
        seed: int = 0,
    ) -> None:
        self.X = X
        self.y = y
        self.name = name
        self.every = every
        self.seed = seed

    def initialize(self) -> ClusteringMonitor:
        self.X_ = np.asarray(self.X, dtype=np.float32)
        self.y_ = None if self.y is None else np.asarray(self.y)
        return self

    def evaluate(self, module: torch.nn.Module) -> dict[str, float]:
        """The metrics of ``module`` on the monitored data."""
        was_training = module.training
        module.eval()
        try:
            proba, bound = posterior_and_elbo(module, self.X_, self.seed, torch.float32)
        finally:
            module.train(was_training)
        scores = {"entropy": conditional_entropy(proba), "loss": -float(np.mean(bound))}
        if self.y_ is not None:
            scores |= clustering_report(self.y_, proba.argmax(axis=1))
        return scores

    def on_epoch_end(self, net: Any, **kwargs: Any) -> None:
        if len(net.history) % self.every:
            return
        for key, value in self.evaluate(net.module_).items():
            net.history.record(f"{self.name}_{key}", value)


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


class DivergenceGuard(Callback):
    """Undo training steps whose loss is not finite; lower the learning rate or stop.

    At the start of training and after every epoch whose parameters are all finite, it
    keeps a copy of the module's and optimizer's state. When a step's loss is NaN or
    infinite, it restores that copy, drops the step from the history, and either
    multiplies the learning rate by ``lr_factor`` and goes on (at most ``max_recoveries``
    times) or stops training, leaving the last finite model. ``GMVAEClustering`` always
    uses one, and warns when it stopped.

    Parameters
    ----------
    max_recoveries : int, default=3
        Restores with a lower learning rate before giving up.
    lr_factor : float, default=0.5
        Learning-rate multiplier at each recovery.
    """

    def __init__(self, max_recoveries: int = 3, lr_factor: float = 0.5) -> None:
        self.max_recoveries = max_recoveries
        self.lr_factor = lr_factor

    def initialize(self) -> DivergenceGuard:
        self.recoveries_ = 0
        self.stopped_ = False
        self._good: dict | None = None
        return self

    def _keep(self, net: Any) -> None:
        if all(torch.isfinite(p).all() for p in net.module_.parameters()):
            self._good = {
                "module": copy.deepcopy(net.module_.state_dict()),
                "optimizer": copy.deepcopy(net.optimizer_.state_dict()),
            }

    def on_train_begin(self, net: Any, **kwargs: Any) -> None:
        self._base_lr = [group["lr"] for group in net.optimizer_.param_groups]
        self._keep(net)

    def on_epoch_end(self, net: Any, **kwargs: Any) -> None:
        self._keep(net)

    def on_batch_end(
        self, net: Any, batch: Any = None, training: bool = False, **kwargs: Any
    ) -> None:
        loss = kwargs.get("loss")
        if not training or loss is None or bool(torch.isfinite(loss)):
            return
        net.module_.load_state_dict(self._good["module"])
        net.optimizer_.load_state_dict(self._good["optimizer"])
        del net.history[-1]["batches"][-1]  # the diverged step does not count
        if self.recoveries_ >= self.max_recoveries:
            self.stopped_ = True
            raise KeyboardInterrupt  # skorch ends fit() cleanly on it
        self.recoveries_ += 1
        for group, base in zip(net.optimizer_.param_groups, self._base_lr, strict=True):
            group["lr"] = base * self.lr_factor**self.recoveries_
        net.history.record("divergence_recoveries", self.recoveries_)
