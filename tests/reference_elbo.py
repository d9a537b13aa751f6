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
