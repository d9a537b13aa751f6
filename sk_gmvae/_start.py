"""How a fit starts: from random weights, or from a pre-trained autoencoder.

``GMVAEClustering(init=...)`` (resolved in ``_config.resolve_config``):

- ``"random"``: the networks' random initialization, nothing else (the study's start);
- ``"autoencoder"``: VaDE's start for every mixture VAE. The encoder q(z|x, .) and the
  decoder p(x|z, .) first train as a deterministic autoencoder for ``pretrain_steps``
  optimizer steps, with the cluster variable averaged out of the layers that take it
  (:func:`encode`, :func:`decode`); a diagonal ``GaussianMixture`` on its codes is the
  first assignment;
- ``"umap"``: the same autoencoder, then UMAP of its codes to a few dimensions and a
  full-covariance ``GaussianMixture`` there (the N2D recipe) for the first assignment.

With ``pretrain_steps=0`` (the ``"umap"`` start's ``"auto"`` below 10,000 rows) there
is no autoencoder: the rows themselves, as the model sees them, take the codes' place.

The first assignment R (n, K) then starts the mixture: the per-cluster prior p(z|y) of
the GMVAE and VaDE takes the moments of each cluster's codes (VaDE's mixture weights
their shares), q(y|x) (every variant with an inference network of its own) is trained
a few epochs to R by cross-entropy, and then the whole mixture trains a few steps on
its ELBO with y observed at the first assignment (:func:`fit_to_assignment`), so that
each cluster's branch of the model has learned its rows before y is summed out. A
pre-training that did not lower the reconstruction loss, or codes (rows) without
spread, are not used: a ``UserWarning`` says so and the fit starts from the random
weights.
:class:`AutoencoderStart` does all this at the beginning of a new training.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.mixture import GaussianMixture
from skorch.callbacks import Callback
from torch import Tensor, nn

from ._inference import chunk_rows
from ._model import ClusterGaussian, MixtureVAE, OneHotConcatLinear, _linear
from ._objective import WeightedNegativeELBO, elbo_terms
from .metrics import mutual_information

# The start methods of ``init``, after "auto" is resolved.
INIT_METHODS = ("random", "autoencoder", "umap")
# q(y|x)'s cross-entropy training on the first assignment: QY_EPOCHS passes over the
# rows, at least QY_STEPS optimizer steps (docs/defaults.md, "The start").
QY_EPOCHS = 5
QY_STEPS = 500
# Optimizer steps of the mixture's ELBO with y observed at the first assignment, as a
# fraction of the pre-training's, and without a pre-training (docs/defaults.md, "The
# start").
ASSIGNMENT_FRACTION = 0.5
ASSIGNMENT_STEPS = 500
# Adam's step size in the pre-training and q(y|x)'s cross-entropy steps (Adam's default),
# apart from the mixture's ``learning_rate``, which can then be set for the mixture alone.
PRETRAIN_LEARNING_RATE = 1e-3
# A pre-training counts as trained when it lowered the reconstruction loss on the
# training rows by at least this fraction of its initial value.
MIN_RELATIVE_GAIN = 0.01
# UMAP's settings in the "umap" start (McConville et al.'s N2D): 10 dimensions, 20
# neighbours, min_dist 0 (tightly packed clusters). The data's preset may change them
# (``_config.PRESETS``, ``umap_settings``).
UMAP_SETTINGS = {"n_components": 10, "n_neighbors": 20, "min_dist": 0.0}
# Initializations of the start's Gaussian mixture, the one of highest likelihood kept
# (GaussianMixture's n_init; docs/defaults.md, "The start").
GMM_N_INIT = 10
# The SeedSequence word of the start's random draws, apart from the net's three streams.
_STREAM = 3
# Variance floor of the per-cluster Gaussians set from codes (sklearn's reg_covar).
_REG_VARIANCE = 1e-6


def require_umap() -> Any:
    """The ``umap.UMAP`` class, or an ``ImportError`` naming the extra that installs it."""
    try:
        from umap import UMAP
    except ImportError as error:
        raise ImportError(
            "init='umap' needs the package umap-learn; install it with "
            "pip install 'sk_gmvae[umap]' (or pip install umap-learn)."
        ) from error
    return UMAP


def _mean_branch(layer: nn.Module, v: Tensor) -> Tensor:
    """``layer`` applied to v (n, in) with the cluster variable averaged out of its input:
    W_v v + mean_y (W_y[:, y]) + b for a ``OneHotConcatLinear`` (a uniform one-hot),
    mean_y mu_y + mean_y sigma_y * v for a ``ClusterGaussian``, else the layer itself."""
    if isinstance(layer, OneHotConcatLinear):
        table = layer.weight[:, layer.split :].mean(1) + layer.bias
        return _linear(v, layer.weight[:, : layer.split]) + table
    if isinstance(layer, ClusterGaussian):
        mean, var = layer.params()
        return mean.mean(0) + var.sqrt().mean(0) * v
    return layer(v)


def encode(module: MixtureVAE, x: Tensor) -> Tensor:
    """The autoencoder's codes (n, L): the mean head of q(z|x, .), cluster averaged out."""
    return module.qz_mean(module.qz_hidden(_mean_branch(module.qz_first, x)))


def decode(module: MixtureVAE, z: Tensor) -> Tensor:
    """The autoencoder's likelihood parameters (n, D) of p(x|z, .), cluster averaged out."""
    return module.dec_out(module.dec_hidden(_mean_branch(module.dec_first, z)))


def reconstruction_loss(module: MixtureVAE, x: Tensor) -> Tensor:
    """Mean -log p(x | decode(encode(x))) of the rows x, nats."""
    return -module.likelihood.log_prob(decode(module, encode(module, x)), x).mean()


@torch.no_grad()
def _over_rows(fn: Any, X: Tensor, module: MixtureVAE) -> Tensor:
    """``fn`` on chunks of X (of inference's size, ``chunk_rows``), concatenated (the
    rows' mean when fn gives a scalar)."""
    chunk = chunk_rows(module, X.shape[1])
    parts = [fn(X[i : i + chunk]) for i in range(0, len(X), chunk)]
    if parts[0].ndim == 0:  # a mean per chunk: weight each by its rows
        sizes = torch.tensor([min(chunk, len(X) - i) for i in range(0, len(X), chunk)])
        return (torch.stack(parts).cpu() * sizes).sum() / len(X)
    return torch.cat(parts)


def _steps(
    parameters: list[nn.Parameter],
    loss: Any,
    n_rows: int,
    steps: int,
    batch_size: int,
    learning_rate: float,
    generator: torch.Generator,
    device: Any,
) -> None:
    """``steps`` Adam steps on ``loss(rows)`` over shuffled batches of ``n_rows`` rows."""
    optimizer = torch.optim.Adam(parameters, lr=learning_rate)
    order = torch.empty(0, dtype=torch.long)
    done = 0
    while done < steps:
        if len(order) == 0:
            order = torch.randperm(n_rows, generator=generator)
        rows, order = order[:batch_size].to(device), order[batch_size:]
        optimizer.zero_grad(set_to_none=True)
        loss(rows).backward()
        optimizer.step()
        done += 1


def fit_to_assignment(
    module: MixtureVAE,
    X: Tensor,
    labels: np.ndarray,
    steps: int,
    batch_size: int,
    generator: torch.Generator,
    seed: int,
) -> None:
    """``steps`` Adam steps of every parameter of the mixture on its ELBO with y observed
    at ``labels`` (the semi-supervised objective with every row labelled, one cluster
    per label), per row

        -[log p(x|z_c, c) + log p(z_c|c) + log p(c) - log q(z_c|x, c)] - log q(c|x),

    c the row's label: each cluster's encoder branch, prior and decoder learn the rows
    assigned to it, and q(y|x) keeps naming them. The rows' binarization and the noise
    of z are drawn from a generator on X's device seeded with ``seed``."""
    observed = torch.as_tensor(labels, device=X.device)
    draws = torch.Generator(X.device).manual_seed(seed)
    # The semi-supervised loss (GMVAEClassifier's) with the plain ELBO's weights.
    criterion = WeightedNegativeELBO(clusters_per_class=1, classification_weight=1.0)

    def loss(rows: Tensor) -> Tensor:
        x, eps = module.draw_training_inputs(X[rows], draws)
        out, class_log_prob = criterion.observe(module(x, eps), observed[rows])
        return criterion(elbo_terms(out), observed[rows], class_log_prob)

    _steps(
        list(module.parameters()),
        loss,
        len(X),
        steps,
        batch_size,
        PRETRAIN_LEARNING_RATE,
        generator,
        X.device,
    )


def umap_embedding(
    codes: np.ndarray, seed: int, settings: Mapping[str, Any] | None = None
) -> np.ndarray:
    """The codes (at least 3 rows) in the start's UMAP embedding (``UMAP_SETTINGS``
    updated with ``settings``, UMAP's own parameters; fewer neighbours and dimensions
    where there are few rows), drawn with ``seed``."""
    UMAP = require_umap()
    settings = {**UMAP_SETTINGS, **(settings or {})}
    settings["n_neighbors"] = min(settings["n_neighbors"], len(codes) - 1)
    # UMAP's spectral start needs more rows than dimensions; else its random one.
    settings["n_components"] = min(settings["n_components"], max(1, len(codes) - 2))
    settings["init"] = "spectral" if len(codes) > 2 * settings["n_components"] + 2 else "random"
    return UMAP(**settings, random_state=seed % 2**32, n_jobs=1).fit_transform(codes)


def first_assignment(
    codes: np.ndarray,
    n_clusters: int,
    method: str,
    seed: int,
    draws: int = 1,
    umap: Mapping[str, Any] | None = None,
) -> np.ndarray:
    """Responsibilities R (n, K) of the start's Gaussian mixture on the codes: diagonal on
    the codes themselves (``"autoencoder"``), full on their UMAP embedding (``"umap"``;
    on the codes of fewer than 3 rows); the best of ``GMM_N_INIT`` initializations by
    likelihood. With ``draws`` > 1 the ``"umap"`` start embeds the codes that many
    times (UMAP seeds ``seed``, ``seed + 1``, ...; ``umap``: UMAP's parameters over
    ``UMAP_SETTINGS``) and keeps the mixture whose responsibilities carry the most
    information about the rows, I(X; Y) = H(Y) - H(Y|X) (``mutual_information``)."""
    embeddings: Any = [codes]
    # UMAP needs two neighbours per row: fewer than 3 rows are assigned as they are.
    if method == "umap" and len(codes) > 2:
        embeddings = (umap_embedding(codes, seed + draw, umap) for draw in range(draws))
    best, most = None, -np.inf
    for embedding in embeddings:
        gmm = GaussianMixture(
            n_clusters,
            covariance_type="full" if method == "umap" else "diag",
            n_init=GMM_N_INIT,
            random_state=seed,
        )
        R = gmm.fit(embedding).predict_proba(embedding)
        information = mutual_information(R)
        if best is None or information > most:
            best, most = R, information
    return best


def set_prior_from_codes(module: MixtureVAE, X: Tensor, R: np.ndarray) -> list[nn.Parameter]:
    """Make each cluster's Gaussian p(z|y) the moments of its codes and, for VaDE, the
    mixture weights the clusters' shares: with N_k = sum_i R_ik and mu(x, k) the mean
    of q(z|x, k), mean_k = sum_i R_ik mu(x_i, k) / N_k, var_k = sum_i R_ik (mu(x_i, k)
    - mean_k)^2 / N_k. Returns the parameters written ([] without a cluster prior)."""
    if not module.has_cluster_prior:
        return []
    # mu(x, k), the means of q(z|x, k): (n, K|1, L)
    mu = _over_rows(lambda x: module.encode_z(x)[0], X, module).double().cpu().numpy()
    R = R.astype(np.float64)
    counts = R.sum(0) + 10 * np.finfo(np.float64).eps  # N_k (sklearn's guard)
    means = np.einsum("nk,nkl->kl", R, np.broadcast_to(mu, (len(R), *module.noise_shape)))
    means /= counts[:, None]
    centred = mu - means[None]  # (n, K, L)
    variances = np.einsum("nk,nkl->kl", R, centred**2) / counts[:, None] + _REG_VARIANCE
    return module.set_cluster_prior(means, variances, counts / counts.sum())


def _varies(codes: np.ndarray) -> bool:
    """Whether the codes are finite and some coordinate varies over the rows."""
    return bool(np.all(np.isfinite(codes)) and codes.std(0).max() >= 1e-6)


class AutoencoderStart(Callback):
    """Start a new training of a mixture VAE from a pre-trained autoencoder, or from the
    rows themselves (``GMVAEClustering(init="autoencoder" or "umap")``; see the module
    docstring).

    At the beginning of a training with an empty history: ``steps`` Adam steps (step
    size ``PRETRAIN_LEARNING_RATE``, whatever the mixture's) of the autoencoder's
    reconstruction loss, the first assignment R of the codes (``method``; of the rows
    themselves when ``steps`` is 0),
    then the per-cluster prior from the codes of each cluster, ``qy_steps`` steps of
    q(y|x) on R and ``assignment_steps`` steps of the mixture's ELBO with y observed at
    argmax R (:func:`fit_to_assignment`). The draws (batch order, mixtures, UMAP)
    come from the net's ``random_state``. A pre-training that lowered the loss by less
    than ``MIN_RELATIVE_GAIN``, or codes without spread, are not used (a ``UserWarning``):
    the weights go back to their random initialization.

    Parameters
    ----------
    steps : int
        Optimizer steps of the autoencoder's pre-training; 0: none, the rows are
        assigned as they are.
    method : {"autoencoder", "umap"}, default="autoencoder"
        How the codes are assigned: a diagonal Gaussian mixture on them, or a full one on
        their UMAP embedding.
    qy_steps : int, default=None
        Cross-entropy steps of q(y|x) on the first assignment; None: ``QY_EPOCHS``
        epochs of the rows in the net's batches, at least ``QY_STEPS``.
    assignment_steps : int, default=None
        Steps of the mixture's ELBO with y observed at the first assignment; None:
        ``ASSIGNMENT_FRACTION`` of ``steps``, ``ASSIGNMENT_STEPS`` when ``steps`` is 0.
        0: none.
    draws : int, default=1
        UMAP embeddings of the codes (``"umap"``); the one whose mixture has the largest
        I(X; Y) gives the first assignment (:func:`first_assignment`).
    umap : dict, default=None
        UMAP's parameters (``"umap"``) over ``UMAP_SETTINGS``, N2D's: ``n_neighbors``,
        ``n_components``, ``metric``, ...

    Attributes
    ----------
    used_ : bool
        Whether the start was used (False: it learned nothing, and was undone: its
        loss fell by less than ``MIN_RELATIVE_GAIN`` of its start, or its codes, the
        rows without a pre-training, have no spread).
    loss_before_, loss_after_ : float
        The reconstruction loss per row on the training rows before and after the
        pre-training, nats (NaN without one).
    assignment_ : ndarray of shape (n_samples,)
        The first assignment, argmax_k R_ik, in the model's cluster order at the start.
    agreement_ : float
        Fraction of the training rows whose argmax of q(y|x) is their first assignment
        after the cross-entropy steps (NaN without an inference network q(y|x)).
    """

    def __init__(
        self,
        steps: int,
        method: str = "autoencoder",
        qy_steps: int | None = None,
        assignment_steps: int | None = None,
        draws: int = 1,
        umap: Mapping[str, Any] | None = None,
    ) -> None:
        self.steps = steps
        self.method = method
        self.qy_steps = qy_steps
        self.assignment_steps = assignment_steps
        self.draws = draws
        self.umap = umap

    def on_train_begin(self, net: Any, X: Any = None, **kwargs: Any) -> None:
        module = net.module_
        if len(net.history) or not isinstance(module, MixtureVAE):
            return  # a training that goes on (warm start, resumed run) keeps its weights
        X = torch.as_tensor(X, dtype=torch.float32, device=net.device)
        seed = int(np.random.SeedSequence([int(net.random_state), _STREAM]).generate_state(1)[0])
        generator = torch.Generator().manual_seed(seed)
        initial = copy.deepcopy(module.state_dict()) if self.steps else None
        if self.steps:
            codes = self._pretrain(module, X, net.batch_size, generator, net.device)
        else:  # no autoencoder: the rows themselves are clustered
            self.loss_before_ = self.loss_after_ = float("nan")
            codes = X.double().cpu().numpy()
        if codes is None or not _varies(codes):
            if initial is not None:  # undo the pre-training
                module.load_state_dict(initial)
            self._discard(net, len(X))
            return
        K = module.n_clusters
        R = first_assignment(codes, K, self.method, seed, self.draws, self.umap)
        self.assignment_ = R.argmax(1)
        set_prior_from_codes(module, X, R)
        qy_steps = self.qy_steps
        if qy_steps is None:
            qy_steps = max(QY_STEPS, math.ceil(QY_EPOCHS * len(X) / net.batch_size))
        self.agreement_ = self._fit_qy(module, X, R, qy_steps, net, generator)
        steps = self.assignment_steps
        if steps is None:
            steps = round(ASSIGNMENT_FRACTION * self.steps) if self.steps else ASSIGNMENT_STEPS
        fit_to_assignment(module, X, self.assignment_, steps, net.batch_size, generator, seed)
        self.used_ = True

    def _pretrain(
        self,
        module: MixtureVAE,
        X: Tensor,
        batch_size: int,
        generator: torch.Generator,
        device: Any,
    ) -> np.ndarray | None:
        """``steps`` steps of the autoencoder's reconstruction loss; its codes of X (n, L),
        or None when its loss fell by less than ``MIN_RELATIVE_GAIN``."""
        self.loss_before_ = float(_over_rows(lambda x: reconstruction_loss(module, x), X, module))
        autoencoder = [
            *module.qz_first.parameters(),
            *module.qz_hidden.parameters(),
            *module.qz_mean.parameters(),
            *module.dec_first.parameters(),
            *module.dec_hidden.parameters(),
            *module.dec_out.parameters(),
            *module.likelihood.parameters(),
        ]
        _steps(
            autoencoder,
            lambda rows: reconstruction_loss(module, X[rows]),
            len(X),
            self.steps,
            batch_size,
            PRETRAIN_LEARNING_RATE,
            generator,
            device,
        )
        self.loss_after_ = float(_over_rows(lambda x: reconstruction_loss(module, x), X, module))
        gain = self.loss_before_ - self.loss_after_
        trained = np.isfinite(self.loss_after_) and gain >= MIN_RELATIVE_GAIN * abs(
            self.loss_before_
        )
        if not trained:
            return None
        return _over_rows(lambda x: encode(module, x), X, module).double().cpu().numpy()

    def _discard(self, net: Any, n_rows: int) -> None:
        """No start: the weights are the random ones, q(y|x)'s network trains at the
        net's rate (a user's own parameter groups keep theirs), and a ``UserWarning``
        says why."""
        for group in net.optimizer_.param_groups:  # no start to keep
            if group.get("assignment"):
                group["lr"] = net.lr
        self.used_, self.agreement_ = False, float("nan")
        self.assignment_ = np.zeros(n_rows, dtype=int)
        if self.steps:
            why = (
                f"The autoencoder's pre-training ({self.steps} steps) did not learn: its "
                f"reconstruction loss went from {self.loss_before_:.4g} to "
                f"{self.loss_after_:.4g} nats per row, or its codes do not vary. Its "
                "codes are not used"
            )
            fix = "Raise pretrain_steps, or scale X."
        else:
            why = "The rows do not vary (or are not finite): they cannot be clustered"
            fix = "Check X."
        warnings.warn(
            f"{why}; training starts from the random weights, as with init='random'. {fix}",
            UserWarning,
            stacklevel=3,
        )

    def _fit_qy(
        self,
        module: MixtureVAE,
        X: Tensor,
        R: np.ndarray,
        steps: int,
        net: Any,
        generator: torch.Generator,
    ) -> float:
        """``steps`` steps of the cross-entropy -sum_k R_ik log q(k|x_i) for q(y|x);
        the agreement of its argmax with R's afterwards (NaN without q(y|x))."""
        if module.qy is None:
            return float("nan")
        target = torch.as_tensor(R, dtype=X.dtype, device=X.device)

        def cross_entropy(rows: Tensor) -> Tensor:
            return -(target[rows] * F.log_softmax(module.qy(X[rows]), -1)).sum(-1).mean()

        params = list(module.qy.parameters())
        _steps(
            params,
            cross_entropy,
            len(X),
            steps,
            net.batch_size,
            PRETRAIN_LEARNING_RATE,
            generator,
            net.device,
        )
        labels = _over_rows(lambda x: module.qy(x).argmax(-1), X, module).cpu().numpy()
        return float(np.mean(labels == self.assignment_))


class HoldAssignments(Callback):
    """Keep q(y|x) at a pre-trained start's first assignment for the first ``epochs``
    epochs: its gradients are zeroed, so the encoder, decoder and per-cluster prior
    adapt to the assignment before q(y|x) trains with them.

    Does nothing for a model without an inference network q(y|x) (VaDE) or when the
    net's ``AutoencoderStart`` (named ``"start"``) did not use its start.

    Parameters
    ----------
    epochs : float
        Epochs (counted from 1) during which q(y|x) does not change.
    """

    def __init__(self, epochs: float) -> None:
        self.epochs = epochs

    def on_grad_computed(
        self, net: Any, named_parameters: Any, training: bool = False, **kwargs: Any
    ) -> None:
        module = net.module_
        if not training or len(net.history) > self.epochs or getattr(module, "qy", None) is None:
            return
        start = dict(net.callbacks_).get("start")
        if start is not None and not getattr(start, "used_", False):
            return
        for param in module.qy.parameters():
            if param.grad is not None:
                param.grad.zero_()  # Adam: zero moments give a zero step
