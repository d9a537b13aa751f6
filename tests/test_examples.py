"""The examples run, at small size."""

import runpy
import sys
from pathlib import Path

import numpy as np
import pytest

from sk_gmvae import datasets

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _run(script, *args, monkeypatch):
    monkeypatch.setattr(sys, "argv", [script, *args])
    runpy.run_path(str(EXAMPLES / script), run_name="__main__")


def test_pipeline_grid_search(monkeypatch, capsys):
    _run("pipeline_grid_search.py", "--epochs", "1", monkeypatch=monkeypatch)
    out = capsys.readouterr().out
    assert "best:" in out and "modified_m2" in out and "accuracy" in out


def test_mnist_fit_predict_on_small_stand_in_data(monkeypatch, capsys):
    rng = np.random.default_rng(0)
    fake = (rng.random((150, 784), dtype=np.float32), rng.integers(0, 10, 150))
    monkeypatch.setattr(datasets, "load_mnist", lambda *args, **kwargs: fake)
    _run("mnist_fit_predict.py", "--epochs", "1", "--n-train", "100", monkeypatch=monkeypatch)
    out = capsys.readouterr().out
    assert "conditional_entropy" in out and "test ELBO" in out


@pytest.mark.slow
def test_mnist_fit_predict(monkeypatch, capsys):
    _run("mnist_fit_predict.py", "--epochs", "1", "--n-train", "2000", monkeypatch=monkeypatch)
    assert "conditional_entropy" in capsys.readouterr().out
