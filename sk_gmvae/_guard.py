"""``DivergenceGuard``: the training-internal callback that undoes non-finite steps."""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from skorch.callbacks import Callback, PassthroughScoring


class DivergenceGuard(Callback):
    """Undo training steps whose loss is not finite; lower the learning rate or stop.

    At the start of training and after every epoch whose parameters are all finite, it
    keeps a copy of the module's and optimizer's state. When a step's loss was NaN or
    infinite (checked at the end of each epoch, from the losses the epoch's single
    device-to-host transfer brought: no sync per step), it restores that copy, which
    undoes the whole epoch: the epoch's steps are dropped from the history and its
    training values become NaN (it does not count as a complete epoch). Then it either
    multiplies the learning rate (the undone epoch's, so that an exponential decay goes
    on from there; a scheduler that sets the rate from scratch every step, such as
    ``LambdaLR``, overrides it) by ``lr_factor`` and goes on (at most ``max_recoveries``
    times) or stops training, leaving the last finite model. ``GMVAEClustering`` always
    uses one, and warns when it stopped.

    Parameters
    ----------
    max_recoveries : int, default=3
        Restores with a lower learning rate before giving up.
    lr_factor : float, default=0.5
        Learning-rate multiplier at each recovery.
    """

    _carry_on = False  # guards pickled before carry_on existed have none of their own

    def __init__(self, max_recoveries: int = 3, lr_factor: float = 0.5) -> None:
        self.max_recoveries = max_recoveries
        self.lr_factor = lr_factor

    def initialize(self) -> DivergenceGuard:
        self.recoveries_ = 0
        self.stopped_ = False
        self._good: dict | None = None
        self._carry_on = False
        return self

    def carry_on(self) -> None:
        """Let the next training of the net continue this one (a restart going on after
        its trial) rather than start a new one: the recoveries so far and the kept state
        stay, as if training had not paused."""
        self._carry_on = True

    def _keep(self, net: Any) -> None:
        finite = torch.stack([torch.isfinite(p).all() for p in net.module_.parameters()])
        if finite.all():  # one sync
            state = {"module": net.module_.state_dict(), "optimizer": net.optimizer_.state_dict()}
            self._good = _copy_into(self._good, state)

    def on_train_begin(self, net: Any, **kwargs: Any) -> None:
        if self._carry_on:  # the same training, going on
            self._carry_on = False
            return
        # Per training (a warm start is one): its recoveries.
        self._good = None
        self.recoveries_ = 0
        self.stopped_ = False

    def on_epoch_begin(self, net: Any, **kwargs: Any) -> None:
        # Kept at the first epoch's start rather than at on_train_begin, so that a state
        # other callbacks load when training begins (a resumed checkpoint) is the one kept.
        if self._good is None:
            self._keep(net)

    def on_epoch_end(self, net: Any, **kwargs: Any) -> None:
        # The steps' losses reach the host once per epoch (``MixtureVAENet.run_single_epoch``),
        # so a non-finite step is caught at the end of its epoch, from those values.
        if all(_finite(b.get("train_loss")) for b in net.history[-1]["batches"]):
            self._keep(net)
        else:
            self._recover(net)

    def _recover(self, net: Any) -> None:
        """Undo the epoch that had a non-finite step: restore the last finite state (from
        before the epoch, so all its steps are undone), drop the epoch's steps from the
        history and rescore it (NaN), then lower the learning rate or stop."""
        rates = [group["lr"] for group in net.optimizer_.param_groups]  # the epoch's
        net.module_.load_state_dict(self._good["module"])  # copied into the weights
        # A copy: the optimizer adopts the state dict's tensors as they are and updates
        # them in place, and the kept state must survive for a next recovery.
        net.optimizer_.load_state_dict(copy.deepcopy(self._good["optimizer"]))
        del net.history[-1]["batches"][:]  # the state is from before them all
        _rescore(net)
        if self.recoveries_ >= self.max_recoveries:
            self.stopped_ = True
            raise KeyboardInterrupt  # skorch ends fit() cleanly on it
        self.recoveries_ += 1
        # lr = (the undone epoch's rate) * lr_factor; a chainable schedule (the
        # exponential decay) goes on from there: n recoveries multiply it by lr_factor**n.
        for group, rate in zip(net.optimizer_.param_groups, rates, strict=True):
            group["lr"] = rate * self.lr_factor
        net.history.record("divergence_recoveries", self.recoveries_)


def _copy_into(kept: Any, state: Any) -> Any:
    """A deep copy of ``state`` (nested dicts, lists and tuples of tensors and values)
    that reuses ``kept``'s tensors, copied into in place, wherever ``kept`` (the previous
    copy) has one of the same shape, dtype and device: from the second epoch on, keeping
    the state allocates nothing (a deep copy every epoch was ~5 % of a small net's fit)."""
    if isinstance(state, torch.Tensor):
        layout = (state.shape, state.dtype, state.device)
        if isinstance(kept, torch.Tensor) and (kept.shape, kept.dtype, kept.device) == layout:
            return kept.copy_(state)
        return state.detach().clone()
    if isinstance(state, dict):  # an OrderedDict stays one, with its _metadata (versions)
        kept = kept if isinstance(kept, dict) else {}
        copied = type(state)((key, _copy_into(kept.get(key), v)) for key, v in state.items())
        if hasattr(state, "_metadata"):
            copied._metadata = copy.deepcopy(state._metadata)
        return copied
    if isinstance(state, list | tuple):
        if not (isinstance(kept, list | tuple) and len(kept) == len(state)):
            kept = [None] * len(state)
        copies = [_copy_into(k, v) for k, v in zip(kept, state, strict=True)]
        return copies if isinstance(state, list) else tuple(copies)
    return copy.deepcopy(state)


def _finite(value: Any) -> bool:
    """Whether a recorded loss (a float, or None when missing) is finite."""
    return value is None or math.isfinite(value)


def _rescore(net: Any) -> None:
    """Record the undone epoch's training scores as NaN (``PassthroughScoring``'s
    batch-size-weighted means, of no step): callbacks that read them after the guard
    (``EarlyStopping``) see an epoch that did not improve, not a missing key."""
    row = net.history[-1]
    for _, callback in net.callbacks_:
        if isinstance(callback, PassthroughScoring) and callback.on_train:
            row[callback.name] = math.nan
            row.pop(f"{callback.name}_best", None)
