"""skorch glue: the ``NeuralNet`` that trains a ``MixtureVAE`` on the (weighted) negative ELBO."""

from __future__ import annotations

from typing import Any

import torch
from skorch import NeuralNet
from skorch.callbacks import PassthroughScoring

from ._objective import elbo_terms


class MixtureVAENet(NeuralNet):
    """A skorch ``NeuralNet`` for unsupervised mixture VAEs.

    The module's output (a ``ModelOutput``) carries every term of the ELBO, so the loss
    needs no target: ``fit(X)`` with ``y=None``. Besides ``train_loss`` (the criterion,
    the negative ELBO by default) the history records, per batch and per epoch,
    ``train_elbo`` (the plain ELBO, nats) and ``train_entropy`` (H(Y|X), nats).
    """

    @property
    def _default_callbacks(self) -> list[tuple[str, Any]]:
        return [
            *super()._default_callbacks,
            ("train_elbo", PassthroughScoring(name="train_elbo", on_train=True)),
            ("train_entropy", PassthroughScoring(name="train_entropy", on_train=True)),
        ]

    def get_loss(self, y_pred, y_true=None, X=None, training=False) -> torch.Tensor:  # noqa: ANN001
        terms = elbo_terms(y_pred)
        prefix = "train" if training else "valid"
        # One device sync for both logged values.
        elbo, entropy = torch.stack([terms.elbo.mean(), terms.entropy.mean()]).detach().tolist()
        self.history.record_batch(f"{prefix}_elbo", elbo)
        self.history.record_batch(f"{prefix}_entropy", entropy)
        return self.criterion_.loss(terms)
