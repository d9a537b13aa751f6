"""GMVAEClassifier: scikit-learn's checks, partly labelled y (-1: unlabelled), its
errors, the loss on labelled rows, the mixed batches, and learning from few labels."""

import pickle

import numpy as np
import pytest
import torch
from _helpers import small_params
from sklearn.datasets import make_blobs
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from sk_gmvae import GMVAEClassifier, GMVAEClustering
from sk_gmvae._config import Supervision, labelled_rows_per_batch, resolve_config
from sk_gmvae._model import ModelOutput
from sk_gmvae._net import TensorBatches
from sk_gmvae._objective import elbo_terms, observe_labels
from sk_gmvae.persistence import save_weights

# As the clustering checks: small networks trained for a few hundred steps.
CHECK_PARAMS = dict(latent_dim=1, hidden_layer_sizes=(16,), batch_size=25, learning_rate=1e-2)
CHECKED = [
    GMVAEClassifier(variant=v, max_epochs=100, n_init=1, **CHECK_PARAMS)
    for v in ("m2", "modified_m2", "gmvae", "vade")
]


# -1 marks unlabelled rows, so it cannot be a class: scikit-learn's check of classes
# [-1, 1] is skipped by name for its own semi-supervised classifiers
# (_choose_check_classifiers_labels); here it is an expected failure.
NOT_APPLICABLE = {
    "check_classifiers_classes": "-1 marks unlabelled rows, as in sklearn.semi_supervised"
}


@parametrize_with_checks(CHECKED, expected_failed_checks=lambda estimator: NOT_APPLICABLE)
def test_sklearn_compatible_classifier(estimator, check):
    check(estimator)


SMALL = small_params(max_epochs=5, n_init=1, random_state=0)


@pytest.fixture(scope="module")
def partly_labelled():
    """Three well separated blobs in 5 dimensions (standardized), 2 labelled rows per
    blob of 100."""
    X, y = make_blobs(n_samples=300, n_features=5, centers=3, random_state=0)
    X = StandardScaler().fit_transform(X)
    rng = np.random.RandomState(0)
    y_partial = np.full(len(y), -1)
    for c in range(3):
        y_partial[rng.choice(np.flatnonzero(y == c), 2, replace=False)] = c
    return X, y, y_partial


def test_learns_from_a_few_labels(partly_labelled):
    X, y, y_partial = partly_labelled
    clf = GMVAEClassifier(
        latent_dim=2, hidden_layer_sizes=(32,), max_epochs=100, n_init=1, random_state=0
    ).fit(X, y_partial)
    # 6 labels of 300 rows: chance is 1/3; q(y|x) should name every blob right.
    assert clf.score(X, y) > 0.9
    assert np.array_equal(clf.predict(X[y_partial >= 0]), y_partial[y_partial >= 0])
    assert np.mean(clf.transduction_ == y) > 0.9


def test_unlabelled_rows_and_string_classes(partly_labelled):
    X, y, y_partial = partly_labelled
    names = np.array(["a", "b", "c"], dtype=object)
    y_named = np.where(y_partial >= 0, names[np.maximum(y_partial, 0)], -1).astype(object)
    clf = GMVAEClassifier(**SMALL).fit(X, y_named)
    assert list(clf.classes_) == ["a", "b", "c"]
    assert set(clf.predict(X)) <= {"a", "b", "c"}
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), 3) and np.allclose(proba.sum(1), 1)
    assert clf.transform(X).shape == (len(X), 2)


def test_fully_labelled_strings_are_a_generative_classifier(partly_labelled):
    X, y, _ = partly_labelled
    clf = GMVAEClassifier(**SMALL).fit(X, np.array(["a", "b", "c"])[y])
    assert clf.classes_.tolist() == ["a", "b", "c"]


@pytest.mark.parametrize(
    "labels, message",
    [
        (np.full(300, -1), "no labelled row"),
        (np.array(["-1"] * 150 + ["a"] * 150), "y has dtype string"),
        (np.linspace(0, 1, 300), "Unknown label type"),
    ],
)
def test_bad_labels(partly_labelled, labels, message):
    X = partly_labelled[0]
    with pytest.raises(ValueError, match=message):
        GMVAEClassifier(**SMALL).fit(X, labels)


def test_wrong_length(partly_labelled):
    X, _, y_partial = partly_labelled
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        GMVAEClassifier(**SMALL).fit(X, y_partial[:-1])


def test_declared_classes(partly_labelled):
    X, _, y_partial = partly_labelled
    with pytest.raises(ValueError, match=r"labels \[2\] that are not in classes"):
        GMVAEClassifier(classes=[0, 1], **SMALL).fit(X, y_partial)
    with pytest.raises(ValueError, match=r"classes \[3\] have no labelled row"):
        GMVAEClassifier(classes=[0, 1, 2, 3], **SMALL).fit(X, y_partial)
    with pytest.raises(ValueError, match="cannot be one of the classes"):
        GMVAEClassifier(classes=[-1, 0, 1, 2], **SMALL).fit(X, y_partial)
    clf = GMVAEClassifier(classes=[2, 0, 1], **SMALL).fit(X, y_partial)
    assert clf.classes_.tolist() == [0, 1, 2]


def test_dilokthanakul_is_not_offered(partly_labelled):
    X, _, y_partial = partly_labelled
    with pytest.raises(ValueError, match="variant"):
        GMVAEClassifier(variant="dilokthanakul", **SMALL).fit(X, y_partial)


def test_more_clusters_than_classes(partly_labelled):
    X, y, y_partial = partly_labelled
    clf = GMVAEClassifier(clusters_per_class=2, variant="gmvae", **SMALL).fit(X, y_partial)
    assert clf.n_clusters_ == 6 and clf.means_.shape == (6, 2)
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), 3) and np.allclose(proba.sum(1), 1)
    # A class's sample comes from its own two clusters.
    rows, classes = clf.sample(7, y=2)
    assert rows.shape == (7, X.shape[1]) and (classes == 2).all()
    with pytest.raises(ValueError, match="not one of the classes"):
        clf.sample(3, y=5)


def test_observed_labels_give_kingmas_labelled_elbo():
    # With one cluster per class, a labelled row's ELBO is its class's column:
    # log p(x|z,c) + log p(z|c) - log q(z|x,c) + log p(c); unlabelled rows keep the sum.
    torch.manual_seed(0)
    n, K = 4, 3
    log_px, log_pz, log_qz = (torch.randn(n, K, dtype=torch.float64) for _ in range(3))
    out = ModelOutput(
        torch.randn(n, K, dtype=torch.float64),
        log_px,
        log_pz,
        log_qz,
        torch.full((n, K), -np.log(K), dtype=torch.float64),
    )
    labels = torch.tensor([2, -1, 0, 1])
    observed, class_log_prob = observe_labels(out, labels, 1)
    got = elbo_terms(observed).elbo
    rows = torch.arange(n)
    kingma = (log_px + log_pz - log_qz)[rows, labels] - np.log(K)
    labelled = labels >= 0
    assert torch.allclose(got[labelled], kingma[labelled])
    assert torch.allclose(got[~labelled], elbo_terms(out).elbo[~labelled])
    log_q = torch.log_softmax(out.qy_logits, -1)[rows, labels]
    assert torch.allclose(class_log_prob[labelled], log_q[labelled])
    assert (class_log_prob[~labelled] == 0).all()


def test_alpha_auto_weighs_each_labelled_row_by_the_number_of_features():
    def weight(alpha: float | str, rows: int, features: int, labelled: int) -> float:
        params = GMVAEClassifier(alpha=alpha).get_params()
        supervision = Supervision(n_classes=10, n_labelled=labelled)
        config = resolve_config(params, rows, features, "bernoulli", "cpu", supervision)
        return config.classification_weight

    # -(alpha / N_l) log q(y|x) per labelled row; "auto" is alpha = D * N_l.
    assert weight("auto", 5000, 784, 100) == weight("auto", 50000, 784, 1000) == 784.0
    assert weight("auto", 1797, 64, 50) == 64.0
    assert weight(5000.0, 5000, 784, 100) == 50.0  # the paper's units


def test_mixed_batches_hold_the_labelled_share():
    y = torch.full((1000,), -1)
    y[:10] = torch.arange(10)
    per_batch = labelled_rows_per_batch(10, 1000, 100, 0.1)
    assert per_batch == 10
    dataset = type("Data", (), {"X": torch.arange(1000.0)[:, None], "y": y})()
    batches = TensorBatches(
        dataset,
        100,
        shuffle=True,
        generator=torch.Generator().manual_seed(0),
        labelled_per_batch=per_batch,
    )
    seen = [(xb[:, 0].long(), yb) for xb, yb in batches]
    assert len(seen) == len(batches) == 11  # 990 unlabelled rows, 90 per batch
    assert all((labels >= 0).sum() == 10 for _, labels in seen)
    unlabelled = torch.cat([rows[labels < 0] for rows, labels in seen])
    assert sorted(unlabelled.tolist()) == list(range(10, 1000))  # each once per epoch
    labelled = torch.cat([rows[labels >= 0] for rows, labels in seen])
    assert torch.bincount(labelled, minlength=10).tolist() == [11] * 10  # each as often
    # Labelled rows as common as the share, or only labelled rows: plain batches.
    assert labelled_rows_per_batch(100, 1000, 100, 0.1) is None
    assert labelled_rows_per_batch(1000, 1000, 100, 0.1) is None


def test_warm_start_trains_the_same_network_on(partly_labelled):
    X, _, y_partial = partly_labelled
    clf = GMVAEClassifier(warm_start=True, **SMALL).fit(X, y_partial)
    clf.fit(X, y_partial)
    assert clf.n_iter_ == 2 * SMALL["max_epochs"]
    with pytest.raises(ValueError, match="clusters_per_class=1"):
        clf.set_params(clusters_per_class=2).fit(X, y_partial)
    with pytest.raises(ValueError, match="whose classes are"):
        clf.set_params(clusters_per_class=1).fit(X, np.where(y_partial == 2, -1, y_partial))


def test_pickle_round_trip(partly_labelled):
    X, _, y_partial = partly_labelled
    clf = GMVAEClassifier(**SMALL).fit(X, y_partial)
    again = pickle.loads(pickle.dumps(clf))
    assert np.array_equal(again.predict_proba(X), clf.predict_proba(X))


def test_weights_files_are_for_the_clustering(partly_labelled, tmp_path):
    X, _, y_partial = partly_labelled
    clf = GMVAEClassifier(**SMALL).fit(X, y_partial)
    with pytest.raises(TypeError, match="pickle it instead"):
        save_weights(clf, tmp_path / "model.pt")


def test_clustering_ignores_labels_as_before(partly_labelled):
    # GMVAEClustering's y is ignored: the same fit with and without it.
    X, _, y_partial = partly_labelled
    a = GMVAEClustering(3, **SMALL).fit(X)
    b = GMVAEClustering(3, **SMALL).fit(X, y_partial)
    assert np.array_equal(a.labels_, b.labels_)


def test_standardizes_as_the_clustering(partly_labelled):
    """The shared base standardizes the classifier's features too: on raw units it is
    the model of a StandardScaler in front, with samples in the units of X."""
    X, _, y_partial = partly_labelled
    X_raw = X * np.array([0.01, 1.0, 300.0, 5.0, 2.0]) + np.array([0.0, -4.0, 900.0, 50.0, 1.0])
    scaler = StandardScaler().fit(X_raw)
    raw = GMVAEClassifier(**SMALL).fit(X_raw, y_partial)
    scaled = GMVAEClassifier(standardize=False, **SMALL).fit(scaler.transform(X_raw), y_partial)
    assert raw.standardize_ and not scaled.standardize_ and scaled.mean_ is None
    np.testing.assert_array_equal(raw.scale_, scaler.scale_)
    np.testing.assert_allclose(
        raw.predict_proba(X_raw), scaled.predict_proba(scaler.transform(X_raw)), atol=1e-6
    )
    np.testing.assert_allclose(
        raw.score_samples(X_raw),
        scaled.score_samples(scaler.transform(X_raw)) - np.log(scaler.scale_).sum(),
        rtol=1e-6,
    )
    drawn, _ = raw.sample(5)
    np.testing.assert_allclose(drawn, scaler.inverse_transform(scaled.sample(5)[0]))
