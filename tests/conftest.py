"""Shared test set-up: one torch thread (tiny nets on few cores run fastest that way), and
the small data sets several test files fit."""

import pytest
import torch
from sklearn.datasets import load_digits, make_blobs


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits():
    """sklearn's 1,797 digits as (X, y), pixels scaled to [0, 1]."""
    X, y = load_digits(return_X_y=True)
    return X / 16.0, y


@pytest.fixture(scope="module")
def blobs():
    """(X, y): 120 rows of 3 Gaussian blobs in 4 dimensions."""
    X, y = make_blobs(n_samples=120, centers=3, n_features=4, random_state=0)
    return X, y
