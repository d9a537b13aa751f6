"""``ClusteringMonitor``: held-out clustering metrics in the history, every epoch."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from skorch.callbacks import Callback

from .._inference import posterior_and_elbo
from ..metrics import aae_accuracy, clustering_report, conditional_entropy


class ClusteringMonitor(Callback):
    """Record clustering metrics on held-out data in the net's history, every epoch.

    Pass it to ``GMVAEClustering(callbacks=[...])``. After each ``every``-th epoch it
    evaluates the model on ``X`` and records, under ``<name>_...``:

    - ``entropy``: H(Y|X), the mean entropy of q(y|x), nats;
    - ``loss``: the negative ELBO per row, nats (one-sample estimate in z, y summed out);
    - with labels ``y``: ``accuracy`` (majority vote), ``hungarian_accuracy``, ``nmi``,
      ``ari`` and ``aae_accuracy`` (each cluster named by its most confident row).

    Evaluation uses its own random generator, so training is the same with or without
    the monitor. The clusters are those of q(y|x), the inference network, whatever the
    estimator's ``posterior_samples`` (whose importance sampling would cost that many
    passes every epoch).

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
    >>> [k for k in sorted(est.history_[-1]) if k.startswith("test_")][:5]
    ['test_aae_accuracy', 'test_accuracy', 'test_ari', 'test_entropy', 'test_hungarian_accuracy']
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
            scores["aae_accuracy"] = aae_accuracy(self.y_, proba)
        return scores

    def on_epoch_end(self, net: Any, **kwargs: Any) -> None:
        if len(net.history) % self.every:
            return
        for key, value in self.evaluate(net.module_).items():
            net.history.record(f"{self.name}_{key}", value)
