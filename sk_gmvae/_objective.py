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

Semi-supervised training (``GMVAEClassifier``) observes y on the labelled rows: for a
row of class c, q(y|x) is restricted to c's clusters (``observe_labels``), so that the
same sum over y becomes Kingma et al.'s ELBO with y observed, log p(x|z, c) + log p(z|c)
+ log p(c) - log q(z|x, c) with one cluster per class; the loss of a labelled row adds
Kingma's classification term -(alpha / N_l) log q(c|x)
(``WeightedNegativeELBO``; alpha: ``_config.resolve_supervision``).

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


def observe_labels(
    out: ModelOutput, labels: Tensor, clusters_per_class: int
) -> tuple[ModelOutput, Tensor]:
    """The model's output with y observed on the labelled rows, and log q(c|x) of each
    row's class c.

    ``labels`` (n,) holds each row's class, -1 for an unlabelled row; cluster k belongs
    to class k // m (m = ``clusters_per_class``). A labelled row's q(y|x) is restricted
    to its class's clusters and renormalized, so that ``elbo_terms`` sums over those
    clusters only: with m = 1 the ELBO with y = c observed. Unlabelled rows are
    unchanged, and their log q(c|x) is 0.
    """
    logits = out.qy_logits
    floor = torch.finfo(logits.dtype).min  # exp(floor - .) = 0, and finite gradients
    owner = torch.arange(logits.shape[-1], device=logits.device) // clusters_per_class
    labelled = labels >= 0
    member = owner == labels.unsqueeze(-1)  # (n, K): cluster k belongs to the row's class
    # log q(c|x) = log sum_{y in c} q(y|x)
    log_qy = torch.log_softmax(logits, -1)
    class_log_prob = log_qy.masked_fill(~member, floor).logsumexp(-1)
    class_log_prob = torch.where(labelled, class_log_prob, torch.zeros_like(class_log_prob))
    # q(y|x, c) = q(y|x) 1[y in c] / q(c|x): logits outside c at the floor.
    outside = ~member & labelled.unsqueeze(-1)
    return out._replace(qy_logits=logits.masked_fill(outside, floor)), class_log_prob


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
    clusters_per_class : int, default=0
        With labels (semi-supervised training): the clusters of each class m, cluster
        k belonging to class k // m (``observe_labels``). 0: no classes.
    classification_weight : float, default=0.0
        With labels: the weight c of -log q(c|x) on every labelled row.

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
        clusters_per_class: int = 0,
        classification_weight: float = 0.0,
    ) -> None:
        super().__init__()
        self.beta, self.eta, self.entropy_weight = beta, eta, entropy_weight
        self.cv_weight, self.free_bits = cv_weight, free_bits
        self.clusters_per_class = clusters_per_class
        self.classification_weight = classification_weight
        self.register_buffer("kl_weight", torch.ones(()), persistent=False)

    def observe(self, out: ModelOutput, labels: Tensor) -> tuple[ModelOutput, Tensor]:
        """``observe_labels`` with this loss's clusters per class."""
        return observe_labels(out, labels, self.clusters_per_class)

    def forward(
        self,
        terms: ELBOTerms | ModelOutput | TwoLayerOutput,
        labels: Tensor | None = None,
        class_log_prob: Tensor | None = None,
    ) -> Tensor:
        """Mean loss over the rows (axis 0): a scalar, or one per restart for terms of
        shape (n, restarts) from stacked restarts. Takes the ELBO's terms, or the model
        output they are computed from. With ``labels`` (-1: unlabelled) the terms are
        those of the observed output and ``class_log_prob`` log q(c|x) (``observe``):
        the labelled rows' losses add -c log q(c|x)."""
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
        if labels is not None:  # - c log q(c_i|x_i), 0 on unlabelled rows
            per_example = per_example - self.classification_weight * class_log_prob
        return per_example.mean(0)
