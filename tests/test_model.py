"""The model and objective: batched computation against the per-y reference loop."""

import math

import numpy as np
import pytest
import torch
from reference_elbo import reference_negative_elbo
from torch import nn

from sk_gmvae._model import VARIANTS, MixtureVAE, OneHotConcatLinear
from sk_gmvae._objective import WeightedNegativeELBO, elbo_terms


def _model(variant, likelihood="bernoulli", D=7, K=4, L=3, H=(8, 6)):
    torch.manual_seed(0)
    return MixtureVAE(D, K, L, H, variant=variant, likelihood=likelihood).double().eval()


def _data(likelihood, n=5, D=7):
    g = torch.Generator().manual_seed(1)
    x = torch.rand(n, D, generator=g, dtype=torch.float64)
    return x if likelihood == "bernoulli" else 3 * x - 1


def test_one_hot_concat_linear_equals_linear_on_concatenation():
    torch.manual_seed(0)
    layer = OneHotConcatLinear(5, 3, 4).double()
    v = torch.randn(2, 1, 5, dtype=torch.float64)
    onehots = torch.eye(3, dtype=torch.float64)
    concat = [torch.cat([v[:, 0], onehots[y].expand(2, 3)], -1) for y in range(3)]
    expected = torch.stack([nn.functional.linear(c, layer.weight, layer.bias) for c in concat], 1)
    torch.testing.assert_close(layer(v), expected)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_batched_elbo_equals_per_cluster_loop(variant, likelihood):
    module, x = _model(variant, likelihood), _data(likelihood)
    eps = torch.randn(5, 4, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    batched = -elbo_terms(module(x, eps=eps)).elbo
    torch.testing.assert_close(batched, reference_negative_elbo(module, x, eps))


@pytest.mark.parametrize("variant", VARIANTS)
def test_output_shapes_and_finite(variant):
    out = _model(variant)(_data("bernoulli"))
    for t in out[1:]:
        assert t.shape == (5, 4)
    assert out.qy_logits.shape == (5, 4)
    assert all(torch.isfinite(t).all() for t in out)


def test_kl_y_and_entropy_add_to_log_k():
    terms = elbo_terms(_model("gmvae")(_data("bernoulli")))
    torch.testing.assert_close(
        terms.kl_y + terms.entropy, torch.full((5,), math.log(4), dtype=torch.float64)
    )
    assert (terms.kl_y >= -1e-12).all()


def test_default_loss_is_negative_elbo_and_weights_enter_as_documented():
    terms = elbo_terms(_model("gmvae")(_data("bernoulli")))
    torch.testing.assert_close(WeightedNegativeELBO()(terms), -terms.elbo.mean())
    weighted = WeightedNegativeELBO(beta=0.5, eta=2.0, entropy_weight=0.3)(terms)
    expected = (
        -terms.reconstruction + 0.5 * terms.kl_z + 2.0 * terms.kl_y + 0.3 * terms.entropy
    ).mean()
    torch.testing.assert_close(weighted, expected)


def test_m2_decoder_uses_y_and_gmvae_decoder_does_not():
    z = torch.randn(2, 1, 3, dtype=torch.float64)
    m2, gmvae = _model("m2"), _model("gmvae")
    assert m2.decode(z).shape == (2, 4, 7)  # one output per cluster from a shared z
    assert gmvae.decode(z).shape == (2, 1, 7)  # y enters only through p(z|y)
    assert _model("modified_m2").decode(z).shape == (2, 4, 7)


def test_dynamic_binarization_only_in_training_and_noise_from_the_generator():
    module = _model("gmvae")
    x = torch.full((3, 7), 0.5, dtype=torch.float64)
    x_eval, eps = module.draw_training_inputs(x, torch.Generator().manual_seed(0))
    assert torch.equal(x_eval, x) and eps.shape == (3, 4, 3)
    module.train()
    x_a, eps_a = module.draw_training_inputs(x, torch.Generator().manual_seed(0))
    x_b, eps_b = module.draw_training_inputs(x, torch.Generator().manual_seed(1))
    assert set(x_a.unique().tolist()) <= {0.0, 1.0} and not torch.equal(x_a, x_b)
    # Reproducible from the seed alone; the global RNG plays no part.
    torch.manual_seed(123)
    x_c, eps_c = module.draw_training_inputs(x, torch.Generator().manual_seed(0))
    assert torch.equal(x_a, x_c) and torch.equal(eps_a, eps_c)


def test_variants_differ_only_in_the_generative_model():
    names = {v: {n for n, _ in _model(v).named_parameters()} for v in VARIANTS}
    inference = {n for n in names["m2"] if n.startswith(("qy.", "qz_"))}
    for v in ("m2", "modified_m2", "gmvae"):  # the study's three
        assert inference <= names[v]
    # VaDE: the GMVAE's generative model with learned weights; q(y|x) is p(y|z).
    assert not any(n.startswith("qy.") for n in names["vade"]) and "log_weights" in names["vade"]
    assert {n for n in names["gmvae"] if n.startswith(("prior.", "dec_"))} <= names["vade"]
    assert any(n.startswith("prior.") for n in names["gmvae"])
    assert not any(n.startswith("prior.") for n in names["modified_m2"] | names["m2"])
    assert any(n.startswith("dec_first.scale") for n in names["modified_m2"])


@pytest.mark.parametrize("variant", VARIANTS)
def test_posterior_and_elbo_in_one_pass_equal_two_passes(variant):
    # VaDE's monitored q(y|x) is predict's (responsibilities at E[z|x]), not the ELBO's
    # responsibilities at the sampled z.
    from sk_gmvae._inference import elbo, posterior, posterior_and_elbo

    module, X = _model(variant), _data("bernoulli", n=9).numpy()
    proba, bound = posterior_and_elbo(module, X, 3, torch.float64)
    np.testing.assert_allclose(proba, posterior(module, X, torch.float64))
    np.testing.assert_allclose(bound, elbo(module, X, 3, torch.float64))


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_renumbered_clusters_are_the_same_model_in_the_new_order(variant, likelihood):
    module, x = _model(variant, likelihood), _data(likelihood)
    eps = torch.randn(5, 4, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    if variant == "vade":  # mixture weights away from uniform, so that their order shows
        with torch.no_grad():
            module.log_weights.copy_(torch.tensor([0.5, -1.0, 0.0, 2.0]))
    before = module(x, eps=eps)
    order = torch.tensor([2, 0, 3, 1])
    with torch.no_grad():
        for name, (axis, index) in module.cluster_permutation(order).items():
            param = module.get_parameter(name)
            param.copy_(param.index_select(axis, index))
    # New cluster k is old cluster order[k]: every (row, cluster) term moves with it, so
    # the ELBO (a sum over y) is unchanged when the noise moves along too.
    after = module(x, eps=eps if variant == "vade" else eps[:, order])  # VaDE: one z
    for got, expected in zip(after, before, strict=True):
        torch.testing.assert_close(got, expected[:, order])
    torch.testing.assert_close(elbo_terms(after).elbo, elbo_terms(before).elbo)


def test_only_vade_infers_y_by_its_prior():
    x = _data("bernoulli")
    for variant in VARIANTS:
        module = _model(variant)
        assert module.infers_y_by_prior == (variant == "vade")
        assert module.has_cluster_prior == (variant in ("gmvae", "vade"))
        before = module.encode_y(x)
        with torch.no_grad():  # move every per-cluster Gaussian
            for name, param in module.named_parameters():
                if name.startswith(("prior.", "dec_first.loc", "dec_first.scale")):
                    param.add_(0.5)
        # q(y|x) is a network of its own, except VaDE's p(y|z) at E[z|x].
        assert torch.equal(module.encode_y(x), before) != module.infers_y_by_prior
    vade, x = _model("vade"), _data("bernoulli")
    z = vade.encode_z(x)[0][:, 0]
    torch.testing.assert_close(vade.encode_y(x), vade.responsibilities(z))


@pytest.mark.parametrize("variant", VARIANTS)
def test_cluster_gaussians_are_the_ones_the_model_uses(variant):
    module = _model(variant)
    gaussians = module.cluster_gaussians()
    if variant == "m2":
        assert gaussians is None
        return
    mean, var = gaussians
    assert mean.shape == var.shape == (4, 3) and (var > 0).all()
    eps = torch.randn(2, 1, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    if variant == "modified_m2":  # the decoder's first layer: mu_y + sqrt(sigma2_y) z
        torch.testing.assert_close(module.dec_first(eps), mean + var.sqrt() * eps)
    else:  # the prior p(z|y)
        expected = torch.distributions.Normal(mean, var.sqrt()).log_prob(eps).sum(-1)
        torch.testing.assert_close(module.prior.log_prob(eps), expected)


@pytest.mark.parametrize("variant", ["gmvae", "vade"])
def test_set_cluster_prior_round_trips_through_the_parametrization(variant):
    module = MixtureVAE(7, 3, 2, (8,), variant=variant, min_variance=0.01).double()
    means = np.array([[0.0, 1.0], [-2.0, 3.5], [4.0, -1.0]])
    variances = np.array([[0.5, 2.0], [1e-3, 30.0], [1.0, 0.02]])
    weights = np.array([0.2, 0.5, 0.3])
    changed = module.set_cluster_prior(means, variances, weights)
    mean, var = module.cluster_gaussians()
    np.testing.assert_allclose(mean.detach().numpy(), means, rtol=0, atol=1e-12)
    # Below min_variance + 1e-6 a variance is raised to it.
    expected = np.maximum(variances, 0.01 + 1e-6)
    np.testing.assert_allclose(var.detach().numpy(), expected, rtol=1e-9)
    prior_y = module.log_prior_y().exp().detach().numpy()
    names = {n for n, p in module.named_parameters() if any(p is c for c in changed)}
    assert {"prior.loc.weight", "prior.loc.bias", "prior.scale.weight"} < names
    if variant == "vade":  # the learned p(y) takes the weights
        np.testing.assert_allclose(prior_y, weights, rtol=1e-12)
        assert "log_weights" in names
    else:  # p(y) stays uniform
        np.testing.assert_allclose(prior_y, 1 / 3)
        assert len(names) == 4


@pytest.mark.parametrize("variant", ["m2", "modified_m2"])
def test_set_cluster_prior_needs_a_per_cluster_prior(variant):
    with pytest.raises(ValueError, match="no per-cluster prior"):
        _model(variant).set_cluster_prior(np.zeros((4, 3)), np.ones((4, 3)))


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_sample_draws_y_from_p_y_then_x_given_y(likelihood):
    module = _model("vade", likelihood)
    means = np.array([[-5.0] * 3, [0.0] * 3, [5.0] * 3, [0.0] * 3])  # clusters 0, 2 apart
    module.set_cluster_prior(means, np.full((4, 3), 0.1))
    with torch.no_grad():  # p(y) = (0.7, 0, 0.3, 0): only clusters 0 and 2
        module.log_weights.copy_(torch.tensor([0.7, 0.0, 0.3, 0.0]).log())
    before = torch.get_rng_state()
    x, y = module.sample(2000, np.random.RandomState(0))
    assert torch.equal(torch.get_rng_state(), before)  # own generators only
    assert x.shape == (2000, 7) and x.dtype == torch.float64
    assert torch.equal(y, y.sort().values) and set(y.tolist()) == {0, 2}
    assert abs((y == 0).double().mean().item() - 0.7) < 0.05
    if likelihood == "bernoulli":
        assert set(x.unique().tolist()) <= {0.0, 1.0}
    # The same RandomState gives the same rows; x depends on y: cluster 2's rows are
    # drawn from its own Gaussian N(mu_2, sigma2_2) of z.
    x_again, y_again = module.sample(2000, np.random.RandomState(0))
    assert torch.equal(x, x_again) and torch.equal(y, y_again)
    mean, var = module.cluster_gaussians()
    z = mean[2] + var[2].sqrt() * torch.randn(20000, 3, generator=torch.Generator().manual_seed(1))
    expected = module.likelihood.mean(module.decode(z[:, None]))[:, 0].mean(0)
    torch.testing.assert_close(x[y == 2].mean(0), expected, atol=0.2, rtol=0)
    assert (x[y == 0].mean(0) - expected).abs().max() > 0.3  # cluster 0's differ
