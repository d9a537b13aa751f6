"""The test oracle: the negative ELBO computed with a Python loop over y, one cluster at a
time (slow, obviously correct), against which the batched computation is checked. The
speed benchmark uses it as its per-y baseline."""

import math

import torch
from torch import Tensor, nn


def reference_negative_elbo(module: nn.Module, x: Tensor, eps: Tensor) -> Tensor:
    """Per-example negative ELBO computed with a Python loop over y, one cluster at a time.

    A slow, obviously-correct reference for the batched computation (tests and the
    benchmarks' baseline). ``eps`` is (n, K, L) noise; ``module`` a ``MixtureVAE`` in eval
    mode (no binarization).
    """
    if module.variant == "vade":
        return reference_vade_negative_elbo(module, x, eps)
    logits = module.encode_y(x)
    K = logits.shape[-1]
    log_qy = torch.log_softmax(logits, -1)
    z_mean, z_var = module.encode_z(x)
    total = (log_qy.exp() * (log_qy + math.log(K))).sum(-1)  # KL(q(y|x) || 1/K)
    for y in range(K):
        z = z_mean[:, y] + z_var[:, y].sqrt() * eps[:, y]
        # The first decoder layer gives every cluster's input at the cost of one (a matmul
        # plus a (K, H) table, or an elementwise map); the rest runs for cluster y only.
        h = module.dec_first(z.unsqueeze(-2))  # (n, K, H), or (n, 1, H) if y is not used
        params = module.dec_out(module.dec_hidden(h[:, min(y, h.shape[1] - 1)])).to(x.dtype)
        log_px = module.likelihood.log_prob(params, x)
        log_pz = module.prior.log_prob(z.unsqueeze(-2).expand(-1, K, -1))[:, y]
        log_qz = torch.distributions.Normal(z_mean[:, y], z_var[:, y].sqrt()).log_prob(z).sum(-1)
        total = total + log_qy[:, y].exp() * (log_qz - log_pz - log_px)
    return total


def reference_vade_negative_elbo(module: nn.Module, x: Tensor, eps: Tensor) -> Tensor:
    """VaDE's negative ELBO as Jiang et al. (2017) write it, for one z ~ q(z|x) (the
    noise ``eps[:, 0]``) and gamma = p(y|z), the mixture's responsibilities:

        ELBO = log p(x|z) + sum_y gamma_y [log p(z|y) + log pi_y - log gamma_y] - log q(z|x).
    """
    mu, var = (t[:, 0] for t in module.encode_z(x))
    z = mu + var.sqrt() * eps[:, 0]
    log_pi = torch.log_softmax(module.log_weights, -1)
    means, variances = module.prior.params()
    normal = torch.distributions.Normal(means, variances.sqrt())
    log_pz_y = normal.log_prob(z[:, None, :]).sum(-1)  # (n, K)
    log_gamma = torch.log_softmax(log_pi + log_pz_y, -1)
    log_px = module.likelihood.log_prob(module.decode(z[:, None])[:, 0], x)
    log_qz = torch.distributions.Normal(mu, var.sqrt()).log_prob(z).sum(-1)
    mixture = (log_gamma.exp() * (log_pz_y + log_pi - log_gamma)).sum(-1)
    return -(log_px + mixture - log_qz)


def _log_normal(v: Tensor, mean: Tensor, var: Tensor) -> Tensor:
    """log N(v; mean, diag var), summed over the last axis, written out."""
    return (-0.5 * torch.log(2 * math.pi * var) - (v - mean) ** 2 / (2 * var)).sum(-1)


def _softplus_variance(module: nn.Module, raw: Tensor) -> Tensor:
    return torch.log1p(torch.exp(raw)) + module.min_variance


def reference_dilokthanakul_loss(
    module: nn.Module,
    x: Tensor,
    eps: Tensor,
    beta: float = 1.0,
    eta: float = 1.0,
    alpha: float = 0.0,
    entropy_weight: float = 0.0,
    free_bits: float = 0.0,
) -> tuple[Tensor, Tensor]:
    """Dilokthanakul et al.'s two-layer GMVAE: the per-row training loss and the per-row
    negative ELBO, with Python loops over the M draws (z_j, w_j) and over y, every density
    and KL written out. ``eps`` is (n, M, L + W) noise, z's first; ``module`` a
    ``DilokthanakulGMVAE`` in eval mode. Only the networks' layers are the module's.

        loss = -(1/M) sum_j log p(x|z_j)
               + beta [sum_y q(y|x) (1/M) sum_j KL(q(z|x) || p(z|y, w_j)) + KL(q(w|x) || N(0, I))]
               + eta max(KL(q(y|x) || 1/K), free_bits) + entropy_weight H(q(y|x))
               + alpha (1/M) sum_j H(p(y|z_j, w_j)),

    the free bits on the batch's mean KL, as the authors' threshold test.
    """
    n, M, _ = eps.shape
    K, L = module.n_clusters, module.latent_dim
    h = module.trunk(x)
    logits = module.qy(h)
    qy = torch.exp(logits) / torch.exp(logits).sum(-1, keepdim=True)
    z_mean, z_var = module.qz_mean(h), _softplus_variance(module, module.qz_var(h))
    w_mean, w_var = module.qw_mean(h), _softplus_variance(module, module.qw_var(h))
    reconstruction = torch.zeros(n, dtype=x.dtype)
    kl_z = torch.zeros(n, dtype=x.dtype)
    consistency = torch.zeros(n, dtype=x.dtype)
    for j in range(M):
        z = z_mean + torch.sqrt(z_var) * eps[:, j, :L]
        w = w_mean + torch.sqrt(w_var) * eps[:, j, L:]
        hidden = torch.tanh(module.prior_hidden[0](w))
        means = module.prior_mean(hidden).reshape(n, K, L)
        variances = _softplus_variance(module, module.prior_var(hidden)).reshape(n, K, L)
        out = module.dec_out(module.dec_hidden(module.dec_first(z)))
        if module.likelihood.__class__.__name__ == "BernoulliLikelihood":
            p = torch.sigmoid(out)
            log_px = (x * torch.log(p) + (1 - x) * torch.log(1 - p)).sum(-1)
        else:
            log_px = _log_normal(x, out, module.likelihood.var())
        reconstruction = reconstruction + log_px / M
        joint = []  # log p(y) + log p(z_j | y, w_j) for each y
        for y in range(K):
            m, v = means[:, y], variances[:, y]
            kl = 0.5 * (torch.log(v / z_var) + (z_var + (z_mean - m) ** 2) / v - 1).sum(-1)
            kl_z = kl_z + qy[:, y] * kl / M
            joint.append(_log_normal(z, m, v) - math.log(K))
        joint = torch.stack(joint, -1)
        posterior = torch.exp(joint - joint.max(-1, keepdim=True).values)
        posterior = posterior / posterior.sum(-1, keepdim=True)  # p(y | z_j, w_j)
        consistency = consistency - (posterior * torch.log(posterior)).sum(-1) / M
    kl_w = 0.5 * (w_var + w_mean**2 - 1 - torch.log(w_var)).sum(-1)
    kl_y = (qy * torch.log(qy * K)).sum(-1)
    entropy = -(qy * torch.log(qy)).sum(-1)
    negative_elbo = -reconstruction + kl_z + kl_w + kl_y
    y_term = kl_y if kl_y.mean() > free_bits else torch.full_like(kl_y, free_bits)
    loss = (
        -reconstruction
        + beta * (kl_z + kl_w)
        + eta * y_term
        + entropy_weight * entropy
        + alpha * consistency
    )
    return loss, negative_elbo
