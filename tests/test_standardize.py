"""The Gaussian likelihood's own standardization of the features (``standardize``)."""

import pickle
import warnings

import numpy as np
import pytest
from _helpers import small_params
from sklearn.datasets import load_wine, make_blobs
from sklearn.metrics import adjusted_rand_score
from sklearn.preprocessing import StandardScaler

from sk_gmvae import GMVAEClustering
from sk_gmvae.persistence import load_weights, save_weights

TINY = small_params(max_epochs=60, learning_rate=1e-2, n_init=1, posterior_samples=0)
# Features of very different scales and offsets, as measured data come.
SCALES = np.array([0.01, 1.0, 300.0, 5.0])
SHIFTS = np.array([0.0, -4.0, 900.0, 50.0])


@pytest.fixture(scope="module")
def raw_blobs():
    X, y = make_blobs(n_samples=150, centers=3, n_features=4, random_state=0)
    return X * SCALES + SHIFTS, y


@pytest.fixture(scope="module")
def fitted(raw_blobs):
    return GMVAEClustering(3, random_state=0, **TINY).fit(raw_blobs[0])


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_raw_wine_is_clustered_not_collapsed():
    X, y = load_wine(return_X_y=True)  # feature standard deviations 0.12 to 314
    params = dict(max_epochs=100, random_state=0)  # the default networks, 200 steps
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no unscaled-data or empty-cluster warning
        est = GMVAEClustering(3, **params).fit(X)
    assert est.standardize_ and len(np.unique(est.labels_)) == 3
    # One cluster, as without the standardization, is an ARI of 0; KMeans on the raw
    # data reaches 0.37.
    assert adjusted_rand_score(y, est.labels_) > 0.6
    # Without it the data go in as they are, and fit says so.
    with pytest.warns(UserWarning, match="does not look standardized.*standardize=False"):
        GMVAEClustering(3, standardize=False, **params).fit(X)


def test_same_model_as_a_standard_scaler_in_front(raw_blobs, fitted):
    X, _ = raw_blobs
    scaler = StandardScaler().fit(X)
    scaled = GMVAEClustering(3, random_state=0, standardize=False, **TINY)
    scaled.fit(scaler.transform(X))
    np.testing.assert_array_equal(fitted.mean_, scaler.mean_)
    np.testing.assert_array_equal(fitted.scale_, scaler.scale_)
    np.testing.assert_array_equal(fitted.labels_, scaled.labels_)
    np.testing.assert_allclose(fitted.predict_proba(X), scaled.predict_proba(scaler.transform(X)))
    Z = fitted.transform(X)  # the latent space is the same
    np.testing.assert_allclose(Z, scaled.transform(scaler.transform(X)))
    # Decoded rows come back in the units of X.
    decoded = scaler.inverse_transform(scaled.inverse_transform(Z))
    np.testing.assert_allclose(fitted.inverse_transform(Z), decoded)
    np.testing.assert_allclose(
        fitted.cluster_prototypes(2),
        scaler.inverse_transform(scaled.cluster_prototypes(2).reshape(-1, 4)).reshape(3, 2, 4),
    )
    # The densities differ by the Jacobian of x -> (x - mean_) / scale_.
    np.testing.assert_allclose(
        fitted.score_samples(X),
        scaled.score_samples(scaler.transform(X)) - np.log(scaler.scale_).sum(),
    )


def test_round_trip_and_samples_in_the_data_scale(raw_blobs, fitted):
    X, _ = raw_blobs
    # transform then inverse_transform: the error of each feature is a fraction of its
    # spread, whether that is 0.01 or 300.
    error = np.abs(fitted.inverse_transform(fitted.transform(X)) - X).mean(axis=0)
    assert (error < 0.4 * X.std(axis=0)).all()
    drawn, _ = fitted.sample(3000)
    assert (np.abs(drawn.mean(axis=0) - X.mean(axis=0)) < 0.5 * X.std(axis=0)).all()
    ratio = drawn.std(axis=0) / X.std(axis=0)
    assert ((ratio > 0.5) & (ratio < 2.0)).all()


def test_scores_are_densities_of_x():
    # Rescaling features by powers of 2 is exact in floating point, so the
    # standardized data, and the trained model, are the same to the bit; the density
    # of the rescaled rows is that of the rows divided by |det| = prod(c).
    X, _ = make_blobs(n_samples=100, centers=2, n_features=3, random_state=1)
    c = np.array([2.0**-6, 1.0, 2.0**10])
    base = GMVAEClustering(2, random_state=0, **TINY).fit(X)
    rescaled = GMVAEClustering(2, random_state=0, **TINY).fit(X * c)
    np.testing.assert_array_equal(rescaled.labels_, base.labels_)
    np.testing.assert_allclose(
        rescaled.score_samples(X * c), base.score_samples(X) - np.log(c).sum(), rtol=1e-12
    )
    assert rescaled.score(X * c) == pytest.approx(base.score(X) - np.log(c).sum(), rel=1e-12)


def test_constant_feature_keeps_scale_one():
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.normal(size=60), np.full(60, 7.0)])
    est = GMVAEClustering(2, random_state=0, **TINY).fit(X)
    np.testing.assert_allclose(est.scale_, [X[:, 0].std(), 1.0], rtol=1e-12)
    assert np.isfinite(est.score_samples(X)).all()
    np.testing.assert_allclose(est.sample(5)[0][:, 1], 7.0, atol=1.0)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_off_and_bernoulli_leave_x_as_it_is(raw_blobs):
    X = raw_blobs[0]
    off = GMVAEClustering(3, random_state=0, standardize=False, **TINY)
    with pytest.warns(UserWarning, match="standardize=False"):
        off.fit(X)
    assert not off.standardize_ and off.mean_ is None and off.scale_ is None
    # The Bernoulli likelihood is never standardized: its data are probabilities.
    pixels = np.random.default_rng(0).uniform(size=(40, 5))
    bern = GMVAEClustering(2, random_state=0, standardize=True, **TINY).fit(pixels)
    assert bern.likelihood_ == "bernoulli" and not bern.standardize_ and bern.scale_ is None
    assert set(np.unique(bern.sample(20)[0])) <= {0.0, 1.0}


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_warm_start_keeps_the_fitted_scaling(raw_blobs):
    X = raw_blobs[0]
    est = GMVAEClustering(3, random_state=0, warm_start=True, **TINY).fit(X)
    mean, scale = est.mean_.copy(), est.scale_.copy()
    est.fit(X[:60] + 1.0)  # trains on, in the space the networks were trained in
    np.testing.assert_array_equal(est.mean_, mean)
    np.testing.assert_array_equal(est.scale_, scale)
    with pytest.raises(ValueError, match="standardize=False needs a new network"):
        est.set_params(standardize=False).fit(X)


def test_persistence_and_pickle_keep_the_scaling(raw_blobs, fitted, tmp_path):
    X = raw_blobs[0]
    save_weights(fitted, tmp_path / "m.pt")
    for loaded in (
        load_weights(tmp_path / "m.pt", device="cpu"),
        pickle.loads(pickle.dumps(fitted)),
    ):
        assert loaded.standardize_
        np.testing.assert_array_equal(loaded.mean_, fitted.mean_)
        np.testing.assert_array_equal(loaded.scale_, fitted.scale_)
        np.testing.assert_array_equal(loaded.predict_proba(X), fitted.predict_proba(X))
        assert loaded.score(X) == fitted.score(X)
        Z = fitted.transform(X[:5])
        np.testing.assert_array_equal(loaded.inverse_transform(Z), fitted.inverse_transform(Z))
