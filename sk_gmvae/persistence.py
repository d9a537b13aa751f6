"""Weights-only persistence: share a fitted model without pickle's code execution.

``pickle`` round trips a fitted ``GMVAEClustering`` completely, but loading a pickle runs
whatever code the file names. :func:`save_weights` writes only tensors, numbers and
strings (the parameters, the fitted attributes, the per-epoch history and the networks'
weights), and :func:`load_weights` reads them back with ``torch.load(weights_only=True)``,
which refuses anything else. A model saved on a GPU loads on a CPU-only machine.

Both use the estimator's public surface only: ``get_params``, the fitted attributes and
the skorch net ``net_``; a loaded estimator is put together as unpickling does.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from typing import Any

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted
from skorch.history import History

from ._estimator import GMVAEClustering
from ._training import build_net, resolve_device, resolve_params
from .callbacks import history_records

FORMAT = "sk_gmvae.weights/2"
# Version 1 stored the model in its training order with the label permutation beside it.
_READABLE = (FORMAT, "sk_gmvae.weights/1")
_FITTED = ("n_features_in_", "n_iter_", "lower_bound_", "converged_", "likelihood_")
_RESOLVED = (
    "hidden_layer_sizes_",
    "latent_dim_",
    "binarize_",
    "entropy_weight_",
    "n_init_",
    "posterior_samples_",
)
# Not plain values; the loaded estimator has the defaults.
_UNSAVED = ("callbacks", "optimizer", "net_params")


def _plain_param(name: str, value: Any) -> Any:
    """A parameter value as plain Python (numpy scalars and arrays, tuples and devices
    included); a ``TypeError`` for values that cannot be (a ``RandomState`` instance)."""
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    if isinstance(value, torch.device):
        return str(value)
    if isinstance(value, tuple | list):
        return [_plain_param(name, v) for v in value]
    if isinstance(value, str | int | float | bool | type(None)):
        return value
    raise TypeError(name)


def save_weights(estimator: GMVAEClustering, path: str | os.PathLike) -> None:
    """Write a fitted estimator's parameters, fitted attributes and weights to ``path``.

    Every parameter value is saved as plain Python (numpy scalars and arrays too), except
    ``callbacks``, ``optimizer``, ``net_params`` and a ``RandomState`` instance as
    ``random_state``: the loaded estimator has their defaults.
    """
    check_is_fitted(estimator)
    params = {}
    for name, value in estimator.get_params(deep=False).items():
        if name in _UNSAVED:
            continue
        try:
            params[name] = _plain_param(name, value)
        except TypeError:
            if name != "random_state":
                raise ValueError(f"Cannot save parameter {name}={value!r}.") from None
    fitted: dict[str, Any] = {name: getattr(estimator, name) for name in _FITTED}
    for name in _RESOLVED:  # the architecture actually built ("auto" resolved)
        fitted[name] = _plain_param(name, getattr(estimator, name))
    fitted["n_features_in_"] = int(fitted["n_features_in_"])
    fitted["init_epochs_"] = estimator.init_epochs_
    fitted["labels_"] = torch.as_tensor(estimator.labels_)
    fitted["seed"] = int(estimator.net_.random_state)
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


def _read(path: str | os.PathLike) -> dict[str, Any]:
    """The payload of a weights file; a ``ValueError`` naming the problem for a file that
    is truncated, not a torch file, or not ours."""
    # torch.save writes a zip archive whose directory is at its end: a truncated file,
    # or any other kind of file, is not a complete zip.
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"{path} could not be read as an sk_gmvae weights file (truncated or not a torch file)."
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise  # weights_only refused an object: the file holds more than weights
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path} could not be read as an sk_gmvae weights file: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format") not in _READABLE:
        raise ValueError(f"{path} is not an sk_gmvae weights file ({FORMAT}).")
    missing = {"params", "fitted", "history", "state_dict"} - set(payload)
    if missing:
        raise ValueError(f"{path} is an incomplete sk_gmvae weights file: no {sorted(missing)}.")
    return payload


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
    payload = _read(path)
    params = dict(payload["params"], device=device)
    params.setdefault("posterior_samples", 0)  # files before it: rows assigned by q(y|x)
    if isinstance(params.get("hidden_layer_sizes"), list):
        params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
    estimator = GMVAEClustering(**params)
    fitted = payload["fitted"]
    resolved = str(resolve_device(device))
    seed = int(fitted.get("seed", 0))  # the training stream's seed (files before it: 0)
    n_samples, n_features = len(fitted["labels_"]), fitted["n_features_in_"]
    built = resolve_params(estimator.get_params(), n_samples, n_features)
    for name in _RESOLVED:  # as built (files before version 2 hold them as parameters)
        if name in fitted:
            built[name[:-1]] = fitted[name]
    built["hidden_layer_sizes"] = tuple(built["hidden_layer_sizes"])
    net = build_net(built, n_features, fitted["likelihood_"], resolved, seed)
    net.initialize()
    try:
        net.module_.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        raise ValueError(f"{path}: the weights do not fit the saved parameters: {exc}") from exc
    net.history = History(payload["history"])
    state = {
        **estimator.__dict__,
        **{name: fitted[name] for name in _FITTED},
        **{name: built[name[:-1]] for name in _RESOLVED},
        "net_": net,
        "history_": net.history,
        "device_": resolved,
        "labels_": fitted["labels_"].numpy(),
        # Files before init_epochs: the restarts trained max_epochs each.
        "init_epochs_": fitted.get("init_epochs_"),
    }
    if "cluster_order" in fitted:  # version 1: renumbered on load
        state["_cluster_order"] = fitted["cluster_order"].numpy()
    if "feature_names_in_" in fitted:
        state["feature_names_in_"] = np.asarray(fitted["feature_names_in_"], dtype=object)
    estimator.__setstate__(state)  # as unpickling puts a fitted estimator together
    return estimator
