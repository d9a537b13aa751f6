"""The GPU engine: no host sync per step, the training step as a CUDA graph.

The CPU tests check what the GPU path is built from (the eager step a graph captures, the
rule that turns graphs on, one transfer per epoch, the check of a capture's first replay
and the fall-back to eager steps, with stand-ins for the capture and the replay); the
CUDA tests check the graph itself.
"""

import copy
import pickle
import re
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from _helpers import small_params
from sklearn.base import clone
from sklearn.datasets import make_blobs
from sklearn.exceptions import ConvergenceWarning
from skorch.callbacks import Callback, GradientNormClipping

import sk_gmvae._net
from sk_gmvae import GMVAEClustering
from sk_gmvae._graph import LOSS_RTOL, WEIGHTS_RTOL, GraphedStep, uses_cuda_graph
from sk_gmvae._stacked import StackedGradientNormClipping

SMALL = small_params(max_epochs=3)
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(scope="module")
def blobs():
    X, _ = make_blobs(n_samples=130, centers=3, n_features=4, random_state=0)
    return X


class CountTransfers(Callback):
    """Counts device-to-host reads of tensors between each epoch's start and end."""

    def initialize(self):
        self.per_epoch_ = []
        return self

    def on_epoch_begin(self, net, **kwargs):
        self.per_epoch_.append(0)


@pytest.mark.parametrize("n_init", [1, 2])
def test_one_host_transfer_per_epoch(blobs, monkeypatch, n_init):
    counter = CountTransfers()
    reads = {"active": False}
    for name in ("item", "tolist", "__bool__", "__float__", "cpu", "numpy"):
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, **kwargs):
            if reads["active"] and counter.per_epoch_:
                counter.per_epoch_[-1] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)

    class Window(Callback):  # reads counted from the epoch's start to its end
        def on_epoch_begin(self, net, **kwargs):
            reads["active"] = True

        def on_epoch_end(self, net, **kwargs):
            reads["active"] = False

    from sk_gmvae._config import resolve_config
    from sk_gmvae._training import build_net

    X = torch.tensor(blobs, dtype=torch.float32)
    seed = 0 if n_init == 1 else [0, 1]
    counts = {}
    for batch_size in (32, 8):  # 5 and 17 steps per epoch
        counter.initialize()
        est = GMVAEClustering(3, **{**SMALL, "batch_size": batch_size})
        config = resolve_config(est.get_params(), len(blobs), 4, "gaussian", "cpu")
        net = build_net(config, seed)
        net.set_params(callbacks=[*net.callbacks, ("count", counter), ("window", Window())])
        net.fit(X)
        assert len(net.history[-1, "batches"]) == len(net.get_iterator(net.get_dataset(X), True))
        counts[batch_size] = dict(net.callbacks_)["count"].per_epoch_
    # As many reads per epoch (the epoch's values, the guard's finiteness check) whatever
    # the number of steps: none per step.
    assert counts[32] == counts[8] and len(counts[8]) == 3
    assert 1 <= min(counts[8]) and max(counts[8]) <= 2


def test_epoch_values_are_batch_weighted_means_of_the_batch_records(blobs):
    est = GMVAEClustering(3, random_state=0, **SMALL).fit(blobs)
    for row in est.history_:
        sizes = [b["train_batch_size"] for b in row["batches"]]
        assert sizes == [32, 32, 32, 32, 2]
        for key in ("train_loss", "train_elbo", "train_entropy"):
            values = [b[key] for b in row["batches"]]
            assert row[key] == pytest.approx(np.average(values, weights=sizes), rel=1e-12)


def test_the_captured_step_equals_skorchs_step(blobs):
    # GraphedStep.eager is the function a CUDA graph captures: on the CPU it runs eagerly
    # and must take the very step skorch's train_step takes (clipping included).
    est = GMVAEClustering(3, random_state=0, max_grad_norm=0.5, **SMALL).fit(blobs)
    a, b = (pickle.loads(pickle.dumps(est.net_)) for _ in range(2))
    x = torch.tensor(blobs[:32], dtype=torch.float32)
    for net in (a, b):
        net.module_.train()
        net.generator_.manual_seed(5)
    step_a = a.train_step((x, None))
    step_b = GraphedStep(b).eager((x, None))
    assert torch.equal(step_a["stats"], step_b["stats"])
    for (name, pa), pb in zip(a.module_.named_parameters(), b.module_.parameters(), strict=True):
        assert torch.equal(pa, pb), name
    for sa, sb in zip(a.optimizer_.state.values(), b.optimizer_.state.values(), strict=True):
        assert all(torch.equal(sa[k], sb[k]) for k in sa)


class GradHook(Callback):
    def on_grad_computed(self, net, named_parameters, **kwargs):
        pass


class LoggedClipping(GradientNormClipping):  # a hook of its own: not known to be capturable
    def on_grad_computed(self, net, named_parameters, **kwargs):
        super().on_grad_computed(net, named_parameters, **kwargs)


@pytest.mark.parametrize(
    "settings, graphed",
    [
        ({}, True),
        ({"device": "cpu"}, False),
        ({"cuda_graph": False}, False),
        ({"compile": True}, False),
        ({"callbacks_": [("clip", GradientNormClipping(1.0))]}, True),
        ({"callbacks_": [("hook", GradHook())]}, False),
        ({"callbacks_": [("clip", LoggedClipping(1.0))]}, False),
        ({"callbacks_": [("clip", StackedGradientNormClipping(1.0))]}, True),
        ({"optimizer_": torch.optim.Adam([torch.zeros(1, requires_grad=True)])}, True),
        ({"optimizer_": torch.optim.LBFGS([torch.zeros(1, requires_grad=True)])}, False),
    ],
)
def test_cuda_graph_rule(settings, graphed):
    net = SimpleNamespace(
        **{"cuda_graph": "auto", "device": "cuda", "compile": False, "callbacks_": []} | settings
    )
    assert uses_cuda_graph(net) is graphed


def test_cuda_graph_parameter_is_validated_and_inert_on_the_cpu(blobs):
    with pytest.raises(ValueError, match="cuda_graph"):
        GMVAEClustering(3, net_params={"cuda_graph": "always"}, **SMALL).fit(blobs)
    on = GMVAEClustering(
        3, random_state=0, net_params={"cuda_graph": True}, device="cpu", **SMALL
    ).fit(blobs)
    off = clone(on).set_params(net_params={"cuda_graph": False}).fit(blobs)
    assert on.lower_bound_ == off.lower_bound_


@pytest.fixture
def graph_on_the_cpu(monkeypatch):
    """GraphedStep's logic on the CPU: nets that may graph take their full batches
    through it (warm-up steps, capture, checked first replay, replays); each test says
    what the capture and the replay do. Returns the number of captures and replays."""
    monkeypatch.setattr(sk_gmvae._net, "uses_cuda_graph", lambda net: net.cuda_graph is not False)
    monkeypatch.setattr(GraphedStep, "applies", lambda self, batch: True)
    calls = {"capture": 0, "replay": 0}

    def capture(self, x, **fit_params):  # what a capture that succeeds leaves
        calls["capture"] += 1
        self.graph, self.key, self.checked = "a graph", self._key(), False

    def replay(self, batch, **fit_params):  # a replay that is the eager step itself
        calls["replay"] += 1
        return self.eager(batch, **fit_params)

    monkeypatch.setattr(GraphedStep, "_capture", capture)
    monkeypatch.setattr(GraphedStep, "_replay", replay)
    return calls


def _capture_fails(self, x, **fit_params):
    raise RuntimeError("operation not permitted when stream is capturing")


def _replay_fails(self, batch, **fit_params):
    raise RuntimeError("CUDA error: invalid argument")


def _replay_with_another_loss(self, batch, **fit_params):
    step = self.eager(batch, **fit_params)
    return {**step, "loss": step["loss"] * (1 + 10 * LOSS_RTOL)}


def _replay_without_the_update(self, batch, **fit_params):  # the same loss, no Adam step
    return self.net.train_step_single(batch, **fit_params)


FAILURES = {
    "capture": ("_capture", _capture_fails, "capturing it failed .*not permitted"),
    "replay": ("_replay", _replay_fails, "its first replay failed .*invalid argument"),
    "loss": (
        "_replay",
        _replay_with_another_loss,
        "its first replay's loss .* differs from the eager step's",
    ),
    "update": (
        "_replay",
        _replay_without_the_update,
        "its first replay's weights are .* from the eager step's",
    ),
}
# 130 rows in batches of 16: 3 warm-up steps, then the capture at the 4th of 8 full ones.
GRAPHED = dict(random_state=0, n_init=1, device="cpu", **{**SMALL, "batch_size": 16})


def _assert_same_fit(a, b):
    """Bit for bit: the same losses every step, weights and labels."""
    for key in ("train_loss", "train_elbo"):
        assert a.history_[:, "batches", :, key] == b.history_[:, "batches", :, key], key
    np.testing.assert_array_equal(a.labels_, b.labels_)
    for pa, pb in zip(a.net_.module_.parameters(), b.net_.module_.parameters(), strict=True):
        assert torch.equal(pa, pb)


def _graph_warnings(record):
    return [w for w in record if "CUDA graph" in str(w.message)]


def test_a_checked_graph_that_agrees_trains_on_with_its_replays(blobs, graph_on_the_cpu):
    # The first replay is checked against an eager step from the same state and draws
    # (the state is kept, replayed, put back): that leaves the fit as eager training.
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        graphed = GMVAEClustering(3, net_params={"cuda_graph": "auto"}, **GRAPHED).fit(blobs)
    eager = GMVAEClustering(3, net_params={"cuda_graph": False}, **GRAPHED).fit(blobs)
    _assert_same_fit(graphed, eager)
    # One capture; the checked replay, then the 4 full batches after it and 8 per epoch.
    assert graph_on_the_cpu == {"capture": 1, "replay": 1 + 4 + 8 * 2}


@pytest.mark.parametrize("failure", FAILURES)
def test_auto_falls_back_to_eager_steps_with_one_warning(
    blobs, graph_on_the_cpu, monkeypatch, failure
):
    name, function, reason = FAILURES[failure]
    monkeypatch.setattr(GraphedStep, name, function)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        graphed = GMVAEClustering(3, net_params={"cuda_graph": "auto"}, **GRAPHED).fit(blobs)
    [warning] = _graph_warnings(record)
    assert warning.category is RuntimeWarning
    assert re.search(f"The training step as a CUDA graph: {reason}", str(warning.message))
    assert "goes on with eager steps" in str(warning.message)
    # The fall-back comes before the 4th step's update (the checked replay's state is
    # put back): on the CPU, where the warm-up steps are the eager step, the fit is the
    # eager fit bit for bit; on CUDA it differs by the capturable Adam of the warm-up.
    eager = GMVAEClustering(3, net_params={"cuda_graph": False}, **GRAPHED).fit(blobs)
    _assert_same_fit(graphed, eager)
    assert graph_on_the_cpu["replay"] <= 1  # never again after the check
    assert not any(group["capturable"] for group in graphed.net_.optimizer_.param_groups)


@pytest.mark.parametrize("failure", FAILURES)
def test_an_explicit_cuda_graph_raises_instead(blobs, graph_on_the_cpu, monkeypatch, failure):
    name, function, reason = FAILURES[failure]
    monkeypatch.setattr(GraphedStep, name, function)
    with pytest.raises(
        RuntimeError, match=f"{reason}.*'cuda_graph': False}} trains without graphs"
    ):
        GMVAEClustering(3, net_params={"cuda_graph": True}, **GRAPHED).fit(blobs)


@pytest.mark.parametrize("failure", ["capture", "loss"])
def test_stacked_restarts_fall_back_with_their_generators(
    blobs, graph_on_the_cpu, monkeypatch, failure
):
    # Stacked restarts: one generator per restart, each put back after the checked replay.
    name, function, _ = FAILURES[failure]
    monkeypatch.setattr(GraphedStep, name, function)
    params = {**GRAPHED, "n_init": 2, "stack_restarts": True}
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        graphed = GMVAEClustering(3, net_params={"cuda_graph": "auto"}, **params).fit(blobs)
    assert _graph_warnings(record)  # one per training (the stacked trials, the kept run)
    eager = GMVAEClustering(3, net_params={"cuda_graph": False}, **params).fit(blobs)
    _assert_same_fit(graphed, eager)


def test_the_check_tolerances(blobs):
    net = GMVAEClustering(3, random_state=0, n_init=1, **SMALL).fit(blobs).net_
    graphed = GraphedStep(net)
    eager = [p.detach().clone() for p in graphed.params()]
    before = [p - 1e-3 for p in eager]  # a step of 1e-3 on every weight
    apart = [p + 0.5 * WEIGHTS_RTOL * 1e-3 for p in eager]  # half the tolerance
    loss = torch.tensor(100.0)

    def verdict(graphed_loss, eager_loss=loss, weights=eager):
        return graphed._disagreement(torch.tensor(graphed_loss), eager_loss, weights, before)

    assert verdict(100.0) is None
    assert verdict(100.0 * (1 + 0.5 * LOSS_RTOL)) is None
    assert "differs" in verdict(100.0 * (1 + 2 * LOSS_RTOL))
    assert "differs" in verdict(float("nan"))
    assert verdict(100.0, weights=apart) is None
    far = [p + 2 * WEIGHTS_RTOL * 1e-3 for p in eager]
    assert "weights are" in verdict(100.0, weights=far)
    # A non-finite eager step leaves nothing to compare (the divergence guard undoes it).
    assert verdict(float("nan"), eager_loss=torch.tensor(float("nan"))) is None


@cuda
@pytest.mark.parametrize("n_init", [1, 3])
def test_cuda_graph_training_equals_eager_cuda_training(blobs, n_init):
    params = dict(random_state=0, n_init=n_init, device="cuda", max_grad_norm=1.0)
    params |= {**SMALL, "max_epochs": 6, "batch_size": 16}  # captures after 3 warm-up steps
    graphed = GMVAEClustering(3, net_params={"cuda_graph": True}, **params).fit(blobs)
    eager = GMVAEClustering(3, net_params={"cuda_graph": False}, **params).fit(blobs)
    # The same draws and the same step; Adam's device-side step count may differ in the
    # last bits from the eager one.
    np.testing.assert_allclose(
        graphed.history_[:, "train_elbo"], eager.history_[:, "train_elbo"], rtol=1e-4
    )
    np.testing.assert_array_equal(graphed.labels_, eager.labels_)
    restored = pickle.loads(pickle.dumps(graphed))  # no graph or capturable state pickled
    assert not any(g["capturable"] for g in restored.net_.optimizer_.param_groups)


@cuda
@pytest.mark.parametrize(
    "settings",
    [
        {"learning_rate_decay": 0.5},  # a new rate each epoch: captured again
        {"kl_warmup": 2.0},  # the KL weight, a buffer the graph reads, set every step
        {"variant": "vade", "pretrain_epochs": 2},  # the prior and Adam's moments rewritten
        {"net_params": {"precision": "bfloat16"}},  # autocast without its cast cache
        {"validation_fraction": 0.25},  # validation between replays, on its own stream
    ],
    ids=["lr-decay", "kl-warmup", "vade-start", "bf16", "validation"],
)
def test_cuda_graph_equals_eager_with(blobs, settings):
    params = dict(random_state=0, device="cuda", **{**SMALL, "max_epochs": 5, "batch_size": 16})
    params |= settings
    engine = params.pop("net_params", {})
    graphed = GMVAEClustering(3, net_params={**engine, "cuda_graph": True}, **params).fit(blobs)
    eager = GMVAEClustering(3, net_params={**engine, "cuda_graph": False}, **params).fit(blobs)
    np.testing.assert_allclose(
        graphed.history_[:, "train_elbo"], eager.history_[:, "train_elbo"], rtol=1e-4
    )
    np.testing.assert_array_equal(graphed.labels_, eager.labels_)


@cuda
@pytest.mark.parametrize("n_init", [1, 3])
def test_the_first_graphed_step_agrees_with_the_eager_step(blobs, monkeypatch, n_init):
    # Each capture's first replay is checked against the eager step (a new capture each
    # epoch here, with the decayed rate); cuda_graph=True would raise on a disagreement.
    verdicts = []
    check = GraphedStep._disagreement

    def spy(self, *args):
        verdicts.append(check(self, *args))
        return verdicts[-1]

    monkeypatch.setattr(GraphedStep, "_disagreement", spy)
    params = dict(random_state=0, n_init=n_init, device="cuda", learning_rate_decay=0.5)
    params |= {**SMALL, "batch_size": 16}
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        GMVAEClustering(3, net_params={"cuda_graph": "auto"}, **params).fit(blobs)
    assert len(verdicts) >= SMALL["max_epochs"] and set(verdicts) == {None}


class SyncInTheStep(Callback):
    """Reads a gradient on the host during the step while it says it is graph-safe: the
    step cannot be captured."""

    graph_safe = True

    def on_grad_computed(self, net, named_parameters, **kwargs):
        next(iter(named_parameters))[1].grad.sum().item()


@cuda
def test_a_capture_that_fails_on_cuda_falls_back_to_eager_steps(blobs):
    params = dict(random_state=0, n_init=1, device="cuda", callbacks=[SyncInTheStep()])
    params |= {**SMALL, "batch_size": 16}
    with pytest.warns(RuntimeWarning, match="capturing it failed"):
        graphed = GMVAEClustering(3, net_params={"cuda_graph": "auto"}, **params).fit(blobs)
    eager = GMVAEClustering(3, net_params={"cuda_graph": False}, **params).fit(blobs)
    # The warm-up steps ran with the capturable Adam: equal up to the last bits.
    np.testing.assert_allclose(
        graphed.history_[:, "train_elbo"], eager.history_[:, "train_elbo"], rtol=1e-4
    )
    np.testing.assert_array_equal(graphed.labels_, eager.labels_)
    with pytest.raises(RuntimeError, match="capturing it failed"):
        GMVAEClustering(3, net_params={"cuda_graph": True}, **params).fit(blobs)


class PoisonOnce(Callback):
    """Makes a weight NaN before the 5th step of the first epoch (a replayed step of a
    graphed fit), so that the guard undoes that epoch and restores the state from before
    any step: an optimizer without state."""

    def initialize(self):
        self.steps_ = 0
        return self

    def on_batch_begin(self, net, training=False, **kwargs):
        self.steps_ += training
        if self.steps_ == 5 and len(net.history) == 1:
            with torch.no_grad():
                next(net.module_.parameters()).fill_(float("nan"))


def test_a_recovered_fit_says_so(blobs):
    # The first epoch is undone, the three others train at half the rate: neither a
    # divergence that ended training nor an interruption.
    params = {**SMALL, "max_epochs": 4, "batch_size": 16}
    est = GMVAEClustering(3, random_state=0, callbacks=[PoisonOnce()], **params)
    with pytest.warns(ConvergenceWarning, match="1 epoch, undone; .* multiplied by 0.5 and "):
        est.fit(blobs)
    assert est.n_iter_ == 3 and np.isfinite(est.lower_bound_)
    assert est.history_[-1, "train_elbo"] == est.lower_bound_
    # A warm start without divergence: nothing to report (the guard counts per training).
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        # Not about training: a cluster this short fit may leave empty.
        warnings.filterwarnings("ignore", "Number of distinct clusters", ConvergenceWarning)
        est.set_params(warm_start=True, max_epochs=2).fit(blobs)
    assert est.n_iter_ == 5


@cuda
def test_cuda_graph_after_a_recovery_from_before_the_first_step_equals_eager(blobs):
    # The restored optimizer has no state: Adam must not create it inside a capture (each
    # replay would start its moments afresh), so the graphed step warms up again.
    params = dict(random_state=0, device="cuda", callbacks=[PoisonOnce()])
    params |= {**SMALL, "max_epochs": 4, "batch_size": 16}
    graphed = GMVAEClustering(3, net_params={"cuda_graph": True}, **params).fit(blobs)
    eager = GMVAEClustering(3, net_params={"cuda_graph": False}, **params).fit(blobs)
    assert graphed.history_[0, "divergence_recoveries"] == 1
    assert np.isnan(graphed.history_[0, "train_elbo"])
    np.testing.assert_allclose(
        graphed.history_[1:, "train_elbo"], eager.history_[1:, "train_elbo"], rtol=1e-4
    )


@cuda
def test_cuda_graph_divergence_is_still_undone(blobs):
    est = GMVAEClustering(
        3,
        random_state=0,
        net_params={"cuda_graph": True},
        device="cuda",
        learning_rate=1e8,
        **SMALL,
    )
    with pytest.warns(Warning, match="diverged"):
        est.fit(blobs)
    assert all(torch.isfinite(p).all() for p in est.net_.module_.parameters())


def _record_epoch(net, losses):
    """An epoch in the history, with these steps' losses (the ELBO their negatives), and
    its scores as skorch records them."""
    net.history.new_epoch()
    for loss in losses:
        net.history.new_batch()
        net.history.record_batch("train_batch_size", 10 if loss == 4.0 else 30)
        net.history.record_batch("train_loss", loss)
        net.history.record_batch("train_elbo", -loss)
        net.history.record_batch("train_entropy", 0.5)
    for _, callback in net.callbacks_:
        if hasattr(callback, "on_train") and callback.on_train:
            callback.on_epoch_end(net)


def _guard_at_an_epoch_start(blobs):
    """A fitted net and its divergence guard, as at the start of a training's first epoch
    (the state kept)."""
    net = GMVAEClustering(3, random_state=0, **SMALL).fit(blobs).net_
    guard = dict(net.callbacks_)["divergence_guard"].initialize()
    guard.on_train_begin(net)
    guard.on_epoch_begin(net)
    return net, guard


def test_guard_undoes_an_epoch_with_a_non_finite_step(blobs):
    # The guard sees the steps' losses once per epoch (no per-step sync): a non-finite
    # step restores the state from before the epoch, so the whole epoch is undone.
    net, guard = _guard_at_an_epoch_start(blobs)  # kept: the state the epoch starts from
    kept = {k: v.clone() for k, v in net.module_.state_dict().items()}
    lr = net.optimizer_.param_groups[0]["lr"]
    with torch.no_grad():
        next(net.module_.parameters()).add_(1.0)  # the epoch's steps moved the weights
    _record_epoch(net, (2.0, 4.0, float("nan"), 1.0))
    assert np.isnan(net.history[-1, "train_loss"])
    guard.on_epoch_end(net)
    assert net.history[-1, "batches"] == []  # every step of the epoch was undone
    assert np.isnan(net.history[-1, "train_loss"]) and np.isnan(net.history[-1, "train_elbo"])
    assert "train_loss_best" not in net.history[-1]
    assert net.history[-1, "divergence_recoveries"] == 1
    assert net.optimizer_.param_groups[0]["lr"] == pytest.approx(lr * guard.lr_factor)
    for name, value in net.module_.state_dict().items():
        assert torch.equal(value, kept[name]), name


def test_guard_restores_the_same_state_at_every_recovery(blobs):
    # Two epochs in a row diverge: the second recovery must restore the state from before
    # the first, although training after the first one updated the optimizer's state in
    # place (Adam's moments), so the kept copy must not be the optimizer's own tensors.
    net, guard = _guard_at_an_epoch_start(blobs)
    kept = copy.deepcopy(net.optimizer_.state_dict()["state"])
    for _ in range(2):
        _record_epoch(net, (2.0, float("nan")))
        guard.on_epoch_end(net)
        restored = net.optimizer_.state_dict()["state"]
        for index, state in kept.items():
            for name, value in state.items():
                assert torch.equal(restored[index][name], value), name
        for state in net.optimizer_.state.values():  # the next epoch's steps, in place
            for value in state.values():
                value.add_(1.0)
    assert guard.recoveries_ == 2


def test_guard_keeps_each_finite_epoch_in_the_same_buffers(blobs):
    # From the second epoch on the kept state is copied into the first copy's tensors
    # (no allocation per epoch): a recovery restores the last finite epoch, never the
    # live weights or an older copy.
    net, guard = _guard_at_an_epoch_start(blobs)
    buffers = [t.data_ptr() for t in guard._good.module]
    live = {p.data_ptr() for p in net.module_.parameters()}
    assert live.isdisjoint(buffers)
    with torch.no_grad():
        next(net.module_.parameters()).add_(1.0)
    _record_epoch(net, (2.0, 1.0))
    guard.on_epoch_end(net)  # finite: kept, in place
    assert [t.data_ptr() for t in guard._good.module] == buffers
    kept = {k: v.clone() for k, v in net.module_.state_dict().items()}
    with torch.no_grad():
        next(net.module_.parameters()).add_(1.0)
    _record_epoch(net, (2.0, float("nan")))
    guard.on_epoch_end(net)
    for name, value in net.module_.state_dict().items():
        assert torch.equal(value, kept[name]), name


def test_the_training_mode_is_set_on_every_module_when_it_changes(blobs):
    # skorch sets the mode before every step; the net skips the walk over the modules
    # only when their mode is already the one asked for.
    net = GMVAEClustering(3, random_state=0, **SMALL).fit(blobs).net_
    for mode in (False, True, True, False):
        net._set_training(mode)
        modules = [*net.module_.modules(), net.criterion_]
        assert all(module.training is mode for module in modules)


def test_training_states_are_device_neutral(blobs):
    # A checkpoint taken during a graphed fit (capturable Adam) resumes where Adam cannot
    # capture: here the CPU, with the unfused Adam.
    params = dict(random_state=0, net_params={"optimizer__fused": False}, **SMALL)
    est = GMVAEClustering(3, **params).fit(blobs)
    for group in est.net_.optimizer_.param_groups:
        group["capturable"] = True  # as during a graphed fit
    state = est.net_.training_state()
    assert not any(group["capturable"] for group in state["optimizer"]["param_groups"])
    assert all(group["capturable"] for group in est.net_.optimizer_.param_groups)
    other = GMVAEClustering(3, **params).fit(blobs)
    other.net_.load_training_state(state)
    other.net_.partial_fit(torch.as_tensor(blobs, dtype=torch.float32), epochs=1)
    assert np.isfinite(other.net_.history[-1, "train_elbo"])


@pytest.mark.parametrize("fused", [True, False])
def test_a_released_step_leaves_the_optimizer_as_eager_training_has_it(blobs, fused):
    est = GMVAEClustering(3, random_state=0, net_params={"optimizer__fused": fused}, **SMALL)
    net = est.fit(blobs).net_
    graphed = GraphedStep(net)
    for group in net.optimizer_.param_groups:
        group["capturable"] = True  # as a capture leaves it
    graphed.release()
    assert not any(group["capturable"] for group in net.optimizer_.param_groups)
    assert all(state["step"].device.type == "cpu" for state in net.optimizer_.state.values())
    net.partial_fit(torch.as_tensor(blobs, dtype=torch.float32), epochs=1)  # trains eagerly


def test_the_graph_key_takes_any_optimizer_setting_and_sees_a_change(blobs):
    # Tensors (betas as tensors, as capturable Adam allows), arrays and dicts in a param
    # group: the key compares without a sync or an ambiguous array truth value, an equal
    # copy of a setting keeps it, and a changed setting changes it.
    est = GMVAEClustering(3, random_state=0, n_init=1, **SMALL).fit(blobs)
    group = est.net_.optimizer_.param_groups[0]
    group["betas"] = (torch.tensor(0.9), torch.tensor(0.999))
    group["extra"] = [np.array([1.0, 2.0]), {"a": 1}]
    step = GraphedStep(est.net_)
    key = step._key()
    group["extra"] = [np.array([1.0, 2.0]), {"a": 1}]  # equal, new objects
    assert step._key() == key
    group["extra"] = [np.array([1.0, 3.0]), {"a": 1}]
    assert step._key() != key
    group["extra"] = [np.array([1.0, 2.0]), {"a": 1}]
    group["lr"] *= 0.5
    assert step._key() != key


def test_a_guard_pickled_before_carry_on_still_trains(blobs):
    # An estimator pickled by an earlier version holds a guard without _carry_on.
    est = GMVAEClustering(3, random_state=0, n_init=1, **SMALL).fit(blobs)
    guard = dict(est.net_.callbacks_)["divergence_guard"]
    del guard.__dict__["_carry_on"]
    old = pickle.loads(pickle.dumps(est))
    old.set_params(warm_start=True, max_epochs=1).fit(blobs)
    assert old.n_iter_ == SMALL["max_epochs"] + 1
