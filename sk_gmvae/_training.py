"""Training: the skorch net of a run, the ``n_init`` runs of a fit, and the rule that keeps one.

As in ``sklearn.cluster.KMeans``: one function trains one run (:func:`train_run`), the
restarts are an object of their own (:class:`Restarts`: their seeds, and whether they
train one after another or at once as one stacked model), and one rule keeps the best
(:func:`keep_best`). The estimator only validates, calls these and reads the result.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from skorch.callbacks import EarlyStopping, GradientNormClipping, ProgressBar

from ._guard import DivergenceGuard
from ._model import MixtureVAE
from ._net import MixtureVAENet, TensorBatches
from ._objective import NegativeELBO
from ._stacked import (
    StackedGradientNormClipping,
    StackedMixtureVAE,
    StackedMixtureVAENet,
    StackedTensorBatches,
)

SEED_MAX = np.iinfo(np.int32).max


def resolve_device(device: str | torch.device) -> torch.device:
    """The torch device of the estimator's ``device`` parameter (``"auto"``: CUDA when
    available, else the CPU); a clear ``ValueError`` for an unusable one."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device={device!r} is not a valid torch device.") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was requested but CUDA is not available.")
    return resolved


def hidden_sizes(hidden_layer_sizes: Any) -> tuple[int, ...]:
    """``hidden_layer_sizes`` (an int or a sequence of ints) as a tuple of positive ints."""
    sizes = np.atleast_1d(np.asarray(hidden_layer_sizes))
    if (
        sizes.ndim != 1
        or sizes.size == 0
        or not np.issubdtype(sizes.dtype, np.integer)
        or (sizes < 1).any()
    ):
        raise ValueError(
            "hidden_layer_sizes must be a positive int or a non-empty sequence of "
            f"positive ints, got {hidden_layer_sizes!r}."
        )
    return tuple(int(s) for s in sizes)


def _noop(*args: object, **kwargs: object) -> None:
    """A silent sink for skorch callbacks' messages."""


def build_net(
    params: dict[str, Any],
    n_features: int,
    likelihood: str,
    device: str,
    seed: int | Sequence[int],
) -> MixtureVAENet:
    """The (uninitialized) skorch net that trains one run of the estimator whose
    parameters are ``params`` (``GMVAEClustering.get_params()``), seeded with ``seed``;
    with a sequence of seeds, the net that trains those restarts at once, stacked."""
    stacked = not isinstance(seed, int | np.integer)
    # Stacked, the first non-finite loss stops training (``Restarts`` then trains the
    # restarts one by one), so that one restart's divergence cannot affect the others.
    callbacks: list = [("divergence_guard", DivergenceGuard(max_recoveries=0 if stacked else 3))]
    if params["max_grad_norm"] is not None:
        clipping = StackedGradientNormClipping if stacked else GradientNormClipping
        callbacks.append(("grad_clip", clipping(params["max_grad_norm"])))
    if params["tol"] is not None:
        stopping = EarlyStopping(
            monitor="train_loss",
            patience=params["n_iter_no_change"],
            threshold=params["tol"],
            threshold_mode="abs",
            sink=print if params["verbose"] else _noop,
        )
        callbacks.append(("early_stopping", stopping))
    if params["verbose"] >= 2:
        callbacks.append(("progress_bar", ProgressBar()))
    callbacks += copy.deepcopy(list(params["callbacks"] or []))
    if stacked:
        net_class, module, batches = StackedMixtureVAENet, StackedMixtureVAE, StackedTensorBatches
        extra: dict[str, Any] = {"module__n_restarts": len(seed)}
        seed = [int(s) for s in seed]
    else:
        net_class, module, batches, extra = MixtureVAENet, MixtureVAE, TensorBatches, {}
        seed = int(seed)
    return net_class(
        module=module,
        module__n_features=n_features,
        module__n_clusters=params["n_clusters"],
        module__latent_dim=params["latent_dim"],
        module__hidden_layer_sizes=hidden_sizes(params["hidden_layer_sizes"]),
        module__variant=params["variant"],
        module__likelihood=likelihood,
        module__binarize=params["binarize"],
        module__min_variance=params["min_variance"],
        **extra,
        criterion=NegativeELBO,
        criterion__beta=params["beta"],
        criterion__eta=params["eta"],
        criterion__entropy_weight=params["entropy_weight"],
        optimizer=torch.optim.Adam,
        optimizer__fused=True,  # one kernel for all parameters (CPU and CUDA)
        lr=params["learning_rate"],
        max_epochs=params["max_epochs"],
        batch_size=params["batch_size"],
        iterator_train=batches,
        iterator_train__shuffle=True,
        precision=params["precision"],
        compile=params["compile"],
        cuda_graph=params.get("cuda_graph", "auto"),
        random_state=seed,
        train_split=None,
        callbacks=callbacks,
        device=device,
        verbose=params["verbose"],
    )


def _last(net: MixtureVAENet, key: str) -> Any:
    """``key`` of the net's last epoch that has it (NaN if none): a number, or for a
    stacked net a list with one per restart."""
    values = [row[key] for row in net.history if key in row]
    return values[-1] if values else math.nan


@dataclass(frozen=True)
class Run:
    """One finished training run: its net and what the run's own components report."""

    net: MixtureVAENet

    @property
    def guard(self) -> DivergenceGuard:
        """The run's divergence guard."""
        return dict(self.net.callbacks_)["divergence_guard"]

    @property
    def diverged(self) -> bool:
        """Whether the guard stopped training (the loss kept going non-finite)."""
        return self.guard.stopped_

    @property
    def final_elbo(self) -> float:
        """Mean training ELBO (nats) of the last complete epoch; NaN if none."""
        return float(_last(self.net, "train_elbo"))


def train_run(net: MixtureVAENet, X: torch.Tensor, epochs: int | None = None) -> Run:
    """Train ``net`` on the rows X (a tensor on the training device): from scratch, or
    for ``epochs`` more epochs when given (a warm start)."""
    if epochs is None:
        net.fit(X)
    else:
        net.partial_fit(X, epochs=epochs)
    return Run(net)


def stacks_restarts(params: dict[str, Any], device: str | torch.device) -> bool:
    """Whether the ``n_init`` restarts of the estimator with ``params`` train at once as
    one stacked model on ``device``. Never with early stopping (per restart) or user
    callbacks (which expect a plain net); with ``stack_restarts="auto"``, on CUDA only
    (on CPUs the restarts' matmuls are compute-bound already and stacking measured no
    faster)."""
    if params["n_init"] == 1 or params["tol"] is not None or params["callbacks"]:
        return False
    if params["stack_restarts"] == "auto":
        return torch.device(device).type == "cuda"
    return bool(params["stack_restarts"])


@dataclass(frozen=True)
class Restarts:
    """The ``n_init`` training runs of a fit, one per seed.

    ``fit`` trains them one after another, or at once as one stacked model when
    :func:`stacks_restarts` says so; either way it returns one :class:`Run` per seed,
    each a plain net. If a stacked restart diverges, the stacked training stops and the
    restarts are trained one after another instead, each with a guard of its own, so the
    runs are always those of sequential restarts (up to rounding).
    """

    params: dict[str, Any]
    n_features: int
    likelihood: str
    device: str
    seeds: tuple[int, ...]

    @property
    def stacked(self) -> bool:
        return stacks_restarts(self.params, self.device)

    def net(self, seed: int | Sequence[int]) -> MixtureVAENet:
        return build_net(self.params, self.n_features, self.likelihood, self.device, seed)

    def fit(self, X: torch.Tensor) -> list[Run]:
        if self.stacked:
            stacked = train_run(self.net(self.seeds), X)
            if not stacked.diverged:
                return [
                    Run(stacked.net.restart_into(r, self.net(seed)))
                    for r, seed in enumerate(self.seeds)
                ]
        return [train_run(self.net(seed), X) for seed in self.seeds]


def keep_best(runs: Sequence[Run]) -> Run:
    """The run with the highest final training ELBO (a NaN bound ranks lowest; the first
    of equals)."""
    return max(runs, key=lambda run: np.nan_to_num(run.final_elbo, nan=-np.inf))
