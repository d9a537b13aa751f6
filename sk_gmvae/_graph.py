"""The training step as one CUDA graph: forward, backward, clipping and Adam's step, replayed.

A step of these small networks is ~150 short kernels; launched one by one from Python, the
GPU waits on the host. Captured once as a CUDA graph and replayed, the whole step is one
launch. What the graph needs, and how it is met here:

- static inputs: each full batch is copied into one buffer the graph reads;
- the random draws (binarization, noise of z) inside the graph, from the net's own
  generators, registered with the graph (``CUDAGraph.register_generator_state``): each
  replay advances a generator's offset as an eager step would, so the data order drawn
  eagerly between replays and the in-graph draws share one random stream;
- no host sync and no reallocation inside the step: the gradients are zeroed in place
  (never set to None), clipping is tensor arithmetic, and Adam runs with
  ``capturable=True`` (its step count on the device);
- the learning rate and the optimizer's state tensors are baked into the graph: when
  either changes (a divergence recovery reloads the state, a schedule changes the rate),
  the step is captured again;
- the last, smaller batch of an epoch runs eagerly, as the same function;
- one capture at a time in the process (fits in threads), each on a stream of its own
  and on the net's device, whichever device is current;
- the first replay of each capture is checked against the eager step: the state is
  kept, the graph replayed, the state put back and the eager step taken from it, with
  the same random draws; the eager step's result is the one training goes on from. The
  two agree when their losses are within a relative ``LOSS_RTOL`` (1e-4: float32 holds
  about 7 digits, and a sum taken in another order differs in the last ones) and their
  weights after the step are apart by at most ``WEIGHTS_RTOL`` (1e-3) of the step's own
  size (a stale input, a missed update or draws out of step move them by about the
  whole step).

With ``cuda_graph="auto"`` a capture that raises, a first replay that raises or
disagrees, ends the graph: the fit goes on with eager steps, from the state of an eager
step, with one ``RuntimeWarning`` that says why. ``cuda_graph=True`` raises instead.

The eager function that is captured (``GraphedStep.eager``) is skorch's training step with
in-place zeroing of the gradients: numerically the same step (tested on the CPU).
"""

from __future__ import annotations

import math
import threading
import warnings
from typing import Any

import torch
from skorch.callbacks import Callback, GradientNormClipping
from skorch.utils import TeeGenerator

# torch.cuda.graph captures on a stream shared by the process and synchronizes the device
# on entry; and a generator can be in one capture at a time. One capture at a time, then.
_CAPTURE_LOCK = threading.Lock()
# Graphs whose capture failed, kept: torch's allocator may still hold a filter that reads
# a graph whose capture did not end.
_FAILED_CAPTURES: list[torch.cuda.CUDAGraph] = []

# How far the first graphed step may be from the eager step (see the module docstring).
LOSS_RTOL = 1e-4
WEIGHTS_RTOL = 1e-3


def _overrides_grad_hook(callback: Any) -> bool:
    """Whether a callback acts on the gradients from Python. skorch's gradient clipping
    (tensor arithmetic, captured with the step) does not, nor do callbacks whose class
    says ``graph_safe = True``; a subclass with a hook of its own does."""
    hook = type(callback).on_grad_computed
    if hook is GradientNormClipping.on_grad_computed or getattr(callback, "graph_safe", False):
        return False
    return hook is not Callback.on_grad_computed


def _setting(value: Any) -> Any:
    """An optimizer setting as the graph's key holds it, hashable and comparable without
    a device sync: a tensor (a rate or betas as tensors) by its address, where the graph
    reads it; a sequence item by item; anything else unhashable by its repr."""
    if isinstance(value, torch.Tensor):
        return ("tensor", value.data_ptr())
    if isinstance(value, list | tuple):
        return tuple(_setting(item) for item in value)
    try:
        hash(value)
    except TypeError:
        return ("repr", repr(value))
    return value


def uses_cuda_graph(net: Any) -> bool:
    """Whether ``net`` trains with a captured step: ``cuda_graph=True`` or ``"auto"``, on a
    CUDA device, without ``compile`` (which has graphs of its own), with an optimizer
    that can be captured (``capturable``: Adam, AdamW, ...) and without callbacks that
    act on the gradients from Python (they would run once, at capture)."""
    if net.cuda_graph is False or torch.device(net.device).type != "cuda":
        return False
    optimizer = getattr(net, "optimizer_", None)
    if optimizer is not None and "capturable" not in optimizer.defaults:
        return False
    return not net.compile and not any(_overrides_grad_hook(cb) for _, cb in net.callbacks_)


class GraphedStep:
    """A net's training step, captured as a CUDA graph on its first full batches.

    Parameters
    ----------
    net : MixtureVAENet
        The (initialized) net; its optimizer is switched to ``capturable=True``.
    warmup : int, default=3
        Eager steps before the capture (on a side stream, as CUDA graphs require): they
        create the optimizer's state and the libraries' workspaces.

    Attributes
    ----------
    failure : str or None
        Why the graph was given up (``cuda_graph="auto"``): the net then takes eager
        steps for the rest of the fit. None while the graph is in use.
    """

    def __init__(self, net: Any, warmup: int = 3) -> None:
        self.net = net
        self.warmup = warmup
        self.strict = net.cuda_graph is True  # raise, rather than fall back to eager steps
        self.eager_steps = 0
        self.graph: torch.cuda.CUDAGraph | None = None
        self.key: tuple | None = None
        self.checked = False  # whether the current capture's first replay was checked
        self.failure: str | None = None
        self.cuda = torch.device(net.device).type == "cuda"
        if self.cuda:
            self._capturable()

    def _capturable(self) -> None:
        """Adam's step count on the device (a reloaded optimizer state resets the flag;
        a state from eager or CPU training has its step counts on the host)."""
        for group in self.net.optimizer_.param_groups:
            group["capturable"] = True
            self._steps_to(group, None)

    def release(self) -> None:
        """Leave the optimizer as eager training has it, device-neutral (pickles, CPU
        reloads, eager warm starts): ``capturable`` off, and the step counts of an
        optimizer without fused kernels back on the host, where its eager step keeps
        them (on the device it would read each one back, a sync per parameter)."""
        for group in self.net.optimizer_.param_groups:
            group["capturable"] = False
            if not group.get("fused"):  # fused kernels keep their step counts on the device
                self._steps_to(group, "cpu")

    def _steps_to(self, group: dict, device: str | None) -> None:
        """Move the step counts of the group's parameters to ``device``; None: each to its
        parameter's device, as float32 (as torch loads a capturable optimizer's state)."""
        state = self.net.optimizer_.state
        for p in group["params"]:
            step = state.get(p, {}).get("step")
            target = p.device if device is None else torch.device(device)
            if isinstance(step, torch.Tensor) and step.device != target:
                dtype = torch.float32 if device is None else step.dtype
                state[p]["step"] = step.to(target, dtype)

    def params(self) -> list[torch.nn.Parameter]:
        return [p for group in self.net.optimizer_.param_groups for p in group["params"]]

    def applies(self, batch: Any) -> bool:
        """Every batch goes through here once a graph may exist (the partial one eagerly);
        batches with labels (semi-supervised) train eagerly."""
        return batch[0].is_cuda and batch[1] is None

    def _key(self) -> tuple:
        """What the graph bakes in: the optimizer's settings (the rate, betas, weight
        decay, ... which a schedule may change) and the addresses of weights and state."""
        optimizer = self.net.optimizer_
        tensors = [t for p in self.params() for t in (p, *optimizer.state.get(p, {}).values())]
        settings = [
            tuple(
                (name, _setting(value)) for name, value in sorted(group.items()) if name != "params"
            )
            for group in optimizer.param_groups
        ]
        return (
            tuple(settings),
            tuple(t.data_ptr() for t in tensors if isinstance(t, torch.Tensor)),
        )

    def _state_missing(self) -> bool:
        """Whether a parameter that gets a gradient has no optimizer state yet (a state
        reloaded from before the first step): Adam would create it inside the capture,
        and every replay would start it afresh."""
        state = self.net.optimizer_.state
        return any(p.grad is not None and not state.get(p) for p in self.params())

    def eager(self, batch: Any, **fit_params: Any) -> dict[str, Any]:
        """skorch's training step, with the gradients zeroed in place: what is captured."""
        net = self.net
        for p in self.params():
            if p.grad is not None:
                p.grad.zero_()  # in place: the graph's gradient buffers stay the same
        step = net.train_step_single(batch, **fit_params)
        net.notify(
            "on_grad_computed",
            named_parameters=TeeGenerator(net.get_all_learnable_params()),
            batch=batch,
            training=True,
        )
        net.optimizer_.step()
        return step

    def step(self, batch: Any, **fit_params: Any) -> dict[str, Any]:
        if not self.cuda:  # the same logic, without streams (tests on the CPU)
            return self._step(batch, **fit_params)
        with torch.cuda.device(self.net.device):  # capture and replay on the net's device
            return self._step(batch, **fit_params)

    def _step(self, batch: Any, **fit_params: Any) -> dict[str, Any]:
        x = batch[0]
        if len(x) != self.net.batch_size:
            return self.eager(batch, **fit_params)  # the last, partial batch
        if self._state_missing():
            self.eager_steps = 0  # warm up again: the steps create the state
        if self.eager_steps < self.warmup:
            self.eager_steps += 1
            return self._on_side_stream(batch, **fit_params)
        if self.graph is None or self._key() != self.key:
            try:
                self._capture(x, **fit_params)
            except Exception as error:
                # A capture executes nothing: the state is that from before the step.
                self._give_up(f"capturing it failed ({_describe(error)})", error)
                self._fresh_generator_states()
                return self.eager(batch, **fit_params)
        if not self.checked:
            return self._checked_step(batch, **fit_params)
        return self._replay(batch, **fit_params)

    def _on_side_stream(self, batch: Any, **fit_params: Any) -> dict[str, Any]:
        if not self.cuda:
            return self.eager(batch, **fit_params)
        stream = torch.cuda.Stream(self.net.device)
        stream.wait_stream(torch.cuda.current_stream(self.net.device))
        with torch.cuda.stream(stream):
            step = self.eager(batch, **fit_params)
        torch.cuda.current_stream(self.net.device).wait_stream(stream)
        return step

    def _capture(self, x: torch.Tensor, **fit_params: Any) -> None:
        self._capturable()
        self.static_x = x.clone()
        # Gradient buffers exist (warm-up) and are kept alive by the graph's owner.
        self.grads = [p.grad for p in self.params()]
        self.graph = torch.cuda.CUDAGraph()
        for generator in self._generators():
            self.graph.register_generator_state(generator)
        # thread_local: fits running in other threads may go on allocating meanwhile.
        stream = torch.cuda.Stream(self.net.device)
        current = torch.cuda.current_stream(self.net.device)
        try:
            with (
                _CAPTURE_LOCK,
                torch.cuda.graph(self.graph, stream=stream, capture_error_mode="thread_local"),
            ):
                self.static_step = self.eager((self.static_x, None), **fit_params)
        except BaseException:
            # A capture that fails to end leaves its stream the current one.
            torch.cuda.set_stream(current)
            _FAILED_CAPTURES.append(self.graph)
            raise
        self.key = self._key()
        self.checked = False

    def _replay(self, batch: Any, **fit_params: Any) -> dict[str, Any]:
        """The captured step on this batch; its outputs are the graph's own tensors."""
        self.static_x.copy_(batch[0])
        self.graph.replay()
        return self.static_step

    def _checked_step(self, batch: Any, **fit_params: Any) -> dict[str, Any]:
        """The first step of a capture: replayed, then taken eagerly from the same state
        and draws, and compared. The eager step's result is kept either way."""
        self.checked = True
        before = self._snapshot()
        weights_before = before[0][: len(self.params())]
        failure, cause = None, None
        try:
            replayed = self._replay(batch, **fit_params)
            loss = replayed["loss"].detach().clone()
            after = [p.detach().clone() for p in self.params()]
        except Exception as error:
            failure, cause = f"its first replay failed ({_describe(error)})", error
        self._restore(before)
        step = self.eager(batch, **fit_params)
        if failure is None:
            failure = self._disagreement(loss, step["loss"], after, weights_before)
        if failure is not None:
            self._give_up(failure, cause)
        return step

    def _state_tensors(self) -> list[torch.Tensor]:
        """Every tensor a step writes: the weights (first), the module's buffers and the
        optimizer's state, in an order that does not change between steps."""
        state = self.net.optimizer_.state
        optimizer = [t for p in self.params() for t in state.get(p, {}).values()]
        return [
            *self.params(),
            *self.net.module_.buffers(),
            *(t for t in optimizer if isinstance(t, torch.Tensor)),
        ]

    def _snapshot(self) -> tuple[list[torch.Tensor], Any]:
        """Copies of the state a step changes: its tensors and the generators' states."""
        tensors = [t.detach().clone() for t in self._state_tensors()]
        return tensors, self.net._generator_states()

    def _restore(self, snapshot: tuple[list[torch.Tensor], Any]) -> None:
        """Put a snapshot back, in place (the graph reads these very tensors)."""
        tensors, generators = snapshot
        with torch.no_grad():
            for live, kept in zip(self._state_tensors(), tensors, strict=True):
                live.copy_(kept)
        self.net._set_generator_states(generators)

    def _disagreement(
        self,
        graphed_loss: torch.Tensor,
        eager_loss: torch.Tensor,
        graphed_weights: list[torch.Tensor],
        weights_before: list[torch.Tensor],
    ) -> str | None:
        """How the replayed step differs from the eager one beyond the tolerances, or
        None. An eager step that is not finite leaves nothing to compare (the
        divergence guard undoes it)."""
        eager_weights = self.params()
        # ||w_graph - w_eager|| against the step's size ||w_eager - w_before||.
        apart = torch.zeros((), dtype=torch.float64, device=eager_loss.device)
        size = torch.zeros_like(apart)
        for g, e, b in zip(graphed_weights, eager_weights, weights_before, strict=True):
            apart += (g - e).double().square().sum()
            size += (e - b).double().square().sum()
        values = torch.stack([graphed_loss.double(), eager_loss.double(), apart, size])
        graphed, eager, apart, size = values.tolist()  # the check's one host sync
        apart, size = math.sqrt(apart), math.sqrt(size)
        if not (math.isfinite(eager) and math.isfinite(size)):
            return None
        if not math.isclose(graphed, eager, rel_tol=LOSS_RTOL):
            return (
                f"its first replay's loss {graphed:.8g} differs from the eager step's "
                f"{eager:.8g} by more than rtol={LOSS_RTOL:g}"
            )
        if not apart <= WEIGHTS_RTOL * size:
            return (
                f"its first replay's weights are {apart:.3g} from the eager step's, a step "
                f"of {size:.3g} (more than {WEIGHTS_RTOL:g} of it)"
            )
        return None

    def _give_up(self, reason: str, error: BaseException | None = None) -> None:
        """End the graph for the rest of the fit, with one warning; or raise
        (``cuda_graph=True``)."""
        message = f"The training step as a CUDA graph: {reason}."
        if self.strict:
            raise RuntimeError(
                f"{message} net_params={{'cuda_graph': False}} trains without graphs; "
                "'auto' falls back to eager steps (please report this failure)."
            ) from error
        warnings.warn(
            f"{message} The fit goes on with eager steps, as with "
            "net_params={'cuda_graph': False} (please report this failure).",
            RuntimeWarning,
            stacklevel=2,
        )
        self.failure = reason
        self.graph = self.key = self.static_x = self.static_step = None
        self.grads = []
        self.release()

    def _generators(self) -> list[torch.Generator]:
        generators = self.net.generator_
        return generators if isinstance(generators, list) else [generators]

    def _fresh_generator_states(self) -> None:
        """Give each CUDA generator a new state, with the same seed and offset: a failed
        capture may leave its state marked as in a capture (torch before per-capture
        generator states), which eager draws then refuse. The generator objects stay
        (the epochs' batch iterator holds them)."""
        if not self.cuda:
            return
        for generator in self._generators():
            fresh = torch.Generator(generator.device)
            fresh.set_state(generator.get_state())
            generator.graphsafe_set_state(fresh)


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"
