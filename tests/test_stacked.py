"""Stacked restarts (n_init trained at once) against independent trainings."""

import numpy as np
import pytest
import torch
from _helpers import small_params

from sk_gmvae import GMVAEClustering
from sk_gmvae._model import VARIANTS, MixtureVAE
from sk_gmvae._stacked import StackedGradientNormClipping, StackedMixtureVAE

KW = dict(n_features=7, n_clusters=4, latent_dim=3, hidden_layer_sizes=(8, 6))
SMALL = small_params(latent_dim=4, hidden_layer_sizes=(32, 32), max_epochs=2, batch_size=50)


def _replicas(variant, likelihood, n=3):
    replicas = []
    for r in range(n):
        module = MixtureVAE(**KW, variant=variant, likelihood=likelihood)
        module.reset_parameters(torch.Generator().manual_seed(r))
        replicas.append(module.double())
    stacked = StackedMixtureVAE(n, **KW, variant=variant, likelihood=likelihood)
    stacked.reset_parameters([torch.Generator().manual_seed(r) for r in range(n)])
    stacked.double()
    return replicas, stacked


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_stacked_forward_equals_each_replica(variant, likelihood):
    replicas, stacked = _replicas(variant, likelihood)
    for r, module in enumerate(replicas):  # the same initialization from the same seed
        for name, param in module.named_parameters():
            torch.testing.assert_close(stacked.stacked_parameters()[name][r], param)
    g = torch.Generator().manual_seed(5)
    x = torch.rand(6, 3, 7, generator=g, dtype=torch.float64)  # (rows, restarts, D)
    eps = torch.randn(6, 3, 4, 3, generator=g, dtype=torch.float64)
    out = stacked(x, eps)
    for r, module in enumerate(replicas):
        for got, expected in zip(out, module(x[:, r], eps[:, r]), strict=True):
            torch.testing.assert_close(got[:, r], expected)


def test_stacked_noise_is_each_generators_own():
    replicas, stacked = _replicas("gmvae", "bernoulli")
    stacked.train()
    x = torch.rand(5, 3, 7, dtype=torch.float64)
    x_s, eps_s = stacked.draw_training_inputs(
        x, [torch.Generator().manual_seed(r) for r in range(3)]
    )
    for r, module in enumerate(replicas):
        x_r, eps_r = module.train().draw_training_inputs(x[:, r], torch.Generator().manual_seed(r))
        assert torch.equal(x_s[:, r], x_r) and torch.equal(eps_s[:, r], eps_r)


def test_per_restart_gradient_clipping_equals_clipping_each_alone():
    torch.manual_seed(0)
    grads = [torch.randn(3, 4, 5) * torch.tensor([0.1, 1.0, 10.0])[:, None, None], torch.randn(3)]
    params = [torch.nn.Parameter(torch.zeros_like(g)) for g in grads]
    for p, g in zip(params, grads, strict=True):
        p.grad = g.clone()
    clip = StackedGradientNormClipping(gradient_clip_value=2.0)
    clip.on_grad_computed(None, [(str(i), p) for i, p in enumerate(params)])
    for r in range(3):
        alone = [torch.nn.Parameter(torch.zeros_like(g[r])) for g in grads]
        for a, g in zip(alone, grads, strict=True):
            a.grad = g[r].clone()
        torch.nn.utils.clip_grad_norm_(alone, 2.0)
        for p, a in zip(params, alone, strict=True):
            torch.testing.assert_close(p.grad[r], a.grad)
    assert params[0].grad[0].norm() < 2.0 < params[0].grad[2].norm() + 1e-3  # some clipped


@pytest.fixture(scope="module")
def digits(digits):
    return digits[0][:300]  # conftest's digits narrowed: the first 300 rows of X


@pytest.mark.parametrize("variant", VARIANTS)
def test_stacked_restarts_equal_independent_fits(digits, variant):
    kwargs = dict(variant=variant, n_init=3, random_state=0, max_grad_norm=50.0, **SMALL)
    torch.manual_seed(7)
    stacked = GMVAEClustering(4, stack_restarts=True, **kwargs).fit(digits)
    assert torch.equal(torch.get_rng_state(), torch.manual_seed(7).get_state())  # untouched
    alone = GMVAEClustering(4, stack_restarts=False, **kwargs).fit(digits)
    # The same restart is kept, with the same training record and model.
    assert stacked.net_.random_state == alone.net_.random_state
    for key in ("train_loss", "train_elbo", "train_entropy"):
        np.testing.assert_allclose(stacked.history_[:, key], alone.history_[:, key], rtol=1e-5)
    np.testing.assert_allclose(stacked.lower_bound_, alone.lower_bound_, rtol=1e-5)
    pairs = zip(stacked.net_.module_.parameters(), alone.net_.module_.parameters(), strict=True)
    for p, q in pairs:
        # Adam amplifies rounding on near-zero gradients; 1e-3 is far below init scale.
        torch.testing.assert_close(p, q, atol=1e-3, rtol=0)
    np.testing.assert_allclose(
        stacked.predict_proba(digits), alone.predict_proba(digits), atol=1e-3
    )


def test_kept_restart_trains_on_like_a_lone_net(digits):
    kwargs = dict(n_init=2, random_state=0, warm_start=True, **SMALL)
    stacked = GMVAEClustering(4, stack_restarts=True, **kwargs).fit(digits).fit(digits)
    alone = GMVAEClustering(4, stack_restarts=False, **kwargs).fit(digits).fit(digits)
    assert stacked.n_iter_ == alone.n_iter_ == 4
    np.testing.assert_allclose(
        stacked.history_[:, "train_elbo"], alone.history_[:, "train_elbo"], rtol=1e-5
    )
    # The optimizer state came along: its step count is the kept restart's.
    state = stacked.net_.optimizer_.state_dict()["state"]
    assert all(int(s["step"]) == 4 * 6 for s in state.values())
    # ... and holds the kept restart's moments only, not views of all restarts' buffers.
    moments = [s["exp_avg"] for s in state.values()]
    assert all(m.untyped_storage().nbytes() == m.numel() * m.element_size() for m in moments)


def test_when_restarts_are_stacked():
    from skorch.callbacks import Callback

    from sk_gmvae._config import resolve_config

    def stacks(device, rows=100, **params):
        params = GMVAEClustering(**params).get_params()
        return resolve_config(params, rows, 4, "gaussian", device).stack_restarts

    # "auto": on CUDA, and on the CPU for small data (below 10,000 rows).
    assert stacks("cuda", n_init=2) and stacks("cuda", 20_000, n_init=2)
    assert stacks("cpu", n_init=2)
    assert not stacks("cpu", 20_000, n_init=2)
    assert stacks("cpu", n_init=2, stack_restarts=True)
    assert not stacks("cuda", n_init=2, stack_restarts=False)
    assert not stacks("cpu", n_init=1, stack_restarts=True)
    for sequential in (dict(tol=0.1), dict(callbacks=[Callback()])):
        assert not stacks("cuda", n_init=2, stack_restarts=True, **sequential)


def test_verbose_table_shows_each_restart(digits, capsys):
    params = dict(n_init=3, trial_epochs=None, stack_restarts=True, verbose=2, random_state=0)
    GMVAEClustering(4, **params, **SMALL).fit(digits)
    out = capsys.readouterr().out
    assert "train_restart_loss" in out and out.count(" / ") >= 2 * 3 * 2
