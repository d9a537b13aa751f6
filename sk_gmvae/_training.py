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
from sklearn.utils import check_random_state
from skorch.callbacks import EarlyStopping, GradientNormClipping, LRScheduler
from skorch.dataset import ValidSplit
from torch.optim.lr_scheduler import ExponentialLR

from ._guard import DivergenceGuard
from ._inference import float64_copy, posterior
from ._model import MixtureVAE
from ._net import MixtureVAENet, TensorBatches
from ._objective import NegativeELBO
from ._stacked import (
    StackedGradientNormClipping,
    StackedMixtureVAE,
    StackedMixtureVAENet,
    StackedTensorBatches,
)
from .callbacks._checkpoint import RunCheckpoint
from .callbacks._progress import FitProgressBar
from .callbacks._warmup import GMMPriorInit, KLWarmup
from .metrics import conditional_entropy, mutual_information

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


def resolve_likelihood(likelihood: str, X: np.ndarray) -> str:
    """The observation model of the estimator's ``likelihood`` parameter for data X
    (``"auto"``: Bernoulli when every value lies in [0, 1], else Gaussian); a
    ``ValueError`` for a Bernoulli likelihood on data outside [0, 1]."""
    in_unit_interval = X.size > 0 and X.min() >= 0.0 and X.max() <= 1.0
    if likelihood == "auto":
        return "bernoulli" if in_unit_interval else "gaussian"
    if likelihood == "bernoulli" and not in_unit_interval:
        raise ValueError(
            "likelihood='bernoulli' needs every value of X in [0, 1]; scale the data "
            "(e.g. MinMaxScaler) or use likelihood='gaussian'."
        )
    return likelihood


def restart_seeds(random_state: Any, n: int) -> tuple[int, ...]:
    """The seeds of a fit's ``n`` restarts (its nets' ``random_state``), drawn from the
    estimator's ``random_state``: ``GMVAEClustering(random_state=s)`` trains its first
    restart with ``restart_seeds(s, n)[0]``, whatever n."""
    rng = check_random_state(random_state)
    return tuple(int(rng.randint(SEED_MAX)) for _ in range(n))


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


# skorch settings that an estimator parameter holds: the parameter to set instead.
_HELD_BY_PARAMETERS = {
    "module": "variant",
    "criterion": "beta, eta, entropy_weight",
    "optimizer": "optimizer",
    "lr": "learning_rate",
    "max_epochs": "max_epochs",
    "batch_size": "batch_size",
    "iterator_train": "(fixed)",
    "train_split": "validation_fraction",
    "callbacks": "callbacks",
    "device": "device",
    "verbose": "verbose",
    "random_state": "random_state",
    "precision": "precision",
    "compile": "compile",
    "warm_start": "warm_start",
}
_HELD_PREFIXES = ("module__", "criterion__", "callbacks__", "compile__")


def check_net_params(net_params: dict[str, Any] | None) -> None:
    """A ``ValueError`` for a ``net_params`` key that an estimator parameter holds."""
    for key in net_params or {}:
        if not isinstance(key, str):
            raise ValueError(f"net_params keys must be strings, got {key!r}.")
        if key in _HELD_BY_PARAMETERS:
            raise ValueError(
                f"net_params[{key!r}] is set by the estimator's parameter "
                f"{_HELD_BY_PARAMETERS[key]}; set that instead."
            )
        if key.startswith(_HELD_PREFIXES):
            raise ValueError(
                f"net_params[{key!r}]: the module and criterion are configured by the "
                "estimator's parameters (variant, latent_dim, beta, ...)."
            )


def _optimizer_params(params: dict[str, Any]) -> dict[str, Any]:
    """The optimizer and its arguments: Adam and AdamW get their fused kernel (one kernel
    for all parameters, CPU and CUDA) unless ``net_params`` says otherwise."""
    optimizer = params.get("optimizer", torch.optim.Adam)
    fused = {"optimizer__fused": True} if optimizer in (torch.optim.Adam, torch.optim.AdamW) else {}
    return {"optimizer": optimizer, **fused}


# Optimizer steps of an ``max_epochs="auto"`` training (digits: 1800 steps gave 0.66
# majority-vote accuracy, 3600 steps 0.76-0.81; see the docs' results page).
AUTO_STEPS = 3600
# Rows from which data count as large (MNIST-sized) for the "auto" rules.
LARGE_DATA = 10_000
# ``n_init="auto"`` below LARGE_DATA rows: restarts, each a trial of 1/TRIAL_FRACTION of
# the epochs (4 well-separated 5-D blobs: one restart in three merged two clusters; the
# failed trials had the lowest I(X; Y) at 1/6 of training, not at 1/18; see the docs'
# results page).
AUTO_RESTARTS = 4
TRIAL_FRACTION = 6
# ``posterior_samples="auto"`` below LARGE_DATA rows: importance draws of the model's
# p(y|x) (overlapping blobs: ARI 0.762 with q(y|x), 0.765 with 64 draws over 12 seeds;
# iris 0.901 -> 0.910; level on digits and wine); from LARGE_DATA rows 0, q(y|x) (64
# passes of an MNIST model over 50,000 rows would take minutes, and on 10,000 MNIST
# images the posterior assigned worse: 0.46 against 0.49).
AUTO_POSTERIOR_SAMPLES = 64


def posterior_draws(value: int | bool | str, n_samples: int) -> int:
    """Importance draws for ``posterior_samples=value`` on ``n_samples`` training rows:
    ``"auto"`` by the data size, True the default number, False none."""
    if isinstance(value, bool):
        return AUTO_POSTERIOR_SAMPLES if value else 0
    if value == "auto":
        return AUTO_POSTERIOR_SAMPLES if n_samples < LARGE_DATA else 0
    return int(value)


def resolve_params(params: dict[str, Any], n_samples: int, n_features: int) -> dict[str, Any]:
    """The estimator's parameters with each ``"auto"`` replaced by its value for data of
    ``n_samples`` rows and ``n_features`` columns (the rules, measured on small data, are
    documented in ``GMVAEClustering``):

    - ``hidden_layer_sizes``: two layers of width clip(n_features, 64, 512);
    - ``latent_dim``: clip(n_features // 8, 10, 64);
    - ``binarize``: True from 10,000 rows (MNIST-sized data), else False;
    - ``max_epochs``: enough epochs for ``AUTO_STEPS`` optimizer steps;
    - ``entropy_weight``: ``eta / 2`` below 10,000 rows (at ``eta`` or more every row
      goes to one cluster), 0 from 10,000 rows (where it measured worse);
    - ``n_init``: ``AUTO_RESTARTS`` below 10,000 rows, 1 from 10,000 rows;
    - ``init_epochs``: a sixth of ``max_epochs`` (rounded up), and at least one epoch past
      VaDE's pretraining;
    - ``posterior_samples``: ``AUTO_POSTERIOR_SAMPLES`` below 10,000 rows, 0 from 10,000
      (and True / False as ``posterior_draws`` reads them).
    """
    p = dict(params)
    if isinstance(p["hidden_layer_sizes"], str):
        width = int(np.clip(n_features, 64, 512))
        p["hidden_layer_sizes"] = (width, width)
    else:
        p["hidden_layer_sizes"] = hidden_sizes(p["hidden_layer_sizes"])
    if p["latent_dim"] == "auto":
        p["latent_dim"] = int(np.clip(n_features // 8, 10, 64))
    if p["binarize"] == "auto":
        p["binarize"] = n_samples >= LARGE_DATA
    if p["max_epochs"] == "auto":
        steps_per_epoch = math.ceil(n_samples / p["batch_size"])
        p["max_epochs"] = max(1, math.ceil(AUTO_STEPS / steps_per_epoch))
    if p["entropy_weight"] == "auto":
        p["entropy_weight"] = 0.5 * p["eta"] if n_samples < LARGE_DATA else 0.0
    if p.get("n_init", 1) == "auto":
        small = n_samples < LARGE_DATA
        p["n_init"] = AUTO_RESTARTS if small and not checkpoints_runs(p) else 1
    if "posterior_samples" in p:
        p["posterior_samples"] = posterior_draws(p["posterior_samples"], n_samples)
    if p.get("init_epochs") == "auto":
        trial = math.ceil(p["max_epochs"] / TRIAL_FRACTION)
        p["init_epochs"] = min(p["max_epochs"], max(trial, p.get("pretrain_epochs", 0) + 1))
    return p


def _has_callback(params: dict[str, Any], kind: type) -> bool:
    """Whether the estimator's ``callbacks`` (instances or ``(name, instance)``) hold a
    ``kind``."""
    callbacks = [cb[1] if isinstance(cb, tuple) else cb for cb in params.get("callbacks") or []]
    return any(isinstance(cb, kind) for cb in callbacks)


def checkpoints_runs(params: dict[str, Any]) -> bool:
    """Whether the estimator's ``callbacks`` hold a ``RunCheckpoint``: it resumes one run
    from its files, so a fit then trains one (``n_init="auto"`` is 1)."""
    return _has_callback(params, RunCheckpoint)


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
    parameters are ``params`` (``GMVAEClustering.get_params()`` after
    :func:`resolve_params`), seeded with ``seed``;
    with a sequence of seeds, the net that trains those restarts at once, stacked."""
    stacked = not isinstance(seed, int | np.integer)
    # Stacked, the first non-finite loss stops training (``Restarts`` then trains the
    # restarts one by one), so that one restart's divergence cannot affect the others.
    callbacks: list = [("divergence_guard", DivergenceGuard(max_recoveries=0 if stacked else 3))]
    if params["max_grad_norm"] is not None:
        clipping = StackedGradientNormClipping if stacked else GradientNormClipping
        callbacks.append(("grad_clip", clipping(params["max_grad_norm"])))
    if params["learning_rate_decay"] != 1.0:
        # lr after epoch e = learning_rate * decay ** (e / max_epochs): exponential,
        # down to learning_rate * decay at the end, whatever the number of epochs.
        gamma = params["learning_rate_decay"] ** (1.0 / params["max_epochs"])
        callbacks.append(("lr_scheduler", LRScheduler(ExponentialLR, gamma=gamma)))
    pretrain = params.get("pretrain_epochs", 0)
    if params.get("kl_warmup") or pretrain:
        callbacks.append(("kl_warmup", KLWarmup(params.get("kl_warmup", 0.0), delay=pretrain)))
    if pretrain:
        callbacks.append(("gmm_prior_init", GMMPriorInit(pretrain)))
    validation = params.get("validation_fraction")
    if params["tol"] is not None:
        stopping = EarlyStopping(
            monitor="valid_loss" if validation else "train_loss",
            patience=params["n_iter_no_change"],
            threshold=params["tol"],
            threshold_mode="abs",
            sink=print if params["verbose"] else _noop,
        )
        callbacks.append(("early_stopping", stopping))
    if params["verbose"] >= 1:
        callbacks.append(("fit_progress", FitProgressBar()))
    callbacks += copy.deepcopy(list(params["callbacks"] or []))
    if stacked:
        net_class, module, batches = StackedMixtureVAENet, StackedMixtureVAE, StackedTensorBatches
        extra: dict[str, Any] = {"module__n_restarts": len(seed)}
        seed = [int(s) for s in seed]
    else:
        net_class, module, batches, extra = MixtureVAENet, MixtureVAE, TensorBatches, {}
        seed = int(seed)
    settings: dict[str, Any] = dict(
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
        **_optimizer_params(params),
        lr=params["learning_rate"],
        max_epochs=params["max_epochs"],
        batch_size=params["batch_size"],
        iterator_train=batches,
        iterator_train__shuffle=True,
        precision=params["precision"],
        compile=params["compile"],
        cuda_graph=params.get("cuda_graph", "auto"),
        random_state=seed,
        # The split's rows are drawn from the run's seed (the first, when stacked).
        train_split=ValidSplit(validation, random_state=int(np.atleast_1d(seed)[0]))
        if validation
        else None,
        callbacks=callbacks,
        device=device,
        verbose=int(params["verbose"] >= 2),  # skorch's table of the epochs
    )
    settings.update(params.get("net_params") or {})  # checked by check_net_params
    return net_class(**settings)


def _complete(row: dict[str, Any]) -> bool:
    """Whether an epoch of the history ran to its end (an epoch cut short by an
    interruption or by the divergence guard has no duration) with at least one step
    kept (the guard records NaN for an epoch whose steps it all undid)."""
    return "dur" in row and bool(np.isfinite(row.get("train_loss", math.nan)))


def completed_epochs(net: MixtureVAENet) -> int:
    """Complete epochs of the net's history (see ``_complete``)."""
    return sum(_complete(row) for row in net.history)


@dataclass(frozen=True)
class Run:
    """One finished training run: its net, and how training ended, as the components
    that know it report: the divergence guard, early stopping, the epoch count.

    ``epochs_before`` and ``epochs_asked`` are the complete epochs the net had before
    this training and the epochs this training was asked for.
    """

    net: MixtureVAENet
    epochs_before: int = 0
    epochs_asked: int = 0

    @property
    def guard(self) -> DivergenceGuard:
        """The run's divergence guard."""
        return dict(self.net.callbacks_)["divergence_guard"]

    @property
    def epochs(self) -> int:
        """Complete epochs in all (across warm starts)."""
        return completed_epochs(self.net)

    @property
    def _early_stopping_ended(self) -> bool:
        # ``tol``'s EarlyStopping, or one among the user's callbacks.
        return any(
            isinstance(cb, EarlyStopping) and cb.misses_ >= cb.patience
            for _, cb in self.net.callbacks_
        )

    @property
    def _last_epoch_undone(self) -> bool:
        """Whether the last epoch ran to its end and the guard undid it (NaN scores); an
        epoch cut short by an interruption has no duration."""
        last = self.net.history[-1] if len(self.net.history) else {}
        return "dur" in last and not np.isfinite(last.get("train_loss", math.nan))

    @property
    def diverged(self) -> bool:
        """Whether divergence ended training: the guard stopped it (the loss kept going
        non-finite), or training ended (its epochs run, or early stopping) on an epoch
        the guard had undone."""
        return self.guard.stopped_ or self._last_epoch_undone

    @property
    def divergences(self) -> int:
        """Epochs undone by the guard (each had a non-finite step)."""
        return self.guard.recoveries_ + int(self.guard.stopped_)

    @property
    def stopped_early(self) -> bool:
        """Whether early stopping (``tol``, or a skorch ``EarlyStopping`` among the
        callbacks) ended training because the loss stopped improving (on epochs that
        trained, not on epochs the guard undid)."""
        return self._early_stopping_ended and not self._last_epoch_undone

    @property
    def recovered(self) -> bool:
        """Whether the guard undid epochs (a non-finite step) and training went on, with
        a lower learning rate, to end on a complete epoch."""
        return self.guard.recoveries_ > 0 and not self.diverged

    @property
    def interrupted(self) -> bool:
        """Whether training ended before its epochs for another reason (Ctrl-C, or a
        callback raising ``KeyboardInterrupt``); epochs the guard undid were run."""
        run = self.epochs - self.epochs_before + self.guard.recoveries_
        return run < self.epochs_asked and not (self.diverged or self.stopped_early)

    @property
    def final_elbo(self) -> float:
        """Mean training ELBO (nats) of the last complete epoch; NaN if none."""
        values = [row["train_elbo"] for row in self.net.history if _complete(row)]
        return float(values[-1]) if values else math.nan


def _resumed_epochs(net: MixtureVAENet) -> int:
    """Complete epochs that a ``RunCheckpoint`` of the net restored when its training
    began (0 if none)."""
    rows = max(
        (cb.resumed_from_ for _, cb in net.callbacks_ if isinstance(cb, RunCheckpoint)),
        default=0,
    )
    return sum(_complete(row) for row in net.history[:rows])


def train_run(net: MixtureVAENet, X: torch.Tensor, epochs: int | None = None) -> Run:
    """Train ``net`` on the rows X (a tensor on the training device): from scratch for
    its ``max_epochs`` (or the rest of a run its ``RunCheckpoint`` resumes, which then
    asks for the epochs still to do), or for ``epochs`` more epochs when given (a warm
    start)."""
    if epochs is None:
        net.fit(X)
        return Run(net, _resumed_epochs(net), net.max_epochs)
    if not net.initialized_:
        net.initialize()
    before = completed_epochs(net)
    net.partial_fit(X, epochs=epochs)
    return Run(net, before, epochs)


def stacks_restarts(params: dict[str, Any], device: str | torch.device) -> bool:
    """Whether the ``n_init`` restarts of the estimator with ``params`` train at once as
    one stacked model on ``device``. Never with early stopping (per restart), user
    callbacks (which expect a plain net) or the prior's GMM initialisation (one net at a
    time); with ``stack_restarts="auto"``, on CUDA only (on CPUs the restarts' matmuls are
    compute-bound already and stacking measured no faster)."""
    if (
        params["n_init"] == 1
        or params["tol"] is not None
        or params["callbacks"]
        or params.get("validation_fraction")
        or params.get("pretrain_epochs")
    ):
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

    With ``trial_epochs``, the runs ``fit`` returns are short trials, and ``finish``
    trains the one kept on to ``max_epochs``: the "short runs" start of mixture models
    (Biernacki, Celeux & Govaert, 2003): with trials of a sixth of the epochs, n restarts
    cost 1 + (n - 1) / 6 trainings. The kept run ends as if it had trained alone.
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

    @property
    def trial_epochs(self) -> int | None:
        """Epochs of each restart before they are ranked (``init_epochs``), or None when
        every restart trains all ``max_epochs``: one restart, ``init_epochs=None`` or not
        shorter than ``max_epochs``, or early stopping (``tol`` or an ``EarlyStopping``
        callback), whose patience would start again with the kept run's continuation."""
        trial = self.params.get("init_epochs")
        stops_early = self.params["tol"] is not None or _has_callback(self.params, EarlyStopping)
        if len(self.seeds) == 1 or trial is None or stops_early:
            return None
        return trial if trial < self.params["max_epochs"] else None

    def fit(self, X: torch.Tensor) -> list[Run]:
        epochs = self.trial_epochs
        if self.stacked:
            stacked = train_run(self.net(self.seeds), X, epochs)
            if not stacked.diverged:
                return [
                    Run(stacked.net.restart_into(r, self.net(seed)), 0, stacked.epochs_asked)
                    for r, seed in enumerate(self.seeds)
                ]
        runs: list[Run] = []
        for seed in self.seeds:
            runs.append(train_run(self.net(seed), X, epochs))
            if runs[-1].interrupted:  # Ctrl-C ends the fit, as it ends one training
                break
        return runs

    def finish(self, runs: Sequence[Run], kept: Run, X: torch.Tensor) -> Run:
        """The ``kept`` one of ``runs`` trained to its end, reported as one training of
        ``max_epochs``: a trial trains on for the rest (epochs the guard undid count as
        run, as in one training), unless the guard stopped it or a run was interrupted
        (Ctrl-C ends the fit); a full run is returned as it is."""
        if self.trial_epochs is None:
            return kept
        whole = Run(kept.net, kept.epochs_before, kept.net.max_epochs)
        if not kept.guard.stopped_ and not any(run.interrupted for run in runs):
            kept.guard.carry_on()  # its recoveries and kept state go on with it
            train_run(kept.net, X, epochs=kept.net.max_epochs - len(kept.net.history))
        return whole


RESTART_CRITERIA = ("elbo", "entropy", "mutual_information")


def restart_scores(run: Run, X: np.ndarray) -> dict[str, float]:
    """What ``keep_best`` can rank a run by: its final training ELBO, and H(Y|X) and
    I(X; Y) of its q(y|x) on the training rows X (float64 inference, eval mode)."""
    proba = posterior(float64_copy(run.net.module_), X, torch.float64)
    return {
        "seed": int(run.net.random_state),
        "lower_bound": run.final_elbo,
        "conditional_entropy": conditional_entropy(proba),
        "mutual_information": mutual_information(proba),
    }


def keep_best(
    runs: Sequence[Run], criterion: str = "elbo", X: np.ndarray | None = None
) -> tuple[Run, list[dict[str, float]]]:
    """The run to keep, and every run's scores (``restart_scores``; with one run or
    without X, the lower bound alone).

    ``criterion`` ranks the runs: ``"elbo"``, the highest final training ELBO;
    ``"entropy"``, the lowest H(Y|X) (the most confident assignments);
    ``"mutual_information"``, the highest I(X; Y) = H(Y) - H(Y|X) (confident *and*
    evenly used clusters, so never a run that put every row in one cluster). A run
    without a complete epoch (a NaN bound) ranks lowest; the first of equals wins.
    """
    if len(runs) == 1 or X is None:
        scores = [{"seed": int(r.net.random_state), "lower_bound": r.final_elbo} for r in runs]
        criterion = "elbo"
    else:
        scores = [restart_scores(run, X) for run in runs]
    rank = {
        "elbo": lambda s: s["lower_bound"],
        "entropy": lambda s: -s["conditional_entropy"],
        "mutual_information": lambda s: s["mutual_information"],
    }[criterion]

    def key(i: int) -> tuple[bool, float]:
        trained = not np.isnan(scores[i]["lower_bound"])
        return trained, np.nan_to_num(rank(scores[i]), nan=-np.inf)

    return runs[max(range(len(runs)), key=key)], scores
