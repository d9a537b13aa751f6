"""The declared dependencies match what the package imports and what is tested."""

import importlib
import inspect
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib") if sys.version_info >= (3, 11) else None
if tomllib is None:  # pragma: no cover
    pytest.skip("tomllib needs Python 3.11", allow_module_level=True)
from packaging.requirements import Requirement  # noqa: E402

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


@pytest.fixture(scope="module")
def project():
    return tomllib.loads(PYPROJECT.read_text())["project"]


def _requirements(specs):
    return {Requirement(spec).name: Requirement(spec) for spec in specs}


def test_runtime_imports_are_declared(project):
    declared = _requirements(project["dependencies"])
    for name in ("torch", "scikit-learn", "numpy", "scipy", "skorch", "tqdm"):
        assert name in declared, name
    assert "matplotlib" in _requirements(project["optional-dependencies"]["plot"])
    # init="umap" (sk_gmvae._start.require_umap names this extra); CI installs it.
    assert "umap-learn" in _requirements(project["optional-dependencies"]["umap"])
    assert "umap-learn" in _requirements(project["optional-dependencies"]["test"])


def test_installed_scikit_learn_is_in_the_declared_range(project):
    """The private sklearn APIs the estimator uses are tested against this range: the
    installed version must be in it (and the APIs present)."""
    import sklearn

    requirement = _requirements(project["dependencies"])["scikit-learn"]
    assert requirement.specifier.contains(sklearn.__version__), (
        f"scikit-learn {sklearn.__version__} is outside the tested range {requirement}"
    )
    assert requirement.specifier.contains("1.6.0") and not requirement.specifier.contains("2.0")
    validation = importlib.import_module("sklearn.utils._param_validation")
    assert all(hasattr(validation, name) for name in ("Interval", "StrOptions"))
    assert hasattr(importlib.import_module("sklearn.base"), "_fit_context")


def test_installed_skorch_is_in_the_declared_range(project):
    """The net overrides skorch internals, tested against this range: the installed
    version must be in it, the range must end before the next untested minor release,
    and the overridden methods must take the arguments the net passes."""
    import skorch

    requirement = _requirements(project["dependencies"])["skorch"]
    assert requirement.specifier.contains(skorch.__version__), (
        f"skorch {skorch.__version__} is outside the tested range {requirement}"
    )
    assert any(spec.operator == "<" for spec in requirement.specifier), "no upper bound"
    assert not requirement.specifier.contains("2.0")
    run_single_epoch = inspect.signature(skorch.NeuralNet.run_single_epoch).parameters
    assert list(run_single_epoch)[:5] == ["self", "iterator", "training", "prefix", "step_fn"]
    assert list(inspect.signature(skorch.NeuralNet._set_training).parameters) == [
        "self",
        "training",
    ]
