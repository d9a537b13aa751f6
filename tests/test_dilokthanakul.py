"""Dilokthanakul et al.'s two-layer GMVAE (``variant="dilokthanakul"``): the loss against a
loop-based reference, sampling, the cluster axis, and the estimator around it."""

import math
import pickle

import numpy as np
import pytest
import torch
from _helpers import small_params
from reference_elbo import reference_dilokthanakul_loss

from sk_gmvae import GMVAEClustering
from sk_gmvae._dilokthanakul import DilokthanakulGMVAE
from sk_gmvae._inference import model_posterior, seeded_normal
from sk_gmvae._model import model_class
from sk_gmvae._objective import WeightedNegativeELBO, elbo_terms
from sk_gmvae.persistence import load_weights, save_weights

D, K, L, W, M = 7, 4, 3, 2, 5


def _model(likelihood="bernoulli", mc_samples=M):
    torch.manual_seed(0)
    module = DilokthanakulGMVAE(
        D, K, L, (8, 6), likelihood=likelihood, mc_samples=mc_samples, w_dim=W
    )
    return module.double().eval()


def _data(likelihood, n=6):
    x = torch.rand(n, D, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    return x if likelihood == "bernoulli" else 3 * x - 1


def _noise(n=6, mc_samples=M, seed=2):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, mc_samples, L + W, generator=g, dtype=torch.float64)


def test_the_estimator_builds_the_two_layer_model():
    assert model_class("dilokthanakul") is DilokthanakulGMVAE
    module = _model()
    assert module.noise_shape == (M, L + W)
    out = module(_data("bernoulli"), eps=_noise())
    assert out.qy_logits.shape == out.log_py.shape == (6, K)
    assert out.log_px.shape == (6, M) and out.kl_w.shape == (6,)
    assert out.kl_z.shape == out.log_pz.shape == (6, M, K)
    assert all(torch.isfinite(t).all() for t in out)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
@pytest.mark.parametrize(
    "weights",
    [
        {},  # the plain negative ELBO
        {"eta": 0.0, "alpha": 2.0},
        {"beta": 0.5, "eta": 1.0, "alpha": 2.0, "entropy_weight": 0.3},
        {"eta": 1.5, "alpha": 1.0, "free_bits": 0.01},  # below the batch's mean KL_y
        {"eta": 1.5, "alpha": 1.0, "free_bits": 50.0},  # above it: the y-term is constant
    ],
)
def test_loss_equals_the_loop_over_draws_and_clusters(likelihood, weights):
    module, x, eps = _model(likelihood), _data(likelihood), _noise()
    reference, negative_elbo = reference_dilokthanakul_loss(module, x, eps, **weights)
    names = {"alpha": "cv_weight"}
    criterion = WeightedNegativeELBO(**{names.get(k, k): v for k, v in weights.items()})
    out = module(x, eps=eps)
    torch.testing.assert_close(criterion(out), reference.mean())
    torch.testing.assert_close(-elbo_terms(out).elbo, negative_elbo)


def test_free_bits_stop_the_y_terms_gradient_below_the_threshold():
    module, x, eps = _model(), _data("bernoulli"), _noise()
    head = module.qy.weight
    grads = {}
    for free_bits in (0.0, 50.0):
        # Only the y-term reads q(y|x) once the reconstruction and z-terms are off.
        criterion = WeightedNegativeELBO(beta=0.0, eta=1.0, free_bits=free_bits)
        out = module(x, eps=eps)
        loss = criterion(out._replace(log_px=out.log_px.detach() * 0))
        (grads[free_bits],) = torch.autograd.grad(loss, head)
    assert grads[0.0].abs().max() > 0
    assert torch.equal(grads[50.0], torch.zeros_like(head))


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_renumbered_clusters_are_the_same_model_in_the_new_order(likelihood):
    module, x, eps = _model(likelihood), _data(likelihood), _noise()
    before = module(x, eps=eps)
    order = torch.tensor([2, 0, 3, 1])
    with torch.no_grad():
        for name, (axis, index) in module.cluster_permutation(order).items():
            param = module.get_parameter(name)
            param.copy_(param.index_select(axis, index))
    after = module(x, eps=eps)  # the noise does not depend on y: the same eps
    torch.testing.assert_close(after.qy_logits, before.qy_logits[:, order])
    torch.testing.assert_close(after.kl_z, before.kl_z[..., order])
    torch.testing.assert_close(after.log_pz, before.log_pz[..., order])
    torch.testing.assert_close(after.log_px, before.log_px)
    torch.testing.assert_close(after.kl_w, before.kl_w)
    for a, b in zip(elbo_terms(after), elbo_terms(before), strict=True):
        torch.testing.assert_close(a, b)
    mean, var = module.cluster_gaussians()
    assert mean.shape == var.shape == (K, L)


def test_cluster_gaussians_are_the_components_at_w_zero():
    module = _model()
    mean, var = module.cluster_gaussians()
    expected_mean, expected_var = module.cluster_prior(torch.zeros(W, dtype=torch.float64))
    torch.testing.assert_close(mean, expected_mean)
    torch.testing.assert_close(var, expected_var)
    eps = torch.randn(3, L, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    expected = module.decode(mean + var.sqrt() * eps[:, None])  # one z per cluster
    torch.testing.assert_close(module.generate(eps), expected)


def test_model_posterior_is_the_importance_sampled_p_y_given_x():
    module, x = _model(), _data("bernoulli")
    S = 7
    proba = model_posterior(module, x.numpy(), S, torch.float64, seed=3)
    eps, _ = seeded_normal(module, (S, 1, 1, L + W), 3, torch.float64)
    h = module.trunk(x)
    z_mean, w_mean = module.qz_mean(h), module.qw_mean(h)
    z_var = torch.nn.functional.softplus(module.qz_var(h))
    w_var = torch.nn.functional.softplus(module.qw_var(h))
    normal = torch.distributions.Normal
    log_w = []  # log p(x, z_s, w_s | y) - log q(z_s, w_s | x), (S, n, K)
    for s in range(S):
        z = z_mean + z_var.sqrt() * eps[s, 0, 0, :L]
        w = w_mean + w_var.sqrt() * eps[s, 0, 0, L:]
        prior_mean, prior_var = module.cluster_prior(w)
        log_pz = normal(prior_mean, prior_var.sqrt()).log_prob(z[:, None]).sum(-1)
        log_pw = normal(0.0, 1.0).log_prob(w).sum(-1)
        log_q = normal(z_mean, z_var.sqrt()).log_prob(z).sum(-1)
        log_q = log_q + normal(w_mean, w_var.sqrt()).log_prob(w).sum(-1)
        p = torch.sigmoid(module.decode(z))
        log_px = (x * p.log() + (1 - x) * (1 - p).log()).sum(-1)
        log_w.append(log_px[:, None] + log_pz + (log_pw - log_q)[:, None])
    expected = torch.softmax(torch.stack(log_w).logsumexp(0), -1)  # p(y) = 1/K cancels
    np.testing.assert_allclose(proba, expected.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_sample_draws_w_then_y_then_z_then_x():
    module = _model("gaussian")
    with torch.no_grad():  # components far apart, whatever w: mu_y(w) = 5 (y - 1.5)
        module.prior_mean.weight.zero_()
        module.prior_mean.bias.copy_((5.0 * (torch.arange(K) - 1.5)).repeat_interleave(L))
        module.prior_var.weight.zero_()
        module.prior_var.bias.fill_(-3.0)
    before = torch.get_rng_state()
    x, y = module.sample(4000, np.random.RandomState(0))
    assert torch.equal(torch.get_rng_state(), before)  # own generators only
    assert x.shape == (4000, D) and x.dtype == torch.float64
    assert torch.equal(y, y.sort().values) and set(y.tolist()) == set(range(K))
    assert abs((y == 0).double().mean().item() - 1 / K) < 0.03
    x_again, y_again = module.sample(4000, np.random.RandomState(0))
    assert torch.equal(x, x_again) and torch.equal(y, y_again)
    x_other, _ = module.sample(4000, np.random.RandomState(1))
    assert not torch.equal(x, x_other)
    # x | y is the decoder's law at z ~ N(mu_y, sigma2_y): the cluster's mean row.
    mean, var = module.cluster_gaussians()
    z = mean[3] + var[3].sqrt() * torch.randn(20000, L, generator=torch.Generator().manual_seed(1))
    expected = module.decode(z).mean(0)
    torch.testing.assert_close(x[y == 3].mean(0), expected, atol=0.15, rtol=0)
    assert (x[y == 0].mean(0) - expected).abs().max() > 0.3


# ----------------------------------------------------------------------- the estimator

FIT = small_params(variant="dilokthanakul", max_epochs=4, random_state=0)


@pytest.fixture(scope="module")
def fitted(blobs):
    X, _ = blobs
    est = GMVAEClustering(3, variant_params={"mc_samples": 2}, n_init=1, **FIT)
    return est.fit(X), X


def test_fit_predict_score_transform_sample(fitted):
    est, X = fitted
    assert est.variant_params_ == {"mc_samples": 2, "w_dim": 2, "cv_weight": 1.0, "free_bits": 0.0}
    proba = est.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(est.predict(X), est.labels_)
    assert np.isfinite(est.score(X)) and est.score(X) == est.score(X)
    assert est.transform(X).shape == (len(X), 2)
    assert est.means_.shape == est.covariances_.shape == (3, 2)
    assert (est.covariances_ > 0).all()
    Xs, ys = est.sample(9)
    assert Xs.shape == (9, 4) and ys.shape == (9,) and np.all(np.diff(ys) >= 0)
    assert est.cluster_prototypes(2).shape == (3, 2, 4)
    assert est.inverse_transform(est.transform(X[:5])).shape == (5, 4)


def test_labels_are_in_size_order_and_means_follow_them(fitted):
    est, X = fitted
    counts = np.bincount(est.labels_, minlength=3)
    assert np.all(np.diff(counts) <= 0)
    # The stored model is renumbered: its q(y|x) and its components agree with labels_.
    module = est.net_.module_
    with torch.no_grad():
        mean, _ = module.cluster_gaussians()
    np.testing.assert_allclose(est.means_, mean.double().numpy(), rtol=1e-6)


def test_pickle_and_weights_file_round_trip(fitted, tmp_path):
    est, X = fitted
    again = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(again.predict_proba(X), est.predict_proba(X))
    save_weights(est, tmp_path / "model.pt")
    loaded = load_weights(tmp_path / "model.pt", device="cpu")
    assert loaded.variant_params == {"mc_samples": 2}
    assert loaded.variant_params_ == est.variant_params_
    np.testing.assert_allclose(loaded.predict_proba(X), est.predict_proba(X), rtol=1e-12)
    assert loaded.score(X) == pytest.approx(est.score(X))


def test_stacked_restarts_equal_restarts_one_after_another(blobs):
    X, _ = blobs
    params = dict(
        FIT, n_init=2, trial_epochs=None, variant_params={"mc_samples": 2, "free_bits": 0.1}
    )
    stacked = GMVAEClustering(3, stack_restarts=True, **params).fit(X)
    alone = GMVAEClustering(3, stack_restarts=False, **params).fit(X)
    for a, b in zip(stacked.restarts_, alone.restarts_, strict=True):
        assert a["seed"] == b["seed"]
        assert a["lower_bound"] == pytest.approx(b["lower_bound"], abs=1e-4)
    np.testing.assert_allclose(stacked.predict_proba(X), alone.predict_proba(X), atol=1e-5)


def test_the_settings_reach_the_model_and_the_loss(blobs):
    X, _ = blobs
    settings = {"mc_samples": 3, "w_dim": 5, "cv_weight": 2.0, "free_bits": 0.5}
    est = GMVAEClustering(3, variant_params=settings, n_init=1, **dict(FIT, max_epochs=1))
    est.fit(X)
    module, criterion = est.net_.module_, est.net_.criterion_
    assert module.noise_shape == (3, 2 + 5) and module.w_dim == 5
    assert (criterion.cv_weight, criterion.free_bits) == (2.0, 0.5)
    assert est.variant_params_ == settings


@pytest.mark.parametrize(
    "variant, settings, match",
    [
        ("gmvae", {"mc_samples": 2}, "has no settings of its own"),
        ("dilokthanakul", {"samples": 2}, "not settings of variant='dilokthanakul'"),
        ("dilokthanakul", {"mc_samples": 0}, "mc_samples.*an int >= 1"),
        ("dilokthanakul", {"mc_samples": True}, "mc_samples.*an int >= 1"),
        ("dilokthanakul", {"w_dim": "big"}, 'w_dim.*or "auto"'),
        ("dilokthanakul", {"cv_weight": -1.0}, "cv_weight.*>= 0"),
        ("dilokthanakul", {"free_bits": math.nan}, "free_bits.*>= 0"),
    ],
)
def test_bad_settings_are_refused_before_training(blobs, variant, settings, match):
    X, _ = blobs
    est = GMVAEClustering(3, **dict(FIT, variant=variant), variant_params=settings)
    with pytest.raises(ValueError, match=match):
        est.fit(X)
    assert not hasattr(est, "net_")


def test_no_settings_for_the_other_variants_is_an_empty_dict(blobs):
    X, _ = blobs
    est = GMVAEClustering(3, **dict(FIT, variant="gmvae", max_epochs=1), n_init=1).fit(X)
    assert est.variant_params_ == {}
