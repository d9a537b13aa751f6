"""Inference in bounded memory: a model applied to X chunk by chunk."""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import torch

from ._model import seeded_normal
from ._objective import elbo_terms

# Chunks are sized so that the largest (rows, K, width) tensor holds at most this many
# elements (32 MiB in float64), whatever the number of rows.
_CHUNK_ELEMENTS = 2**22
# Seed of the importance draws of ``model_posterior``.
POSTERIOR_SEED = 0


def float64_copy(module: torch.nn.Module) -> torch.nn.Module:
    """A float64 copy of ``module`` in eval mode, for inference (the trained module stays
    float32, in training mode)."""
    return copy.deepcopy(module).to(torch.float64).eval()


def chunk_rows(module: torch.nn.Module, n_features: int) -> int:
    """Rows per chunk for ``module`` (a ``MixtureVAE``) on data with ``n_features``."""
    widths = [n_features, *(p.shape[0] for p in module.parameters() if p.ndim == 2)]
    return max(1, _CHUNK_ELEMENTS // (module.n_clusters * max(widths)))


def map_batches(
    fn: Callable[[torch.Tensor], torch.Tensor],
    X: np.ndarray,
    module: torch.nn.Module,
    dtype: torch.dtype = torch.float64,
) -> np.ndarray:
    """``fn`` applied to chunks of X, as tensors of ``dtype`` on the module's device.

    Results go straight into one preallocated array: keeping many small per-chunk
    results alive between the large, freed activations fragments the heap and makes
    the process grow with the number of rows.
    """
    device = next(module.parameters()).device
    rows = chunk_rows(module, X.shape[1])
    result = None
    with torch.inference_mode():
        for start in range(0, X.shape[0], rows):
            x = torch.tensor(X[start : start + rows], dtype=dtype, device=device)
            out = fn(x).cpu().numpy()
            if result is None:
                result = np.empty((X.shape[0], *out.shape[1:]), dtype=out.dtype)
            result[start : start + len(out)] = out
    return result


def posterior(module: torch.nn.Module, X: np.ndarray, dtype: torch.dtype) -> np.ndarray:
    """q(y|x) of every row, (n, K), in the module's own cluster order."""
    return map_batches(lambda x: torch.softmax(module.encode_y(x), -1), X, module, dtype)


def model_posterior(
    module: torch.nn.Module,
    X: np.ndarray,
    samples: int,
    dtype: torch.dtype,
    seed: int = POSTERIOR_SEED,
) -> np.ndarray:
    """The model's own posterior p(y|x) of every row, (n, K), estimated by importance
    sampling with q(z|x, y) as the proposal:

        p(y|x) = p(y) p(x|y) / sum_y' p(y') p(x|y'),
        p(x|y) ~ (1/S) sum_s p(x|z_s, y) p(z_s|y) / q(z_s|x, y),  z_s ~ q(z|x, y),

    (the importance-weighted bound of Burda et al., 2016, per cluster; consistent as S
    grows). The S draws of eps (z_s = mu(x, y) + sigma(x, y) eps_s) come from ``seed``, a
    fixed one by default so that predictions are the same at every call, and are shared
    by every row, so that a row's result does not depend on the other rows, and by every
    cluster, so that it does not depend on the clusters' numbering either.

    For the two-layer model z stands for both latents (z, w), p(z|y) for p(z|y, w) p(w)
    and q(z|x, y) for q(z|x) q(w|x) (its ``encode_latents`` and ``latent_terms``).
    """
    eps, _ = seeded_normal(module, (samples, 1, 1, module.noise_shape[-1]), seed, dtype)
    rows = chunk_rows(module, X.shape[1])

    def proba(x: torch.Tensor) -> torch.Tensor:
        z_mean, z_var = module.encode_latents(x)  # once; the draws only move z
        log_evidence = None  # log sum_s w_s(x, y), (n, K)
        # Draws go through the decoder in blocks along a leading axis, (draws, n, K), as
        # many at a time as keep the tensors within one chunk's size.
        for draws in eps.split(max(1, rows // len(x))):
            log_px, log_pz, log_qz = module.latent_terms(x, z_mean, z_var, draws)
            # log w = log p(x|z, y) + log p(z|y) - log q(z|x, y)
            block = (log_px + log_pz - log_qz).logsumexp(0)
            log_evidence = block if log_evidence is None else log_evidence.logaddexp(block)
        # The 1/S of the mean cancels in the normalization over y.
        return torch.softmax(module.log_prior_y() + log_evidence, -1)

    return map_batches(proba, X, module, dtype)


def elbo(module: torch.nn.Module, X: np.ndarray, seed: int, dtype: torch.dtype) -> np.ndarray:
    """Per-row ELBO with one draw of eps (of the module's ``noise_shape``: (K, L), or the
    two-layer model's M draws), shared by every row: each row's value is an unbiased
    estimate that does not depend on the other rows."""
    return posterior_and_elbo(module, X, seed, dtype)[1]


def posterior_and_elbo(
    module: torch.nn.Module, X: np.ndarray, seed: int, dtype: torch.dtype
) -> tuple[np.ndarray, np.ndarray]:
    """``posterior`` and ``elbo`` of every row in one pass (the ELBO's pass computes
    q(y|x) anyway): arrays of shape (n, K) and (n,). The posterior is ``posterior``'s:
    for VaDE, whose ELBO takes the responsibilities at the sampled z, those at E[z|x]."""
    eps, _ = seeded_normal(module, module.noise_shape, seed, dtype)

    def both(x: torch.Tensor) -> torch.Tensor:
        out = module(x, eps=eps)
        logits = module.encode_y(x) if module.infers_y_by_prior else out.qy_logits
        return torch.cat([torch.softmax(logits, -1), elbo_terms(out).elbo[:, None]], -1)

    result = map_batches(both, X, module, dtype)
    return np.ascontiguousarray(result[:, :-1]), np.ascontiguousarray(result[:, -1])


def latent_moments(module: torch.nn.Module, X: np.ndarray, dtype: torch.dtype) -> np.ndarray:
    """Means and variances of q(z|x, y) for every row and cluster: shape (n, K, 2 L), the
    means in ``[..., :L]`` and the variances in ``[..., L:]``."""
    return map_batches(lambda x: torch.cat(module.encode_z(x), -1), X, module, dtype)


def latent_mean(module: torch.nn.Module, X: np.ndarray, dtype: torch.dtype) -> np.ndarray:
    """E_q[z|x] of every row, (n, L): the mean of the mixture q(z|x) = sum_y q(y|x)
    q(z|x, y), that is sum_y q(y|x) mu(x, y)."""

    def mean(x: torch.Tensor) -> torch.Tensor:
        qy = torch.softmax(module.encode_y(x), -1)  # (n, K)
        return (qy.unsqueeze(-1) * module.encode_z(x)[0]).sum(-2)

    return map_batches(mean, X, module, dtype)


def decoded_mean(
    module: torch.nn.Module, Z: np.ndarray, labels: np.ndarray | None, dtype: torch.dtype
) -> np.ndarray:
    """E[x | z] (or E[x | z, y] with ``labels``) of every latent row z, (n, D).

    Without labels, y is averaged out under p(y|z): the GMVAE's decoder does not depend
    on y (E[x|z] is the decoder's mean); in M2 and the modified M2 z and y are independent
    a priori, so p(y|z) = p(y) = 1/K and E[x|z] = (1/K) sum_y E[x|z, y].
    """
    with_labels = np.empty((len(Z), 0)) if labels is None else labels[:, None]
    data = np.concatenate([Z, with_labels], axis=1)
    L = module.latent_dim

    def decode(v: torch.Tensor) -> torch.Tensor:
        means = module.likelihood.mean(module.decode(v[:, None, :L]))  # (n, 1 or K, D)
        if labels is None:
            return means.mean(-2)
        y = v[:, L].long().clamp_max(means.shape[-2] - 1)  # gmvae: the one column
        return means[torch.arange(len(v), device=v.device), y]

    return map_batches(decode, data, module, dtype)
