"""The study's data protocol: which images train, and the test set binarized once."""

from __future__ import annotations

import numpy as np

from ..datasets import load_fashion_mnist, load_mnist


def binarize_once(X: np.ndarray, seed: int) -> np.ndarray:
    """One fixed draw of x_d ~ Bernoulli(x_d), as the study evaluated on binarized images."""
    rng = np.random.default_rng(seed)
    return (rng.random(X.shape, dtype=np.float32) < X).astype(np.float32)


def load_protocol(
    dataset: str = "mnist",
    n_train: int = 50_000,
    seed: int = 0,
    data_home: str | None = None,
) -> tuple[np.ndarray, ...]:
    """The study's protocol: train on the first ``n_train`` (50k) training images of
    ``dataset`` ("mnist" or "fashion-mnist"), so an epoch is 500 steps of 100; evaluate on
    the 10k test images, binarized once with ``seed``. Returns X_train, y_train, X_test,
    y_test."""
    load = load_fashion_mnist if dataset == "fashion-mnist" else load_mnist
    X_train, y_train = load("train", return_X_y=True, data_home=data_home)
    X_test, y_test = load("test", return_X_y=True, data_home=data_home)
    return X_train[:n_train], y_train[:n_train], binarize_once(X_test, seed), y_test
