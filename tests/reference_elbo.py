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
