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

Dilokthanakul et al.'s two-layer model (``_dilokthanakul``) has the same pieces, with
(z, w) for the continuous latent and two terms of its own (``two_layer_terms``): its
z-term is E_q(y|x) E_q(w|x) KL(q(z|x) || p(z|y, w)) + KL(q(w|x) || p(w)), and the loss
adds alpha * H(p(y|z, w)) (``cv_weight``, the consistency-violation term) and may floor
the y-term at ``free_bits`` nats.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.distributions import Categorical

from ._dilokthanakul import TwoLayerOutput
from ._model import ModelOutput


class ELBOTerms(NamedTuple):
    """Per-example pieces of the ELBO, each of shape (n,), in nats."""

    reconstruction: Tensor  # E_q(y|x) [log p(x|z_y, y)]
    kl_z: Tensor  # E_q(y|x) [log q(z_y|x, y) - log p(z_y|y)]
    kl_y: Tensor  # KL(q(y|x) || p(y))
    entropy: Tensor  # H(q(y|x)) (= ln K - kl_y for a uniform p(y))
    # The two-layer model's mean H(p(y|z_j, w_j)) over its draws; no term of the ELBO.
    consistency: Tensor | float = 0.0

    @property
    def elbo(self) -> Tensor:
        return self.reconstruction - self.kl_z - self.kl_y


def elbo_terms(out: ModelOutput | TwoLayerOutput) -> ELBOTerms:
    """Sum y out of the model's (n, K) terms, weighting each column by q(y|x)."""
    if isinstance(out, TwoLayerOutput):
        return two_layer_terms(out)
    qy = Categorical(logits=out.qy_logits, validate_args=False)
    entropy = qy.entropy()
    # KL(q(y|x) || p(y)) = sum_y q (log q - log p(y)); ln K - H(q) for a uniform p(y).
    return ELBOTerms(
        reconstruction=(qy.probs * out.log_px).sum(-1),
        kl_z=(qy.probs * (out.log_qz - out.log_pz)).sum(-1),
        kl_y=(qy.probs * (qy.logits - out.log_py)).sum(-1),
        entropy=entropy,
    )


def two_layer_terms(out: TwoLayerOutput) -> ELBOTerms:
    """The two-layer model's terms with y summed out, the draws j = 1..M averaged:

    - reconstruction: (1/M) sum_j log p(x|z_j);
    - kl_z: sum_y q(y|x) (1/M) sum_j KL(q(z|x) || p(z|y, w_j)) + KL(q(w|x) || p(w)),
      the KL of both continuous latents;
    - kl_y, entropy: KL(q(y|x) || p(y)) and H(q(y|x));
    - consistency: (1/M) sum_j H(p(y|z_j, w_j)), the model's own posterior over y.

    The draw and cluster axes are the last two, so stacked restarts (a restart axis after
    the rows) go through unchanged.
    """
    qy = Categorical(logits=out.qy_logits, validate_args=False)
    # p(y|z_j, w_j) = p(y) p(z_j|y, w_j) / sum_y' p(y') p(z_j|y', w_j), (n, M, K)
    model_y = Categorical(logits=out.log_py.unsqueeze(-2) + out.log_pz, validate_args=False)
    return ELBOTerms(
        reconstruction=out.log_px.mean(-1),
        kl_z=(qy.probs.unsqueeze(-2) * out.kl_z).sum(-1).mean(-1) + out.kl_w,
        kl_y=(qy.probs * (qy.logits - out.log_py)).sum(-1),
        entropy=qy.entropy(),
        consistency=model_y.entropy().mean(-1),
    )


class WeightedNegativeELBO(nn.Module):
    """Mean training loss over a batch (the criterion given to skorch): the negative
    ELBO with weights on its terms,

        -E_q[log p(x|z,y)] + w * beta * KL_z + eta * KL(q(y|x) || p(y)) + entropy_weight * H
        + cv_weight * CV,

    which is the negative ELBO itself at ``beta=eta=1``, ``entropy_weight=cv_weight=0``,
    ``free_bits=0`` and w = 1 (CV: the two-layer model's consistency term).

    Parameters
    ----------
    beta : float, default=1.0
        Weight on the z-term E_q(y|x) KL(q(z|x, y) || p(z|y)).
    eta : float, default=1.0
        Weight on KL(q(y|x) || p(y)).
    entropy_weight : float, default=0.0
        Weight on the conditional entropy H(q(y|x)) (a consistency-violation penalty);
        positive values push q(y|x) towards confident assignments.
    cv_weight : float, default=0.0
        Weight alpha on the two-layer model's consistency term (1/M) sum_j
        H(p(y|z_j, w_j)); no term for the other models.
    free_bits : float, default=0.0
        Free bits lambda of the y-term: ``eta * max(mean KL_y, free_bits)``, the KL's
        mean over the batch, so its gradient acts only while that mean exceeds lambda
        nats. 0: no floor.

    Attributes
    ----------
    kl_weight : Tensor
        The warm-up weight w of the z-term (a 0-d buffer, 1 unless a ``KLWarmup``
        callback sets it; a tensor filled in place, so a captured CUDA graph reads the
        current value).
    """

    def __init__(
        self,
        beta: float = 1.0,
        eta: float = 1.0,
        entropy_weight: float = 0.0,
        cv_weight: float = 0.0,
        free_bits: float = 0.0,
    ) -> None:
        super().__init__()
        self.beta, self.eta, self.entropy_weight = beta, eta, entropy_weight
        self.cv_weight, self.free_bits = cv_weight, free_bits
        self.register_buffer("kl_weight", torch.ones(()), persistent=False)

    def forward(self, terms: ELBOTerms | ModelOutput | TwoLayerOutput) -> Tensor:
        """Mean loss over the rows (axis 0): a scalar, or one per restart for terms of
        shape (n, restarts) from stacked restarts. Takes the ELBO's terms, or the model
        output they are computed from."""
        if isinstance(terms, ModelOutput | TwoLayerOutput):
            terms = elbo_terms(terms)
        w = self.kl_weight  # (w * beta) first: with w = 1, exactly the unweighted sum
        kl_y = terms.kl_y
        if self.free_bits:
            # max(mean KL_y, lambda) over the batch (per restart when stacked), row by row:
            # each row's KL while the mean is above lambda, else the constant lambda.
            kl_y = torch.where(kl_y.mean(0) > self.free_bits, kl_y, kl_y.new_tensor(self.free_bits))
        per_example = (
            -terms.reconstruction
            + w * self.beta * terms.kl_z
            + self.eta * kl_y
            + self.entropy_weight * terms.entropy
        )
        if self.cv_weight:
            per_example = per_example + self.cv_weight * terms.consistency
        return per_example.mean(0)
