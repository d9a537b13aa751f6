"""``DivergenceGuard``: the training-internal callback that undoes non-finite steps."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
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
        self._good: _Kept | None = None
        self._listed: tuple[Any, list[torch.Tensor]] | None = None
        self._carry_on = False
        return self

    def __getstate__(self) -> dict:
        # The kept copy and the listed tensors are the training's, not the fitted
        # model's: a pickle without them is half the size, and the next training keeps
        # a copy of its own at its first epoch.
        return {**self.__dict__, "_good": None, "_listed": None}

    def carry_on(self) -> None:
        """Let the next training of the net continue this one (a restart going on after
        its trial) rather than start a new one: the recoveries so far and the kept state
        stay, as if training had not paused."""
        self._carry_on = True

    def _module(self, net: Any) -> list[torch.Tensor]:
        """The module's tensors (:func:`_module_tensors`), listed once per training and
        module: walking the module tree every epoch cost ~0.7 ms, a twentieth of an
        epoch of one step."""
        if self._listed is None or self._listed[0] is not net.module_:
            self._listed = (net.module_, _module_tensors(net))
        return self._listed[1]

    def _keep(self, net: Any) -> None:
        module = self._module(net)
        weights = [t for t in module if t.is_floating_point()]
        # max |w| of each tensor: NaN or inf exactly when one of its values is not finite.
        if torch.stack(torch._foreach_norm(weights, float("inf"))).isfinite().all():  # one sync
            self._good = _Kept.copy(self._good, module, _optimizer_state(net.optimizer_))

    def on_train_begin(self, net: Any, **kwargs: Any) -> None:
        if self._carry_on:  # the same training, going on
            self._carry_on = False
            return
        # Per training (a warm start is one): its recoveries.
        self._good = None
        self._listed = None
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
        self._good.restore(net)
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


def _module_tensors(net: Any) -> list[torch.Tensor]:
    """The module's parameters and buffers, in a fixed order."""
    return [t.detach() for t in (*net.module_.parameters(), *net.module_.buffers())]


def _optimizer_state(optimizer: torch.optim.Optimizer) -> list[tuple[int, str, Any]]:
    """The optimizer's per-parameter state (Adam's step and moments) as (index of the
    parameter in its groups, key, value), in a fixed order."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    return (
        [(i, key, value) for i, p in enumerate(params) for key, value in optimizer.state[p].items()]
        if optimizer.state
        else []
    )


@dataclass
class _Kept:
    """A copy of the module's tensors and the optimizer's state, as flat lists.

    From the second epoch on it is copied into in place, one ``_foreach_copy_`` per
    list: no allocation and no walk over nested state dicts (a copy of the state dicts
    every epoch took ~5 ms, ~20 % of a fit on iris, where an epoch is two steps).
    """

    module: list[torch.Tensor]
    optimizer: list[tuple[int, str, Any]]
    source: list[torch.Tensor] | None = None  # the live tensors last copied from

    @classmethod
    def copy(
        cls, kept: _Kept | None, module: list[torch.Tensor], state: list[tuple[int, str, Any]]
    ) -> _Kept:
        """``module`` and ``state`` copied, into ``kept``'s tensors where their layouts
        match (the previous epoch's copy), else into new ones."""
        if kept is None or (kept.source is not module and not _same_layout(kept.module, module)):
            kept = cls([t.clone() for t in module], [])
        else:  # the same tensors as last time (so the same layout), or the same layout
            torch._foreach_copy_(kept.module, module)
        kept.source = module
        old = [v for _, _, v in kept.optimizer]
        new = [v for _, _, v in state]
        keys = [(i, key) for i, key, _ in state]
        if keys == [(i, key) for i, key, _ in kept.optimizer] and _same_layout(old, new):
            if old:
                torch._foreach_copy_(old, new)
        else:
            kept.optimizer = [(i, key, _clone(v)) for i, key, v in state]
        return kept

    def restore(self, net: Any) -> None:
        """Copy the kept state into the module's tensors, and make a copy of it the
        optimizer's state (the optimizer updates its state in place, and the kept one
        must survive for a next recovery)."""
        with torch.no_grad():
            torch._foreach_copy_(_module_tensors(net), self.module)
        optimizer = net.optimizer_
        params = [p for group in optimizer.param_groups for p in group["params"]]
        optimizer.state.clear()
        for i, key, value in self.optimizer:
            optimizer.state[params[i]][key] = _clone(value)


def _clone(value: Any) -> Any:
    """A copy of a tensor, or of another state value."""
    return value.detach().clone() if isinstance(value, torch.Tensor) else copy.deepcopy(value)


def _same_layout(kept: list[Any], live: list[Any]) -> bool:
    """Whether two lists hold tensors of the same shapes, dtypes and devices, in order."""
    return len(kept) == len(live) and all(
        isinstance(a, torch.Tensor)
        and isinstance(b, torch.Tensor)
        and (a.shape, a.dtype, a.device) == (b.shape, b.dtype, b.device)
        for a, b in zip(kept, live, strict=True)
    )


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
