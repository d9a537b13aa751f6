"""Weights-only persistence: share a fitted model without pickle's code execution.

``pickle`` round trips a fitted ``GMVAEClustering`` completely, but loading a pickle runs
whatever code the file names. :func:`save_weights` writes only tensors, numbers and
strings (the parameters, the fitted attributes, the per-epoch history and the networks'
weights), and :func:`load_weights` reads them back with ``torch.load(weights_only=True)``,
which refuses anything else. A model saved on a GPU loads on a CPU-only machine.

:func:`save_weights` reads the estimator's public surface (``get_params``, the fitted
attributes, ``net_``); :func:`load_weights` hands what it read to the estimator, which
rebuilds its net and assembles itself as ``fit`` and unpickling do.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from typing import Any

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted

from ._estimator import RESOLVED, GMVAEClustering
from .callbacks import history_records

FORMAT = "sk_gmvae.weights/3"
_FITTED = ("n_features_in_", "n_iter_", "lower_bound_", "converged_")
# Not plain values; the loaded estimator has the defaults.
_UNSAVED = ("callbacks", "optimizer", "net_params")


def _plain_param(name: str, value: Any) -> Any:
    """A parameter value as plain Python (numpy scalars and arrays, tuples, dicts and
    devices included); a ``TypeError`` for values that cannot be (a ``RandomState``
    instance)."""
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    if isinstance(value, torch.device):
        return str(value)
    if isinstance(value, tuple | list):
        return [_plain_param(name, v) for v in value]
    if isinstance(value, dict):  # variant_params
        return {str(k): _plain_param(name, v) for k, v in value.items()}
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
    for name in RESOLVED:  # what was actually built ("auto" resolved)
        fitted[name] = _plain_param(name, getattr(estimator, name))
    fitted["n_features_in_"] = int(fitted["n_features_in_"])
    fitted["weights_"] = torch.as_tensor(estimator.weights_)
    fitted["restarts_"] = [dict(r) for r in estimator.restarts_]
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
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
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
    if isinstance(params.get("hidden_layer_sizes"), list):
        params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
    saved = payload["fitted"]
    fitted = {name: saved[name] for name in (*_FITTED, *RESOLVED, "restarts_")}
    fitted["labels_"] = saved["labels_"].numpy()
    fitted["weights_"] = saved["weights_"].numpy()
    if "feature_names_in_" in saved:
        fitted["feature_names_in_"] = np.asarray(saved["feature_names_in_"], dtype=object)
    try:
        return GMVAEClustering(**params)._restore(
            fitted, payload["state_dict"], payload["history"], int(saved["seed"]), device
        )
    except RuntimeError as exc:
        raise ValueError(f"{path}: the weights do not fit the saved parameters: {exc}") from exc
