"""The objective: the ELBO with y summed out exactly, and its weighted variants.

Per example, with p(y) = 1/K and one z_y ~ q(z|x, y) for each y,

    ELBO(x) = sum_y q(y|x) [ log p(x|z_y, y) + log p(z_y|y) - log q(z_y|x, y) ]
              - KL(q(y|x) || p(y)).

The training loss generalizes it with the knobs the literature argues about:

    loss(x) = - sum_y q(y|x) [ log p(x|z_y, y) - beta * (log q(z_y|x, y) - log p(z_y|y)) ]
              + eta * KL(q(y|x) || p(y)) + entropy_weight * H(q(y|x)),

which is the negative ELBO for beta = eta = 1, entropy_weight = 0 (the defaults).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.distributions import Categorical

from ._model import ModelOutput


class ELBOTerms(NamedTuple):
    """Per-example pieces of the ELBO, each of shape (n,), in nats."""

    reconstruction: Tensor  # E_q(y|x) [log p(x|z_y, y)]
    kl_z: Tensor  # E_q(y|x) [log q(z_y|x, y) - log p(z_y|y)]
    kl_y: Tensor  # KL(q(y|x) || p(y))
    entropy: Tensor  # H(q(y|x)) = ln K - kl_y

    @property
    def elbo(self) -> Tensor:
        return self.reconstruction - self.kl_z - self.kl_y


def elbo_terms(out: ModelOutput) -> ELBOTerms:
    """Sum y out of the model's (n, K) terms, weighting each column by q(y|x)."""
    qy = Categorical(logits=out.qy_logits, validate_args=False)
    entropy = qy.entropy()
    return ELBOTerms(
        reconstruction=(qy.probs * out.log_px).sum(-1),
        kl_z=(qy.probs * (out.log_qz - out.log_pz)).sum(-1),
        kl_y=math.log(out.qy_logits.shape[-1]) - entropy,
        entropy=entropy,
    )


class NegativeELBO(nn.Module):
    """Mean training loss over a batch (the criterion given to skorch).

    Parameters
    ----------
    beta : float, default=1.0
        Weight on the z-term E_q(y|x) KL(q(z|x, y) || p(z|y)).
    eta : float, default=1.0
        Weight on KL(q(y|x) || p(y)).
    entropy_weight : float, default=0.0
        Weight on the conditional entropy H(q(y|x)) (a consistency-violation penalty);
        positive values push q(y|x) towards confident assignments.
    """

    def __init__(self, beta: float = 1.0, eta: float = 1.0, entropy_weight: float = 0.0) -> None:
        super().__init__()
        self.beta, self.eta, self.entropy_weight = beta, eta, entropy_weight

    def run_losses(self, terms: ELBOTerms) -> Tensor:
        """Mean loss over the rows (axis 0): a scalar, or one per run for terms of shape
        (n, runs) from stacked restarts."""
        per_example = (
            -terms.reconstruction
            + self.beta * terms.kl_z
            + self.eta * terms.kl_y
            + self.entropy_weight * terms.entropy
        )
        return per_example.mean(0)

    def loss(self, terms: ELBOTerms) -> Tensor:
        """The training loss: the mean over rows, summed over stacked runs if any."""
        return self.run_losses(terms).sum()

    def forward(self, out: ModelOutput) -> Tensor:
        return self.loss(elbo_terms(out))


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
