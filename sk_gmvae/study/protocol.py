"""The study's data protocol: which images train, and the test set binarized once."""

from __future__ import annotations

import argparse

import numpy as np

from ..datasets import load_fashion_mnist, load_mnist


def binarize_once(X: np.ndarray, seed: int) -> np.ndarray:
    """One fixed draw of x_d ~ Bernoulli(x_d), as the study evaluated on binarized images."""
    rng = np.random.default_rng(seed)
    return (rng.random(X.shape, dtype=np.float32) < X).astype(np.float32)


def load_protocol(args: argparse.Namespace) -> tuple[np.ndarray, ...]:
    """The study's protocol: train on the first ``n_train`` (50k) training images, so an
    epoch is 500 steps of 100; evaluate on the 10k test images, binarized once."""
    if getattr(args, "dataset", "mnist") == "fashion-mnist":
        X_train, y_train = load_fashion_mnist("train", return_X_y=True, data_home=args.data_home)
        X_test, y_test = load_fashion_mnist("test", return_X_y=True, data_home=args.data_home)
    else:
        X_train, y_train = load_mnist("train", return_X_y=True, data_home=args.data_home)
        X_test, y_test = load_mnist("test", return_X_y=True, data_home=args.data_home)
    n = args.n_train
    return X_train[:n], y_train[:n], binarize_once(X_test, args.seed), y_test
