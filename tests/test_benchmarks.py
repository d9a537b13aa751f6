"""The benchmark scripts: each imports, shares helpers through ``benchmarks._common``
rather than ``sys.path``, and answers ``--help`` without training anything."""

import importlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sk_gmvae import GMVAEClustering

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
KINDS = ("speed", "quality")
MODULES = [
    f"benchmarks.{kind}.{path.stem}"
    for kind in KINDS
    for path in sorted((BENCHMARKS / kind).glob("*.py"))
    if path.name != "__init__.py"
]


def test_every_script_is_filed_under_a_kind():
    assert sorted(path.name for path in BENCHMARKS.glob("*.py")) == ["__init__.py", "_common.py"]
    assert {name.split(".")[1] for name in MODULES} == set(KINDS)


@pytest.mark.parametrize("name", MODULES)
def test_script_answers_help_without_training(name, capsys, monkeypatch):
    def no_fit(*args, **kwargs):
        raise AssertionError("--help trained a model")

    monkeypatch.setattr(GMVAEClustering, "fit", no_fit)
    module = importlib.import_module(name)
    assert "sys.path" not in Path(module.__file__).read_text()
    with pytest.raises(SystemExit) as exit_:
        module.main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage:")
    # The description is the docstring's opening (argparse re-wraps it).
    assert " ".join(module.__doc__.split()[:4]) in " ".join(out.split())


def test_scripts_run_as_modules_from_the_repository_root():
    # The documented command, in a fresh interpreter (a script that loads no torch).
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.quality.restart_selection_evidence", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage:") and "label-free score" in result.stdout


def test_start_codes_catches_the_start_before_its_umap():
    # The benchmarks of the "umap" start take its codes by replacing first_assignment;
    # the probe must accept every argument the start passes it.
    pytest.importorskip("umap")
    from benchmarks.quality.start_mixture import start_codes
    from sk_gmvae import _start

    X = np.random.default_rng(0).random((40, 6))
    codes, seed = start_codes(X, 2, 0, pretrain_steps=20)
    assert codes.shape[0] == 40 and np.isfinite(codes).all()
    assert isinstance(seed, int)
    assert _start.first_assignment.__name__ == "first_assignment"  # put back


def test_start_fit_steps_measures_each_chunk_and_puts_the_start_back(blobs):
    pytest.importorskip("umap")
    from benchmarks.quality.start_fit_steps import probe
    from sk_gmvae import _start

    X, y = blobs
    params = {"hidden_layer_sizes": (8,), "latent_dim": 2}
    rows = probe(X, y, 3, 0, [5, 10], [5], params)
    stages = [(row["stage"], row["steps"]) for row in rows]
    assert stages == [
        ("assignment", 0),
        ("qy", 5),
        ("qy", 10),
        ("assignment after qy 10", 5),
        ("assignment after qy 5", 5),
    ]
    assert rows[0]["agreement"] == 1.0 and all(0 <= r["accuracy"] <= 1 for r in rows)
    assert _start.fit_to_assignment.__name__ == "fit_to_assignment"  # put back
    assert _start.AutoencoderStart._fit_qy.__name__ == "_fit_qy"
