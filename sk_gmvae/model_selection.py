"""Choosing the number of clusters K without labels: held-out scores across K
(:func:`compare_n_clusters`), the K they suggest (:func:`suggest_n_clusters`) and their
figure (:func:`plot_n_clusters`). Read more in docs/models.md, "Choosing K"."""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Iterable
from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import adjusted_rand_score
from sklearn.model_selection import KFold, check_cv
from sklearn.utils.validation import check_array

from .metrics import conditional_entropy, mutual_information


def _n_clusters_param(estimator: Any) -> str:
    """The name of ``estimator``'s K parameter: ``n_clusters``, or the one parameter
    ending in ``__n_clusters`` (a pipeline's last step)."""
    names = [p for p in estimator.get_params() if p == "n_clusters" or p.endswith("__n_clusters")]
    if "n_clusters" in names:
        return "n_clusters"
    if len(names) != 1:
        raise ValueError(
            "estimator must have one n_clusters parameter (a GMVAEClustering, or a "
            f"pipeline ending in one); found {names or 'none'}."
        )
    return names[0]


def compare_n_clusters(
    estimator: Any,
    X: Any,
    candidates: Iterable[int],
    *,
    cv: int | Any = 3,
    random_state: int | None = 0,
) -> dict[str, np.ndarray]:
    """Held-out, label-free scores of ``estimator`` for every K in ``candidates``.

    For each K and each cross-validation split, a clone of ``estimator`` with that K is
    fitted on the training part and scored on the held-out part; every fitted clone
    also labels all of X, so that the splits' clusterings can be compared with each
    other. Read more in the user guide (docs/models.md, "Choosing K").

    Parameters
    ----------
    estimator : GMVAEClustering or Pipeline
        The unfitted model (a pipeline ending in a ``GMVAEClustering``, such as
        ``make_pipeline(StandardScaler(), GMVAEClustering())``, is fine); its K is set
        to each candidate in turn.
    X : array-like of shape (n_samples, n_features)
        The data.
    candidates : iterable of int
        The values of K to compare.
    cv : int or cross-validation generator, default=3
        The splits: an int is that many folds of ``KFold(shuffle=True)`` seeded with
        ``random_state`` (rows of a file are often sorted by class), or any scikit-learn
        splitter or iterable of (train, test) indices.
    random_state : int or None, default=0
        Seeds the folds of an int ``cv``.

    Returns
    -------
    results : dict of ndarray
        One entry per candidate K (sorted) in each array, to read as a table
        (``pandas.DataFrame(results)``):

        - ``n_clusters``: K;
        - ``elbo``, ``elbo_std``: the held-out ELBO per row, nats (``score``), mean and
          standard deviation over the splits;
        - ``mutual_information``: I(X; Y) = H(Y) - H(Y|X) of ``predict_proba`` on the
          held-out rows, nats (at most ln K; ln K when the clusters are equally used
          and every row is assigned with certainty);
        - ``conditional_entropy``: H(Y|X) on the held-out rows, nats;
        - ``used_clusters``: the distinct labels the fitted models give X, mean over
          the splits (below K when clusters were left empty);
        - ``stability``: the adjusted Rand index between the labelings of X by the
          models of different splits, mean over the pairs (1: the same clustering
          whatever the rows it was trained on).

    See Also
    --------
    suggest_n_clusters : The K the table suggests.
    plot_n_clusters : The table as a figure.
    """
    X = check_array(X, dtype=[np.float64, np.float32])
    candidates = sorted({int(k) for k in candidates})
    if not candidates or candidates[0] < 1:
        raise ValueError(f"candidates must be positive ints, got {candidates!r}.")
    if isinstance(cv, int | np.integer):
        cv = KFold(int(cv), shuffle=True, random_state=random_state)
    splits = list(check_cv(cv).split(X))
    param = _n_clusters_param(estimator)
    columns: dict[str, list] = {
        name: []
        for name in (
            "n_clusters",
            "elbo",
            "elbo_std",
            "mutual_information",
            "conditional_entropy",
            "used_clusters",
            "stability",
        )
    }
    for k in candidates:
        elbos, mi, entropy, used, labelings = [], [], [], [], []
        for train, test in splits:
            model = clone(estimator).set_params(**{param: k})
            with warnings.catch_warnings():
                # Empty clusters are what this table counts (used_clusters).
                warnings.filterwarnings("ignore", "Number of distinct clusters", ConvergenceWarning)
                model.fit(X[train])
            proba = model.predict_proba(X[test])
            elbos.append(model.score(X[test]))
            mi.append(mutual_information(proba))
            entropy.append(conditional_entropy(proba))
            labelings.append(model.predict(X))
            used.append(len(np.unique(labelings[-1])))
        pairs = itertools.combinations(labelings, 2)
        agreement = [adjusted_rand_score(a, b) for a, b in pairs]
        columns["n_clusters"].append(k)
        columns["elbo"].append(np.mean(elbos))
        columns["elbo_std"].append(np.std(elbos))
        columns["mutual_information"].append(np.mean(mi))
        columns["conditional_entropy"].append(np.mean(entropy))
        columns["used_clusters"].append(np.mean(used))
        columns["stability"].append(np.mean(agreement) if agreement else np.nan)
    return {name: np.asarray(values) for name, values in columns.items()}


# The share of ln K that a K's held-out I(X; Y) must reach (docs/models.md, "Choosing K").
MIN_INFORMATION_SHARE = 0.9


def suggest_n_clusters(
    results: dict[str, np.ndarray], min_share: float = MIN_INFORMATION_SHARE
) -> int:
    """The largest K of a :func:`compare_n_clusters` table whose clusters all carry
    information: held-out I(X; Y) of at least ``min_share`` times ln K.

    I(X; Y) = H(Y) - H(Y|X) reaches ln K only when the K clusters are used evenly and
    every row is assigned with certainty. Past the number of groups in the data, the
    extra clusters share rows with the others: I(X; Y) stops growing while ln K does,
    and the share falls. The rule assumes clusters of similar sizes (uneven ones lower
    H(Y), and with it the share); read the table when they are not.

    Parameters
    ----------
    results : dict of ndarray
        The table returned by :func:`compare_n_clusters`.
    min_share : float, default=0.9
        The share of ln K that I(X; Y) must reach, in (0, 1].

    Returns
    -------
    n_clusters : int
        The suggested K. When no candidate K > 1 reaches the share (the models have
        not learned clusters: train longer, or read the table), a ``UserWarning`` says
        so and the K with the largest share is returned.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_gmvae.model_selection import suggest_n_clusters
    >>> table = {"n_clusters": np.array([2, 3, 4]),
    ...          "mutual_information": np.array([0.69, 1.09, 1.10])}  # ln 4 = 1.39
    >>> suggest_n_clusters(table)
    3
    """
    if not 0 < min_share <= 1:
        raise ValueError(f"min_share must be in (0, 1], got {min_share!r}.")
    k = np.asarray(results["n_clusters"])
    # share = I(X; Y) / ln K, 1 for K = 1 (one cluster carries nothing to share).
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(k > 1, results["mutual_information"] / np.log(k), 1.0)
    reached = (share >= min_share) & (k > 1)
    if reached.any():
        return int(k[reached].max())
    warnings.warn(
        f"No candidate K > 1 reaches I(X; Y) >= {min_share} ln K on held-out rows: the "
        "models' assignments are uncertain at every K (train longer, or read the table). "
        "Returning the K with the largest share.",
        UserWarning,
        stacklevel=2,
    )
    candidates = np.flatnonzero(k > 1) if (k > 1).any() else np.arange(len(k))
    return int(k[candidates[np.argmax(share[candidates])]])


def plot_n_clusters(results: dict[str, np.ndarray], axes: Any = None) -> Any:
    """Draw a :func:`compare_n_clusters` table: the held-out ELBO (mean and standard
    deviation over the splits) and I(X; Y) beside ln K and the share that
    :func:`suggest_n_clusters` asks for, against K. Needs matplotlib.

    Parameters
    ----------
    results : dict of ndarray
        The table returned by :func:`compare_n_clusters`.
    axes : sequence of two matplotlib Axes, default=None
        Where to draw; None: a new figure with two panels.

    Returns
    -------
    axes : sequence of two matplotlib Axes
    """
    try:
        import matplotlib.pyplot as plt
    except ImportError:  # an optional dependency
        raise ImportError(
            "plot_n_clusters needs matplotlib: pip install 'sk_gmvae[plot]'."
        ) from None
    if axes is None:
        axes = plt.subplots(1, 2, figsize=(9, 3.5))[1]
    k = np.asarray(results["n_clusters"])
    elbo, mi = axes
    elbo.errorbar(k, results["elbo"], yerr=results["elbo_std"], marker="o", capsize=3)
    elbo.set(xlabel="K", ylabel="held-out ELBO per row (nats)")
    mi.plot(k, results["mutual_information"], marker="o", label="I(X; Y), held out")
    mi.plot(k, np.log(k), "k--", label="ln K")
    mi.plot(k, MIN_INFORMATION_SHARE * np.log(k), "k:", label=f"{MIN_INFORMATION_SHARE} ln K")
    mi.set(xlabel="K", ylabel="nats")
    mi.legend()
    for ax in axes:
        ax.set_xticks(k)
    return axes
