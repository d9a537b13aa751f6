"""The model and objective: batched computation against the per-y reference loop."""

import math

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


def test_posterior_and_elbo_in_one_pass_equal_two_passes():
    import numpy as np

    from sk_gmvae._inference import elbo, posterior, posterior_and_elbo

    module, X = _model("m2"), _data("bernoulli", n=9).numpy()
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
