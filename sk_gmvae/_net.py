"""skorch glue: the ``NeuralNet`` that trains a ``MixtureVAE`` on the (weighted) negative ELBO."""

from __future__ import annotations

import contextlib
import math
import re
import sys
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from skorch import NeuralNet
from skorch.callbacks import PassthroughScoring, PrintLog
from skorch.dataset import get_len
from skorch.utils import to_tensor

from ._graph import GraphedStep, uses_cuda_graph
from ._objective import elbo_terms


def _base(dataset: Any) -> Any:
    """The dataset a ``Subset`` is taken from, or the dataset itself."""
    return dataset.dataset if isinstance(dataset, torch.utils.data.Subset) else dataset


def dataset_tensor(dataset: Any, name: str = "X") -> torch.Tensor | None:
    """The X (or y: ``name``) tensor of a skorch ``Dataset``, or its rows in a
    ``Subset`` of one (the parts that ``ValidSplit`` makes); None for a missing y."""
    if isinstance(dataset, torch.utils.data.Subset):
        values = getattr(dataset.dataset, name, None)
        if values is None:
            return None
        rows = torch.as_tensor(dataset.indices, device=values.device)
        return values[rows]
    return getattr(dataset, name, None)


class TensorBatches:
    """skorch iterator over a dataset whose X is one tensor: shuffled index slices.

    The data stay where they are (on the training device, put there once), and each batch
    is one gather ``X[idx]``, instead of a DataLoader indexing and collating row by row.
    Used as ``iterator_train``; yields ``(X_batch, None)``, or ``(X_batch, y_batch)``
    for a dataset with labels y (-1: unlabelled). As with a DataLoader, the order is
    drawn from ``generator`` (by default the global torch RNG).

    With ``labelled_per_batch`` (and shuffling) the few labelled rows are mixed into
    every batch: each batch is that many labelled rows and ``batch_size`` minus that
    many unlabelled ones; an epoch passes once over the unlabelled rows, in a fresh
    random order, and takes the labelled rows in turn from successive random
    permutations of them, so that each is used about as often as every other.
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int = 128,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        labelled_per_batch: int | None = None,
        **_: Any,
    ) -> None:
        self.X = dataset_tensor(dataset)
        self.y = dataset_tensor(dataset, "y")
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.generator = generator
        self.labelled_per_batch = labelled_per_batch if self.y is not None else None

    @property
    def _mixes(self) -> bool:
        """Whether the batches mix a fixed number of labelled rows into each."""
        return bool(self.labelled_per_batch) and self.shuffle

    def __len__(self) -> int:
        if self._mixes:
            unlabelled = int((self.y < 0).sum())
            return math.ceil(unlabelled / (self.batch_size - self.labelled_per_batch))
        return math.ceil(len(self.X) / self.batch_size)

    def order(self) -> torch.Tensor:
        """Row indices in batch order: a fresh permutation per epoch when shuffling."""
        n, device = len(self.X), self.X.device
        if not self.shuffle:
            return torch.arange(n, device=device)
        return torch.randperm(n, generator=self.generator, device=device)

    def _permuted(self, rows: torch.Tensor) -> torch.Tensor:
        return rows[torch.randperm(len(rows), generator=self.generator, device=rows.device)]

    def mixed_order(self) -> torch.Tensor:
        """Row indices in batch order when labelled rows are mixed into every batch
        (``labelled_per_batch``): each batch's labelled rows, then its unlabelled ones."""
        n_labelled, batch = self.labelled_per_batch, self.batch_size
        labelled = self._permuted((self.y >= 0).nonzero().squeeze(1))
        unlabelled = self._permuted((self.y < 0).nonzero().squeeze(1))
        n_batches = len(self)
        # Labelled rows in turn from successive permutations, n_labelled per batch.
        laps = [labelled]
        while sum(map(len, laps)) < n_batches * n_labelled:
            laps.append(self._permuted(laps[0]))
        taken = torch.cat(laps)[: n_batches * n_labelled].view(n_batches, n_labelled)
        parts = [
            torch.cat(
                [taken[b], unlabelled[b * (batch - n_labelled) : (b + 1) * (batch - n_labelled)]]
            )
            for b in range(n_batches)
        ]
        return torch.cat(parts)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
        order = self.mixed_order() if self._mixes else self.order()
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            yield self.X[rows], None if self.y is None else self.y[rows]


# Process-wide torch settings changed during fits, shared by fits running in threads.
_GLOBAL_STATE_LOCK = threading.Lock()
_tf32_fits = 0
_tf32_saved = "highest"


@contextlib.contextmanager
def matmul_precision(precision: str, device: Any) -> Iterator[None]:
    """For ``precision="tf32"`` on CUDA: float32 matmuls on TF32 tensor cores (10-bit
    mantissa, float32 range) inside the block. The process-wide setting is switched on by
    the first such block and restored when the last one ends (blocks may overlap, in
    threads)."""
    global _tf32_fits, _tf32_saved
    if precision != "tf32" or torch.device(device).type != "cuda":
        yield
        return
    with _GLOBAL_STATE_LOCK:
        if _tf32_fits == 0:
            _tf32_saved = torch.get_float32_matmul_precision()
            torch.set_float32_matmul_precision("high")
        _tf32_fits += 1
    try:
        yield
    finally:
        with _GLOBAL_STATE_LOCK:
            _tf32_fits -= 1
            if _tf32_fits == 0:
                torch.set_float32_matmul_precision(_tf32_saved)


def stream_generator(seed: int, stream: int, device: Any) -> torch.Generator:
    """A generator on ``device`` for stream ``stream`` of ``seed``: the streams of one seed
    are independent (``SeedSequence``), and the same seed gives the same draws."""
    state = np.random.SeedSequence(int(seed)).generate_state(3)[stream]
    return torch.Generator(device).manual_seed(int(state))


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class TablePrintLog(PrintLog):
    """skorch's table of the epochs (``GMVAEClustering(verbose=2)``), with the colours of
    the best values on a terminal only: in a log file, a pipe or CI they would be escape
    sequences."""

    def on_epoch_end(self, net: Any, **kwargs: Any) -> None:
        # skorch formats the table every epoch and then drops it when the net is silent:
        # ~1.5 ms an epoch, a tenth of a fit on a few rows (an epoch of one step).
        if net.verbose or self.sink is not print:
            super().on_epoch_end(net, **kwargs)

    def format_row(self, row: dict, key: str, color: str) -> Any:
        text = super().format_row(row, key, color)
        if isinstance(text, str) and not sys.stdout.isatty():
            return _ANSI.sub("", text)
        return text


class MixtureVAENet(NeuralNet):
    """A skorch ``NeuralNet`` for unsupervised mixture VAEs.

    The module's output (a ``ModelOutput``) carries every term of the ELBO, so the loss
    needs no target: ``fit(X)`` with ``y=None``. Besides ``train_loss`` (the criterion,
    the negative ELBO by default) the history records, per batch and per epoch,
    ``train_elbo`` (the plain ELBO, nats) and ``train_entropy`` (H(Y|X), nats).

    ``random_state`` seeds all of training's randomness through generators of the net's
    own (the global torch RNG is not used): the initialization, from a CPU generator (a
    seed gives the same initial weights on every device), and the data order, the
    binarization and the noise of z, from ``generator_`` on the training device.

    ``precision="bfloat16"`` runs the training forward pass under bf16 autocast (the
    matmuls in bf16; the densities, the ELBO and the optimizer stay float32);
    ``precision="tf32"`` lets CUDA run float32 matmuls on TF32 tensor cores during
    training (no effect on the CPU).

    ``cuda_graph`` (True, False or ``"auto"``) trains with the step captured as a CUDA
    graph where ``uses_cuda_graph`` allows it (``_graph.GraphedStep``). The first replay
    of each capture is checked against the eager step; a capture or a check that fails
    ends the graph for the rest of the training with a ``RuntimeWarning`` (``"auto"``)
    or raises (True).
    """

    def __init__(
        self,
        *args: Any,
        precision: str = "float32",
        random_state: Any = 0,
        cuda_graph: bool | str = "auto",
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.precision = precision
        self.random_state = random_state
        self.cuda_graph = cuda_graph

    def _generators(self, stream: int, device: Any) -> Any:
        """The generator of one of three independent streams of ``random_state`` (0:
        initialization, 1: training, 2: the validation split's noise)."""
        return stream_generator(self.random_state, stream, device)

    def initialize_module(self) -> MixtureVAENet:
        # Built on the CPU (skorch moves it to the device next). Constructing torch layers
        # draws default initial weights from the global RNG; the caller's state is put
        # back, and our own initialization replaces those weights.
        with _GLOBAL_STATE_LOCK, torch.random.fork_rng(devices=[]):
            super().initialize_module()
            self.module_.reset_parameters(self._generators(0, "cpu"))
        self.generator_ = self._generators(1, self.device)
        return self

    def training_state(self) -> dict[str, Any]:
        """What training needs to go on exactly from here: the module's weights, the
        optimizer's state and the training random stream (for a checkpoint)."""
        return {
            "module": self.module_.state_dict(),
            "optimizer": self.optimizer_state(),
            "generator": self._generator_states(),
        }

    def optimizer_state(self) -> dict[str, Any]:
        """The optimizer's state dict, device-neutral: without the ``capturable`` flag of
        a graphed fit (which turns it on again when it captures), so that a checkpoint of
        a CUDA-graph fit resumes on the CPU too."""
        state = self.optimizer_.state_dict()
        for group in state["param_groups"]:  # copies of the optimizer's groups
            if group.get("capturable"):
                group["capturable"] = False
        return state

    def load_training_state(self, state: dict[str, Any]) -> None:
        """Put the net back in a state given by ``training_state``."""
        self.module_.load_state_dict(state["module"])
        self.optimizer_.load_state_dict(state["optimizer"])
        self._set_generator_states(state["generator"])

    def _generator_states(self) -> Any:
        return self.generator_.get_state()

    def _set_generator_states(self, states: Any) -> None:
        self.generator_.set_state(states)

    def reseed(self, seed: int) -> None:
        """Start a new training random stream from ``seed`` (for further epochs of a
        trained net: a warm start)."""
        self.generator_.manual_seed(int(seed))

    def torch_compile(self, module: torch.nn.Module, name: str) -> torch.nn.Module:
        """With ``compile=True``, compile the module's training forward pass into
        ``forward_``; ``module_`` itself stays the plain module (its state dict, pickling
        and inference copies are unchanged)."""
        if name == "module":
            kwargs = self.get_params_for("compile")
            self.forward_ = torch.compile(module, **kwargs) if self.compile else module
        return module

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        # Device-bound generator and compiled code: rebuilt on unpickling.
        state.pop("generator_", None)
        state.pop("_eval_generator", None)
        state.pop("forward_", None)
        state.pop("graph_step_", None)
        state.pop("batch_stats_", None)
        return state

    def __setstate__(self, state: dict) -> None:
        state.setdefault("random_state", 0)  # nets pickled before it existed
        super().__setstate__(state)
        if self.initialized_:
            self.generator_ = self._generators(1, self.device)
            self.torch_compile(self.module_, "module")

    def partial_fit(self, X: Any, y: Any = None, classes: Any = None, **fit_params: Any) -> Any:
        # The epochs this training runs, for callbacks that show progress (before
        # on_train_begin, which skorch calls without them).
        self.epochs_asked_ = fit_params.get("epochs") or self.max_epochs
        return super().partial_fit(X, y, classes, **fit_params)

    def fit_loop(self, X: Any, y: Any = None, epochs: int | None = None, **fit_params: Any) -> Any:
        self.graph_step_ = GraphedStep(self) if uses_cuda_graph(self) else None
        try:
            with matmul_precision(self.precision, self.device):
                return super().fit_loop(X, y, epochs=epochs, **fit_params)
        finally:
            if self.graph_step_ is not None:
                self.graph_step_.release()
            self.graph_step_ = None

    def get_iterator(self, dataset: Any, training: bool = False) -> Any:
        if not training:
            default = self.iterator_valid is torch.utils.data.DataLoader
            if default and isinstance(getattr(_base(dataset), "X", None), torch.Tensor):
                # The validation rows (a Subset of the training tensor): index slices too.
                kwargs = {"batch_size": self.batch_size, **self.get_params_for("iterator_valid")}
                return TensorBatches(dataset, **{**kwargs, "shuffle": False})
            return super().get_iterator(dataset, training)
        # As DataLoader(generator=...): the data order comes from the net's own stream.
        kwargs = {"batch_size": self.batch_size, **self.get_params_for("iterator_train")}
        return self.iterator_train(dataset, generator=self.generator_, **kwargs)

    def infer(self, x: Any, **fit_params: Any) -> Any:
        # Training draws from the net's stream; anything else (skorch's predict/forward)
        # must not shift it, and uses the global RNG.
        generator = (
            self.generator_ if self.module_.training else getattr(self, "_eval_generator", None)
        )
        x, eps = self.module_.draw_training_inputs(to_tensor(x, device=self.device), generator)
        device_type = torch.device(self.device).type
        bf16 = self.precision == "bfloat16"
        # Autocast's cast cache does not survive a CUDA graph's capture: off when graphing.
        cache = getattr(self, "graph_step_", None) is None
        with torch.autocast(device_type, torch.bfloat16, enabled=bf16, cache_enabled=cache):
            return self.forward_(x, eps, **fit_params)

    def permute_clusters(self, order: Any) -> None:
        """Renumber the clusters in place, new cluster k being old cluster ``order[k]``:
        the module's weights and the optimizer's per-parameter state (Adam's moments)
        alike, so that training on continues as it would have (see
        ``MixtureVAE.cluster_permutation``)."""
        axes = self.module_.cluster_permutation(order)
        state = self.optimizer_.state if hasattr(self, "optimizer_") else {}
        with torch.no_grad():
            for name, param in self.module_.named_parameters():
                if name not in axes:
                    continue
                axis, index = axes[name]
                index = index.to(param.device)
                for tensor in (param, *state.get(param, {}).values()):
                    if tensor.shape == param.shape:  # not Adam's scalar step count
                        tensor.copy_(tensor.index_select(axis, index))

    @property
    def _default_callbacks(self) -> list[tuple[str, Any]]:
        return [
            *[
                ("print_log", TablePrintLog()) if name == "print_log" else (name, callback)
                for name, callback in super()._default_callbacks
            ],
            ("train_elbo", PassthroughScoring(name="train_elbo", on_train=True)),
            ("train_entropy", PassthroughScoring(name="train_entropy", on_train=True)),
            ("valid_elbo", PassthroughScoring(name="valid_elbo", lower_is_better=False)),
            ("valid_entropy", PassthroughScoring(name="valid_entropy")),
        ]

    def get_loss(self, y_pred, y_true=None, X=None, training=False) -> torch.Tensor:  # noqa: ANN001
        if y_true is None:
            terms = elbo_terms(y_pred)  # each (batch,), or (batch, restarts) when stacked
            losses = self.criterion_(terms)  # the mean loss, or one per restart
        else:  # labels (semi-supervised): y observed on the labelled rows
            observed, class_log_prob = self.criterion_.observe(y_pred, y_true)
            terms = elbo_terms(observed)
            losses = self.criterion_(terms, y_true, class_log_prob)
        stats = {"elbo": terms.elbo.mean(0), "entropy": terms.entropy.mean(0)}
        if losses.ndim:  # stacked restarts: also each one's own loss
            stats["restart_loss"] = losses
        # Kept on the device: the history gets them at the end of the epoch, in one
        # transfer with every batch's (see ``run_single_epoch``); outside training (skorch's
        # evaluation steps) they are recorded at once, as skorch records its own loss.
        self.batch_stats_ = {key: value.detach() for key, value in stats.items()}
        if not training:
            values = torch.stack(list(stats.values())).detach().tolist()
            for key, value in zip(stats, values, strict=True):
                self.history.record_batch(f"valid_{key}", value)
        # Restarts' losses add: each restart's gradient is that of its own loss.
        return losses.sum()

    def _set_training(self, training: bool = True) -> None:
        # skorch sets the modules' mode before every step, and Module.train walks the
        # whole module tree (~6 % of a small net's fit on the CPU). The models act on
        # their top-level mode only (binarization, which noise stream), which train()
        # always sets with the rest: the walk is skipped when that mode is already set.
        modules = [getattr(self, name + "_") for name in self._modules + self._criteria]
        if any(getattr(module, "training", training) != training for module in modules):
            super()._set_training(training)

    def train_step_single(self, batch: Any, **fit_params: Any) -> dict[str, Any]:
        step = super().train_step_single(batch, **fit_params)
        # The batch's values as one device tensor: the loss, then the ELBO's statistics.
        step["stats"] = _flat_stats({"loss": step["loss"].detach(), **self.batch_stats_})
        return step

    def train_step(self, batch: Any, **fit_params: Any) -> dict[str, Any]:
        graph = getattr(self, "graph_step_", None)
        if graph is None or not graph.applies(batch):
            return super().train_step(batch, **fit_params)
        step = graph.step(batch, **fit_params)
        if graph.failure is not None:  # given up (cuda_graph="auto"): eager steps from now on
            self.graph_step_ = None
        return step

    def run_single_epoch(
        self, iterator: Any, training: bool, prefix: str, step_fn: Any, **fit_params: Any
    ) -> None:
        """skorch's epoch loop without a host sync per step (training only).

        Each step's loss, ELBO and entropy stay on the device, copied into one (batches,
        values) tensor; at the end of the epoch that tensor comes to the host in one
        transfer and fills the batches' history records (``train_loss``,
        ``train_elbo``, ...), before any callback's ``on_epoch_end``, so the epoch values
        (batch-size-weighted means, by ``PassthroughScoring``) are the same numbers as
        with a per-step ``.item()``. During the epoch, ``on_batch_end`` receives the
        step's ``loss`` and ``stats`` tensors, and the batch record holds only
        ``train_batch_size`` until the epoch ends.
        """
        if iterator is None:
            return super().run_single_epoch(iterator, training, prefix, step_fn, **fit_params)
        if not training:
            # The validation rows' noise of z comes from a third stream of
            # ``random_state``, restarted every epoch: the same noise each epoch (epochs'
            # valid_elbo differ by the model only); training's stream and the global RNG
            # are untouched.
            self._eval_generator = self._generators(2, self.device)
            try:
                return super().run_single_epoch(iterator, training, prefix, step_fn, **fit_params)
            finally:
                self._eval_generator = None
        stats, names = None, None
        batch_count = 0
        for batch in iterator:
            self.notify("on_batch_begin", batch=batch, training=training)
            step = step_fn(batch, **fit_params)
            if stats is None:  # one row per batch, filled on the device
                names = _stat_layout({"loss": step["loss"], **self.batch_stats_})
                stats = step["stats"].new_empty((len(iterator), step["stats"].numel()))
            stats[batch_count].copy_(step["stats"])
            self.history.record_batch(prefix + "_batch_size", get_len(batch[0]))
            self.notify("on_batch_end", batch=batch, training=training, **step)
            batch_count += 1
        self.history.record(prefix + "_batch_count", batch_count)
        if stats is not None:
            self._record_steps(prefix, names, stats[:batch_count].tolist())  # the one sync

    def _record_steps(
        self, prefix: str, names: list[tuple[str, slice | int]], rows: list[list[float]]
    ) -> None:
        """Write each batch's values (rows of ``stats``) into its history record."""
        for record, row in zip(self.history[-1]["batches"], rows, strict=True):
            for name, where in names:
                record[f"{prefix}_{name}"] = row[where]


def _flat_stats(stats: dict[str, torch.Tensor]) -> torch.Tensor:
    """The batch's values (scalars, or one per restart) as one float32 vector."""
    return torch.cat([value.reshape(-1).float() for value in stats.values()])


def _stat_layout(stats: dict[str, torch.Tensor]) -> list[tuple[str, slice | int]]:
    """Where each value lies in ``_flat_stats``' vector: an index (a scalar) or a slice
    (one per restart, recorded as a list)."""
    layout, start = [], 0
    for name, value in stats.items():
        n = value.numel()
        layout.append((name, start if value.ndim == 0 else slice(start, start + n)))
        start += n
    return layout
