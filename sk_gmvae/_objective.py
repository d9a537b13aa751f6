"""The objective: the ELBO with y summed out exactly, and its weighted variants.

Per example, with p(y) = 1/K and one z_y ~ q(z|x, y) for each y,

    ELBO(x) = sum_y q(y|x) [ log p(x|z_y, y) + log p(z_y|y) - log q(z_y|x, y) ]
              - KL(q(y|x) || p(y)).

The training loss generalizes it with the knobs the literature argues about:

    loss(x) = - sum_y q(y|x) [ log p(x|z_y, y) - beta * (log q(z_y|x, y) - log p(z_y|y)) ]
              + eta * KL(q(y|x) || p(y)) + entropy_weight * H(q(y|x)),

which is the negative ELBO for beta = eta = 1, entropy_weight = 0 (the defaults). A KL
warm-up (``KLWarmup``) multiplies the z-term by a weight w rising from 0 to 1:

    loss(x) = - sum_y q(y|x) [ log p(x|z_y, y) - w * beta * (log q - log p)(z_y) ]
              + eta * KL(q(y|x) || p(y)) + entropy_weight * H(q(y|x)).

(KL(q(y|x) || p(y)) is not warmed up: without it q(y|x) collapses onto one cluster.)
"""

from __future__ import annotations

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
    entropy: Tensor  # H(q(y|x)) (= ln K - kl_y for a uniform p(y))

    @property
    def elbo(self) -> Tensor:
        return self.reconstruction - self.kl_z - self.kl_y


def elbo_terms(out: ModelOutput) -> ELBOTerms:
    """Sum y out of the model's (n, K) terms, weighting each column by q(y|x)."""
    qy = Categorical(logits=out.qy_logits, validate_args=False)
    entropy = qy.entropy()
    # KL(q(y|x) || p(y)) = sum_y q (log q - log p(y)); ln K - H(q) for a uniform p(y).
    return ELBOTerms(
        reconstruction=(qy.probs * out.log_px).sum(-1),
        kl_z=(qy.probs * (out.log_qz - out.log_pz)).sum(-1),
        kl_y=(qy.probs * (qy.logits - out.log_py)).sum(-1),
        entropy=entropy,
    )


class WeightedNegativeELBO(nn.Module):
    """Mean training loss over a batch (the criterion given to skorch): the negative
    ELBO with weights on its terms,

        -E_q[log p(x|z,y)] + w * beta * KL_z + eta * KL(q(y|x) || p(y)) + entropy_weight * H,

    which is the negative ELBO itself at ``beta=eta=1``, ``entropy_weight=0`` and w = 1.

    Parameters
    ----------
    beta : float, default=1.0
        Weight on the z-term E_q(y|x) KL(q(z|x, y) || p(z|y)).
    eta : float, default=1.0
        Weight on KL(q(y|x) || p(y)).
    entropy_weight : float, default=0.0
        Weight on the conditional entropy H(q(y|x)) (a consistency-violation penalty);
        positive values push q(y|x) towards confident assignments.

    Attributes
    ----------
    kl_weight : Tensor
        The warm-up weight w of the z-term (a 0-d buffer, 1 unless a ``KLWarmup``
        callback sets it; a tensor filled in place, so a captured CUDA graph reads the
        current value).
    """

    def __init__(self, beta: float = 1.0, eta: float = 1.0, entropy_weight: float = 0.0) -> None:
        super().__init__()
        self.beta, self.eta, self.entropy_weight = beta, eta, entropy_weight
        self.register_buffer("kl_weight", torch.ones(()), persistent=False)

    def forward(self, terms: ELBOTerms | ModelOutput) -> Tensor:
        """Mean loss over the rows (axis 0): a scalar, or one per restart for terms of
        shape (n, restarts) from stacked restarts. Takes the ELBO's terms, or the model
        output they are computed from."""
        if isinstance(terms, ModelOutput):
            terms = elbo_terms(terms)
        w = self.kl_weight  # (w * beta) first: with w = 1, exactly the unweighted sum
        per_example = (
            -terms.reconstruction
            + w * self.beta * terms.kl_z
            + self.eta * terms.kl_y
            + self.entropy_weight * terms.entropy
        )
        return per_example.mean(0)
