"""Monitoring callback, history tables, study reference, results table, figures."""

import gzip
import math

import numpy as np
import pytest
from _helpers import small_params

from sk_gmvae import GMVAEClustering
from sk_gmvae.callbacks import ClusteringMonitor, history_records
from sk_gmvae.datasets import DatasetUnavailableError, load_fashion_mnist
from sk_gmvae.study import (
    plot_prototypes,
    plot_study,
    results_table,
    run_study,
    runner,
    study_reference,
)

SMALL = small_params(max_epochs=3, batch_size=50)


def test_monitor_records_metrics_without_changing_training(digits):
    X, y = digits
    params = dict(random_state=0, posterior_samples=0, **SMALL)  # monitors use q(y|x)
    plain = GMVAEClustering(10, **params).fit(X[:300])
    monitor = ClusteringMonitor(X[300:500], y[300:500], name="test")
    monitored = GMVAEClustering(10, callbacks=[monitor], **params).fit(X[:300])
    np.testing.assert_array_equal(plain.labels_, monitored.labels_)
    rows = history_records(monitored.history_)
    assert len(rows) == 3
    last = rows[-1]
    assert 0 <= last["test_entropy"] <= math.log(10) + 1e-6
    assert last["test_loss"] > 0 and 0 < last["test_accuracy"] <= 1
    assert 0 < last["test_hungarian_accuracy"] <= last["test_accuracy"] + 1e-12
    assert {"test_nmi", "test_ari", "train_elbo", "train_entropy"} <= set(last)
    assert all(isinstance(v, float | int) for v in last.values())
    # The monitor's H(Y|X) is that of the final model's predict_proba.
    proba = monitored.predict_proba(X[300:500])
    entropy = -(proba * np.log(np.clip(proba, 1e-300, None))).sum(1).mean()
    assert last["test_entropy"] == pytest.approx(entropy, rel=1e-4)


def test_monitor_without_labels_and_every(digits):
    X, _ = digits
    monitor = ClusteringMonitor(X[:100], every=2)
    est = GMVAEClustering(10, random_state=0, callbacks=[monitor], **SMALL).fit(X[:200])
    rows = history_records(est.history_)
    assert "valid_entropy" not in rows[0] and "valid_entropy" in rows[1]
    assert "valid_accuracy" not in rows[1]


def test_study_reference_numbers():
    ref = study_reference()
    assert set(ref) == {"m2", "modified_m2", "gmvae"}
    assert np.mean(ref["gmvae"][200]["test_accuracy"]) == pytest.approx(0.799, abs=0.01)
    assert np.mean(ref["m2"][200]["test_entropy"]) == pytest.approx(2.30, abs=0.01)
    assert len(ref["gmvae"][1]["test_accuracy"]) == 7


def test_run_study_from_python_arrays_table_and_figure(digits, tmp_path):
    X, y = digits
    histories = run_study(
        X[:200],
        X[200:300],
        y[200:300],
        tmp_path,
        variants=["m2", "gmvae"],
        seeds=[0, 1],
        epochs=2,
        progress=False,
        n_clusters=4,
        latent_dim=2,
        hidden_layer_sizes=(8,),
    )
    assert set(histories) == {(v, s) for v in ("m2", "gmvae") for s in (0, 1)}
    table = results_table(histories)
    assert "| m2 | 1 | 2 |" in table and "| gmvae | 2 | 2 |" in table
    paths = plot_study(histories, tmp_path / "fig")
    assert [p.suffix for p in paths] == [".png", ".svg"] and all(p.stat().st_size for p in paths)
    protos = np.load(tmp_path / "prototypes-gmvae-seed0.npy")
    assert protos.shape == (4, 8, 64)
    assert plot_prototypes(protos, tmp_path / "p.png", image_shape=(8, 8)).stat().st_size > 0


def test_run_study_trains_dilokthanakul_with_its_authors_settings(digits, tmp_path, monkeypatch):
    X, y = digits
    fitted = {}

    class Recording(GMVAEClustering):
        def fit(self, X, y=None):
            fitted[self.variant] = self.get_params()
            return super().fit(X, y)

    monkeypatch.setattr(runner, "GMVAEClustering", Recording)
    authors = runner.dilokthanakul_settings(mc_samples=2, hidden=8)
    histories = run_study(
        X[:100],
        X[100:160],
        y[100:160],
        tmp_path,
        variants=["gmvae", "dilokthanakul"],
        epochs=1,
        progress=False,
        variant_settings={"dilokthanakul": authors},
        n_clusters=3,
        latent_dim=2,
        hidden_layer_sizes=(8,),
    )
    # The authors' settings win over the shared ones for their variant only.
    assert fitted["dilokthanakul"]["latent_dim"] == 200
    assert fitted["dilokthanakul"]["batch_size"] == 50
    assert fitted["dilokthanakul"]["variant_params"]["mc_samples"] == 2
    assert fitted["dilokthanakul"]["n_clusters"] == 3
    assert fitted["gmvae"]["latent_dim"] == 2 and fitted["gmvae"]["batch_size"] == 100
    # The monitor scores the AAE protocol, which the table sets beside the paper's.
    assert 0 < histories["dilokthanakul", 0][0]["test_aae_accuracy"] <= 1
    table = results_table(histories, epochs=(1,))
    assert "| dilokthanakul | 1 | 1 |" in table and "test AAE accuracy" in table
    assert "Dilokthanakul et al. (2016)" in table


def test_resumed_run_equals_uninterrupted_run(digits, tmp_path):
    X, y = digits
    args = (X[:200], X[200:300], y[200:300])
    kwargs = dict(variants=["gmvae"], progress=False, prototypes=False, n_clusters=4)
    kwargs |= dict(latent_dim=2, hidden_layer_sizes=(8,))
    run_study(*args, tmp_path / "resumed", epochs=2, **kwargs)
    resumed = run_study(*args, tmp_path / "resumed", epochs=4, **kwargs)[("gmvae", 0)]
    straight = run_study(*args, tmp_path / "straight", epochs=4, **kwargs)[("gmvae", 0)]
    for key in ("train_elbo", "test_loss", "test_accuracy"):
        np.testing.assert_allclose(
            [row[key] for row in resumed], [row[key] for row in straight], rtol=1e-6
        )


def test_cluster_prototypes(digits):
    X, _ = digits
    for variant in ("m2", "modified_m2", "gmvae"):
        est = GMVAEClustering(5, variant=variant, random_state=0, **SMALL).fit(X[:200])
        protos = est.cluster_prototypes(3)
        assert protos.shape == (5, 3, 64)
        assert protos.min() >= 0 and protos.max() <= 1  # Bernoulli means
        np.testing.assert_array_equal(protos, est.cluster_prototypes(3))  # seeded


def _write_idx(path, array):
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_fashion_mnist_from_idx_files(tmp_path):
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 5), ("t10k", 3)):
        _write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        _write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, n))
    X, y = load_fashion_mnist("train", data_dir=tmp_path, return_X_y=True)
    assert X.shape == (5, 784) and X.dtype == np.float32 and y.dtype == np.int64
    assert 0 <= X.min() and X.max() <= 1
    assert load_fashion_mnist("all", data_dir=tmp_path).data.shape == (8, 784)
    with pytest.raises(DatasetUnavailableError, match="dataset-fashion-mnist"):
        load_fashion_mnist(data_dir=tmp_path / "missing", data_home=tmp_path, download=False)
