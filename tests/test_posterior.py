"""Cluster assignment by the model's own posterior p(y|x) (``posterior_samples``)."""

import math

import numpy as np
import pytest
import torch
from _helpers import small_params
from sklearn.base import clone
from sklearn.datasets import make_blobs

from sk_gmvae import GMVAEClustering
from sk_gmvae._inference import float64_copy, model_posterior, posterior
from sk_gmvae._model import VARIANTS, MixtureVAE

SMALL = small_params(max_epochs=5)


def _quadrature_posterior(module: MixtureVAE, X: np.ndarray) -> np.ndarray:
    """p(y|x) of a model with a 1-D latent z, p(x|y) = int p(x|z, y) p(z|y) dz summed on a
    fine grid (trapezoid rule): the exact answer the importance sampler estimates."""
    grid = torch.linspace(-12.0, 12.0, 6001, dtype=torch.float64)
    z = grid[:, None, None].expand(-1, module.n_clusters, 1)  # (G, K, 1)
    log_pz = module.prior.log_prob(z)  # (G, K)
    params = module.decode(z)  # (G, K, D): every cluster's decoder at every grid point
    rows = []
    for x in torch.as_tensor(X, dtype=torch.float64):
        log_joint = module.likelihood.log_prob(params, x) + log_pz  # (G, K)
        # log int f dz, trapezoid: log sum_g c_g f_g + log dz, c = 1/2 at both ends.
        ends = torch.zeros(len(grid), dtype=torch.float64)
        ends[[0, -1]] = math.log(0.5)
        log_px_y = torch.logsumexp(log_joint + ends[:, None], 0) + math.log(grid[1] - grid[0])
        rows.append(torch.softmax(module.log_prior_y() + log_px_y, -1))
    return torch.stack(rows).numpy()


@pytest.mark.parametrize("variant", VARIANTS)
def test_importance_sampled_posterior_matches_quadrature(variant):
    torch.manual_seed(0)
    module = MixtureVAE(3, 3, 1, (8,), variant=variant, likelihood="gaussian")
    module = module.to(torch.float64).eval()
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.startswith(("prior", "dec_")):  # clusters apart: p(y|x) not uniform
                p.mul_(2.0)
        # A broad proposal q(z|x, y), as a trained encoder's covers the posterior; a
        # random narrow one would need far more draws.
        module.qz_var.bias.fill_(2.0)
    X = np.random.RandomState(0).normal(size=(6, 3)) * 2
    with torch.no_grad():
        exact = _quadrature_posterior(module, X)
    assert np.abs(exact - 1 / 3).max() > 0.2  # a test with teeth: not uniform
    estimate = model_posterior(module, X, 50_000, torch.float64)
    np.testing.assert_allclose(estimate, exact, atol=0.015)
    # q(y|x) of an untrained network is not the posterior: the sampler is what matches.
    if variant != "vade":
        assert np.abs(posterior(module, X, torch.float64) - exact).max() > 0.1


def _model_rows(est, X):
    """X as the fitted model sees it: standardized (``standardize="auto"``)."""
    return (X - est.mean_) / est.scale_


def test_zero_samples_assign_by_q_y_given_x():
    X, _ = make_blobs(n_samples=90, centers=3, n_features=4, random_state=0)
    est = GMVAEClustering(3, random_state=0, n_init=1, **SMALL).fit(X)  # the default: 0
    q = posterior(float64_copy(est.net_.module_), _model_rows(est, X), torch.float64)
    np.testing.assert_allclose(est.predict_proba(X), q, rtol=1e-12, atol=1e-12)


def test_posterior_labels_are_stable_and_in_label_order():
    X, _ = make_blobs(n_samples=90, centers=3, n_features=4, random_state=0)
    est = GMVAEClustering(3, random_state=0, n_init=1, posterior_samples=8, **SMALL).fit(X)
    proba = est.predict_proba(X)
    # The draws are fixed and shared by the clusters: the labels computed in fit (before
    # the clusters were renumbered by size) are predict's, call after call.
    np.testing.assert_array_equal(est.labels_, proba.argmax(1))
    np.testing.assert_array_equal(proba, est.predict_proba(X))
    np.testing.assert_allclose(est.weights_, proba.mean(0))
    assert np.all(np.diff(np.bincount(est.labels_, minlength=3)) <= 0)
    # A row's probabilities do not depend on the rows passed with it.
    np.testing.assert_allclose(est.predict_proba(X[5:6]), proba[5:6], rtol=1e-12, atol=1e-15)


def test_posterior_samples_set_after_fit_applies_to_predict():
    X, _ = make_blobs(n_samples=60, centers=2, n_features=3, random_state=0)
    est = GMVAEClustering(2, random_state=0, n_init=1, posterior_samples=16, **SMALL).fit(X)
    drawn = est.predict_proba(X)
    est.set_params(posterior_samples=16)
    np.testing.assert_array_equal(est.predict_proba(X), drawn)
    with pytest.raises(ValueError, match="posterior_samples"):
        clone(est).set_params(posterior_samples=True).fit(X)  # an int, not a bool
    with pytest.raises(ValueError, match="posterior_samples"):
        clone(est).set_params(posterior_samples="auto").fit(X)  # no "auto" any more
    est.set_params(posterior_samples=0)
    q = posterior(float64_copy(est.net_.module_), _model_rows(est, X), torch.float64)
    np.testing.assert_allclose(est.predict_proba(X), q, rtol=1e-12, atol=1e-12)


def test_posterior_samples_set_after_fit_apply_to_predict():
    X, _ = make_blobs(n_samples=60, centers=2, n_features=3, random_state=0)
    est = GMVAEClustering(2, random_state=0, n_init=1, posterior_samples=64, **SMALL).fit(X)
    labels, model = est.labels_.copy(), est.predict_proba(X)
    # A number set now switches predict at once, without refitting; labels_ stay.
    est.set_params(posterior_samples=0)
    q = posterior(float64_copy(est.net_.module_), _model_rows(est, X), torch.float64)
    np.testing.assert_allclose(est.predict_proba(X), q, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(est.labels_, labels)
    est.set_params(posterior_samples=64)  # back to the value of fit
    np.testing.assert_array_equal(est.predict_proba(X), model)
