"""``n_init`` restarts trained at once, as one module with stacked (batched) weights.

Every parameter of R ``MixtureVAE`` replicas is stacked along a leading axis of length R,
and one forward pass evaluates all of them with ``torch.func.vmap`` over
``functional_call`` of a single weightless replica: each matmul of the model becomes one
batched matmul over the restarts, so R small steps cost about one step of R-fold work.

The restarts stay independent. Their losses add, so each restart's gradient is that of
its own loss; Adam's update is elementwise, so each restart moves exactly as it would
alone. Each restart draws its initialization, data order, binarization and noise from
generators seeded as a lone ``MixtureVAENet`` with its seed would, in the same order: the
stacked restarts equal independent fits up to floating-point rounding. Batches are laid
out (rows, restarts, ...), so skorch counts rows per batch as usual.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from skorch.callbacks import Callback, GradientNormClipping, PassthroughScoring
from skorch.history import History
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap

from ._model import MixtureVAE, ModelOutput, model_class
from ._net import MixtureVAENet, TablePrintLog, TensorBatches, stream_generator


class StackedMixtureVAE(nn.Module):
    """R ``MixtureVAE`` replicas with stacked parameters, evaluated in one vmapped pass.

    Parameters
    ----------
    n_restarts : int
        Number R of replicas.
    **model_kwargs
        Arguments of ``MixtureVAE`` (the same for every replica); with
        ``variant="dilokthanakul"``, of the two-layer ``DilokthanakulGMVAE``.
    """

    def __init__(self, n_restarts: int, **model_kwargs: Any) -> None:
        super().__init__()
        self.n_restarts = n_restarts
        self.model_kwargs = model_kwargs
        self.model_class = model_class(model_kwargs.get("variant", "gmvae"))
        replicas = [self.model_class(**model_kwargs) for _ in range(n_restarts)]
        params, _ = stack_module_state(replicas)  # name -> (R, ...); the model has no buffers
        self.names = list(params)  # in the replica's order, so optimizer states line up
        for name, stacked in params.items():
            self.register_parameter(name.replace(".", "__"), nn.Parameter(stacked.detach()))
        # The replica that vmap calls, without weights of its own; in a tuple, so that it
        # is not a submodule (its parameters are the stacked ones).
        self._replica = (replicas[0].to("meta"),)

    @property
    def replica(self) -> MixtureVAE:
        return self._replica[0]

    def stacked_parameters(self) -> dict[str, Tensor]:
        """The (R, ...) parameters, by the replica's parameter names."""
        return {name: getattr(self, name.replace(".", "__")) for name in self.names}

    def train(self, mode: bool = True) -> StackedMixtureVAE:
        super().train(mode)
        self.replica.train(mode)  # draw_training_inputs binarizes in training mode only
        return self

    def reset_parameters(self, generators: Sequence[torch.Generator]) -> None:
        """Initialize replica r exactly as ``MixtureVAE.reset_parameters(generators[r])``."""
        with torch.no_grad():
            for r, generator in enumerate(generators):
                fresh = self.model_class(**self.model_kwargs)
                fresh.reset_parameters(generator)
                for name, param in self.stacked_parameters().items():
                    param[r].copy_(fresh.get_parameter(name))

    def restart_state(self, r: int) -> dict[str, Tensor]:
        """The state dict of replica ``r``, for a ``MixtureVAE``."""
        return {name: p[r].detach().clone() for name, p in self.stacked_parameters().items()}

    def load_restart_states(self, states: Sequence[dict[str, Tensor]]) -> None:
        """Make replica r the ``MixtureVAE`` whose state dict is ``states[r]``."""
        with torch.no_grad():
            for name, param in self.stacked_parameters().items():
                param.copy_(torch.stack([state[name] for state in states]))

    def draw_training_inputs(
        self, x: Tensor, generators: Sequence[torch.Generator]
    ) -> tuple[Tensor, Tensor]:
        """``MixtureVAE.draw_training_inputs`` for each restart's rows ``x[:, r]`` from its
        generator; x is (n, R, D), the results (n, R, D) and (n, R, K, L)."""
        generators = generators or [None] * self.n_restarts  # None: the global RNG
        draws = [self.replica.draw_training_inputs(x[:, r], g) for r, g in enumerate(generators)]
        x_drawn, eps = zip(*draws, strict=True)
        return torch.stack(x_drawn, 1), torch.stack(eps, 1)

    def forward(self, x: Tensor, eps: Tensor) -> ModelOutput:
        """Every replica's ELBO terms: (n, R, D) rows and (n, R, K, L) noise give a
        ``ModelOutput`` of (n, R, K) tensors."""

        def one(params: dict[str, Tensor], x: Tensor, eps: Tensor) -> ModelOutput:
            return functional_call(self.replica, params, (x, eps))

        return vmap(one, in_dims=(0, 1, 1), out_dims=1)(self.stacked_parameters(), x, eps)


class StackedTensorBatches(TensorBatches):
    """``TensorBatches`` for R restarts, each with its own order from its own generator:
    batches of shape (batch, R, D)."""

    def order(self) -> Tensor:
        """(n, R) row indices in batch order; each generator draws what a lone
        ``TensorBatches`` would (one permutation per epoch)."""
        if not self.shuffle:
            return super().order()[:, None].expand(-1, len(self.generator))
        device = self.X.device
        return torch.stack(
            [torch.randperm(len(self.X), generator=g, device=device) for g in self.generator], 1
        )


class StackedGradientNormClipping(GradientNormClipping):
    """skorch's ``GradientNormClipping`` for stacked restarts: each restart's gradient is
    clipped by its own norm, as ``torch.nn.utils.clip_grad_norm_`` would clip it alone,

        g_r <- g_r * min(1, max_norm / (||g_r|| + 1e-6)).

    Tensor arithmetic only (no host sync), so a CUDA graph captures it with the step.
    """

    graph_safe = True

    def on_grad_computed(self, _: Any, named_parameters: Any, **kwargs: Any) -> None:
        if self.gradient_clip_value is None:
            return
        grads = [p.grad for _, p in named_parameters if p.grad is not None]
        order = self.gradient_clip_norm_type
        per_tensor = torch.stack([g.reshape(len(g), -1).norm(order, dim=1) for g in grads])
        norms = per_tensor.norm(order, dim=0)
        scale = (self.gradient_clip_value / (norms + 1e-6)).clamp(max=1.0)
        for g in grads:
            g.mul_(scale.view(-1, *[1] * (g.ndim - 1)))


class RestartScoring(PassthroughScoring):
    """``PassthroughScoring`` of per-restart values: each restart's batch-size-weighted
    epoch mean, recorded as a list (no "best" flag)."""

    def __init__(self, name: str) -> None:
        super().__init__(name, lower_is_better=None, on_train=True)

    def get_avg_score(self, history: History) -> list[float]:
        rows = history[-1, "batches", :, ["train_batch_size", self.name]]
        weights, scores = zip(*rows, strict=True)
        return np.average(np.asarray(scores), axis=0, weights=weights).tolist()


class RestartPrintLog(TablePrintLog):
    """The epochs' table (``TablePrintLog``) showing per-restart lists as
    ``v1 / v2 / ...``."""

    def format_row(self, row: dict, key: str, color: str) -> str:
        value = row[key]
        if isinstance(value, list):
            return " / ".join(f"{v:{self.floatfmt}}" for v in value)
        return super().format_row(row, key, color)


class StackedMixtureVAENet(MixtureVAENet):
    """A ``MixtureVAENet`` training R restarts at once (module ``StackedMixtureVAE``,
    iterator ``StackedTensorBatches``, ``random_state`` a list of R seeds).

    Its history records, per batch and per epoch, ``train_loss`` (the sum of the
    restarts' losses) and lists with one value per restart: ``train_elbo``,
    ``train_entropy`` and ``train_restart_loss``. ``restart_into`` turns one restart into
    a plain ``MixtureVAENet``.
    """

    def _generators(self, stream: int, device: Any) -> list[torch.Generator]:
        """One generator per restart: each restart's stream is that of a lone net with
        its seed."""
        return [stream_generator(seed, stream, device) for seed in self.random_state]

    def _generator_states(self) -> list[Tensor]:
        return [g.get_state() for g in self.generator_]

    def _set_generator_states(self, states: Sequence[Tensor]) -> None:
        for generator, state in zip(self.generator_, states, strict=True):
            generator.set_state(state)

    @property
    def _default_callbacks(self) -> list[tuple[str, Any]]:
        per_restart = ("train_elbo", "train_entropy", "train_restart_loss")
        replaced = {*per_restart, "print_log"}
        return [
            *[(n, cb) for n, cb in super()._default_callbacks if n not in replaced],
            *[(name, RestartScoring(name)) for name in per_restart],
            ("print_log", RestartPrintLog(keys_ignored=["train_loss"])),
        ]

    def restart_training_state(self, r: int) -> dict[str, Any]:
        """Restart r's ``training_state``, as a lone ``MixtureVAENet`` with its seed would
        hold it: weights, optimizer state, training random stream."""
        optimizer = self.optimizer_state()
        optimizer["state"] = {
            i: {key: value[r].clone() if value.ndim else value.clone() for key, value in s.items()}
            for i, s in optimizer["state"].items()
        }
        return {
            "module": self.module_.restart_state(r),
            "optimizer": optimizer,
            "generator": self.generator_[r].get_state(),
        }

    def load_restart_states(self, states: Sequence[dict[str, Any]]) -> None:
        """The inverse of ``restart_training_state``: restart r takes ``states[r]``, the
        ``training_state`` of a lone net with its seed. The restarts must have taken the
        same number of optimizer steps (they share Adam's step count)."""
        self.module_.load_restart_states([state["module"] for state in states])
        optimizer = copy.deepcopy(states[0]["optimizer"])  # param groups, scalar entries
        for i, entry in optimizer["state"].items():
            for key, value in entry.items():
                values = [state["optimizer"]["state"][i][key] for state in states]
                if value.ndim:
                    entry[key] = torch.stack(values)
                elif any(not torch.equal(v, value) for v in values):
                    raise ValueError(f"the restarts differ in the optimizer's {key!r}.")
        self.optimizer_.load_state_dict(optimizer)
        self._set_generator_states([state["generator"] for state in states])

    def restart_into(self, r: int, net: MixtureVAENet) -> MixtureVAENet:
        """Make ``net`` (a ``MixtureVAENet`` of the same settings, seeded with restart r's
        seed) restart ``r``: its weights, optimizer state, history and random stream.
        Training ``net`` further continues restart r as a lone net would."""
        net.initialize()
        net.load_training_state(self.restart_training_state(r))
        net.history = restart_history(self.history, r)
        return net


class PerRestart(Callback):
    """Lone nets that follow the restarts of a stacked net epoch by epoch, each with
    callbacks of its own (its monitor, history file, checkpoint, ...).

    ``nets[r]`` is an initialized ``MixtureVAENet`` with restart r's settings and seed,
    ``callbacks[r]`` its callbacks. :meth:`resume` starts them (their ``on_train_begin``,
    in which a ``RunCheckpoint`` resumes its run) and gives the stacked net the states
    and histories they start from. After every epoch of the stacked net (after its
    divergence guard: an undone epoch reaches no restart), ``nets[r]`` takes restart r's
    training state and epoch record, and ``callbacks[r]`` run ``on_epoch_end`` on it,
    exactly as they would after an epoch of restart r trained alone. Only the epoch-level
    events are forwarded (``on_train_begin``, ``on_epoch_end``, ``on_train_end``).
    """

    def __init__(self, nets: Sequence[MixtureVAENet], callbacks: Sequence[Sequence]) -> None:
        self.nets = nets
        self.callbacks = callbacks

    def initialize(self) -> PerRestart:
        for callbacks in self.callbacks:
            for callback in callbacks:
                callback.initialize()
        return self

    def _notify(self, method: str, **kwargs: Any) -> None:
        for net, callbacks in zip(self.nets, self.callbacks, strict=True):
            for callback in callbacks:
                getattr(callback, method)(net, **kwargs)

    def resume(self, net: StackedMixtureVAENet, X: Any = None) -> None:
        """Start every restart's callbacks and put the stacked ``net`` (initialized) in
        the restarts' states, with their histories."""
        self._notify("on_train_begin", X=X)
        net.load_restart_states([lone.training_state() for lone in self.nets])
        net.history = stack_histories([lone.history for lone in self.nets])

    def on_epoch_end(self, net: StackedMixtureVAENet, **kwargs: Any) -> None:
        for r, lone in enumerate(self.nets):
            lone.load_training_state(net.restart_training_state(r))
            row = restart_history(History([net.history[-1]]), r)[0]
            if "train_loss" in row:
                losses = [old["train_loss"] for old in lone.history if "train_loss" in old]
                row["train_loss_best"] = row["train_loss"] < min(losses, default=math.inf)
            lone.history.append(row)
        self._notify("on_epoch_end")

    def on_train_end(self, net: StackedMixtureVAENet, **kwargs: Any) -> None:
        self._notify("on_train_end")


def stack_histories(histories: Sequence[History]) -> History:
    """A stacked net's history from its restarts' (of equal lengths, per-epoch values
    only): each value a list over the restarts, ``train_restart_loss`` the restarts'
    losses and ``train_loss`` their sum."""
    rows = []
    for epoch, records in enumerate(zip(*histories, strict=True), start=1):
        keys = [k for k in records[0] if k != "batches" and all(k in r for r in records)]
        row: dict[str, Any] = {"epoch": epoch, "batches": []}
        for key in keys:
            if key != "epoch" and not key.endswith("_best"):
                row[key] = [r[key] for r in records]
        if "train_loss" in row:
            row["train_restart_loss"] = row["train_loss"]
            row["train_loss"] = float(sum(row["train_restart_loss"]))
        rows.append(row)
    return History(rows)


def restart_history(history: History, r: int) -> History:
    """Restart ``r``'s history from a stacked net's: every per-restart list replaced by its
    r-th value, ``train_loss`` (and ``train_loss_best``) by the restart's own loss."""
    rows = copy.deepcopy(list(history))
    best = math.inf
    for row in rows:
        for record in (row, *row.get("batches", ())):
            for key, value in record.items():
                if isinstance(value, list) and key != "batches":
                    record[key] = value[r]
            if "train_restart_loss" in record:
                record["train_loss"] = record.pop("train_restart_loss")
        if "train_loss" in row:
            row["train_loss_best"] = row["train_loss"] < best
            best = min(best, row["train_loss"])
    return History(rows)
