"""Clustering metrics: majority-vote, Hungarian and AAE-protocol accuracy, H(Y|X), NMI
and ARI.

Clusters are unordered, so accuracies first map clusters to classes:

- ``cluster_accuracy`` (the study's protocol): each cluster takes its most frequent true
  label; several clusters may map to the same class.
- ``hungarian_accuracy``: the best one-to-one map between clusters and classes.
- ``aae_accuracy`` (the adversarial autoencoders' protocol, which Dilokthanakul et al.
  report): each cluster takes the label of its single most confident row.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.special import entr
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from sklearn.metrics.cluster import contingency_matrix

__all__ = [
    "aae_accuracy",
    "cluster_accuracy",
    "clustering_report",
    "conditional_entropy",
    "hungarian_accuracy",
    "mutual_information",
]


def cluster_accuracy(y_true: np.ndarray, labels: np.ndarray) -> float:
    """Majority-vote accuracy: each cluster is labelled with its most frequent class.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True classes.
    labels : array-like of shape (n_samples,)
        Cluster assignments. Empty clusters play no part.

    Returns
    -------
    accuracy : float
        Fraction of rows whose cluster's majority class is their class, in (0, 1].

    Examples
    --------
    >>> cluster_accuracy([0, 0, 1, 1], [5, 5, 5, 2])
    0.75
    """
    table = contingency_matrix(y_true, labels)  # (classes, clusters)
    return float(table.max(axis=0).sum() / table.sum())


def hungarian_accuracy(y_true: np.ndarray, labels: np.ndarray) -> float:
    """Accuracy under the best one-to-one map of clusters to classes.

    Solved with ``scipy.optimize.linear_sum_assignment`` on the contingency table; with
    more clusters than classes the extra clusters count as wrong.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True classes.
    labels : array-like of shape (n_samples,)
        Cluster assignments.

    Returns
    -------
    accuracy : float
        In (0, 1]; never above ``cluster_accuracy``.

    Examples
    --------
    >>> hungarian_accuracy([0, 0, 1, 1], [5, 5, 5, 2])
    0.75
    >>> hungarian_accuracy([0, 0, 1, 1], [3, 3, 3, 3])
    0.5
    """
    table = contingency_matrix(y_true, labels)
    rows, cols = linear_sum_assignment(table, maximize=True)
    return float(table[rows, cols].sum() / table.sum())


def aae_accuracy(y_true: np.ndarray, proba: np.ndarray) -> float:
    """Accuracy under the adversarial autoencoders' protocol: each cluster k takes the
    class of its most confident row, argmax_x q(k|x) over all rows, and every row is
    assigned to its most probable cluster.

    Makhzani et al. (2016) and Dilokthanakul et al. (2016) score MNIST clusterings so.
    It uses one label per cluster, so it needs few labels, and it is at most
    ``cluster_accuracy`` of the same assignment; a cluster whose most confident row is
    atypical labels all its rows wrongly.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True classes.
    proba : array-like of shape (n_samples, n_clusters)
        Cluster posteriors, e.g. ``predict_proba(X)``; rows go to their argmax, and ties
        of confidence go to the first row.

    Returns
    -------
    accuracy : float
        In [0, 1].

    Examples
    --------
    >>> proba = [[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.45, 0.55]]
    >>> aae_accuracy([0, 1, 1, 1], proba)  # cluster 0 takes row 0's class, 1 row 2's
    0.75
    """
    y_true = np.asarray(y_true)
    proba = np.asarray(proba, dtype=np.float64)
    if proba.ndim != 2 or len(proba) != len(y_true):
        raise ValueError(
            f"proba must be (n_samples, n_clusters) with n_samples={len(y_true)}, got "
            f"shape {proba.shape}."
        )
    cluster_class = y_true[proba.argmax(axis=0)]  # (K,): the class of each cluster's best row
    return float(np.mean(cluster_class[proba.argmax(axis=1)] == y_true))


def conditional_entropy(proba: np.ndarray) -> float:
    """Mean entropy of the cluster posteriors, H(Y|X) = mean_x H(q(y|x)), in nats.

    0 for confident assignments, ln K when every q(y|x) is uniform over K clusters.

    Parameters
    ----------
    proba : array-like of shape (n_samples, n_clusters)
        Rows of probabilities, e.g. ``predict_proba(X)``.

    Returns
    -------
    entropy : float
        In [0, ln n_clusters].

    Examples
    --------
    >>> round(conditional_entropy([[0.5, 0.5], [1.0, 0.0]]), 4)
    0.3466
    """
    proba = np.asarray(proba, dtype=np.float64)
    if proba.ndim != 2:
        raise ValueError(f"proba must be 2-D (n_samples, n_clusters), got shape {proba.shape}.")
    return float(entr(proba).sum(axis=1).mean())


def mutual_information(proba: np.ndarray) -> float:
    """Mutual information between x and its cluster under the posteriors, in nats:

        I(X; Y) = H(Y) - H(Y|X),  H(Y) the entropy of the mean posterior mean_x q(y|x).

    High when each row is assigned confidently (low H(Y|X)) *and* the clusters are used
    evenly (high H(Y)): 0 both for uniform posteriors and for every row in one cluster.

    Parameters
    ----------
    proba : array-like of shape (n_samples, n_clusters)
        Rows of probabilities, e.g. ``predict_proba(X)``.

    Returns
    -------
    mi : float
        In [0, ln n_clusters].

    Examples
    --------
    >>> round(mutual_information([[1.0, 0.0], [0.0, 1.0]]), 4)  # ln 2
    0.6931
    >>> mutual_information([[1.0, 0.0], [1.0, 0.0]])
    0.0
    """
    proba = np.asarray(proba, dtype=np.float64)
    marginal = float(entr(proba.mean(axis=0)).sum()) if proba.size else 0.0
    return max(0.0, marginal - conditional_entropy(proba))


def clustering_report(
    y_true: np.ndarray, labels: np.ndarray, proba: np.ndarray | None = None
) -> dict[str, float]:
    """All the metrics at once.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True classes.
    labels : array-like of shape (n_samples,)
        Cluster assignments.
    proba : array-like of shape (n_samples, n_clusters), default=None
        Cluster posteriors; adds ``aae_accuracy`` and ``conditional_entropy`` when given
        (``aae_accuracy`` assigns rows by ``proba``'s argmax, not by ``labels``).

    Returns
    -------
    report : dict
        ``accuracy`` (majority vote), ``hungarian_accuracy``, ``nmi``, ``ari`` and, with
        ``proba``, ``aae_accuracy`` and ``conditional_entropy`` (nats).
    """
    report = {
        "accuracy": cluster_accuracy(y_true, labels),
        "hungarian_accuracy": hungarian_accuracy(y_true, labels),
        "nmi": float(normalized_mutual_info_score(y_true, labels)),
        "ari": float(adjusted_rand_score(y_true, labels)),
    }
    if proba is not None:
        report["aae_accuracy"] = aae_accuracy(y_true, proba)
        report["conditional_entropy"] = conditional_entropy(proba)
    return report
