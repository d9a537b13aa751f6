"""GridSearchCV on a Dask cluster through joblib's dask backend equals the sequential search."""

import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.model_selection import GridSearchCV

from sk_gmvae import GMVAEClustering

distributed = pytest.importorskip("distributed")
joblib = pytest.importorskip("joblib")


def test_grid_search_on_local_dask_cluster_matches_sequential():
    X, _ = make_blobs(n_samples=90, centers=3, n_features=3, random_state=0)
    grid = {"variant": ["m2", "gmvae"], "latent_dim": [1, 2]}
    est = GMVAEClustering(3, hidden_layer_sizes=(8,), max_epochs=2, random_state=0)
    sequential = GridSearchCV(est, grid, cv=2).fit(X)
    # Worker processes, not threads: each fit seeds torch's (per-process) global RNG.
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster),
        joblib.parallel_config(backend="dask"),
    ):
        on_dask = GridSearchCV(est, grid, cv=2, n_jobs=-1).fit(X)
    np.testing.assert_allclose(
        on_dask.cv_results_["mean_test_score"], sequential.cv_results_["mean_test_score"]
    )
    assert on_dask.best_params_ == sequential.best_params_
    np.testing.assert_array_equal(
        on_dask.best_estimator_.labels_, sequential.best_estimator_.labels_
    )
