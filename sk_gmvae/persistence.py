"""Weights-only persistence: share a fitted model without pickle's code execution.

``pickle`` round trips a fitted ``GMVAEClustering`` completely, but loading a pickle runs
whatever code the file names. :func:`save_weights` writes only tensors, numbers and
strings (the parameters, the fitted attributes, the per-epoch history and the networks'
weights), and :func:`load_weights` reads them back with ``torch.load(weights_only=True)``,
which refuses anything else. A model saved on a GPU loads on a CPU-only machine.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted
from skorch.history import History

from ._estimator import GMVAEClustering, _resolve_device
from .callbacks import history_records

FORMAT = "sk_gmvae.weights/1"
_SCALARS = (str, int, float, bool, type(None))


def save_weights(estimator: GMVAEClustering, path: str | os.PathLike) -> None:
    """Write a fitted estimator's parameters, fitted attributes and weights to ``path``.

    Parameters that are not plain values (``callbacks``, a ``RandomState`` instance)
    are not saved; the loaded estimator has their defaults.
    """
    check_is_fitted(estimator)
    params = {}
    for name, value in estimator.get_params(deep=False).items():
        if isinstance(value, torch.device):
            value = str(value)
        elif isinstance(value, tuple | list):  # hidden_layer_sizes
            value = [int(v) for v in value]
        elif isinstance(value, np.integer):
            value = int(value)
        if name != "callbacks" and isinstance(value, (*_SCALARS, list)):
            params[name] = value
    fitted = {
        "n_features_in_": int(estimator.n_features_in_),
        "n_iter_": int(estimator.n_iter_),
        "lower_bound_": float(estimator.lower_bound_),
        "converged_": bool(estimator.converged_),
        "likelihood_": estimator.likelihood_,
        "labels_": torch.as_tensor(estimator.labels_),
        "cluster_order": torch.as_tensor(estimator._cluster_order),
        "seed": int(estimator.net_.random_state),
    }
    if hasattr(estimator, "feature_names_in_"):
        fitted["feature_names_in_"] = [str(f) for f in estimator.feature_names_in_]
    state = {k: v.detach().cpu() for k, v in estimator.net_.module_.state_dict().items()}
    payload = {
        "format": FORMAT,
        "params": params,
        "fitted": fitted,
        "history": history_records(estimator.history_),
        "state_dict": state,
    }
    torch.save(payload, path)


def load_weights(path: str | os.PathLike, device: str = "auto") -> GMVAEClustering:
    """Read a model written by :func:`save_weights`, onto ``device``.

    Only tensors and plain values are accepted (``torch.load(weights_only=True)``).

    Parameters
    ----------
    path : str or path-like
        The file.
    device : str, default="auto"
        Where to put the networks: ``"auto"`` = CUDA if available, else the CPU.

    Returns
    -------
    estimator : GMVAEClustering
        Fitted, ready to ``predict``, ``score`` or continue training with
        ``warm_start=True``.
    """
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if payload.get("format") != FORMAT:
        raise ValueError(f"{path} is not an sk_gmvae weights file ({FORMAT}).")
    params = dict(payload["params"], device=device)
    if isinstance(params.get("hidden_layer_sizes"), list):
        params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
    estimator = GMVAEClustering(**params)
    fitted = payload["fitted"]
    resolved = str(_resolve_device(device))
    seed = int(fitted.get("seed", 0))  # the training stream's seed (files before it: 0)
    net = estimator._build_net(fitted["n_features_in_"], fitted["likelihood_"], resolved, seed)
    net.initialize()
    net.module_.load_state_dict(payload["state_dict"])
    net.history = History(payload["history"])
    estimator.net_, estimator.history_, estimator.device_ = net, net.history, resolved
    for name in ("n_features_in_", "n_iter_", "lower_bound_", "converged_", "likelihood_"):
        setattr(estimator, name, fitted[name])
    estimator.labels_ = fitted["labels_"].numpy()
    estimator._cluster_order = fitted["cluster_order"].numpy()
    if "feature_names_in_" in fitted:
        estimator.feature_names_in_ = np.asarray(fitted["feature_names_in_"], dtype=object)
    return estimator
