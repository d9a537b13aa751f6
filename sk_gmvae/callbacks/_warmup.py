"""The start of training: the z-term KL's weight warmed up (``KLWarmup``), and VaDE's
initialisation of the mixture prior from an autoencoder's codes (``GMMPriorInit``)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from sklearn.mixture import GaussianMixture
from skorch.callbacks import Callback

from .._inference import latent_mean
from .._model import MixtureVAE
from .._net import dataset_tensor


class KLWarmup(Callback):
    """Warm up the z-term KL of the loss linearly over ``epochs`` epochs, after ``delay``
    epochs without it.

    Before every optimization step the criterion's ``kl_weight`` w (see
    ``WeightedNegativeELBO``) is set to

        w = clip((e + b / B - delay) / epochs, 0, 1)

    for the b-th of the B steps of epoch e (both counted from 0): 0 for the first
    ``delay`` epochs (an autoencoder's loss), then rising linearly to 1 over ``epochs``
    epochs (Bowman et al., 2016; Sønderby et al., 2016), then the unweighted loss. The
    weight follows from the history's epoch count, so a run resumed from a checkpoint
    continues the same schedule, and a warm start past the warm-up trains with w = 1.
    ``GMVAEClustering`` adds it for ``kl_warmup > 0`` or ``pretrain_epochs > 0``. During
    the warm-up ``train_loss`` is the weighted loss; ``train_elbo`` is always the ELBO.

    Parameters
    ----------
    epochs : float
        Length of the rise in epochs (0: a step from 0 to 1 after ``delay``).
    delay : float, default=0
        Epochs with w = 0 before the rise.
    """

    def __init__(self, epochs: float, delay: float = 0.0) -> None:
        self.epochs = epochs
        self.delay = delay

    def on_epoch_begin(self, net: Any, dataset_train: Any = None, **kwargs: Any) -> None:
        self.epoch_ = len(net.history) - 1  # epochs completed before this one
        self.steps_ = max(1, math.ceil(len(dataset_train) / net.batch_size))
        self.step_ = 0

    def weight(self, epochs_done: float) -> float:
        """w after ``epochs_done`` (fractional) epochs."""
        if epochs_done < self.delay:
            return 0.0
        if self.epochs <= 0:
            return 1.0
        return min(1.0, (epochs_done - self.delay) / self.epochs)

    def on_batch_begin(self, net: Any, training: bool = False, **kwargs: Any) -> None:
        if not training:
            return
        weight = self.weight(self.epoch_ + self.step_ / self.steps_)
        net.criterion_.kl_weight.fill_(weight)  # in place: a captured graph reads it
        self.step_ += 1

    def on_train_end(self, net: Any, **kwargs: Any) -> None:
        net.criterion_.kl_weight.fill_(1.0)  # evaluation and later fits: the plain loss


class GMMPriorInit(Callback):
    """VaDE's initialisation: after epoch ``after`` (an autoencoder's training, with
    ``KLWarmup(delay=after)``), fit a diagonal ``GaussianMixture`` to the codes E[z|x] of
    the training rows and make it the model's mixture prior.

    The per-cluster Gaussians p(z|y) = N(mu_y, sigma2_y) take the mixture's means and
    variances, VaDE's mixture weights pi its weights (the GMVAE's p(y) stays uniform),
    and Adam's moments of these parameters restart from zero. Variants without a
    per-cluster prior (``m2``, ``modified_m2``) are left as they are, as is a model with
    fewer training rows than clusters. Writes are in place, so a captured CUDA graph
    keeps working; a run resumed past epoch ``after`` has its prior in its checkpoint.

    Parameters
    ----------
    after : int
        The epoch after which the prior is set (counted from 1).
    """

    def __init__(self, after: int) -> None:
        self.after = after

    def on_epoch_end(self, net: Any, dataset_train: Any = None, **kwargs: Any) -> None:
        module = net.module_
        if len(net.history) != self.after:
            return
        # A stacked module is not a MixtureVAE: not for it.
        if not isinstance(module, MixtureVAE) or not module.has_cluster_prior:
            return
        X = dataset_tensor(dataset_train).cpu().numpy()
        if len(X) < module.n_clusters:
            return
        module.eval()
        try:
            codes = latent_mean(module, X, torch.float32)
        finally:
            module.train()
        seed = int(np.random.SeedSequence(int(net.random_state)).generate_state(1)[0])
        gmm = GaussianMixture(module.n_clusters, covariance_type="diag", random_state=seed)
        gmm.fit(codes)
        changed = module.set_cluster_prior(gmm.means_, gmm.covariances_, gmm.weights_)
        with torch.no_grad():
            for param in changed:
                for value in net.optimizer_.state.get(param, {}).values():
                    if value.shape == param.shape:  # not the step count
                        value.zero_()
        net.history.record("prior_from_gmm", float(gmm.lower_bound_))
