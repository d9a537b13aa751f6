"""The probabilistic model of the four variants: a generative model p and an inference
model q, read as the model and the guide of Pyro's semi-supervised VAE (``ss_vae_M2.py``).

The generative model p(y) p(z|y) p(x|z, y)
------------------------------------------

y is a cluster, p(y) = 1/K (VaDE: learned weights pi = softmax(log_weights)); z a latent
code; x is drawn from the likelihood (Bernoulli or Gaussian) of a decoder's output. The
variants differ only in how y enters:

    ==============  ================  ==========================================
    variant         prior on z        decoder input (first layer, then an MLP)
    ==============  ================  ==========================================
    ``m2``          N(0, I)           W [z; onehot(y)] + b
    ``modified_m2`` N(0, I)           mu_y + sqrt(sigma2_y) * z   (per-cluster scale)
    ``gmvae``       N(mu_y, sigma2_y) W z + b                      (y only via the prior)
    ``vade``        N(mu_y, sigma2_y) W z + b, with learned p(y) = pi
    ==============  ================  ==========================================

Each first layer is followed by a ReLU and the remaining hidden layers. In the modified
M2 the per-cluster affine map of z *replaces* the first hidden layer (as in the study's
code: ReLU(mu_y + sigma_y z) in R^L, then 512, then the output). The per-cluster
Gaussians N(mu_y, sigma2_y) (``ClusterGaussian``) are the prior of the GMVAE and VaDE and
the first layer of the modified M2's decoder; M2 has none.

The inference model q(y|x) q(z|x, y)
------------------------------------

All variants but VaDE share the inference networks

    q(y|x)   = softmax(MLP(x))                                   (n, K)
    q(z|x,y) = N(mu(x, y), diag sigma2(x, y)),  sigma2 = softplus(.)

VaDE (Jiang et al., 2017) has one Gaussian q(z|x) (no y in the encoder) and no q(y|x)
network: q(y|x) is the mixture's responsibility of the sampled z, p(y|z) = pi_y
N(z; mu_y, sigma2_y) / sum (``MixtureVAE.infers_y_by_prior``). Its ELBO is the same sum
over y, with z_y = z for every y and KL(q(y|x) || pi).

The discrete y is never sampled during training or inference: every forward pass
evaluates all K values of y at once, as tensors with a cluster axis of length K, so the
ELBO can sum over y exactly (only ``MixtureVAE.sample`` draws y, from p(y)).
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

VARIANTS = ("m2", "modified_m2", "gmvae", "vade")
# Every variant of the estimator: MixtureVAE's four, and Dilokthanakul et al.'s two-layer
# GMVAE, a model of its own (``_dilokthanakul.DilokthanakulGMVAE``).
ALL_VARIANTS = (*VARIANTS, "dilokthanakul")
LIKELIHOODS = ("bernoulli", "gaussian")

# Smallest observation variance of the Gaussian likelihood; keeps log p(x|z) bounded on
# constant features (which a decoder can otherwise fit with variance -> 0).
_MIN_OBS_VARIANCE = 1e-3
# Seeds drawn from a numpy RandomState for torch generators are below this bound.
SEED_MAX = np.iinfo(np.int32).max
# Smallest variance, above ``min_variance``, that ``ClusterGaussian.set_`` writes: the
# inverse softplus of 0 is -inf.
_MIN_SET_VARIANCE = 1e-6


def seeded_normal(
    module: nn.Module, shape: tuple[int, ...], seed: int, dtype: torch.dtype
) -> tuple[Tensor, torch.Generator]:
    """Standard normal noise of ``shape`` on the module's device, from a generator of its
    own (the global torch RNG is not touched), and a generator on that device for further
    draws. The noise is drawn on the CPU whatever the device, so that a seed gives the
    same noise, hence the same scores and clusters, on a GPU and on the CPU."""
    device = next(module.parameters()).device
    cpu = torch.Generator().manual_seed(int(seed))
    eps = torch.randn(shape, generator=cpu, dtype=dtype).to(device)
    # On the CPU further draws continue the same stream.
    generator = cpu if device.type == "cpu" else torch.Generator(device).manual_seed(int(seed))
    return eps, generator


class ModelOutput(NamedTuple):
    """Everything the ELBO needs for a batch of n rows, with y summed out later.

    ``qy_logits`` is (n, K); the four log-densities are (n, K), one column per value of
    y, each evaluated at the single reparameterized sample z_y ~ q(z|x, y).
    """

    qy_logits: Tensor
    log_px: Tensor  # log p(x | z_y, y)
    log_pz: Tensor  # log p(z_y | y)
    log_qz: Tensor  # log q(z_y | x, y)
    log_py: Tensor  # log p(y): -ln K, or VaDE's learned log pi_y


def _positive(var: Tensor) -> Tensor:
    """``var`` with values that underflowed to 0 raised to the smallest normal number, so
    that log-densities stay finite (a no-op for any variance that did not underflow)."""
    return var.clamp_min(torch.finfo(var.dtype).tiny)


def _linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``F.linear`` with all leading axes of x folded into one: the same result, but
    under vmap (stacked restarts, whose weights carry a restart axis) one batched matmul
    instead of a broadcast of the weights over every leading axis."""
    if x.ndim < 2:
        return F.linear(x, weight, bias)
    return F.linear(x.flatten(0, -2), weight, bias).unflatten(0, x.shape[:-1])


class Linear(nn.Linear):
    """``nn.Linear`` computed by ``_linear``."""

    def forward(self, x: Tensor) -> Tensor:
        return _linear(x, self.weight, self.bias)


def _relu_stack(sizes: Sequence[int]) -> nn.Sequential:
    """ReLU, then Linear + ReLU for each consecutive pair of ``sizes``."""
    layers: list[nn.Module] = [nn.ReLU()]
    for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [Linear(n_in, n_out), nn.ReLU()]
    return nn.Sequential(*layers)


class OneHotConcatLinear(Linear):
    """``W [v; onehot(y)] + b`` evaluated for every y at once.

    Splitting ``W = [W_v, W_y]`` gives ``W_v v + (W_y[:, y] + b)``: the v-part is one
    matmul and the y-part a (K, out) table, broadcast along the cluster axis. ``v`` has
    shape (..., 1, in) (shared by all y) or (..., K, in); the result is (..., K, out).
    The weight is a single Linear on the concatenation, so it is initialised like one.
    """

    def __init__(self, in_features: int, n_clusters: int, out_features: int) -> None:
        super().__init__(in_features + n_clusters, out_features)
        self.split = in_features

    def forward(self, v: Tensor) -> Tensor:
        table = self.weight[:, self.split :].T + self.bias  # (K, out)
        return _linear(v, self.weight[:, : self.split]) + table

    def cluster_axes(self, order: Tensor) -> dict[str, tuple[int, Tensor]]:
        """Renumbering y: the weight's columns [v-part, y-part[order]]."""
        index = torch.cat([torch.arange(self.split), self.split + order])
        return {"weight": (1, index)}


class StandardNormal(nn.Module):
    """p(z) = N(0, I), shared by all clusters (M2 and modified M2)."""

    def forward(self, eps: Tensor) -> Tensor:
        return eps

    def log_prob(self, z: Tensor) -> Tensor:
        return Normal(0.0, 1.0, validate_args=False).log_prob(z).sum(-1)


class ClusterGaussian(nn.Module):
    """Per-cluster diagonal Gaussians N(mu_y, diag sigma2_y), y = 0..K-1.

    ``mu_y = W_m onehot(y) + b_m`` and ``sigma2_y = softplus(W_s onehot(y) + b_s)``, so the
    parameters are (K, L) tables. ``forward`` is the reparameterization
    ``eps -> mu_y + sqrt(sigma2_y) * eps`` with a cluster axis of length K.
    The GMVAE uses it as its prior p(z|y); the modified M2 uses ``forward`` as the first
    layer of its decoder (a positive-definite, per-cluster scale and shift of z).
    """

    def __init__(self, n_clusters: int, latent_dim: int, min_variance: float = 0.0) -> None:
        super().__init__()
        self.loc = nn.Linear(n_clusters, latent_dim)
        self.scale = nn.Linear(n_clusters, latent_dim)
        self.min_variance = min_variance

    def cluster_axes(self, order: Tensor) -> dict[str, tuple[int, Tensor]]:
        """Renumbering y: the columns of both (L, K) tables."""
        return {"loc.weight": (1, order), "scale.weight": (1, order)}

    def params(self) -> tuple[Tensor, Tensor]:
        """(K, L) means and variances."""
        mean = self.loc.weight.T + self.loc.bias
        var = _positive(F.softplus(self.scale.weight.T + self.scale.bias) + self.min_variance)
        return mean, var

    def set_(self, means: np.ndarray, variances: np.ndarray) -> list[nn.Parameter]:
        """Make the Gaussians N(means_y, diag variances_y), both (K, L), in place: the
        inverse of ``params``. Variances below ``min_variance + 1e-6`` are raised to it.
        Returns the parameters written.
        """
        # var_y = softplus(raw) + min_variance, so raw = softplus^-1(v) = v + log(1 - e^-v)
        # with v = var_y - min_variance; in NumPy, in the arrays' dtype, as the prior has
        # always been set, so that runs reproduce bit for bit.
        v = np.maximum(np.asarray(variances) - self.min_variance, _MIN_SET_VARIANCE)
        raw = v + np.log(-np.expm1(-v))
        with torch.no_grad():
            self.loc.weight.copy_(torch.as_tensor(np.asarray(means).T))  # mu_y = W[:, y] + 0
            self.loc.bias.zero_()
            self.scale.weight.copy_(torch.as_tensor(raw.T))
            self.scale.bias.zero_()
        return [self.loc.weight, self.loc.bias, self.scale.weight, self.scale.bias]

    def forward(self, eps: Tensor) -> Tensor:
        mean, var = self.params()
        return mean + var.sqrt() * eps

    def log_prob(self, z: Tensor) -> Tensor:
        mean, var = self.params()
        return Normal(mean, var.sqrt(), validate_args=False).log_prob(z).sum(-1)


class BernoulliLikelihood(nn.Module):
    """p(x|.) = prod_d Bernoulli(x_d; sigmoid(logit_d)); x in [0, 1] (binary, or grey as an
    expected value over binarizations)."""

    def log_prob(self, logits: Tensor, x: Tensor) -> Tensor:
        # log p(x|l) = x l - log(1 + e^l), Bernoulli(logits=l).log_prob written with
        # softplus: unlike the fused BCE-with-logits kernel it has a vmap batching rule
        # (stacked restarts), and costs about the same without vmap.
        return (x * logits - F.softplus(logits)).sum(-1)

    def mean(self, logits: Tensor) -> Tensor:
        return torch.sigmoid(logits)

    def sample(self, logits: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return torch.bernoulli(torch.sigmoid(logits), generator=generator)


class GaussianLikelihood(nn.Module):
    """p(x|.) = N(x; mean, diag sigma2) with a learned variance per feature."""

    def __init__(self, n_features: int) -> None:
        super().__init__()
        # softplus(0.5413) = 1: unit variance at the start, suited to standardized data.
        self.raw_var = nn.Parameter(torch.full((n_features,), 0.5413))

    def var(self) -> Tensor:
        return F.softplus(self.raw_var) + _MIN_OBS_VARIANCE

    def log_prob(self, mean: Tensor, x: Tensor) -> Tensor:
        return Normal(mean, self.var().sqrt(), validate_args=False).log_prob(x).sum(-1)

    def mean(self, mean: Tensor) -> Tensor:
        return mean

    def sample(self, mean: Tensor, generator: torch.Generator | None = None) -> Tensor:
        noise = torch.randn(mean.shape, generator=generator, dtype=mean.dtype, device=mean.device)
        return mean + self.var().sqrt() * noise


def make_likelihood(likelihood: str, n_features: int) -> nn.Module:
    """The observation model p(x|.) of the name ``likelihood`` for ``n_features`` columns."""
    return BernoulliLikelihood() if likelihood == "bernoulli" else GaussianLikelihood(n_features)


class MixtureModule(nn.Module):
    """What every model class of the package shares: the reference study's
    initialization, the random inputs of a training pass, and the first draws of
    ancestral sampling. A subclass sets ``n_clusters``, ``binarize`` and
    ``noise_shape`` (one row's noise eps) and defines ``log_prior_y``."""

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Xavier-uniform weights and zero biases, as in the reference study, drawn from
        ``generator`` (by default the global torch RNG)."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight, generator=generator)
                nn.init.zeros_(m.bias)

    def draw_training_inputs(
        self, x: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """The random inputs of one training pass over the rows x, drawn from
        ``generator``: the binarized rows and the noise of the latents.

        Returns x, dynamically binarized (x_d ~ Bernoulli(x_d), anew at every pass) in
        training mode when ``binarize`` is set, and eps ~ N(0, I) of shape
        (n, *noise_shape). Kept out of ``forward`` so that the same draws can be made
        outside a vmapped (stacked) forward pass.
        """
        if self.training and self.binarize:
            x = torch.bernoulli(x, generator=generator)
        shape = (*x.shape[:-1], *self.noise_shape)
        eps = torch.randn(shape, generator=generator, dtype=x.dtype, device=x.device)
        return x, eps

    def _draw_clusters(
        self,
        n_samples: int,
        random_state: np.random.RandomState,
        width: int,
        clusters: Sequence[int] | None = None,
    ) -> tuple[Tensor, Tensor, torch.Generator]:
        """The first draws of ancestral sampling: the clusters y ~ p(y) of ``n_samples``
        rows (counts from ``random_state``, as ``GaussianMixture.sample`` draws them;
        sorted), then from a seed of ``random_state`` standard normal noise of
        (n_samples, width) in the module's dtype and the generator that drew it (for the
        draws of x that follow). With ``clusters``, y ~ p(y | y in clusters)."""
        weights = self.log_prior_y().exp().cpu().numpy()
        if clusters is not None:  # p(y) restricted to the clusters given
            weights = np.where(np.isin(np.arange(len(weights)), clusters), weights, 0.0)
        counts = random_state.multinomial(n_samples, weights / weights.sum())
        dtype = next(self.parameters()).dtype
        seed = random_state.randint(SEED_MAX)
        eps, generator = seeded_normal(self, (n_samples, width), seed, dtype)
        y = torch.as_tensor(np.repeat(np.arange(self.n_clusters), counts), device=eps.device)
        return y, eps, generator


class MixtureVAE(MixtureModule):
    """A mixture VAE with K clusters; ``variant`` picks the generative model.

    Parameters
    ----------
    n_features : int
        Dimension D of x.
    n_clusters : int
        Number K of values of y.
    latent_dim : int
        Dimension L of z.
    hidden_layer_sizes : sequence of int
        Widths of the hidden ReLU layers of every network (the reference: 512, 512).
    variant : {"m2", "modified_m2", "gmvae", "vade"}
        The generative model (see the module docstring); ``"vade"`` also changes the
        inference model.
    likelihood : {"bernoulli", "gaussian"}
        The observation model p(x|.).
    binarize : bool
        Dynamically binarize x (x_d ~ Bernoulli(x_d)) on every training pass; Bernoulli
        likelihood only.
    min_variance : float
        Added to every softplus variance of z (q(z|x,y) and the per-cluster Gaussians),
        so that none can underflow to 0.
    """

    def __init__(
        self,
        n_features: int,
        n_clusters: int,
        latent_dim: int,
        hidden_layer_sizes: Sequence[int],
        variant: str = "gmvae",
        likelihood: str = "bernoulli",
        binarize: bool = True,
        min_variance: float = 0.0,
    ) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {likelihood!r}")
        D, K, L, H = n_features, n_clusters, latent_dim, list(hidden_layer_sizes)
        self.n_clusters, self.latent_dim, self.variant = K, L, variant
        self.binarize = binarize and likelihood == "bernoulli"
        self.min_variance = min_variance

        # Built in this order (q, then p) whatever the methods' order below: it fixes the
        # order of the parameters, hence of the initial draws and of the state dict.
        # Inference networks, shared by all variants but VaDE, whose q(z|x) ignores y and
        # whose q(y|x) is the prior's responsibility p(y|z).
        if variant == "vade":
            self.qy: nn.Module | None = None
            self.qz_first: nn.Module = Linear(D, H[0])
            self.log_weights = nn.Parameter(torch.zeros(K))  # pi = softmax(log_weights)
        else:
            self.qy = nn.Sequential(Linear(D, H[0]), _relu_stack(H), Linear(H[-1], K))
            self.qz_first = OneHotConcatLinear(D, K, H[0])
        self.qz_hidden = _relu_stack(H)
        self.qz_mean = Linear(H[-1], L)
        self.qz_var = Linear(H[-1], L)

        # Generative model: where y enters is the only difference between variants.
        if variant == "m2":
            self.prior: nn.Module = StandardNormal()
            self.dec_first: nn.Module = OneHotConcatLinear(L, K, H[0])
            dec_sizes = H
        elif variant == "modified_m2":
            self.prior = StandardNormal()
            self.dec_first = ClusterGaussian(K, L, min_variance)
            dec_sizes = [L, *H[1:]]
        else:  # gmvae, vade
            self.prior = ClusterGaussian(K, L, min_variance)
            self.dec_first = Linear(L, H[0])
            dec_sizes = H
        self.dec_hidden = _relu_stack(dec_sizes)
        self.dec_out = Linear(dec_sizes[-1], D)
        self.likelihood = make_likelihood(likelihood, D)
        self.reset_parameters()

    @property
    def infers_y_by_prior(self) -> bool:
        """Whether q(y|x) is the prior's responsibility p(y|z) at the encoded z rather than
        a network of its own: VaDE, which also learns its mixture weights p(y) = pi."""
        return self.variant == "vade"

    @property
    def has_cluster_prior(self) -> bool:
        """Whether the prior p(z|y) is a per-cluster Gaussian (GMVAE, VaDE), the one that
        ``set_cluster_prior`` sets."""
        return isinstance(self.prior, ClusterGaussian)

    @property
    def noise_shape(self) -> tuple[int, int]:
        """Shape of one row's noise eps: (K, L), one draw of z_y for every y."""
        return (self.n_clusters, self.latent_dim)

    # Network outputs are cast back to the input's dtype, so that under reduced-precision
    # autocast only the layers run in bf16 while every density is computed in float32.

    # ---------------------------------------- the generative model p(y) p(z|y) p(x|z, y)

    def log_prior_y(self) -> Tensor:
        """log p(y), shape (K,): -ln K (uniform), or VaDE's learned log pi."""
        if self.infers_y_by_prior:
            return torch.log_softmax(self.log_weights, -1)
        return self.qz_mean.weight.new_full((self.n_clusters,), -math.log(self.n_clusters))

    def decode(self, z: Tensor) -> Tensor:
        """Likelihood parameters of p(x|z, y), (n, K, D), from z of shape (n, K or 1, L)."""
        return self.dec_out(self.dec_hidden(self.dec_first(z))).to(z.dtype)

    def generate(self, eps: Tensor) -> Tensor:
        """Likelihood parameters (n, K, D) of x given z = prior(eps) for every cluster.

        ``eps`` is (n, L) standard normal noise; z_y = mu_y + sigma_y * eps under a
        per-cluster prior, z = eps under N(0, I).
        """
        return self.decode(self.prior(eps.unsqueeze(-2)))

    @torch.no_grad()
    def sample(
        self,
        n_samples: int,
        random_state: np.random.RandomState,
        clusters: Sequence[int] | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Ancestral sampling of ``n_samples`` rows: y ~ p(y), z ~ p(z|y), x ~ p(x|z, y).

        The counts of y are drawn from ``random_state`` as ``GaussianMixture.sample``
        draws them (a multinomial of p(y)), then a seed from ``random_state`` gives the
        noise of z and of x (``seeded_normal``), in the module's dtype.

        Parameters
        ----------
        n_samples : int
            Number of rows to draw.
        random_state : RandomState
            The source of every draw: the counts of y, then the seed of the noise.
        clusters : sequence of int, default=None
            Draw y from p(y) restricted to these clusters (a class's); None: p(y).

        Returns
        -------
        x : Tensor of shape (n_samples, D)
            The drawn rows, on the module's device.
        y : Tensor of shape (n_samples,)
            Their clusters, sorted.
        """
        y, eps, generator = self._draw_clusters(n_samples, random_state, self.latent_dim, clusters)
        params = self.generate(eps)[torch.arange(n_samples, device=eps.device), y]
        return self.likelihood.sample(params, generator=generator), y

    def cluster_gaussians(self) -> tuple[Tensor, Tensor] | None:
        """(K, L) means and variances of the per-cluster Gaussians N(mu_y, sigma2_y): the
        prior p(z|y) of the GMVAE and VaDE, the first layer of the modified M2's decoder;
        None for M2, which has none."""
        for table in (self.prior, self.dec_first):
            if isinstance(table, ClusterGaussian):
                return table.params()
        return None

    def set_cluster_prior(
        self, means: np.ndarray, variances: np.ndarray, weights: np.ndarray | None = None
    ) -> list[nn.Parameter]:
        """Make a fitted diagonal Gaussian mixture sum_y w_y N(means_y, diag variances_y)
        the prior, in place (a captured CUDA graph keeps reading the same parameters).

        Parameters
        ----------
        means, variances : ndarray of shape (K, L)
            The per-cluster Gaussians p(z|y), as ``GaussianMixture.means_`` and
            ``covariances_`` (``covariance_type="diag"``); see ``ClusterGaussian.set_``.
        weights : ndarray of shape (K,), default=None
            The mixture weights w, taken as p(y) by a model that learns it (VaDE); a
            model with a uniform p(y) keeps it.

        Returns
        -------
        changed : list of Parameter
            The parameters written (for instance to restart their optimizer state).
        """
        if not self.has_cluster_prior:
            raise ValueError(f"variant={self.variant!r} has no per-cluster prior p(z|y).")
        changed = self.prior.set_(means, variances)
        if weights is not None and self.infers_y_by_prior:
            with torch.no_grad():  # pi = softmax(log w) = w / sum(w)
                self.log_weights.copy_(torch.as_tensor(np.log(weights)))
            changed.append(self.log_weights)
        return changed

    # ---------------------------------------------- the inference model q(y|x) q(z|x, y)

    def encode_y(self, x: Tensor) -> Tensor:
        """Logits of q(y|x), shape (n, K); for VaDE the responsibilities at E[z|x]."""
        if self.infers_y_by_prior:
            return self.responsibilities(self.encode_z(x)[0][..., 0, :])
        return self.qy(x).to(x.dtype)

    def responsibilities(self, z: Tensor) -> Tensor:
        """VaDE's q(y|x) logits at z (n, L): log pi_y + log N(z; mu_y, sigma2_y), (n, K)."""
        return self.log_prior_y().to(z.dtype) + self.prior.log_prob(z.unsqueeze(-2))

    def encode_z(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and variance of q(z|x, y) for every y, each (n, K, L); (n, 1, L) for
        VaDE, whose q(z|x) does not depend on y."""
        h = self.qz_hidden(self.qz_first(x.unsqueeze(-2)))
        var = _positive(F.softplus(self.qz_var(h).to(x.dtype)) + self.min_variance)
        return self.qz_mean(h).to(x.dtype), var

    def encode_latents(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The moments of q over every continuous latent, for importance sampling
        (``latent_terms``): q(z|x, y)'s, as ``encode_z``."""
        return self.encode_z(x)

    # ------------------------------------------------------ the ELBO: p and q together

    def forward(self, x: Tensor, eps: Tensor | None = None) -> ModelOutput:
        """The ELBO's terms for every (row, cluster) pair; deterministic given ``eps``.

        ``eps`` (broadcastable to (n, K, L)) fixes the noise of z_y = mu + sigma * eps;
        by default it is drawn from the global torch RNG. Training feeds it the output
        of ``draw_training_inputs`` (which also binarizes x).
        """
        z_mean, z_var = self.encode_z(x)
        if eps is None:
            eps = torch.randn_like(z_mean)
        log_px, log_pz, log_qz = self.latent_terms(x, z_mean, z_var, eps)
        log_py = self.log_prior_y().to(log_pz.dtype)
        if self.infers_y_by_prior:
            # VaDE's responsibilities at its one z: log pi_y + log N(z; mu_y, sigma2_y).
            qy_logits = log_py + log_pz
        else:
            qy_logits = self.encode_y(x)
        return ModelOutput(qy_logits, log_px, log_pz, log_qz, log_py.expand_as(log_pz))

    def latent_terms(
        self, x: Tensor, z_mean: Tensor, z_var: Tensor, eps: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """log p(x|z_y, y), log p(z_y|y) and log q(z_y|x, y), each (n, K), at
        z_y = mean + sqrt(var) * eps, from q(z|x, y)'s moments (``encode_z``); a leading
        axis of ``eps`` (several draws at once) carries through."""
        z_std = z_var.sqrt()
        z = z_mean + z_std * eps[..., : z_mean.shape[-2], :]  # VaDE: one z, for every y
        log_pz = self.prior.log_prob(z)  # (n, K)
        log_px = self.likelihood.log_prob(self.decode(z), x.unsqueeze(-2)).expand_as(log_pz)
        log_qz = Normal(z_mean, z_std, validate_args=False).log_prob(z).sum(-1).expand_as(log_pz)
        return log_px, log_pz, log_qz

    # ---------------------------------------------------------------- the cluster axis

    def cluster_permutation(self, order: Sequence[int]) -> dict[str, tuple[int, Tensor]]:
        """How to renumber the clusters so that new cluster k is old cluster ``order[k]``:
        ``{parameter name: (axis, index)}``, each parameter to become
        ``param.index_select(axis, index)``. With a uniform p(y) the renumbered model is
        the same model (the ELBO sums over y), stored in the new order: the y axis of
        q(y|x)'s output layer, of the one-hot columns of ``OneHotConcatLinear`` layers and
        of the ``ClusterGaussian`` tables."""
        order = torch.as_tensor(order, dtype=torch.long)
        if self.infers_y_by_prior:  # VaDE: the mixture weights
            axes = {"log_weights": (0, order)}
        else:
            head = f"qy.{len(self.qy) - 1}"
            axes = {f"{head}.weight": (0, order), f"{head}.bias": (0, order)}
        for prefix, module in self.named_modules():
            if isinstance(module, OneHotConcatLinear | ClusterGaussian):
                for name, axis in module.cluster_axes(order).items():
                    axes[f"{prefix}.{name}"] = axis
        return axes


def model_class(variant: str) -> type[nn.Module]:
    """The module class of the estimator's ``variant``: ``MixtureVAE``, or for
    ``"dilokthanakul"`` the two-layer ``DilokthanakulGMVAE`` (which builds on this
    module's layers, hence the import here)."""
    if variant == "dilokthanakul":
        from ._dilokthanakul import DilokthanakulGMVAE

        return DilokthanakulGMVAE
    return MixtureVAE
