"""Odd and bad input: a clear error or a correct result, never a crash inside torch."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from sk_gmvae import GMVAEClustering

TINY = dict(latent_dim=1, hidden_layer_sizes=(4,), max_epochs=2, random_state=0)

DTYPES = [np.float64, np.float32, np.int64, np.int32, np.uint8, np.bool_]


def _cast(X, dtype):
    if dtype is np.bool_:
        return X != 0
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return np.clip(np.round(X), info.min, info.max).astype(dtype)
    return X.astype(dtype)


finite_matrices = st.builds(
    _cast,
    st.tuples(st.integers(1, 12), st.integers(1, 4)).flatmap(
        lambda shape: arrays(
            np.float64,
            shape,
            elements=st.one_of(
                st.just(0.0), st.integers(-3, 3).map(float), st.floats(-1e6, 1e6, width=32)
            ),
        )
    ),
    st.sampled_from(DTYPES),
)


def _check_outputs(est, X):
    n, k = X.shape[0], est.n_clusters
    proba = est.predict_proba(X)
    assert proba.shape == (n, k) and np.isfinite(proba).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    labels = est.predict(X)
    assert labels.shape == (n,) and labels.min() >= 0 and labels.max() < k
    assert est.labels_.shape == (n,)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(finite_matrices, st.integers(1, 3), st.sampled_from(["gmvae", "modified_m2", "m2"]))
def test_any_finite_matrix_fits_and_predicts(X, k, variant):
    est = GMVAEClustering(k, variant=variant, **TINY)
    try:
        est.fit(X)
    except ValueError as exc:  # allowed: a clear message
        assert str(exc)
        return
    _check_outputs(est, X)
    score = est.score_samples(X)
    assert score.shape == (X.shape[0],) and not np.isnan(score).any()


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_and_inf_are_rejected(bad):
    X = np.ones((5, 2))
    X[2, 1] = bad
    with pytest.raises(ValueError, match="NaN|infinity"):
        GMVAEClustering(2, **TINY).fit(X)
    est = GMVAEClustering(2, **TINY).fit(np.ones((5, 2)))
    with pytest.raises(ValueError, match="NaN|infinity"):
        est.predict(X)


def test_values_beyond_float32_are_rejected():
    X = np.ones((4, 2))
    X[0, 0] = 1e39
    with pytest.raises(ValueError, match="float32"):
        GMVAEClustering(2, **TINY).fit(X)


def test_constant_columns_and_huge_scale():
    rng = np.random.default_rng(0)
    X = np.column_stack([np.full(30, 7.0), rng.normal(size=30) * 1e5, np.zeros(30)])
    est = GMVAEClustering(3, **TINY).fit(X)
    _check_outputs(est, X)
    assert np.isfinite(est.score(X))


@pytest.mark.parametrize(
    "X, error, match",
    [
        (np.array(["a", "b"] * 4).reshape(4, 2), ValueError, "convert|string"),
        (np.ones(5), ValueError, "2D"),
        (np.ones((3, 0)), ValueError, "feature"),
        (np.ones((0, 3)), ValueError, "sample"),
        (sp.csr_matrix(np.ones((4, 2))), TypeError, "[Ss]parse"),
        (np.ones((4, 2)) + 1j, ValueError, "[Cc]omplex"),
    ],
)
def test_bad_arrays_give_clear_errors(X, error, match):
    with pytest.raises(error, match=match):
        GMVAEClustering(2, **TINY).fit(X)


def test_wrong_number_of_features_at_predict():
    est = GMVAEClustering(2, **TINY).fit(np.ones((6, 3)))
    for method in (est.predict, est.predict_proba, est.score_samples, est.score):
        with pytest.raises(ValueError, match="3 features"):
            method(np.ones((2, 4)))


def test_large_input_is_predicted_in_bounded_chunks(monkeypatch):
    from sk_gmvae import _inference

    monkeypatch.setattr(_inference, "_CHUNK_ELEMENTS", 64)  # force many small chunks
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3))
    est = GMVAEClustering(2, **TINY).fit(X)
    chunked = est.predict_proba(X)
    monkeypatch.setattr(_inference, "_CHUNK_ELEMENTS", 2**22)
    np.testing.assert_allclose(chunked, est.predict_proba(X), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("make", ["early_stopping", "checkpoint", "pair"])
def test_callbacks_that_monitor_validation_scores_need_a_split(make, tmp_path):
    from skorch.callbacks import Checkpoint, EarlyStopping

    callback = {
        "early_stopping": lambda: EarlyStopping(),
        "checkpoint": lambda: Checkpoint(dirname=str(tmp_path)),
        "pair": lambda: ("stop", EarlyStopping(monitor="valid_elbo", lower_is_better=False)),
    }[make]()
    X = np.random.default_rng(0).normal(size=(40, 3))
    with pytest.raises(ValueError, match="validation_fraction"):
        GMVAEClustering(2, callbacks=[callback], n_init=1, **TINY).fit(X)
    # With a split the same callback works (skorch's KeyError before).
    est = GMVAEClustering(2, callbacks=[callback], validation_fraction=0.25, n_init=1, **TINY)
    assert est.fit(X).n_iter_ >= 1
    # A callback that monitors a training score needs none.
    train = EarlyStopping(monitor="train_loss")
    assert GMVAEClustering(2, callbacks=[train], n_init=1, **TINY).fit(X).n_iter_ >= 1


@pytest.mark.parametrize("name", ["n_clusters", "n_init", "max_epochs", "posterior_samples"])
def test_integer_parameters_refuse_bools(name):
    X = np.random.default_rng(0).normal(size=(20, 3))
    with pytest.raises(ValueError, match=f"{name}.*not a bool"):
        GMVAEClustering(**{**TINY, name: True}).fit(X)


def test_unstandardized_real_data_is_standardized_or_flagged():
    rng = np.random.default_rng(0)
    raw = rng.normal(size=(40, 3)) * [0.1, 1.0, 300.0] + [0.0, 5.0, 700.0]  # wine-like
    # Taken as it is only with standardize=False, and then fit says so.
    with pytest.warns(UserWarning, match="does not look standardized.*standardize=False"):
        GMVAEClustering(2, n_init=1, standardize=False, **TINY).fit(raw)
    scaled = (raw - raw.mean(0)) / raw.std(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        assert GMVAEClustering(2, n_init=1, **TINY).fit(raw).standardize_  # the default
        GMVAEClustering(2, n_init=1, standardize=False, **TINY).fit(scaled)  # no such warning
        GMVAEClustering(2, n_init=1, **TINY).fit(rng.uniform(size=(40, 3)))  # Bernoulli


def test_empty_clusters_are_reported_as_kmeans_does():
    from sklearn.exceptions import ConvergenceWarning

    X = np.ones((12, 2))  # one distinct row: one cluster can be found
    with pytest.warns(ConvergenceWarning, match=r"distinct clusters \(1\).*n_clusters \(3\)"):
        est = GMVAEClustering(3, n_init=1, **TINY).fit(X)
    assert np.unique(est.labels_).tolist() == [0]


def test_more_clusters_than_rows_is_refused_as_gaussian_mixture_does():
    from sklearn.mixture import GaussianMixture

    X = np.random.default_rng(0).normal(size=(6, 2))
    with pytest.raises(ValueError, match="n_samples >= n_components"):
        GaussianMixture(7).fit(X)  # the precedent
    for k in (7, np.int64(100)):
        with pytest.raises(ValueError, match=rf"n_samples >= n_clusters.*= {k}, n_samples = 6"):
            GMVAEClustering(k, n_init=1, **TINY).fit(X)
    est = GMVAEClustering(6, n_init=1, **TINY).fit(X)  # as many clusters as rows: fine
    assert est.labels_.shape == (6,)


@pytest.mark.parametrize(
    "name, value",
    [
        ("optimizer", str),
        ("optimizer", lambda params, lr: None),  # callable, but not an optimizer class
        ("callbacks", [1]),
        ("callbacks", [("name", 1)]),
        ("callbacks", ["name"]),
        ("device", "meta"),
        ("device", torch.device("meta")),
        ("device", "cuda:x"),
    ],
)
def test_object_parameters_are_checked(name, value):
    X = np.random.default_rng(0).normal(size=(20, 3))
    with pytest.raises(ValueError, match=f"The '{name}' parameter of GMVAEClustering must be"):
        GMVAEClustering(2, n_init=1, **TINY, **{name: value}).fit(X)


def test_object_parameters_of_the_documented_kinds_train():
    from skorch.callbacks import Callback, EarlyStopping

    X = np.random.default_rng(0).normal(size=(20, 3))
    params = dict(optimizer=torch.optim.SGD, device=torch.device("cpu"), n_init=1, **TINY)
    callbacks = [EarlyStopping(monitor="train_loss"), ("probe", Callback())]
    assert GMVAEClustering(2, callbacks=callbacks, **params).fit(X).n_iter_ == 2


@pytest.mark.parametrize("weight, eta", [(1.0, 1.0), (2.0, 1.0), (0.5, 0.3)])
def test_entropy_weight_of_at_least_eta_is_refused(weight, eta):
    X = np.random.default_rng(0).normal(size=(20, 3))
    est = GMVAEClustering(2, entropy_weight=weight, eta=eta, n_init=1, **TINY)
    with pytest.raises(ValueError, match=rf"entropy_weight={weight}.*eta={eta}"):
        est.fit(X)


@pytest.mark.parametrize(
    "weight, eta, used", [(0.0, 0.0, 0.0), ("auto", 0.0, 0.0), ("auto", 0.5, 0.25), (-1, 0, -1)]
)
def test_entropy_weight_below_eta_or_zero_trains(weight, eta, used):
    X = np.random.default_rng(0).normal(size=(20, 3))
    est = GMVAEClustering(2, entropy_weight=weight, eta=eta, n_init=1, **TINY).fit(X)
    assert est.entropy_weight_ == used and est.n_iter_ == 2


def test_inference_refuses_what_fit_refuses_and_is_finite_within_range():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 3))
    est = GMVAEClustering(2, n_init=1, **TINY).fit(X)
    assert est.likelihood_ == "gaussian"
    methods = (
        est.predict,
        est.predict_proba,
        est.score_samples,
        est.score,
        est.transform,
        est.latent_posterior,
        est.inverse_transform,
    )
    for scale in (1e300, 1e39):
        for method in methods:
            X_bad = X[:, :1] * scale if method == est.inverse_transform else X * scale
            with pytest.raises(ValueError, match="float32 range"):
                method(X_bad)
    # Large values within float32's range: finite probabilities, rows summing to 1, by
    # q(y|x) and by the model's posterior.
    for top in (1e30, np.finfo(np.float32).max):
        X_big = X / np.abs(X).max() * top
        for samples in (0, 8):
            proba = est.set_params(posterior_samples=samples).predict_proba(X_big)
            assert np.isfinite(proba).all()
            np.testing.assert_allclose(proba.sum(axis=1), 1.0)
        assert np.isfinite(est.score_samples(X_big)).all()
