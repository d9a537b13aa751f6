"""Dilokthanakul et al.'s two-layer GMVAE (``variant="dilokthanakul"``), the model the
reproduced study argues against (N. Dilokthanakul et al., *Deep unsupervised clustering
with Gaussian mixture variational autoencoders*, arXiv:1611.02648, 2016).

Letters as in the rest of the package: x the data, y the cluster, z the latent the
decoder reads, w a second Gaussian latent that moves the clusters' Gaussians.

The generative model p(w) p(y) p(z|y, w) p(x|z)
-----------------------------------------------

    w ~ N(0, I_W),  y ~ Cat(1/K),  z | y, w ~ N(mu_y(w), diag sigma2_y(w)),  x | z ~ p(x|z)

where a prior network maps w through one hidden tanh layer to K mean heads mu_y(w) and K
variance heads sigma2_y(w) = softplus(.), and the decoder p(x|z) is the GMVAE's (an MLP,
Bernoulli or Gaussian likelihood). y enters only through p(z|y, w).

The inference model q(y|x) q(z|x) q(w|x)
-----------------------------------------

Mean field, from one shared MLP trunk: q(y|x) = softmax(.), q(z|x) = N(mu_z(x), diag
sigma2_z(x)) and q(w|x) = N(mu_w(x), diag sigma2_w(x)), variances by softplus.

The loss
--------

With M paired draws (z_j, w_j) ~ q(z|x) q(w|x) and y summed out, never sampled:

    loss(x) = - (1/M) sum_j log p(x|z_j)
              + beta * [ sum_y q(y|x) (1/M) sum_j KL(q(z|x) || p(z|y, w_j))
                         + KL(q(w|x) || N(0, I)) ]
              + eta * KL(q(y|x) || p(y))
              + alpha * (1/M) sum_j H(p(y|z_j, w_j))
              + entropy_weight * H(q(y|x)),

the KLs of z and w analytic, p(y|z, w) = p(y) N(z; mu_y(w), sigma2_y(w)) / sum_y' (...) the
model's own posterior over y (the consistency-violation term, weight alpha). At
beta = eta = 1 and alpha = entropy_weight = 0 it is the negative ELBO of this model and
this q, estimated with the M draws (``_objective.two_layer_terms`` sums y out; the
criterion weights the terms). A free-bits threshold lambda replaces the y-term by
eta * max(KL_y, lambda), KL_y its mean over the batch.

The decoder does not read y, so a pass costs M decoder passes (one batched call on
(n, M, L)), not K.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Normal

from ._model import (
    LIKELIHOODS,
    Linear,
    MixtureModule,
    _positive,
    _relu_stack,
    make_likelihood,
)

VARIANT = "dilokthanakul"


class TwoLayerOutput(NamedTuple):
    """The two-layer model's terms for a batch of n rows and M paired draws (z_j, w_j);
    y is summed out later (``_objective.two_layer_terms``)."""

    qy_logits: Tensor  # (n, K): logits of q(y|x)
    log_px: Tensor  # (n, M): log p(x | z_j)
    kl_z: Tensor  # (n, M, K): KL(q(z|x) || p(z | y, w_j)), analytic
    log_pz: Tensor  # (n, M, K): log p(z_j | y, w_j)
    kl_w: Tensor  # (n,): KL(q(w|x) || N(0, I)), analytic
    log_py: Tensor  # (n, K): log p(y) = -ln K


def gaussian_kl(mean1: Tensor, var1: Tensor, mean2: Tensor, var2: Tensor) -> Tensor:
    """KL(N(mean1, diag var1) || N(mean2, diag var2)), summed over the last axis."""
    # 1/2 sum_d [log var2 - log var1 + (var1 + (mean1 - mean2)^2) / var2 - 1]
    ratio = (var1 + (mean1 - mean2).square()) / var2
    return 0.5 * (var2.log() - var1.log() + ratio - 1.0).sum(-1)


class DilokthanakulGMVAE(MixtureModule):
    """The two-layer GMVAE with K clusters (see the module docstring).

    Parameters
    ----------
    n_features : int
        Dimension D of x.
    n_clusters : int
        Number K of values of y.
    latent_dim : int
        Dimension L of z.
    hidden_layer_sizes : sequence of int
        Widths of the hidden ReLU layers of the inference trunk and of the decoder; the
        prior network's one tanh layer has the first width.
    variant : {"dilokthanakul"}
        Present so that the model is built with ``MixtureVAE``'s arguments.
    likelihood : {"bernoulli", "gaussian"}
        The observation model p(x|z).
    binarize : bool
        Dynamically binarize x on every training pass; Bernoulli likelihood only.
    min_variance : float
        Added to every softplus variance of z and w.
    mc_samples : int
        Number M of paired draws (z_j, w_j) per row in every pass.
    w_dim : int or None
        Dimension W of w; None: ``latent_dim``.
    """

    def __init__(
        self,
        n_features: int,
        n_clusters: int,
        latent_dim: int,
        hidden_layer_sizes: Sequence[int],
        variant: str = VARIANT,
        likelihood: str = "bernoulli",
        binarize: bool = True,
        min_variance: float = 0.0,
        mc_samples: int = 1,
        w_dim: int | None = None,
    ) -> None:
        super().__init__()
        if variant != VARIANT:
            raise ValueError(f"DilokthanakulGMVAE is variant={VARIANT!r}, got {variant!r}")
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {likelihood!r}")
        D, K, L, H = n_features, n_clusters, latent_dim, list(hidden_layer_sizes)
        W = latent_dim if w_dim is None else int(w_dim)
        self.n_clusters, self.latent_dim, self.w_dim = K, L, W
        self.mc_samples, self.variant = int(mc_samples), VARIANT
        self.binarize = binarize and likelihood == "bernoulli"
        self.min_variance = min_variance

        # Built in this order (q, then p): it fixes the order of the initial draws.
        # Inference: one trunk, then the heads of q(y|x), q(z|x) and q(w|x).
        self.trunk = nn.Sequential(Linear(D, H[0]), _relu_stack(H))
        self.qy = Linear(H[-1], K)
        self.qz_mean = Linear(H[-1], L)
        self.qz_var = Linear(H[-1], L)
        self.qw_mean = Linear(H[-1], W)
        self.qw_var = Linear(H[-1], W)
        # Generative: the prior network w -> (mu_y(w), sigma2_y(w)) for every y, the decoder.
        self.prior_hidden = nn.Sequential(Linear(W, H[0]), nn.Tanh())
        self.prior_mean = Linear(H[0], K * L)
        self.prior_var = Linear(H[0], K * L)
        self.dec_first = Linear(L, H[0])
        self.dec_hidden = _relu_stack(H)
        self.dec_out = Linear(H[-1], D)
        self.likelihood = make_likelihood(likelihood, D)
        self.reset_parameters()

    @property
    def infers_y_by_prior(self) -> bool:
        """False: q(y|x) is a network of its own."""
        return False

    @property
    def has_cluster_prior(self) -> bool:
        """False: p(z|y, w) depends on w, it is no table that ``set_cluster_prior`` sets."""
        return False

    @property
    def noise_shape(self) -> tuple[int, int]:
        """Shape of one row's noise: (M, L + W), the draws of z_j (first L) and w_j."""
        return (self.mc_samples, self.latent_dim + self.w_dim)

    def _variance(self, raw: Tensor) -> Tensor:
        return _positive(F.softplus(raw) + self.min_variance)

    # ---------------------------------------- the generative model p(w) p(y) p(z|y, w) p(x|z)

    def log_prior_y(self) -> Tensor:
        """log p(y), shape (K,): -ln K."""
        return self.qy.weight.new_full((self.n_clusters,), -math.log(self.n_clusters))

    def cluster_prior(self, w: Tensor) -> tuple[Tensor, Tensor]:
        """Means mu_y(w) and variances sigma2_y(w) of p(z|y, w) for every y: w of shape
        (..., W) gives two (..., K, L) tensors."""
        h = self.prior_hidden(w)
        mean = self.prior_mean(h).to(w.dtype).unflatten(-1, (self.n_clusters, self.latent_dim))
        raw = self.prior_var(h).to(w.dtype).unflatten(-1, (self.n_clusters, self.latent_dim))
        return mean, self._variance(raw)

    def decode(self, z: Tensor) -> Tensor:
        """Likelihood parameters of p(x|z), (..., D), from z of shape (..., L)."""
        return self.dec_out(self.dec_hidden(self.dec_first(z))).to(z.dtype)

    def cluster_gaussians(self) -> tuple[Tensor, Tensor]:
        """(K, L) means and variances of the components p(z|y, w = 0), at the mode of
        p(w) (where the authors draw them)."""
        return self.cluster_prior(self.qy.weight.new_zeros(self.w_dim))

    def generate(self, eps: Tensor) -> Tensor:
        """Likelihood parameters (n, K, D) of x given z = mu_y(0) + sigma_y(0) * eps for
        every cluster, ``eps`` (n, L) standard normal noise (w at its mode 0)."""
        mean, var = self.cluster_gaussians()
        return self.decode(mean + var.sqrt() * eps.unsqueeze(-2))

    @torch.no_grad()
    def sample(self, n_samples: int, random_state: np.random.RandomState) -> tuple[Tensor, Tensor]:
        """Ancestral sampling: w ~ N(0, I), y ~ p(y), z ~ p(z|y, w), x ~ p(x|z).

        The counts of y come from ``random_state`` (a multinomial of p(y)), then one seed
        from it gives the noise of w, z and x (``seeded_normal``).

        Returns
        -------
        x : Tensor of shape (n_samples, D)
            The drawn rows, on the module's device.
        y : Tensor of shape (n_samples,)
            Their clusters, sorted.
        """
        L = self.latent_dim
        y, eps, generator = self._draw_clusters(n_samples, random_state, L + self.w_dim)
        mean, var = self.cluster_prior(eps[:, L:])  # w = eps: (n, K, L)
        rows = torch.arange(n_samples, device=eps.device)
        z = mean[rows, y] + var[rows, y].sqrt() * eps[:, :L]
        return self.likelihood.sample(self.decode(z), generator=generator), y

    # ---------------------------------------------- the inference model q(y|x) q(z|x) q(w|x)

    def _moments(self, h: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Means and variances of q(z|x) and q(w|x) from the trunk's output h."""
        z_mean, w_mean = self.qz_mean(h).to(dtype), self.qw_mean(h).to(dtype)
        z_var = self._variance(self.qz_var(h).to(dtype))
        w_var = self._variance(self.qw_var(h).to(dtype))
        return z_mean, z_var, w_mean, w_var

    def encode_y(self, x: Tensor) -> Tensor:
        """Logits of q(y|x), shape (n, K)."""
        return self.qy(self.trunk(x)).to(x.dtype)

    def encode_z(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and variance of q(z|x), each (n, 1, L): one Gaussian for every y."""
        z_mean, z_var, _, _ = self._moments(self.trunk(x), x.dtype)
        return z_mean.unsqueeze(-2), z_var.unsqueeze(-2)

    def encode_latents(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and variance of q(z|x) q(w|x) as one Gaussian of (z; w), each
        (n, 1, L + W), for importance sampling (``latent_terms``)."""
        z_mean, z_var, w_mean, w_var = self._moments(self.trunk(x), x.dtype)
        return torch.cat([z_mean, w_mean], -1).unsqueeze(-2), torch.cat(
            [z_var, w_var], -1
        ).unsqueeze(-2)

    # ------------------------------------------------------------------ p and q together

    def forward(self, x: Tensor, eps: Tensor | None = None) -> TwoLayerOutput:
        """The loss's terms for every row, draw and cluster; deterministic given ``eps``
        (broadcastable to (n, M, L + W); by default drawn from the global torch RNG)."""
        h = self.trunk(x)
        z_mean, z_var, w_mean, w_var = self._moments(h, x.dtype)
        if eps is None:
            eps = torch.randn((*x.shape[:-1], *self.noise_shape), dtype=x.dtype, device=x.device)
        L = self.latent_dim
        # z_j = mu_z + sigma_z eps_j and w_j = mu_w + sigma_w eps'_j, each (n, M, .)
        z = z_mean.unsqueeze(-2) + z_var.sqrt().unsqueeze(-2) * eps[..., :L]
        w = w_mean.unsqueeze(-2) + w_var.sqrt().unsqueeze(-2) * eps[..., L:]
        prior_mean, prior_var = self.cluster_prior(w)  # (n, M, K, L)
        q_mean, q_var = z_mean[..., None, None, :], z_var[..., None, None, :]
        kl_z = gaussian_kl(q_mean, q_var, prior_mean, prior_var)
        log_pz = Normal(prior_mean, prior_var.sqrt(), validate_args=False).log_prob(z.unsqueeze(-2))
        # KL(N(mu, sigma2) || N(0, 1)) = 1/2 sum (sigma2 + mu^2 - 1 - log sigma2)
        kl_w = 0.5 * (w_var + w_mean.square() - 1.0 - w_var.log()).sum(-1)
        log_px = self.likelihood.log_prob(self.decode(z), x.unsqueeze(-2))
        qy_logits = self.qy(h).to(x.dtype)
        log_py = self.log_prior_y().to(x.dtype).expand_as(qy_logits)
        return TwoLayerOutput(qy_logits, log_px, kl_z, log_pz.sum(-1), kl_w, log_py)

    def latent_terms(
        self, x: Tensor, mean: Tensor, var: Tensor, eps: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """For importance sampling of p(x|y): log p(x|z), log p(z, w|y) = log p(z|y, w) +
        log p(w) and log q(z, w|x), each (..., n, K), at (z; w) = mean + sqrt(var) * eps
        from ``encode_latents``' moments; ``eps`` is (..., 1, L + W), a leading axis
        carrying several draws."""
        L = self.latent_dim
        v = (mean + var.sqrt() * eps[..., :1, :])[..., 0, :]  # (..., n, L + W)
        z, w = v[..., :L], v[..., L:]
        prior_mean, prior_var = self.cluster_prior(w)
        normal = Normal(prior_mean, prior_var.sqrt(), validate_args=False)
        log_pw = Normal(0.0, 1.0, validate_args=False).log_prob(w).sum(-1, keepdim=True)
        log_pz = normal.log_prob(z.unsqueeze(-2)).sum(-1) + log_pw
        q = Normal(mean[..., 0, :], var[..., 0, :].sqrt(), validate_args=False)
        log_qz = q.log_prob(v).sum(-1, keepdim=True).expand_as(log_pz)
        log_px = self.likelihood.log_prob(self.decode(z), x).unsqueeze(-1).expand_as(log_pz)
        return log_px, log_pz, log_qz

    # ---------------------------------------------------------------- the cluster axis

    def cluster_permutation(self, order: Sequence[int]) -> dict[str, tuple[int, Tensor]]:
        """How to renumber the clusters so that new cluster k is old cluster ``order[k]``
        (as ``MixtureVAE.cluster_permutation``): the rows of q(y|x)'s output layer and
        the K blocks of L rows of the prior network's mean and variance heads."""
        order = torch.as_tensor(order, dtype=torch.long)
        L = self.latent_dim
        blocks = (order[:, None] * L + torch.arange(L)).reshape(-1)
        axes = {"qy.weight": (0, order), "qy.bias": (0, order)}
        for head in ("prior_mean", "prior_var"):
            axes[f"{head}.weight"] = (0, blocks)
            axes[f"{head}.bias"] = (0, blocks)
        return axes
