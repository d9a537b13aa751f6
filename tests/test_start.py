"""The start of a fit (``init``): validation, the pre-trained starts of every variant, the
warning for a start that learned nothing, and the error without umap-learn."""

import sys
import warnings

import numpy as np
import pytest
import torch
from _helpers import small_params
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score
from sklearn.mixture import GaussianMixture
from sklearn.utils._param_validation import InvalidParameterError
from skorch.callbacks import Callback

from sk_gmvae import GMVAEClustering, _config, _start
from sk_gmvae._config import AUTO_PRETRAIN_STEPS, resolve_config
from sk_gmvae._training import build_net
from sk_gmvae.metrics import hungarian_accuracy
from sk_gmvae.persistence import load_weights, save_weights
from sk_gmvae.study.runner import STUDY_SETTINGS

SMALL = small_params(hidden_layer_sizes=(16,), max_epochs=2, n_init=1, random_state=0)


@pytest.fixture(scope="module")
def separated(blobs):
    """The 3 blobs, standardized (far apart: any working start separates them)."""
    X, y = blobs
    return (X - X.mean(0)) / X.std(0), y


def _start_of(est):
    return dict(est.net_.callbacks_)["start"]


@pytest.mark.parametrize(
    "params, error",
    [
        ({"init": "kmeans"}, InvalidParameterError),
        ({"init": "autoencoder", "pretrain_steps": -1}, InvalidParameterError),
        ({"init": "autoencoder", "variant": "dilokthanakul"}, ValueError),
        ({"init": "autoencoder", "variant": "vade", "pretrain_epochs": 1}, ValueError),
    ],
)
def test_parameter_is_validated(separated, params, error):
    with pytest.raises(error):
        GMVAEClustering(3, **{**SMALL, **params}).fit(separated[0])


def test_auto_is_the_random_start_and_steps_resolve():
    params = GMVAEClustering().get_params()
    config = resolve_config(params, 500, 8, "gaussian", "cpu")
    assert (config.init, config.pretrain_steps) == ("random", 0)
    # The "umap" start pre-trains from 10,000 rows; below, UMAP takes the rows.
    started = resolve_config({**params, "init": "umap"}, 500, 8, "gaussian", "cpu")
    assert (started.init, started.pretrain_steps) == ("umap", 0)
    large = resolve_config({**params, "init": "umap"}, 10_000, 8, "gaussian", "cpu")
    assert large.pretrain_steps == AUTO_PRETRAIN_STEPS
    # From 28,000 rows a step per 14 rows: 5,000 at 70,000.
    steps = [
        resolve_config({**params, "init": "umap"}, rows, 8, "gaussian", "cpu").pretrain_steps
        for rows in (28_000, 60_000, 70_000)
    ]
    assert steps == [AUTO_PRETRAIN_STEPS, 4285, 5000]
    # UMAP draws of a start: below 10,000 rows as many as embed 6,000 rows, 1 to 3
    # (each restart draws its own); from 10,000 rows as many as embed 100,000 rows in
    # all, at least five.
    larger = resolve_config({**params, "init": "umap"}, 70_000, 8, "gaussian", "cpu")
    assert (started.start_draws, large.start_draws, larger.start_draws) == (3, 10, 5)
    draws = [
        resolve_config({**params, "init": "umap"}, rows, 8, "gaussian", "cpu").start_draws
        for rows in (10, 1797, 3000, 6001)
    ]
    assert draws == [3, 3, 2, 1]
    # UMAP's settings: N2D's below 10,000 rows; from there 10 neighbours, 5 dimensions
    # and the cosine distance. The net's start takes both rules.
    assert started.start_umap == {}
    assert large.start_umap == {"n_neighbors": 10, "n_components": 5, "metric": "cosine"}
    start = dict(build_net(large, 0).callbacks)["start"]
    assert (start.draws, start.umap) == (10, large.start_umap)
    chosen = resolve_config(
        {**params, "init": "umap", "pretrain_steps": 7}, 500, 8, "gaussian", "cpu"
    )
    assert chosen.pretrain_steps == 7
    # After the "umap" start q(y|x)'s network learns at a thousandth of the rate, auto
    # or not; VaDE has no such network and refines at a tenth of the auto rate. The
    # other starts have neither rule.
    assert started.learning_rate == config.learning_rate
    assert started.assignment_learning_rate == pytest.approx(config.learning_rate / 1000)
    chosen = {**params, "init": "umap", "learning_rate": 0.02}
    assert resolve_config(
        chosen, 500, 8, "gaussian", "cpu"
    ).assignment_learning_rate == pytest.approx(2e-5)
    vade = resolve_config({**params, "init": "umap", "variant": "vade"}, 500, 8, "gaussian", "cpu")
    assert vade.learning_rate == pytest.approx(config.learning_rate / 10)
    assert vade.assignment_learning_rate is None
    coded = resolve_config({**params, "init": "autoencoder"}, 500, 8, "gaussian", "cpu")
    assert coded.pretrain_steps == AUTO_PRETRAIN_STEPS
    assert coded.learning_rate == config.learning_rate
    assert config.assignment_learning_rate is coded.assignment_learning_rate is None
    stacked = {**params, "init": "autoencoder", "n_init": 3, "stack_restarts": True}
    assert not resolve_config(stacked, 500, 8, "gaussian", "cpu").stack_restarts


@pytest.mark.parametrize(
    "changes, rows, features, likelihood, init, steps",
    [
        ({}, 1000, 64, "bernoulli", "umap", 0),  # images: UMAP of the rows
        ({}, 10_000, 784, "bernoulli", "umap", AUTO_PRETRAIN_STEPS),  # of the codes
        ({"variant": "vade"}, 1797, 64, "bernoulli", "umap", 0),
        ({}, 1000, 64, "gaussian", "random", 0),  # tabular data
        ({}, 999, 64, "bernoulli", "random", 0),  # too few rows
        ({}, 1000, 63, "bernoulli", "random", 0),  # too few features
        ({"variant": "m2"}, 1000, 64, "bernoulli", "random", 0),
        ({"variant": "dilokthanakul"}, 1000, 64, "bernoulli", "random", 0),
        ({"variant": "vade", "pretrain_epochs": 2}, 1000, 64, "bernoulli", "random", 0),
        (STUDY_SETTINGS, 60_000, 784, "bernoulli", "random", 0),  # the study's
    ],
)
def test_auto_takes_the_umap_start_for_images(changes, rows, features, likelihood, init, steps):
    params = {**GMVAEClustering().get_params(), **changes}
    config = resolve_config(params, rows, features, likelihood, "cpu")
    assert (config.init, config.pretrain_steps) == (init, steps)


def test_auto_without_umap_learn_starts_images_at_random_with_a_warning(digits, monkeypatch):
    monkeypatch.setattr(_config, "umap_installed", lambda: False)
    params = GMVAEClustering().get_params()
    assert resolve_config(params, 1797, 64, "bernoulli", "cpu").init == "random"
    X = digits[0]
    with pytest.warns(UserWarning, match=r"pip install 'sk_gmvae\[umap\]'"):
        est = GMVAEClustering(3, **SMALL).fit(X)
    assert "start" not in dict(est.net_.callbacks_)
    with warnings.catch_warnings():  # asked for, the random start says nothing
        warnings.filterwarnings("error", message=".*umap-learn.*")
        GMVAEClustering(3, init="random", **SMALL).fit(X)


def test_umap_start_trains_q_y_at_its_own_rate(separated, tmp_path):
    params = {**SMALL, "learning_rate": 0.01}
    est = GMVAEClustering(3, init="umap", pretrain_steps=50, **params).fit(separated[0])
    groups = est.net_.optimizer_.param_groups
    rates = sorted(group["lr"] for group in groups)
    assert rates == pytest.approx([1e-5, 0.01])
    names = {id(p): name for name, p in est.net_.module_.named_parameters()}
    (slow,) = (group for group in groups if group["lr"] == pytest.approx(1e-5))
    qy = {name for name in names.values() if name.startswith("qy.")}
    assert qy and {names[id(p)] for p in slow["params"]} == qy
    assert sum(len(group["params"]) for group in groups) == len(names)
    save_weights(est, tmp_path / "model.pt")  # a reloaded model goes on at both rates
    loaded = load_weights(tmp_path / "model.pt").net_.optimizer_.param_groups
    assert [group["lr"] for group in loaded] == [group["lr"] for group in groups]


def test_users_parameter_groups_come_before_q_y_s():
    # skorch gives a parameter to the first group whose pattern matches it.
    mine = {"optimizer__param_groups": [("dec_out.*", {"lr": 0.05}), ("qy.0.*", {"lr": 0.5})]}
    params = {**GMVAEClustering(init="umap", learning_rate=0.01).get_params(), "net_params": mine}
    net = build_net(resolve_config(params, 500, 8, "gaussian", "cpu"), 0).initialize()
    rates = [group["lr"] for group in net.optimizer_.param_groups]
    assert rates == pytest.approx([0.05, 0.5, 1e-5, 0.01])


def test_random_start_adds_nothing(separated):
    est = GMVAEClustering(3, **SMALL).fit(separated[0])
    assert "start" not in dict(est.net_.callbacks_)


@pytest.mark.parametrize(
    "variant, init",
    [
        ("gmvae", "autoencoder"),
        ("gmvae", "umap"),
        ("vade", "autoencoder"),
        ("modified_m2", "autoencoder"),
        ("m2", "autoencoder"),
    ],
)
def test_each_start_learns_and_starts_the_mixture(separated, variant, init):
    X, y = separated
    est = GMVAEClustering(3, variant=variant, init=init, pretrain_steps=300, **SMALL).fit(X)
    start = _start_of(est)
    assert start.used_
    assert start.loss_after_ < start.loss_before_
    # Three far-apart blobs: the first assignment finds them.
    assert hungarian_accuracy(y, start.assignment_) > 0.95
    if variant == "vade":
        assert np.isnan(start.agreement_)  # its q(y|x) is the prior's responsibility
    else:
        assert start.agreement_ > 0.95  # q(y|x) learned the first assignment
    assert est.labels_.shape == (len(X),)
    assert est.predict_proba(X).shape == (len(X), 3)


class _PriorAtStart(Callback):
    """The cluster prior, the codes E[z|x] and the first assignment as training begins
    (after the start, which is the first callback)."""

    def __init__(self, X):
        self.X = X

    def on_train_begin(self, net, **kwargs):
        module = net.module_
        with torch.no_grad():
            self.codes_ = module.encode_z(torch.tensor(self.X, dtype=torch.float32))[0]
            self.means_ = module.cluster_gaussians()[0].numpy()
        self.assignment_ = dict(net.callbacks_)["start"].assignment_


@pytest.mark.parametrize("variant", ["gmvae", "vade"])
def test_cluster_prior_starts_at_the_codes_of_each_cluster(separated, variant, monkeypatch):
    X, _ = separated
    monkeypatch.setattr(_start, "ASSIGNMENT_FRACTION", 0)  # the prior as set, not yet trained
    params = dict(SMALL, max_epochs=1, callbacks=[_PriorAtStart(X)])
    est = GMVAEClustering(3, variant=variant, init="autoencoder", pretrain_steps=300, **params)
    probe = dict(est.fit(X).net_.callbacks_)["_PriorAtStart"]  # the net's copy
    for k in range(3):  # far-apart blobs: responsibilities of 0 or 1
        codes = probe.codes_[probe.assignment_ == k][:, 0 if variant == "vade" else k]
        np.testing.assert_allclose(probe.means_[k], codes.mean(0).numpy(), atol=1e-3)


@pytest.mark.parametrize("variant", ["m2", "modified_m2", "gmvae", "vade"])
def test_fit_to_assignment_makes_the_model_name_the_assigned_clusters(separated, variant):
    from sk_gmvae._inference import posterior
    from sk_gmvae._model import MixtureVAE

    X, y = separated
    torch.manual_seed(0)
    module = MixtureVAE(X.shape[1], 3, 2, [16], variant=variant, likelihood="gaussian")
    labels = (y + 1) % 3  # an assignment the random weights know nothing of
    before = posterior(module, X, torch.float32).argmax(1)
    rows = torch.tensor(X, dtype=torch.float32)
    _start.fit_to_assignment(module, rows, labels, 600, 32, torch.Generator().manual_seed(0), 0)
    after = posterior(module.eval(), X, torch.float32).argmax(1)
    assert np.mean(before == labels) < 0.7
    assert np.mean(after == labels) > 0.95  # q(y|x) (VaDE: p(y|z)) names them as assigned


@pytest.mark.parametrize("init", ["autoencoder", "umap"])
def test_untrained_start_warns_and_is_not_used(separated, monkeypatch, init):
    X, _ = separated
    monkeypatch.setattr(_start, "PRETRAIN_LEARNING_RATE", 1e-12)  # it cannot move
    with pytest.warns(UserWarning, match="did not learn"):
        est = GMVAEClustering(3, init=init, pretrain_steps=5, **SMALL).fit(X)
    assert not _start_of(est).used_
    random = GMVAEClustering(3, init="random", **SMALL).fit(X)
    # Undone: the fit is the random start's, weight for weight (q(y|x)'s network
    # included, which the "umap" start would have slowed).
    expected = random.net_.module_.state_dict()
    for name, value in est.net_.module_.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), expected[name].numpy(), err_msg=name)


def test_discarded_start_keeps_the_users_parameter_groups(separated, monkeypatch):
    X, _ = separated
    monkeypatch.setattr(_start, "PRETRAIN_LEARNING_RATE", 1e-12)  # it cannot move
    groups = [("dec_out.*", {"lr": 1e-5})]
    with pytest.warns(UserWarning, match="did not learn"):
        est = GMVAEClustering(
            3,
            init="umap",
            pretrain_steps=5,
            net_params={"optimizer__param_groups": groups},
            **SMALL,
        ).fit(X)
    rates = [group["lr"] for group in est.net_.optimizer_.param_groups]
    # The user's group, q(y|x)'s (back at the net's rate from its started thousandth),
    # and the rest.
    assert rates == [1e-5, est.net_.lr, est.net_.lr]


@pytest.mark.parametrize("steps, message", [(50, "did not learn"), (0, "rows do not vary")])
def test_codes_without_spread_are_not_used(steps, message):
    X = np.full((40, 4), 0.5)  # one row, 40 times: every code the same
    with pytest.warns(UserWarning, match=message):
        est = GMVAEClustering(2, init="autoencoder", pretrain_steps=steps, **SMALL).fit(X)
    start = _start_of(est)
    assert not start.used_
    assert np.isnan(start.loss_before_) == (steps == 0)  # no pre-training ran


@pytest.mark.parametrize("init", ["autoencoder", "umap"])
def test_start_without_pretraining_clusters_the_rows(separated, monkeypatch, init):
    X, y = separated
    seen, steps = [], []
    assign, fit_to = _start.first_assignment, _start.fit_to_assignment

    def first_assignment(codes, *args):
        seen.append(codes)
        return assign(codes, *args)

    def fit_to_assignment(module, rows, labels, n_steps, *args):
        steps.append(n_steps)
        return fit_to(module, rows, labels, n_steps, *args)

    monkeypatch.setattr(_start, "first_assignment", first_assignment)
    monkeypatch.setattr(_start, "fit_to_assignment", fit_to_assignment)
    raw = X * 10 + 3  # standardized inside the model: the start sees X's scale
    est = GMVAEClustering(3, init=init, pretrain_steps=0, **SMALL).fit(raw)
    start = _start_of(est)
    assert start.used_ and np.isnan(start.loss_before_)
    (codes,) = seen  # the rows as the model sees them, not an encoder's codes
    np.testing.assert_allclose(codes, X, atol=1e-5)
    assert steps == [_start.ASSIGNMENT_STEPS]  # not a fraction of no pre-training
    assert hungarian_accuracy(y, start.assignment_) > 0.95
    assert start.agreement_ > 0.95


@pytest.mark.parametrize("batch_size, expected", [(120, 10), (24, 25)])
def test_q_y_fits_the_first_assignment_for_epochs_of_the_rows(
    separated, monkeypatch, batch_size, expected
):
    X, _ = separated  # 120 rows
    monkeypatch.setattr(_start, "QY_EPOCHS", 5)
    monkeypatch.setattr(_start, "QY_STEPS", 10)  # at least 10 steps
    counted = []
    fit_qy = _start.AutoencoderStart._fit_qy

    def spy(self, module, rows, R, steps, *args):
        counted.append(steps)
        return fit_qy(self, module, rows, R, steps, *args)

    monkeypatch.setattr(_start.AutoencoderStart, "_fit_qy", spy)
    params = {**SMALL, "batch_size": batch_size}
    GMVAEClustering(3, init="umap", pretrain_steps=0, **params).fit(X)
    # 5 epochs of 120 rows: 5 steps of 120 rows (then QY_STEPS), 25 of 24
    assert counted == [expected]


@pytest.mark.parametrize("seed", [0, 8])
def test_first_assignment_keeps_the_best_of_several_mixtures(seed):
    # Ten blobs where one EM run from these seeds merges two of them and splits another.
    X, y = make_blobs(600, centers=10, cluster_std=0.5, center_box=(-10, 10), random_state=0)
    one = GaussianMixture(10, covariance_type="diag", random_state=seed).fit_predict(X)
    assert adjusted_rand_score(y, one) < 0.9
    R = _start.first_assignment(X, 10, "autoencoder", seed)
    assert adjusted_rand_score(y, R.argmax(1)) > 0.99


def test_umap_start_keeps_the_most_informative_of_its_draws(monkeypatch):
    # Four blobs; the second of three stand-in embeddings separates them, the others
    # put two pairs of blobs together (less information about the rows).
    X, y = make_blobs(400, centers=4, n_features=3, cluster_std=0.3, random_state=0)
    separated = np.eye(4)[y] * 10 + np.random.default_rng(0).normal(size=(400, 4))
    merged = separated[:, [0, 0, 2, 2]] + separated[:, [1, 1, 3, 3]]
    seeds, used = [], []

    class StandIn:
        def __init__(self, random_state, **settings):
            self.random_state = random_state
            used.append(settings)

        def fit_transform(self, codes):
            seeds.append(self.random_state)
            return separated if self.random_state == 8 else merged

    monkeypatch.setattr(_start, "require_umap", lambda: StandIn)
    umap = {"n_neighbors": 10, "metric": "cosine"}
    R = _start.first_assignment(X, 4, "umap", 7, draws=3, umap=umap)
    assert seeds == [7, 8, 9]
    assert all(s == {**_start.UMAP_SETTINGS, **umap, "init": "spectral", "n_jobs": 1} for s in used)
    assert adjusted_rand_score(y, R.argmax(1)) == 1.0
    one = _start.first_assignment(X, 4, "umap", 7)  # one draw: the first embedding
    assert adjusted_rand_score(y, one.argmax(1)) < 0.7
    assert used[-1] == {**_start.UMAP_SETTINGS, "init": "spectral", "n_jobs": 1}  # N2D's
    _start.first_assignment(X[:6], 2, "umap", 7)
    # At most the other rows as neighbours, fewer dimensions than rows, UMAP's random
    # start where its spectral one lacks rows.
    small = {"n_neighbors": 5, "n_components": 4, "min_dist": 0.0, "init": "random"}
    assert used[-1] == {**small, "n_jobs": 1}


def test_warm_start_does_not_start_again(separated):
    X, _ = separated
    est = GMVAEClustering(3, init="autoencoder", pretrain_steps=50, **SMALL).fit(X)
    first = _start_of(est).assignment_
    est.set_params(warm_start=True, max_epochs=1).fit(X)
    assert _start_of(est).assignment_ is first


def test_umap_start_of_two_rows():
    # UMAP needs two neighbours per row; two rows are assigned as they are.
    X = np.array([[0.0, 1.0], [1.0, 0.0]])
    est = GMVAEClustering(2, init="umap", **SMALL).fit(X)
    assert _start_of(est).used_
    assert sorted(est.labels_) == [0, 1]


def test_missing_umap_names_the_extra(separated, monkeypatch):
    monkeypatch.setitem(sys.modules, "umap", None)  # import umap raises ImportError
    with pytest.raises(ImportError, match=r"sk_gmvae\[umap\]"):
        GMVAEClustering(3, init="umap", **SMALL).fit(separated[0])


def test_started_model_saves_and_loads(separated, tmp_path):
    X, _ = separated
    est = GMVAEClustering(3, init="autoencoder", pretrain_steps=50, **SMALL).fit(X)
    save_weights(est, tmp_path / "model")
    loaded = load_weights(tmp_path / "model", device="cpu")
    assert loaded.get_params()["init"] == "autoencoder"
    np.testing.assert_array_equal(loaded.predict(X), est.predict(X))


class _QyAtStart(Callback):
    """q(y|x)'s weights as training begins, after the start."""

    def on_train_begin(self, net, **kwargs):
        self.weights_ = [p.detach().clone() for p in net.module_.qy.parameters()]


@pytest.mark.parametrize("hold, held", [(1, True), (0, False)])
def test_hold_keeps_qy_at_the_first_assignment(separated, hold, held):
    X, _ = separated
    callbacks = [_QyAtStart(), _start.HoldAssignments(hold)]
    est = GMVAEClustering(
        3, init="autoencoder", pretrain_steps=50, **{**SMALL, "max_epochs": 1}, callbacks=callbacks
    ).fit(X)
    at_start = dict(est.net_.callbacks_)["_QyAtStart"].weights_
    # q(y|x)'s first layer (the last one's rows are renumbered by cluster size at the end).
    first = est.net_.module_.qy[0]
    same = [
        torch.equal(a, b) for a, b in zip(at_start[:2], [first.weight, first.bias], strict=True)
    ]
    assert all(same) if held else not any(same)
