"""The documentation: the site builds (strict), and every Python example in it runs at
small size (fewer epochs, smaller networks, small data)."""

import importlib.util
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits, load_wine

import sk_gmvae
from sk_gmvae import GMVAEClassifier, GMVAEClustering, datasets

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
BLOCKS = [
    pytest.param(code, id=f"{page.relative_to(ROOT)}:{i}")
    for page in PAGES
    for i, code in enumerate(re.findall(r"```python\n(.*?)```", page.read_text(), re.S))
]


@pytest.mark.skipif(shutil.which("mkdocs") is None, reason="mkdocs is not installed")
def test_site_builds_strictly(tmp_path):
    result = subprocess.run(
        ["mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"NO_MKDOCS_2_WARNING": "1", "PATH": __import__("os").environ["PATH"]},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "GMVAEClustering" in (tmp_path / "site" / "api" / "index.html").read_text()


@pytest.fixture
def small(monkeypatch, tmp_path):
    """Shrink every fit and the MNIST loader; give the examples their X and y; run them
    in a scratch folder that holds the data file of docs/own_data.md, wine.csv."""
    monkeypatch.chdir(tmp_path)
    wine = load_wine()
    header = ",".join(wine.feature_names)
    np.savetxt("wine.csv", wine.data, delimiter=",", header=header, comments="")
    fit = GMVAEClustering.fit

    def small_fit(self, X, y=None):
        self.set_params(max_epochs=1, hidden_layer_sizes=(8,), latent_dim=2)
        if self.init == "auto":  # images' UMAP draws take seconds: tests/test_start.py
            self.set_params(init="random")
        if self.pretrain_epochs:  # VaDE's start: one epoch of it, one after
            self.set_params(max_epochs=2, pretrain_epochs=1)
        return fit(self, X, y)

    monkeypatch.setattr(GMVAEClustering, "fit", small_fit)
    fit_classifier = GMVAEClassifier.fit

    def small_fit_classifier(self, X, y):
        self.set_params(max_epochs=1, hidden_layer_sizes=(8,), latent_dim=2)
        return fit_classifier(self, X, y)

    monkeypatch.setattr(GMVAEClassifier, "fit", small_fit_classifier)
    rng = np.random.default_rng(0)
    fake = (rng.random((120, 784), dtype=np.float32), rng.integers(0, 10, 120))
    monkeypatch.setattr(datasets, "load_mnist", lambda *a, **k: fake)
    X, y = load_digits(return_X_y=True)
    X = X[:150] / 16.0
    return {"X": X, "X_new": X[:20], "X_test": X[:30], "y_test": y[:30]}


def _missing_modules(code):
    """Top-level modules the example imports that are not installed (optional
    dependencies such as ``distributed``); the package's own are never missing."""
    names = re.findall(r"^\s*(?:from|import)\s+([A-Za-z_]\w*)", code, re.M)
    return sorted({n for n in names if n != "sk_gmvae" and importlib.util.find_spec(n) is None})


@pytest.mark.parametrize("code", BLOCKS)
def test_python_examples_run(code, small):
    missing = _missing_modules(code)
    if missing:
        pytest.skip(f"the example needs {', '.join(missing)}, not installed")
    namespace = dict(small)
    exec(compile(code, "<docs>", "exec"), namespace)  # noqa: S102
    assert sk_gmvae.GMVAEClustering is namespace.get("GMVAEClustering", GMVAEClustering)
