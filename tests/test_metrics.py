"""Clustering metrics: known cases, permutation invariance, bounds."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sk_gmvae.metrics import (
    aae_accuracy,
    cluster_accuracy,
    clustering_report,
    conditional_entropy,
    hungarian_accuracy,
)

labelings = st.integers(1, 40).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(0, 4), min_size=n, max_size=n),
        st.lists(st.integers(0, 6), min_size=n, max_size=n),
    )
)


def test_known_cases():
    y = [0, 0, 0, 1, 1, 2]
    assert cluster_accuracy(y, [1, 1, 1, 0, 0, 2]) == 1.0
    assert hungarian_accuracy(y, [1, 1, 1, 0, 0, 2]) == 1.0
    # one big cluster: majority class only
    assert cluster_accuracy(y, [0] * 6) == pytest.approx(0.5)
    # two clusters both majority class 0: majority vote counts both, Hungarian one
    assert cluster_accuracy([0, 0, 0, 0, 1, 1], [0, 0, 1, 1, 1, 1]) == pytest.approx(4 / 6)
    assert hungarian_accuracy([0, 0, 0, 0, 1, 1], [0, 0, 1, 1, 1, 1]) == pytest.approx(4 / 6)
    assert cluster_accuracy([0, 0, 1, 1], [0, 1, 2, 3]) == 1.0
    assert hungarian_accuracy([0, 0, 1, 1], [0, 1, 2, 3]) == 0.5


@settings(max_examples=60, deadline=None)
@given(labelings, st.randoms(use_true_random=False))
def test_permutation_invariance_and_bounds(pair, random):
    y, labels = map(np.asarray, pair)
    relabel = np.arange(7)
    random.shuffle(relabel)
    for metric in (cluster_accuracy, hungarian_accuracy):
        value = metric(y, labels)
        assert metric(y, relabel[labels]) == pytest.approx(value)
        assert 0.0 < value <= 1.0
    assert hungarian_accuracy(y, labels) <= cluster_accuracy(y, labels) + 1e-12
    # majority vote is at least the share of the most frequent class
    assert cluster_accuracy(y, labels) >= np.bincount(y).max() / len(y) - 1e-12


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 8), st.integers(1, 20), st.integers(0, 2**31 - 1))
def test_conditional_entropy_bounds(k, n, seed):
    proba = np.random.default_rng(seed).dirichlet(np.ones(k), size=n)
    h = conditional_entropy(proba)
    assert -1e-12 <= h <= math.log(k) + 1e-9


def test_conditional_entropy_extremes():
    assert conditional_entropy(np.full((4, 10), 0.1)) == pytest.approx(math.log(10))
    assert conditional_entropy(np.eye(3)) == 0.0
    with pytest.raises(ValueError, match="2-D"):
        conditional_entropy([0.5, 0.5])


def test_report():
    y = np.array([0, 0, 1, 1])
    report = clustering_report(y, np.array([1, 1, 0, 0]), np.eye(2)[[1, 1, 0, 0]])
    assert report == {
        "accuracy": 1.0,
        "hungarian_accuracy": 1.0,
        "nmi": 1.0,
        "ari": 1.0,
        "aae_accuracy": 1.0,
        "conditional_entropy": 0.0,
    }
    assert "conditional_entropy" not in clustering_report(y, y)


def test_aae_accuracy_labels_each_cluster_by_its_most_confident_row():
    y = np.array([0, 0, 0, 1, 1, 2])
    proba = np.array(
        [
            [0.6, 0.3, 0.1],  # cluster 0, whose most confident row is row 3 (class 1)
            [0.5, 0.4, 0.1],
            [0.2, 0.7, 0.1],  # cluster 1's most confident row: class 0
            [0.9, 0.05, 0.05],
            [0.7, 0.2, 0.1],
            [0.1, 0.1, 0.8],  # cluster 2: class 2
        ]
    )
    # Clusters 0, 1, 2 take classes 1, 0, 2: rows 3, 4 (cluster 0), 2 and 5 are right.
    assert aae_accuracy(y, proba) == pytest.approx(4 / 6)
    # Majority vote can do no worse (cluster 0 holds two rows of class 0, two of class 1).
    assert cluster_accuracy(y, proba.argmax(axis=1)) == pytest.approx(4 / 6)
    # A more confident row of class 0 makes cluster 0 class 0: rows 0, 1, 2, 5 right.
    proba[0] = [0.95, 0.03, 0.02]
    assert aae_accuracy(y, proba) == pytest.approx(4 / 6)
    proba[1] = [0.15, 0.15, 0.7]  # row 1 to cluster 2 (class 2): now wrong
    assert aae_accuracy(y, proba) == pytest.approx(3 / 6)
    assert aae_accuracy(y, proba[:, [2, 0, 1]]) == pytest.approx(3 / 6)  # any numbering
    with pytest.raises(ValueError, match="n_samples=6"):
        aae_accuracy(y, proba[:5])


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 6), st.integers(1, 30), st.integers(0, 2**31 - 1))
def test_aae_accuracy_is_at_most_majority_vote(k, n, seed):
    rng = np.random.default_rng(seed)
    proba = rng.dirichlet(np.ones(k), size=n)
    y = rng.integers(0, 3, n)
    value = aae_accuracy(y, proba)
    assert 0.0 <= value <= cluster_accuracy(y, proba.argmax(axis=1)) + 1e-12
