"""The ``sk-gmvae mnist`` command, on small data the test makes."""

import json

import numpy as np

from sk_gmvae import cli
from sk_gmvae.datasets import DatasetUnavailableError


def test_mnist_command_prints_metrics(monkeypatch, tmp_path, capsys):
    rng = np.random.default_rng(0)

    def fake_load(subset, return_X_y, data_home):
        n = 60 if subset == "train" else 40
        return rng.random((n, 784), dtype=np.float32), rng.integers(0, 10, n)

    monkeypatch.setattr(cli, "load_mnist", fake_load)
    out_json = tmp_path / "r.json"
    code = cli.main(
        [
            "mnist",
            "--epochs",
            "1",
            "--latent-dim",
            "2",
            "--n-clusters",
            "3",
            "--json",
            str(out_json),
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    for text in ("cluster accuracy (majority vote)", "H(Y|X)", "ELBO", "Hungarian"):
        assert text in out
    results = json.loads(out_json.read_text())
    assert results["epochs"] == 1 and results["n_train"] == 60
    assert 0 < results["accuracy"] <= 1 and np.isfinite(results["test_elbo"])


def test_mnist_command_reports_missing_data_without_traceback(monkeypatch, capsys):
    def unavailable(*args, **kwargs):
        raise DatasetUnavailableError("MNIST could not be loaded from any source")

    monkeypatch.setattr(cli, "load_mnist", unavailable)
    assert cli.main(["mnist"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: MNIST could not be loaded") and "Traceback" not in err
