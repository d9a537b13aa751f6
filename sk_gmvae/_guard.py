"""``DivergenceGuard``: the training-internal callback that undoes non-finite steps."""

from __future__ import annotations

import copy
from typing import Any

import torch
from skorch.callbacks import Callback


class DivergenceGuard(Callback):
    """Undo training steps whose loss is not finite; lower the learning rate or stop.

    At the start of training and after every epoch whose parameters are all finite, it
    keeps a copy of the module's and optimizer's state. When a step's loss is NaN or
    infinite, it restores that copy, drops the step from the history, and either
    multiplies the learning rate by ``lr_factor`` and goes on (at most ``max_recoveries``
    times) or stops training, leaving the last finite model. ``GMVAEClustering`` always
    uses one, and warns when it stopped.

    Parameters
    ----------
    max_recoveries : int, default=3
        Restores with a lower learning rate before giving up.
    lr_factor : float, default=0.5
        Learning-rate multiplier at each recovery.
    """

    def __init__(self, max_recoveries: int = 3, lr_factor: float = 0.5) -> None:
        self.max_recoveries = max_recoveries
        self.lr_factor = lr_factor

    def initialize(self) -> DivergenceGuard:
        self.recoveries_ = 0
        self.stopped_ = False
        self._good: dict | None = None
        return self

    def _keep(self, net: Any) -> None:
        if all(torch.isfinite(p).all() for p in net.module_.parameters()):
            self._good = {
                "module": copy.deepcopy(net.module_.state_dict()),
                "optimizer": copy.deepcopy(net.optimizer_.state_dict()),
            }

    def on_train_begin(self, net: Any, **kwargs: Any) -> None:
        self._good = None

    def on_epoch_begin(self, net: Any, **kwargs: Any) -> None:
        # Kept at the first epoch's start rather than at on_train_begin, so that a state
        # other callbacks load when training begins (a resumed checkpoint) is the one kept.
        if self._good is None:
            self._base_lr = [group["lr"] for group in net.optimizer_.param_groups]
            self._keep(net)

    def on_epoch_end(self, net: Any, **kwargs: Any) -> None:
        self._keep(net)

    def on_batch_end(
        self, net: Any, batch: Any = None, training: bool = False, **kwargs: Any
    ) -> None:
        loss = kwargs.get("loss")
        if not training or loss is None or bool(torch.isfinite(loss)):
            return
        net.module_.load_state_dict(self._good["module"])
        net.optimizer_.load_state_dict(self._good["optimizer"])
        del net.history[-1]["batches"][-1]  # the diverged step does not count
        if self.recoveries_ >= self.max_recoveries:
            self.stopped_ = True
            raise KeyboardInterrupt  # skorch ends fit() cleanly on it
        self.recoveries_ += 1
        for group, base in zip(net.optimizer_.param_groups, self._base_lr, strict=True):
            group["lr"] = base * self.lr_factor**self.recoveries_
        net.history.record("divergence_recoveries", self.recoveries_)
