"""KL warm-up: the schedule of the z-term's weight, the loss it weights, resume; VaDE's
GMM initialisation of the prior."""

import numpy as np
import pytest
import torch
from _helpers import small_params
from sklearn.mixture import GaussianMixture
from skorch.callbacks import Callback

from sk_gmvae import GMVAEClustering
from sk_gmvae._inference import latent_mean
from sk_gmvae._model import MixtureVAE
from sk_gmvae._objective import WeightedNegativeELBO, elbo_terms
from sk_gmvae.callbacks import GMMPriorInit, RunCheckpoint, history_records

SMALL = small_params(hidden_layer_sizes=(8,), batch_size=20, random_state=0)


class _RecordWeight(Callback):
    """The criterion's KL weight at every training step."""

    def initialize(self):
        self.weights_ = []
        return self

    def on_batch_end(self, net, training=False, **kwargs):
        if training:
            self.weights_.append(float(net.criterion_.kl_weight))


@pytest.fixture(scope="module")
def X():
    return np.random.default_rng(0).normal(size=(60, 4))


def test_weight_rises_linearly_per_step_then_stays_at_one(X):
    # 60 rows in batches of 20: 3 steps per epoch, warm-up over 2 epochs = 6 steps.
    est = GMVAEClustering(2, kl_warmup=2, max_epochs=3, callbacks=[_RecordWeight()], **SMALL)
    est.fit(X)
    recorded = dict(est.net_.callbacks_)["_RecordWeight"].weights_
    np.testing.assert_allclose(recorded, [0, 1 / 6, 2 / 6, 3 / 6, 4 / 6, 5 / 6, 1, 1, 1])
    assert float(est.net_.criterion_.kl_weight) == 1.0  # the plain loss after training


def test_loss_weights_the_z_term_and_nothing_else():
    torch.manual_seed(0)
    model = MixtureVAE(n_features=5, n_clusters=3, latent_dim=2, hidden_layer_sizes=(8,))
    x, eps = torch.rand(7, 5), torch.randn(7, 3, 2)
    terms = elbo_terms(model(x, eps))
    criterion = WeightedNegativeELBO(beta=0.7, eta=1.3, entropy_weight=0.2)
    plain = criterion(terms)
    criterion.kl_weight.fill_(0.25)
    # loss = -rec + w beta kl_z + eta kl_y + entropy_weight H
    expected = (
        -terms.reconstruction + 0.25 * 0.7 * terms.kl_z + 1.3 * terms.kl_y + 0.2 * terms.entropy
    ).mean()
    torch.testing.assert_close(criterion(terms), expected)
    assert not torch.allclose(plain, expected)
    assert "kl_weight" not in criterion.state_dict()  # a setting, not a trained value


def test_no_warmup_is_the_plain_loss_exactly(X):
    a = GMVAEClustering(2, max_epochs=2, **SMALL).fit(X)
    b = GMVAEClustering(2, kl_warmup=0, max_epochs=2, **SMALL).fit(X)
    assert "kl_warmup" not in dict(a.net_.callbacks_)
    assert a.lower_bounds_.tolist() == b.lower_bounds_.tolist()


def test_warmup_changes_training_but_train_elbo_stays_the_plain_elbo(X):
    plain = GMVAEClustering(2, entropy_weight=0, max_epochs=2, **SMALL).fit(X)
    warm = GMVAEClustering(2, entropy_weight=0, kl_warmup=2, max_epochs=2, **SMALL).fit(X)
    first = warm.history_[0]
    # The first epoch's loss leaves out most of the KL: the loss is below -ELBO.
    assert first["train_loss"] < -first["train_elbo"]
    assert plain.history_[0]["train_loss"] == pytest.approx(-plain.history_[0]["train_elbo"])
    assert warm.lower_bounds_.tolist() != plain.lower_bounds_.tolist()


def test_resumed_run_continues_the_schedule(X, tmp_path):
    def fit(folder, epochs):
        callbacks = [RunCheckpoint(folder), _RecordWeight()]
        return GMVAEClustering(2, kl_warmup=3, max_epochs=epochs, callbacks=callbacks, **SMALL)

    straight = fit(tmp_path / "a", 4).fit(X)
    fit(tmp_path / "b", 2).fit(X)
    resumed = fit(tmp_path / "b", 2).fit(X)

    def records(est):
        return [{k: v for k, v in r.items() if k != "dur"} for r in history_records(est.history_)]

    assert records(resumed) == records(straight)
    weights = dict(resumed.net_.callbacks_)["_RecordWeight"].weights_
    np.testing.assert_allclose(weights, [6 / 9, 7 / 9, 8 / 9, 1, 1, 1])


def test_parameter_is_validated(X):
    with pytest.raises(ValueError, match="kl_warmup"):
        GMVAEClustering(2, kl_warmup=-1, **SMALL).fit(X)


def test_pretraining_delays_the_warmup(X):
    # 3 steps per epoch: 1 epoch without KL, then a rise over 1 epoch.
    est = GMVAEClustering(
        2,
        variant="vade",
        pretrain_epochs=1,
        kl_warmup=1,
        max_epochs=3,
        callbacks=[_RecordWeight()],
        **SMALL,
    ).fit(X)
    recorded = dict(est.net_.callbacks_)["_RecordWeight"].weights_
    np.testing.assert_allclose(recorded, [0, 0, 0, 0, 1 / 3, 2 / 3, 1, 1, 1])


class _PriorAtEpoch(Callback):
    """The prior's (mean, var), VaDE's weights and the prior's Adam moments after an
    epoch, and the codes E[z|x] then."""

    def __init__(self, epoch, X):
        self.epoch, self.X = epoch, X

    def on_epoch_end(self, net, **kwargs):
        if len(net.history) != self.epoch:
            return
        module = net.module_
        mean, var = module.prior.params()
        self.prior_ = mean.detach().numpy().copy(), var.detach().numpy().copy()
        self.weights_ = None
        if module.qy is None:
            self.weights_ = torch.softmax(module.log_weights, 0).detach().numpy().copy()
        state = net.optimizer_.state[module.prior.loc.weight]
        self.moments_ = float(state["exp_avg"].abs().sum() + state["exp_avg_sq"].abs().sum())
        module.eval()
        self.codes_ = latent_mean(module, np.asarray(self.X, np.float32), torch.float32)
        module.train()


def test_prior_starts_from_a_gaussian_mixture_of_the_codes():
    from sklearn.datasets import make_blobs
    from sklearn.preprocessing import StandardScaler

    X, _ = make_blobs(n_samples=120, centers=3, n_features=4, random_state=0)
    X = StandardScaler().fit_transform(X)  # the rows the model trains on (standardize)
    probe = _PriorAtEpoch(2, X)
    params = dict(SMALL, latent_dim=2, hidden_layer_sizes=(16,))
    est = GMVAEClustering(
        3, variant="vade", pretrain_epochs=2, max_epochs=3, callbacks=[probe], **params
    ).fit(X)
    probe = dict(est.net_.callbacks_)["_PriorAtEpoch"]
    seed = int(np.random.SeedSequence(int(est.net_.random_state)).generate_state(1)[0])
    gmm = GaussianMixture(3, covariance_type="diag", random_state=seed).fit(probe.codes_)
    np.testing.assert_allclose(probe.prior_[0], gmm.means_, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(probe.prior_[1], gmm.covariances_, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(probe.weights_, gmm.weights_, rtol=1e-4)
    assert probe.moments_ == 0.0  # Adam starts afresh on the new prior
    assert est.history_[1]["prior_from_gmm"] == pytest.approx(gmm.lower_bound_)
    assert "prior_from_gmm" not in est.history_[0] and "prior_from_gmm" not in est.history_[2]


@pytest.mark.parametrize("variant", ["gmvae", "modified_m2", "m2"])
def test_pretraining_is_vades_and_needs_epochs_left(X, variant):
    with pytest.raises(ValueError, match="pretrain_epochs=2 leaves no epoch"):
        GMVAEClustering(2, variant="vade", pretrain_epochs=2, max_epochs=2, **SMALL).fit(X)
    with pytest.raises(ValueError, match="VaDE's initialisation"):
        GMVAEClustering(2, variant=variant, pretrain_epochs=1, max_epochs=2, **SMALL).fit(X)


def test_gmm_initialisation_leaves_a_model_without_a_mixture_prior_alone(X):
    est = GMVAEClustering(2, variant="m2", max_epochs=2, callbacks=[GMMPriorInit(1)], **SMALL)
    est.fit(X)
    assert est.n_iter_ == 2 and "prior_from_gmm" not in est.history_[0]
