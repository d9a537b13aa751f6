"""The estimator as a transformer and a mixture: embeddings, decoding, fitted mixture
attributes, the validation split, the net's settings, and the progress output."""

import io
import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from _helpers import small_params
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from skorch.callbacks import Checkpoint, EarlyStopping

from sk_gmvae import GMVAEClustering
from sk_gmvae.callbacks import FitProgressBar

SMALL = small_params(max_epochs=5)


@pytest.fixture(scope="module", params=["gmvae", "modified_m2", "m2"])
def fitted(request, blobs):
    X, _ = blobs
    # predict_proba then is q(y|x), the weights of transform's mixture.
    params = dict(random_state=0, posterior_samples=0, **SMALL)
    return GMVAEClustering(3, variant=request.param, **params).fit(X)


def test_transform_is_the_posterior_mean_of_z(fitted, blobs):
    X, _ = blobs
    Z = fitted.transform(X)
    assert Z.shape == (120, 2) and Z.dtype == np.float64
    means, variances = fitted.latent_posterior(X)
    assert means.shape == variances.shape == (120, 3, 2) and (variances > 0).all()
    # E_q[z|x] = sum_y q(y|x) mu(x, y)
    expected = np.einsum("nk,nkl->nl", fitted.predict_proba(X), means)
    np.testing.assert_allclose(Z, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(fitted.transform(X[:7]), Z[:7], rtol=1e-12, atol=1e-12)


def test_fit_transform_equals_fit_then_transform(blobs):
    X, _ = blobs
    est = GMVAEClustering(3, random_state=0, **SMALL)
    np.testing.assert_allclose(est.fit_transform(X), clone(est).fit(X).transform(X))


def test_inverse_transform_decodes_to_the_data_space(fitted, blobs):
    X, _ = blobs
    Z = fitted.transform(X)
    decoded = fitted.inverse_transform(Z)
    assert decoded.shape == X.shape and np.isfinite(decoded).all()
    per_cluster = np.stack(
        [fitted.inverse_transform(Z, np.full(len(Z), k)) for k in range(3)], axis=1
    )
    if fitted.variant == "gmvae":  # the decoder ignores y
        np.testing.assert_allclose(per_cluster, decoded[:, None].repeat(3, 1))
    else:  # y averaged out under p(y) = 1/K
        np.testing.assert_allclose(per_cluster.mean(axis=1), decoded)
    with pytest.raises(ValueError, match="latent_dim"):
        fitted.inverse_transform(X)
    with pytest.raises(ValueError, match="labels"):
        fitted.inverse_transform(Z, np.full(len(Z), 3))


def test_decoding_the_embedding_reconstructs_better_than_the_mean(blobs):
    X, _ = blobs
    X = StandardScaler().fit_transform(X)
    est = GMVAEClustering(3, random_state=0, **{**SMALL, "max_epochs": 60}).fit(X)
    error = np.mean((est.inverse_transform(est.transform(X)) - X) ** 2)
    assert error < np.mean(X**2)  # the mean (0 after scaling) as the baseline


def test_feature_names_and_pandas_output(blobs):
    X, _ = blobs
    est = GMVAEClustering(3, random_state=0, **SMALL).set_output(transform="pandas")
    frame = est.fit_transform(pd.DataFrame(X, columns=list("abcd")))
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == ["gmvaeclustering0", "gmvaeclustering1"]
    np.testing.assert_array_equal(est.get_feature_names_out(), frame.columns)
    pipe = make_pipeline(StandardScaler(), GMVAEClustering(3, random_state=0, **SMALL))
    assert pipe.fit_transform(X).shape == (120, 2)


def test_mixture_attributes(fitted, blobs):
    X, _ = blobs
    assert fitted.weights_.shape == (3,)
    np.testing.assert_allclose(fitted.weights_.sum(), 1.0)
    np.testing.assert_allclose(fitted.weights_, fitted.predict_proba(X).mean(axis=0))
    assert fitted.lower_bounds_.shape == (fitted.n_iter_,)
    assert fitted.lower_bounds_[-1] == pytest.approx(fitted.lower_bound_)
    if fitted.variant == "m2":
        assert not hasattr(fitted, "means_") and not hasattr(fitted, "covariances_")
        return
    module = fitted.net_.module_
    table = module.prior if fitted.variant == "gmvae" else module.dec_first
    mean, var = (t.detach().numpy() for t in table.params())
    np.testing.assert_allclose(fitted.means_, mean, rtol=1e-6)
    np.testing.assert_allclose(fitted.covariances_, var, rtol=1e-6)
    assert fitted.means_.shape == fitted.covariances_.shape == (3, 2)
    assert (fitted.covariances_ > 0).all()


def test_embedding_feeds_a_full_covariance_mixture_in_a_pipeline(blobs):
    """The recipe of the docs: the model as an embedding, GaussianMixture on it."""
    from sklearn.metrics import adjusted_rand_score
    from sklearn.mixture import GaussianMixture

    X, y = blobs
    X = StandardScaler().fit_transform(X)
    params = dict(SMALL, max_epochs=60, random_state=0, variant="vade", pretrain_epochs=20)
    pipe = make_pipeline(
        GMVAEClustering(3, **params), GaussianMixture(3, covariance_type="full", random_state=0)
    )
    labels = pipe.fit_predict(X)
    Z = GMVAEClustering(3, **params).fit_transform(X)
    gmm = GaussianMixture(3, covariance_type="full", random_state=0).fit(Z)
    np.testing.assert_array_equal(labels, gmm.predict(Z))  # the same as step by step
    np.testing.assert_array_equal(pipe.predict(X), labels)
    np.testing.assert_allclose(pipe.predict_proba(X).sum(axis=1), 1.0)
    assert adjusted_rand_score(y, labels) > 0.9  # 3 separated blobs


def test_gmvae_means_are_in_label_order(blobs):
    """Each cluster's rows embed closest to that cluster's own prior mean."""
    X, _ = blobs
    X = StandardScaler().fit_transform(X)
    est = GMVAEClustering(3, random_state=0, **{**SMALL, "max_epochs": 60}).fit(X)
    Z = est.transform(X)
    for k in np.unique(est.labels_):
        centre = Z[est.labels_ == k].mean(axis=0)
        distances = np.linalg.norm(est.means_ - centre, axis=1)
        assert distances.argmin() == k


def test_mixture_attributes_survive_pickling_and_warm_start(blobs):
    X, _ = blobs
    est = GMVAEClustering(3, random_state=0, warm_start=True, **SMALL).fit(X)
    loaded = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(loaded.means_, est.means_)
    est.fit(X)
    assert est.lower_bounds_.shape == (10,)


def test_unfitted_transform_raises():
    from sklearn.exceptions import NotFittedError

    est = GMVAEClustering()
    for call in (lambda: est.transform([[0.0]]), lambda: est.means_, est.get_feature_names_out):
        with pytest.raises(NotFittedError):
            call()


def test_validation_split_makes_skorch_default_callbacks_work(blobs, tmp_path):
    X, _ = blobs
    est = GMVAEClustering(
        3,
        random_state=0,
        validation_fraction=0.25,
        callbacks=[EarlyStopping(patience=2), Checkpoint(dirname=str(tmp_path))],
        **{**SMALL, "max_epochs": 30},
    ).fit(X)
    last = est.history_[-1]
    assert {"valid_loss", "valid_elbo", "valid_entropy"} <= set(last)
    assert np.isfinite(last["valid_elbo"])
    # 90 training rows and 30 held out, in batches of 32
    assert last["train_batch_count"] == 3 and last["valid_batch_count"] == 1
    assert (tmp_path / "params.pt").exists()
    assert est.labels_.shape == (120,)  # every row is labelled


def test_validation_split_is_seeded_and_leaves_the_global_rng(blobs):
    X, _ = blobs
    before = torch.get_rng_state()
    params = dict(random_state=3, validation_fraction=0.2, **SMALL)
    a = GMVAEClustering(3, **params).fit(X)
    assert torch.equal(torch.get_rng_state(), before)
    b = GMVAEClustering(3, **params).fit(X)
    np.testing.assert_array_equal(a.history_[:, "valid_elbo"], b.history_[:, "valid_elbo"])


def test_tol_monitors_the_validation_loss(blobs):
    X, _ = blobs
    est = GMVAEClustering(
        3, random_state=0, validation_fraction=0.2, tol=1e9, n_iter_no_change=2, **SMALL
    ).fit(X)
    stopper = dict(est.net_.callbacks_)["early_stopping"]
    assert stopper.monitor == "valid_loss" and est.n_iter_ == 3


def test_optimizer_and_net_params_pass_through(blobs):
    X, _ = blobs
    est = GMVAEClustering(
        3,
        random_state=0,
        optimizer=torch.optim.SGD,
        net_params={"optimizer__momentum": 0.9},
        **SMALL,
    ).fit(X)
    assert isinstance(est.net_.optimizer_, torch.optim.SGD)
    assert est.net_.optimizer_.param_groups[0]["momentum"] == 0.9
    assert np.isfinite(est.lower_bound_)
    adam = GMVAEClustering(3, random_state=0, **SMALL).fit(X).net_.optimizer_
    assert isinstance(adam, torch.optim.Adam) and adam.param_groups[0]["fused"]
    wd = GMVAEClustering(3, random_state=0, net_params={"optimizer__weight_decay": 0.1}, **SMALL)
    assert wd.fit(X).net_.optimizer_.param_groups[0]["weight_decay"] == 0.1


def test_net_params_work_with_clone_and_grid_search(blobs):
    X, _ = blobs
    est = GMVAEClustering(3, random_state=0, **SMALL)
    grid = {"net_params": [None, {"optimizer__weight_decay": 1e-3}], "n_clusters": [2, 3]}
    search = GridSearchCV(est, grid, cv=2).fit(X)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert clone(est.set_params(net_params={"optimizer__eps": 1e-6})).net_params == {
        "optimizer__eps": 1e-6
    }


@pytest.mark.parametrize(
    "net_params, match",
    [
        ({"lr": 0.1}, "learning_rate"),
        ({"train_split": None}, "validation_fraction"),
        ({"module__latent_dim": 3}, "module"),
        ({"criterion__beta": 3}, "criterion"),
    ],
)
def test_net_params_held_by_estimator_parameters_are_refused(blobs, net_params, match):
    X, _ = blobs
    with pytest.raises(ValueError, match=match):
        GMVAEClustering(3, net_params=net_params, **SMALL).fit(X)


def test_verbose_1_logs_plain_lines_when_not_a_terminal(blobs, capsys):
    X, _ = blobs
    params = dict(random_state=0, verbose=1, n_init=1, **{**SMALL, "max_epochs": 20})
    GMVAEClustering(3, **params).fit(X)
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 10  # every tenth of 20 epochs
    assert lines[-1].startswith("training: epoch 20/20") and "left" in lines[-1]
    assert "\r" not in captured.err and "\x1b[" not in captured.err
    assert captured.out == ""  # no per-epoch table at verbose=1


def test_verbose_1_shows_the_trials_then_the_kept_restart_going_on(blobs, capsys):
    X, _ = blobs
    params = dict(random_state=0, verbose=1, n_init=2, trial_epochs=4, **SMALL)
    GMVAEClustering(3, stack_restarts=False, **{**params, "max_epochs": 20}).fit(X)
    epochs = [line.split()[2] for line in capsys.readouterr().err.strip().splitlines()]
    # Two trials of 4 epochs, then the kept one from epoch 5 (a line every 2) to 20.
    assert epochs == ["1/4", "2/4", "3/4", "4/4"] * 2 + [f"{e}/20" for e in range(6, 21, 2)]


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_on_a_terminal_counts_every_epoch(blobs):
    X, _ = blobs
    out = _Terminal()
    bar = FitProgressBar(file=out)
    est = GMVAEClustering(3, random_state=0, callbacks=[("bar", bar)], **SMALL).fit(X)
    text = out.getvalue()
    assert "5/5" in text and "elbo=" in text
    kept = dict(est.net_.callbacks_)["bar"]
    assert kept.bar_ is None and kept.done_ == 5
    pickle.dumps(est)  # no stream is kept in the net


def test_verbose_1_with_stacked_restarts_shows_the_best_elbo(blobs, capsys):
    X, _ = blobs
    params = dict(n_init=2, stack_restarts=True, verbose=1, random_state=0, **SMALL)
    est = GMVAEClustering(3, **params).fit(X)
    last = capsys.readouterr().err.strip().splitlines()[-1]
    # the kept restart is the one with the best final ELBO
    assert last.startswith("training: epoch 5/5") and f"elbo {est.lower_bound_:.2f}" in last


def test_validation_noise_is_the_same_every_epoch(blobs):
    """With a learning rate too small to move the weights, valid_elbo repeats exactly:
    each epoch's validation draws the same noise (only the model changes it)."""
    X, _ = blobs
    est = GMVAEClustering(
        3, random_state=0, validation_fraction=0.2, learning_rate=1e-12, **SMALL
    ).fit(X)
    values = est.history_[:, "valid_elbo"]
    assert len(set(values)) == 1 and np.isfinite(values[0])
    # skorch's own inference path still takes numpy arrays as well as tensors
    batches = list(est.net_.forward_iter(X.astype(np.float32), device=None))
    assert sum(len(out.qy_logits) for out in batches) == 120
