"""skorch glue: the ``NeuralNet`` that trains a ``MixtureVAE`` on the (weighted) negative ELBO."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
from skorch import NeuralNet
from skorch.callbacks import PassthroughScoring

from ._objective import elbo_terms


class TensorBatches:
    """skorch iterator over a dataset whose X is one tensor: shuffled index slices.

    The data stay where they are (on the training device, put there once), and each batch
    is one gather ``X[idx]``, instead of a DataLoader indexing and collating row by row.
    Used as ``iterator_train``; yields ``(X_batch, None)``.
    """

    def __init__(self, dataset: Any, batch_size: int = 128, shuffle: bool = False, **_: Any):
        self.X = dataset.X
        self.batch_size = batch_size
        self.shuffle = shuffle

    def __len__(self) -> int:
        return math.ceil(len(self.X) / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, None]]:
        n = len(self.X)
        if not self.shuffle:
            for start in range(0, n, self.batch_size):
                yield self.X[start : start + self.batch_size], None
            return
        order = torch.randperm(n, device=self.X.device)
        for start in range(0, n, self.batch_size):
            yield self.X[order[start : start + self.batch_size]], None


class MixtureVAENet(NeuralNet):
    """A skorch ``NeuralNet`` for unsupervised mixture VAEs.

    The module's output (a ``ModelOutput``) carries every term of the ELBO, so the loss
    needs no target: ``fit(X)`` with ``y=None``. Besides ``train_loss`` (the criterion,
    the negative ELBO by default) the history records, per batch and per epoch,
    ``train_elbo`` (the plain ELBO, nats) and ``train_entropy`` (H(Y|X), nats).

    ``precision="bfloat16"`` runs the training forward pass under bf16 autocast (the
    matmuls in bf16; the densities, the ELBO and the optimizer stay float32).
    """

    def __init__(self, *args: Any, precision: str = "float32", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.precision = precision

    def infer(self, x: Any, **fit_params: Any) -> Any:
        device_type = torch.device(self.device).type
        with torch.autocast(device_type, torch.bfloat16, enabled=self.precision == "bfloat16"):
            return super().infer(x, **fit_params)

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
