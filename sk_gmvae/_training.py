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

from ._config import CRITERION_VARIANT_PARAMS, FitConfig
from ._guard import DivergenceGuard
from ._inference import float64_copy, posterior
from ._model import SEED_MAX, model_class
from ._net import MixtureVAENet, TensorBatches
from ._objective import WeightedNegativeELBO
from ._stacked import (
    StackedGradientNormClipping,
    StackedMixtureVAE,
    StackedMixtureVAENet,
    StackedTensorBatches,
)
from ._start import AutoencoderStart
from .callbacks._checkpoint import RunCheckpoint
from .callbacks._progress import FitProgressBar
from .callbacks._warmup import GMMPriorInit, KLWarmup
from .metrics import conditional_entropy, mutual_information


def restart_seeds(random_state: Any, n: int) -> tuple[int, ...]:
    """The seeds of a fit's ``n`` restarts (its nets' ``random_state``), drawn from the
    estimator's ``random_state``: ``GMVAEClustering(random_state=s)`` trains its first
    restart with ``restart_seeds(s, n)[0]``, whatever n."""
    rng = check_random_state(random_state)
    return tuple(int(rng.randint(SEED_MAX)) for _ in range(n))


def _optimizer_params(optimizer: Any) -> dict[str, Any]:
    """The optimizer and its arguments: Adam and AdamW get their fused kernel (one kernel
    for all parameters, CPU and CUDA) unless ``net_params`` says otherwise."""
    fused = {"optimizer__fused": True} if optimizer in (torch.optim.Adam, torch.optim.AdamW) else {}
    return {"optimizer": optimizer, **fused}


def _noop(*args: object, **kwargs: object) -> None:
    """A silent sink for skorch callbacks' messages."""


def build_net(config: FitConfig, seed: int | Sequence[int]) -> MixtureVAENet:
    """The (uninitialized) skorch net that trains one run of ``config``, seeded with
    ``seed``; with a sequence of seeds, the net that trains those restarts at once,
    stacked."""
    stacked = not isinstance(seed, int | np.integer)
    callbacks: list = []
    if config.init != "random":  # first: the guard keeps the started weights
        start = AutoencoderStart(
            config.pretrain_steps,
            config.init,
            draws=config.start_draws,
            umap=config.start_umap,
        )
        callbacks.append(("start", start))
    # Stacked, the first non-finite loss stops training (``Restarts`` then trains the
    # restarts one by one), so that one restart's divergence cannot affect the others.
    callbacks += [("divergence_guard", DivergenceGuard(max_recoveries=0 if stacked else 3))]
    if config.max_grad_norm is not None:
        clipping = StackedGradientNormClipping if stacked else GradientNormClipping
        callbacks.append(("grad_clip", clipping(config.max_grad_norm)))
    if config.learning_rate_decay != 1.0:
        # lr after epoch e = learning_rate * decay ** (e / max_epochs): exponential,
        # down to learning_rate * decay at the end, whatever the number of epochs.
        gamma = config.learning_rate_decay ** (1.0 / config.max_epochs)
        callbacks.append(("lr_scheduler", LRScheduler(ExponentialLR, gamma=gamma)))
    pretrain = config.pretrain_epochs
    if config.kl_warmup or pretrain:
        callbacks.append(("kl_warmup", KLWarmup(config.kl_warmup, delay=pretrain)))
    if pretrain:
        callbacks.append(("gmm_prior_init", GMMPriorInit(pretrain)))
    validation = config.validation_fraction
    if config.tol is not None:
        stopping = EarlyStopping(
            monitor="valid_loss" if validation else "train_loss",
            patience=config.n_iter_no_change,
            threshold=config.tol,
            threshold_mode="abs",
            sink=print if config.verbose else _noop,
        )
        callbacks.append(("early_stopping", stopping))
    if config.verbose >= 1:
        callbacks.append(("fit_progress", FitProgressBar()))
    callbacks += copy.deepcopy(list(config.callbacks))
    if stacked:
        net_class, module, batches = StackedMixtureVAENet, StackedMixtureVAE, StackedTensorBatches
        extra: dict[str, Any] = {"module__n_restarts": len(seed)}
        seed = [int(s) for s in seed]
    else:
        net_class, batches, extra = MixtureVAENet, TensorBatches, {}
        module = model_class(config.variant)
        seed = int(seed)
    # The variant's own settings (variant="dilokthanakul"): the loss's to the criterion,
    # the rest to the model.
    for key, value in config.variant_params.items():
        part = "criterion" if key in CRITERION_VARIANT_PARAMS else "module"
        extra[f"{part}__{key}"] = value
    if config.n_classes:  # semi-supervised: the labels' weights and batches
        extra.update(
            criterion__clusters_per_class=config.clusters_per_class,
            criterion__classification_weight=config.classification_weight,
        )
        if config.labelled_per_batch:
            extra["iterator_train__labelled_per_batch"] = config.labelled_per_batch
    settings: dict[str, Any] = dict(
        module=module,
        module__n_features=config.n_features,
        module__n_clusters=config.n_clusters,
        module__latent_dim=config.latent_dim,
        module__hidden_layer_sizes=config.hidden_layer_sizes,
        module__variant=config.variant,
        module__likelihood=config.likelihood,
        module__binarize=config.binarize,
        module__min_variance=config.min_variance,
        **extra,
        criterion=WeightedNegativeELBO,
        criterion__beta=config.beta,
        criterion__eta=config.eta,
        criterion__entropy_weight=config.entropy_weight,
        **_optimizer_params(config.optimizer),
        lr=config.learning_rate,
        max_epochs=config.max_epochs,
        batch_size=config.batch_size,
        iterator_train=batches,
        iterator_train__shuffle=True,
        random_state=seed,
        # The split's rows are drawn from the run's seed (the first, when stacked).
        train_split=ValidSplit(validation, random_state=int(np.atleast_1d(seed)[0]))
        if validation
        else None,
        callbacks=callbacks,
        device=config.device,
        verbose=int(config.verbose >= 2),  # skorch's table of the epochs
    )
    # The engine switches (precision, compile, cuda_graph) and skorch's own settings;
    # checked by check_net_params.
    settings.update(config.net_params)
    if config.assignment_learning_rate is not None:
        # q(y|x)'s network, qy, in a parameter group of its own rate (a started fit's
        # restarts never stack, so the names are the model's own), after the user's
        # groups: skorch gives a parameter to the first pattern that matches it. The
        # "assignment" key marks the group for a start that is discarded (_start).
        group = ("qy.*", {"lr": config.assignment_learning_rate, "assignment": True})
        settings["optimizer__param_groups"] = [
            *settings.get("optimizer__param_groups", ()),
            group,
        ]
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

    def warnings(self, tol: float | None, trained: int = 1, restarts: int = 1) -> list[str]:
        """What to tell the user about how training ended when it did not simply run
        its epochs (or stop early by ``tol``, as asked), and when an interruption left
        ``trained`` of the ``restarts`` trained while this, the kept run, ended."""
        messages = []
        if trained < restarts and not self.interrupted:
            messages.append(
                f"Training was interrupted in restart {trained} of {restarts}; the model "
                "is the best of the restarts trained before."
            )
        undone = f"{self.divergences} epoch" + ("s" if self.divergences != 1 else "")
        if self.diverged:
            kept = (
                f"the last finite model, after {self.epochs} complete epochs"
                if self.epochs
                else "no complete epoch: the model is its initialization"
            )
            messages.append(
                f"Training diverged (non-finite loss) in {undone}, undone, despite lowering "
                f"the learning rate; stopped with {kept}. Lower "
                "learning_rate, set max_grad_norm, or scale X."
            )
        elif self.interrupted:
            messages.append(
                f"Training was interrupted after {self.epochs - self.epochs_before} of "
                f"{self.epochs_asked} epochs; the model is the one reached then."
            )
        elif self.recovered:
            factor = self.guard.lr_factor**self.guard.recoveries_
            done = self.epochs - self.epochs_before
            messages.append(
                f"Training diverged (non-finite loss) in {undone}, undone; it went on with "
                f"the learning rate multiplied by {factor:.3g}"
                + ("" if self.stopped_early else f" and completed {done} of {self.epochs_asked}")
                + ". Lower learning_rate, set max_grad_norm, or scale X."
            )
        elif tol is not None and not self.stopped_early:
            messages.append(
                f"Training did not converge within max_epochs={self.net.max_epochs} "
                f"(tol={tol}); increase max_epochs or tol."
            )
        return messages

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


def train_run(
    net: MixtureVAENet,
    X: torch.Tensor,
    epochs: int | None = None,
    y: torch.Tensor | None = None,
) -> Run:
    """Train ``net`` on the rows X (a tensor on the training device), with their labels
    y when given (-1: unlabelled): from scratch for its ``max_epochs`` (or the rest of a
    run its ``RunCheckpoint`` resumes, which then asks for the epochs still to do), or
    for ``epochs`` more epochs when given (a warm start)."""
    if epochs is None:
        net.fit(X, y)
        return Run(net, _resumed_epochs(net), net.max_epochs)
    if not net.initialized_:
        net.initialize()
    before = completed_epochs(net)
    net.partial_fit(X, y, epochs=epochs)
    return Run(net, before, epochs)


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

    config: FitConfig
    seeds: tuple[int, ...]

    def net(self, seed: int | Sequence[int]) -> MixtureVAENet:
        return build_net(self.config, seed)

    @property
    def trial_epochs(self) -> int | None:
        """Epochs of each restart before they are ranked, or None when every restart
        trains all ``max_epochs`` (``FitConfig.trial_epochs``; None for one seed)."""
        return self.config.trial_epochs if len(self.seeds) > 1 else None

    def fit(self, X: torch.Tensor, y: torch.Tensor | None = None) -> list[Run]:
        epochs = self.trial_epochs
        if self.config.stack_restarts and len(self.seeds) > 1:
            stacked = train_run(self.net(self.seeds), X, epochs)
            if not stacked.diverged:
                return [
                    Run(stacked.net.restart_into(r, self.net(seed)), 0, stacked.epochs_asked)
                    for r, seed in enumerate(self.seeds)
                ]
        runs: list[Run] = []
        for seed in self.seeds:
            runs.append(train_run(self.net(seed), X, epochs, y))
            if runs[-1].interrupted:  # Ctrl-C ends the fit, as it ends one training
                break
        return runs

    def finish(
        self, runs: Sequence[Run], kept: Run, X: torch.Tensor, y: torch.Tensor | None = None
    ) -> Run:
        """The ``kept`` one of ``runs`` trained to its end, reported as one training of
        ``max_epochs``: a trial trains on for the rest (epochs the guard undid count as
        run, as in one training), unless the guard stopped it or a run was interrupted
        (Ctrl-C ends the fit); a full run is returned as it is."""
        if self.trial_epochs is None:
            return kept
        whole = Run(kept.net, kept.epochs_before, kept.net.max_epochs)
        if not kept.guard.stopped_ and not any(run.interrupted for run in runs):
            kept.guard.carry_on()  # its recoveries and kept state go on with it
            train_run(kept.net, X, kept.net.max_epochs - len(kept.net.history), y)
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
