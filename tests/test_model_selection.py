"""Choosing K: the held-out table across K, the K it suggests, and its figure."""

import numpy as np
import pytest
from _helpers import small_params
from sklearn.datasets import make_blobs
from sklearn.model_selection import KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sk_gmvae import GMVAEClustering
from sk_gmvae.model_selection import compare_n_clusters, plot_n_clusters, suggest_n_clusters

COLUMNS = {
    "n_clusters",
    "elbo",
    "elbo_std",
    "mutual_information",
    "conditional_entropy",
    "used_clusters",
    "stability",
}


def test_the_table_has_one_row_per_k_for_any_splitter(blobs):
    X, _ = blobs
    est = GMVAEClustering(n_init=1, random_state=0, **small_params(max_epochs=2))
    splits = list(KFold(2).split(X))
    results = compare_n_clusters(est, X, [3, np.int64(1), 3], cv=splits)
    assert set(results) == COLUMNS
    assert results["n_clusters"].tolist() == [1, 3]  # sorted, once each
    assert all(len(column) == 2 for column in results.values())
    assert np.isfinite(results["elbo"]).all() and (results["elbo_std"] >= 0).all()
    # One cluster: no information, no uncertainty; two splits: one pair to compare.
    assert results["mutual_information"][0] == 0 and results["used_clusters"][0] == 1
    assert results["stability"][0] == 1.0
    assert (results["mutual_information"] <= np.log(results["n_clusters"]) + 1e-9).all()
    assert (results["used_clusters"] <= results["n_clusters"]).all()


def test_the_parameter_and_the_candidates_are_checked(blobs):
    X, _ = blobs
    with pytest.raises(ValueError, match="one n_clusters parameter"):
        compare_n_clusters(StandardScaler(), X, [2])
    with pytest.raises(ValueError, match="positive ints"):
        compare_n_clusters(GMVAEClustering(), X, [0, 2])
    with pytest.raises(ValueError, match="n_samples >= n_clusters"):  # a fold of 60 rows
        compare_n_clusters(GMVAEClustering(**small_params(max_epochs=1)), X, [61], cv=2)


def test_blobs_give_their_number_of_clusters():
    # The benchmark's 3 blobs (benchmarks/quality/choosing_k.py): at the true K the
    # held-out I(X; Y) reaches ln 3, at K = 4 it stays there, well below 0.9 ln 4.
    X, _ = make_blobs(n_samples=300, centers=3, n_features=5, random_state=0)
    model = GMVAEClustering(
        latent_dim=2,
        hidden_layer_sizes=(32,),
        max_epochs=60,
        batch_size=50,
        learning_rate=1e-2,
        random_state=0,
    )
    results = compare_n_clusters(make_pipeline(StandardScaler(), model), X, [3, 4])
    assert results["mutual_information"][0] > 0.95 * np.log(3)
    assert results["mutual_information"][1] < 0.9 * np.log(4)
    assert suggest_n_clusters(results) == 3


def _table(k, mi):
    return {"n_clusters": np.array(k), "mutual_information": np.array(mi)}


def test_the_suggestion_is_the_largest_k_whose_clusters_carry_information():
    ln = np.log
    table = _table([1, 2, 3, 4, 5], [0.0, 0.69, 1.05, 1.30, 1.31])  # 1.30 / ln 4 = 0.94
    assert suggest_n_clusters(table) == 4
    assert suggest_n_clusters(table, min_share=0.95) == 3  # 1.05 / ln 3 = 0.956
    assert suggest_n_clusters(_table([2, 3, 6], [ln(2), ln(3), 0.95 * ln(6)])) == 6
    with pytest.raises(ValueError, match="min_share"):
        suggest_n_clusters(table, min_share=0)


def test_no_confident_k_is_said_and_the_closest_is_returned():
    # Assignments uncertain at every K (a short training of the digits, docs/models.md).
    table = _table([1, 6, 8, 10], [0.0, 0.455, 0.285, 0.297])
    with pytest.warns(UserWarning, match="No candidate K > 1 reaches"):
        assert suggest_n_clusters(table) == 6


def test_the_figure_draws_the_table():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = {
        **_table([2, 3, 4], [0.69, 1.09, 1.10]),
        "elbo": np.array([-3.0, -2.5, -2.6]),
        "elbo_std": np.array([0.1, 0.2, 0.1]),
    }
    elbo, mi = plot_n_clusters(results)
    np.testing.assert_allclose(elbo.lines[0].get_ydata(), results["elbo"])
    np.testing.assert_allclose(mi.lines[0].get_ydata(), results["mutual_information"])
    np.testing.assert_allclose(mi.lines[1].get_ydata(), np.log([2, 3, 4]))
    assert mi.lines[0].get_xdata().tolist() == [2, 3, 4]
    plt.close(elbo.figure)
