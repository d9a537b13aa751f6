"""Weights-only persistence: share a fitted model without pickle's code execution.

``pickle`` round trips a fitted ``GMVAEClustering`` completely, but loading a pickle runs
whatever code the file names. :func:`save_weights` writes only tensors, numbers and
strings (the parameters, the fitted attributes, the per-epoch history, the networks'
weights, the optimizer's learning rates and the ``set_output`` configuration), and
:func:`load_weights` reads them back with ``torch.load(weights_only=True)``, which
refuses anything else. A model saved on a GPU loads on a CPU-only machine.

The file is checked before it is used: a SHA-256 digest of its content, written beside
it, must match (torch's zip reader does not check its records' CRCs, so damaged bytes
would otherwise load as different weights), and the sizes the saved parameters give the
networks must be those of the saved tensors, compared on the ``meta`` device before any
network is built. The digest detects damage, not tampering: whoever can write the file
can write a matching digest.

:func:`save_weights` reads the estimator's public surface (``get_params``, the fitted
attributes, ``net_``); :func:`load_weights` hands what it read to the estimator, which
rebuilds its net and assembles itself as ``fit`` and unpickling do.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import zipfile
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted

from ._config import hidden_sizes
from ._estimator import RESOLVED, GMVAEClustering
from ._model import LIKELIHOODS, model_class
from .callbacks import history_records

FORMAT = "sk_gmvae.weights/5"
_PARTS = ("params", "fitted", "history", "state_dict", "learning_rates", "output_config")
_FITTED = ("n_features_in_", "n_iter_", "lower_bound_", "converged_")
# The standardization of the features (``standardize``): None or tensors.
_SCALING = ("mean_", "scale_")
# Not plain values; the loaded estimator has the defaults (net_params too when it
# holds anything but plain values).
_UNSAVED = ("callbacks", "optimizer")


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
    """Write a fitted estimator's parameters, fitted attributes and weights to ``path``,
    with a SHA-256 digest of them that :func:`load_weights` checks.

    Every parameter value is saved as plain Python (numpy scalars and arrays too), except
    ``callbacks``, ``optimizer``, a ``net_params`` that holds anything but plain values
    (a class, a function) and a ``RandomState`` instance as ``random_state``: the loaded
    estimator has their defaults.
    """
    if not isinstance(estimator, GMVAEClustering):
        raise TypeError(
            f"save_weights writes a GMVAEClustering, not a {type(estimator).__name__}; "
            "pickle it instead (it round trips completely)."
        )
    check_is_fitted(estimator)
    params = {}
    for name, value in estimator.get_params(deep=False).items():
        if name in _UNSAVED:
            continue
        try:
            params[name] = _plain_param(name, value)
        except TypeError:
            if name not in ("random_state", "net_params"):
                raise ValueError(f"Cannot save parameter {name}={value!r}.") from None
    fitted: dict[str, Any] = {name: getattr(estimator, name) for name in _FITTED}
    for name in RESOLVED:  # what was actually built ("auto" resolved)
        fitted[name] = _plain_param(name, getattr(estimator, name))
    fitted["n_features_in_"] = int(fitted["n_features_in_"])
    fitted["weights_"] = torch.as_tensor(estimator.weights_)
    fitted["restarts_"] = [dict(r) for r in estimator.restarts_]
    fitted["labels_"] = torch.as_tensor(estimator.labels_)
    for name in _SCALING:  # None, or float64 arrays
        value = getattr(estimator, name)
        fitted[name] = None if value is None else torch.as_tensor(value)
    fitted["seed"] = int(estimator.net_.random_state)
    if hasattr(estimator, "feature_names_in_"):
        fitted["feature_names_in_"] = [str(f) for f in estimator.feature_names_in_]
    state = {k: v.detach().cpu() for k, v in estimator.net_.module_.state_dict().items()}
    # The rates the optimizer has reached (a decay's, or lowered by the divergence guard)
    # and a scheduler's starting rate, so that a warm start goes on from them.
    rates = [
        {k: float(group[k]) for k in ("lr", "initial_lr") if k in group}
        for group in estimator.net_.optimizer_.param_groups
    ]
    output = getattr(estimator, "_sklearn_output_config", {})
    payload = {
        "format": FORMAT,
        "params": params,
        "fitted": fitted,
        "history": history_records(estimator.history_),
        "state_dict": state,
        "learning_rates": rates,
        "output_config": {k: str(v) for k, v in output.items() if k == "transform"},
    }
    payload["digest"] = _digest(payload)
    torch.save(payload, path)


def _digest(payload: Mapping[str, Any]) -> str:
    """The SHA-256 digest (hex) of a payload's content, its ``"digest"`` entry aside."""
    sha = hashlib.sha256()
    _update(sha, {k: v for k, v in payload.items() if k != "digest"})
    return sha.hexdigest()


def _update(sha: Any, value: Any) -> None:
    """Feed ``value`` (nested dicts, lists and tuples of tensors and plain values) to
    ``sha`` as an unambiguous byte string: every item is tagged with its kind and length,
    a tensor with its dtype and shape before its raw bytes, a number by its exact repr."""
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu().contiguous()
        sha.update(f"tensor{tensor.dtype}{tuple(tensor.shape)}:".encode())
        sha.update(tensor.reshape(-1).view(torch.uint8).numpy())  # no copy
    elif isinstance(value, Mapping):
        sha.update(f"dict{len(value)}:".encode())
        for key in sorted(value, key=repr):
            _update(sha, key)
            _update(sha, value[key])
    elif isinstance(value, list | tuple):
        sha.update(f"list{len(value)}:".encode())
        for item in value:
            _update(sha, item)
    else:
        text = repr(value)
        sha.update(f"{type(value).__name__}{len(text)}:{text}".encode())


def _read(path: str | os.PathLike) -> dict[str, Any]:
    """The payload of a weights file; ``FileNotFoundError`` for a missing file and a
    ``ValueError`` naming the problem for a file that is truncated, not a torch file, not
    ours, or whose content does not match its digest."""
    with open(path, "rb") as file:
        # torch.save writes a zip archive whose directory is at its end: a truncated
        # file, or any other kind of file, is not a complete zip.
        if not zipfile.is_zipfile(file):
            raise ValueError(
                f"{path} could not be read as an sk_gmvae weights file (truncated or not a "
                "torch file)."
            )
        file.seek(0)
        try:
            payload = torch.load(file, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            raise  # weights_only refused an object: the file holds more than weights
        except (RuntimeError, EOFError, OSError, zipfile.BadZipFile) as exc:
            raise ValueError(
                f"{path} could not be read as an sk_gmvae weights file: {exc}"
            ) from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path} is not an sk_gmvae weights file ({FORMAT}).")
    missing = {*_PARTS, "digest"} - set(payload)
    if missing:
        raise ValueError(f"{path} is an incomplete sk_gmvae weights file: no {sorted(missing)}.")
    if payload["digest"] != _digest(payload):
        raise ValueError(
            f"{path} is corrupted: its content does not match the SHA-256 digest stored "
            "in it (damaged on disk or in transfer); save the model again."
        )
    return payload


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}={value!r} is not a positive integer.")
    return value


def _check_sizes(params: Mapping[str, Any], fitted: Mapping[str, Any], state: Any) -> None:
    """A ``ValueError`` unless the networks the saved parameters describe have exactly
    the saved tensors' names and shapes, and the fitted arrays their sizes. The networks
    are built on the ``meta`` device (shapes without memory), so a file whose sizes are
    huge or do not match its tensors is refused before anything is allocated."""
    n_features = _positive_int(fitted["n_features_in_"], "n_features_in_")
    n_clusters = _positive_int(params["n_clusters"], "n_clusters")
    latent_dim = _positive_int(fitted["latent_dim_"], "latent_dim_")
    hidden = hidden_sizes(fitted["hidden_layer_sizes_"])
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError("the saved state_dict is not a dict of tensors.")
    if len(hidden) > len(state):  # every hidden layer has weights
        raise ValueError(f"hidden_layer_sizes_ has {len(hidden)} layers, more than the weights.")
    if fitted["likelihood_"] not in LIKELIHOODS:
        raise ValueError(f"likelihood_={fitted['likelihood_']!r} is not one of {LIKELIHOODS}.")
    try:
        # The two-layer model's w size shapes its weights too (its other settings do not).
        extra = {}
        if params["variant"] == "dilokthanakul":
            extra = {"w_dim": (fitted.get("variant_params_") or {}).get("w_dim") or latent_dim}
        with torch.device("meta"):
            module = model_class(params["variant"])(
                n_features,
                n_clusters,
                latent_dim,
                hidden,
                params["variant"],
                fitted["likelihood_"],
                bool(fitted["binarize_"]),
                float(params["min_variance"]),
                **extra,
            )
    except (RuntimeError, ValueError, OverflowError, TypeError) as exc:
        raise ValueError(f"the saved sizes describe no network: {exc}") from exc
    expected = {name: tuple(t.shape) for name, t in module.state_dict().items()}
    found = {name: tuple(t.shape) for name, t in state.items()}
    if found != expected:
        wrong = sorted(k for k in expected.keys() | found.keys() if found.get(k) != expected.get(k))
        raise ValueError(
            f"the weights do not fit the saved sizes (n_features_in_={n_features}, "
            f"n_clusters={n_clusters}, latent_dim_={latent_dim}, hidden_layer_sizes_="
            f"{hidden}): tensors {wrong[:5]} differ."
        )
    labels, weights = fitted["labels_"], fitted["weights_"]
    if (
        not isinstance(labels, torch.Tensor)
        or labels.ndim != 1
        or not isinstance(weights, torch.Tensor)
        or tuple(weights.shape) != (n_clusters,)
    ):
        raise ValueError(f"labels_ or weights_ do not fit n_clusters={n_clusters}.")
    mean, scale = (fitted[name] for name in _SCALING)
    if bool(fitted["standardize_"]):
        shaped = all(
            isinstance(t, torch.Tensor) and tuple(t.shape) == (n_features,) for t in (mean, scale)
        )
        if (
            not (shaped and torch.isfinite(mean).all() and torch.isfinite(scale).all())
            or not (scale > 0).all()
        ):
            raise ValueError(
                f"mean_ and scale_ are not {n_features} finite means and positive scales."
            )
    elif mean is not None or scale is not None:
        raise ValueError("mean_ and scale_ are saved for a model without standardize_.")
    names = fitted.get("feature_names_in_")
    if names is not None and len(names) != n_features:
        raise ValueError(f"feature_names_in_ does not have n_features_in_={n_features} names.")


def _learning_rates(saved: Any, groups: list[dict]) -> list[dict[str, float]]:
    """The saved learning rates of each of the optimizer's ``groups``, checked."""
    if not isinstance(saved, list) or len(saved) != len(groups):
        raise ValueError("the learning rates do not fit the optimizer.")
    for rates in saved:
        if not isinstance(rates, dict) or not set(rates) <= {"lr", "initial_lr"}:
            raise ValueError(f"{rates!r} is not a set of learning rates.")
        if not all(isinstance(v, float) and v >= 0 for v in rates.values()):
            raise ValueError(f"{rates!r} is not a set of learning rates.")
    return saved


def load_weights(path: str | os.PathLike, device: str | torch.device = "auto") -> GMVAEClustering:
    """Read a model written by :func:`save_weights`, onto ``device``.

    Only tensors and plain values are accepted (``torch.load(weights_only=True)``), and
    only from a file whose content matches its digest and whose weights have the sizes
    its parameters give the networks.

    Parameters
    ----------
    path : str or path-like
        The file.
    device : str or torch.device, default="auto"
        Where to put the networks: ``"cpu"``, ``"cuda"``, ``"cuda:N"``, or ``"auto"``:
        CUDA if available, else the CPU.

    Returns
    -------
    estimator : GMVAEClustering
        Fitted, ready to ``predict``, ``score`` or continue training with
        ``warm_start=True`` (from the saved learning rate; the optimizer's other state,
        such as Adam's moments, starts anew).

    Raises
    ------
    FileNotFoundError
        When there is no file at ``path``.
    ValueError
        When the file is truncated, not a weights file, corrupted (its content does not
        match its digest) or inconsistent (sizes that do not fit its weights).
    pickle.UnpicklingError
        When the file holds objects other than tensors and plain values.
    """
    payload = _read(path)
    params = dict(payload["params"], device=device)
    if isinstance(params.get("hidden_layer_sizes"), list):
        params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
    saved = payload["fitted"]
    try:
        estimator = GMVAEClustering(**params)
        estimator._validate_params()
        _check_sizes(estimator.get_params(), saved, payload["state_dict"])
        fitted = {name: saved[name] for name in (*_FITTED, *RESOLVED, "restarts_")}
        seed = int(saved["seed"])
    except KeyError as exc:
        raise ValueError(f"{path} is an incomplete sk_gmvae weights file: no {exc}.") from exc
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: {exc}") from exc
    fitted["hidden_layer_sizes_"] = hidden_sizes(saved["hidden_layer_sizes_"])
    fitted["labels_"] = saved["labels_"].numpy()
    fitted["weights_"] = saved["weights_"].numpy()
    for name in _SCALING:
        fitted[name] = None if saved[name] is None else saved[name].numpy()
    if "feature_names_in_" in saved:
        fitted["feature_names_in_"] = np.asarray(saved["feature_names_in_"], dtype=object)
    try:
        estimator._restore(fitted, payload["state_dict"], payload["history"], seed, device)
    except RuntimeError as exc:
        raise ValueError(f"{path}: the weights do not fit the saved parameters: {exc}") from exc
    groups = estimator.net_.optimizer_.param_groups
    try:
        rates = _learning_rates(payload["learning_rates"], groups)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc
    for group, saved_rates in zip(groups, rates, strict=True):
        group.update(saved_rates)
    output = payload["output_config"]
    if not isinstance(output, dict) or not set(output) <= {"transform"}:
        raise ValueError(f"{path}: {output!r} is not a set_output configuration.")
    if output:
        estimator.set_output(**output)  # sklearn checks the value when it is used
    return estimator
