"""Figures (need matplotlib): the study's three panels, cluster prototypes and nearest
examples, the cluster-by-class confusion matrix, and a 2-D view of the latent space."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .runner import study_reference

COLOURS = {"m2": "tab:red", "modified_m2": "tab:orange", "gmvae": "tab:blue"}
PANELS = (
    ("test_entropy", "H(Y|X) on the test set (nats)"),
    ("test_loss", "negative ELBO on the test set (nats)"),
    ("test_accuracy", "test accuracy (majority vote)"),
)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, ax: Any, path: str | Path, title: str | None, dpi: int) -> Path:
    """Title ``ax`` (when given), lay ``fig`` out, write it to ``path`` and close it."""
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=dpi)
    _pyplot().close(fig)
    return path


# The study's settings: its logged curves are comparable only to runs with these.
STUDY_N_CLUSTERS, STUDY_N_TRAIN = 10, 50_000


def plot_study(
    histories: dict[tuple[str, int], list[dict[str, float]]],
    path: str | Path,
    reference: dict | None = None,
    *,
    n_clusters: int = STUDY_N_CLUSTERS,
    n_train: int | None = None,
    title: str | None = None,
) -> list[Path]:
    """Three panels against epoch: H(Y|X), loss and accuracy on the test set.

    One colour per variant: the mean over seeds as a line, the range over seeds as a
    band, and the study's logged runs (mean, dashed, with markers) for comparison when
    the run has the study's settings (``n_clusters=10``, 50k training images). The
    entropy panel marks ln K, the entropy of a uniform q(y|x). Epochs are whole numbers,
    one legend below the panels serves all three, and ``title`` (e.g. the command line)
    heads the figure. Writes ``path`` with the suffixes ``.png`` and ``.svg``; returns
    the two paths.
    """
    plt = _pyplot()
    fig = study_figure(histories, reference, n_clusters=n_clusters, n_train=n_train, title=title)
    path = Path(path)
    outputs = [path.with_suffix(".png"), path.with_suffix(".svg")]
    for output in outputs:
        fig.savefig(output, dpi=120)
    plt.close(fig)
    return outputs


def study_figure(
    histories: dict[tuple[str, int], list[dict[str, float]]],
    reference: dict | None = None,
    *,
    n_clusters: int = STUDY_N_CLUSTERS,
    n_train: int | None = None,
    title: str | None = None,
) -> Any:
    """The matplotlib figure that :func:`plot_study` writes (same arguments)."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    comparable = n_clusters == STUDY_N_CLUSTERS and n_train in (None, STUDY_N_TRAIN)
    if not comparable:
        reference = {}
    reference = study_reference() if reference is None else reference
    runs_by_variant: dict[str, list] = defaultdict(list)
    for (variant, _), rows in histories.items():
        runs_by_variant[variant].append(rows)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    max_epoch = max(len(rows) for rows in histories.values())
    for ax, (key, panel_title) in zip(axes, PANELS, strict=True):
        for variant, runs in runs_by_variant.items():
            colour = COLOURS.get(variant)
            n = min(len(r) for r in runs)
            values = np.array([[row[key] for row in r[:n]] for r in runs])
            epochs = np.arange(1, n + 1)
            label = f"{variant} (n={len(runs)})"
            ax.plot(epochs, values.mean(axis=0), color=colour, label=label)
            if len(runs) > 1:
                ax.fill_between(epochs, values.min(0), values.max(0), color=colour, alpha=0.2)
            study = reference.get(variant, {})
            ref_epochs = sorted(e for e in study if e <= max_epoch and study[e].get(key))
            if ref_epochs:
                ax.plot(
                    ref_epochs,
                    [np.mean(study[e][key]) for e in ref_epochs],
                    "o--",
                    color=colour,
                    alpha=0.7,
                    markersize=4,
                    label=f"{variant}, study",
                )
        ax.set_title(panel_title)
        ax.set_xlabel("epoch" if n_train is None else f"epoch ({n_train:,} images each)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    axes[0].axhline(
        np.log(n_clusters), color="grey", lw=0.8, ls=":", label=f"ln K (K = {n_clusters})"
    )
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 4), fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.08 + 0.04 * (len(labels) > 4), 1, 1))
    return fig


def _image_grid(images: np.ndarray, image_shape: tuple[int, int]) -> np.ndarray:
    """(rows, columns, h * w) images as one (rows * h, columns * w) picture."""
    k, n, _ = images.shape
    h, w = image_shape
    return images.reshape(k, n, h, w).transpose(0, 2, 1, 3).reshape(k * h, n * w)


def _cluster_row_labels(k: int, sizes: np.ndarray | None, majority: Sequence | None) -> list[str]:
    labels = [str(i) for i in range(k)]
    if sizes is not None:
        labels = [f"{label}: n={int(n)}" for label, n in zip(labels, sizes, strict=True)]
    if majority is not None:
        labels = [f"{label}, {m}" for label, m in zip(labels, majority, strict=True)]
    return labels


def _save_grid(
    images: np.ndarray,
    path: str | Path,
    image_shape: tuple[int, int],
    row_labels: list[str],
    title: str | None,
) -> Path:
    plt = _pyplot()
    k, n, _ = images.shape
    h = image_shape[0]
    label_width = max(len(label) for label in row_labels) * 0.07
    fig, ax = plt.subplots(figsize=(n * 0.6 + label_width, k * 0.6 + 0.6))
    ax.imshow(_image_grid(images, image_shape), cmap="gray_r", vmin=0, vmax=1)
    ax.set_yticks(np.arange(k) * h + h / 2, row_labels)
    ax.set_xticks([])
    ax.set_ylabel("cluster")
    return _save(fig, ax, path, title, dpi=100)


def plot_prototypes(
    prototypes: np.ndarray,
    path: str | Path,
    image_shape: tuple[int, int] = (28, 28),
    *,
    sizes: np.ndarray | None = None,
    majority: Sequence | None = None,
    title: str | None = None,
) -> Path:
    """A grid image: one row per cluster, its decoded samples side by side.

    ``prototypes`` is (n_clusters, n_per_cluster, n_features), as returned by
    ``GMVAEClustering.cluster_prototypes``. Each row is labelled with its cluster and,
    when given, its size (``sizes``, e.g. ``np.bincount(labels_)``) and majority class
    (``majority``, see :func:`cluster_summary`); ``title`` heads the grid.
    """
    k = prototypes.shape[0]
    row_labels = _cluster_row_labels(k, sizes, majority)
    return _save_grid(prototypes, path, image_shape, row_labels, title)


def cluster_summary(
    labels: np.ndarray, y_true: np.ndarray, n_clusters: int
) -> tuple[np.ndarray, list]:
    """Each cluster's size and majority class (``"-"`` for an empty cluster)."""
    sizes = np.bincount(labels, minlength=n_clusters)
    majority = []
    for k in range(n_clusters):
        members = y_true[labels == k]
        values, counts = np.unique(members, return_counts=True)
        majority.append(values[counts.argmax()].item() if len(members) else "-")
    return sizes, majority


def plot_cluster_examples(
    X: np.ndarray,
    proba: np.ndarray,
    path: str | Path,
    image_shape: tuple[int, int] = (28, 28),
    n_per_cluster: int = 8,
    *,
    title: str | None = None,
) -> Path:
    """A grid of real rows: for each cluster k, the ``n_per_cluster`` rows of X with the
    highest q(y=k|x) (``proba``, from ``predict_proba``), most confident first; a
    cluster's row is left blank where X has fewer rows."""
    k = proba.shape[1]
    n = min(n_per_cluster, len(X))
    order = np.argsort(-proba, axis=0, kind="stable")[:n]  # (n, K) row indices
    images = X[order.T]  # (K, n, D)
    sizes = np.bincount(proba.argmax(axis=1), minlength=k)
    return _save_grid(images, path, image_shape, _cluster_row_labels(k, sizes, None), title)


def plot_confusion(
    y_true: np.ndarray,
    labels: np.ndarray,
    path: str | Path,
    n_clusters: int | None = None,
    *,
    title: str | None = None,
) -> Path:
    """Clusters (rows) against classes (columns): the counts of
    ``sklearn.metrics.confusion_matrix``, each row normalised to its cluster's size for
    the colour, the count written in each cell, and the row labelled with its size and
    majority class."""
    plt = _pyplot()
    classes = np.unique(y_true)
    k = int(n_clusters or labels.max() + 1)
    counts = np.zeros((k, len(classes)), dtype=int)
    np.add.at(counts, (labels, np.searchsorted(classes, y_true)), 1)
    sizes, majority = cluster_summary(labels, y_true, k)
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(0.5 * len(classes) + 2.5, 0.4 * k + 1.5))
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    for (row, col), count in np.ndenumerate(counts):
        if count:
            colour = "white" if share[row, col] > 0.6 else "black"
            ax.text(col, row, str(count), ha="center", va="center", fontsize=7, color=colour)
    ax.set_xticks(np.arange(len(classes)), [str(c) for c in classes])
    ax.set_yticks(np.arange(k), _cluster_row_labels(k, sizes, majority))
    ax.set_xlabel("class")
    ax.set_ylabel("cluster: size, majority class")
    fig.colorbar(image, ax=ax, label="share of the cluster")
    return _save(fig, ax, path, title, dpi=120)


def latent_pca(Z: np.ndarray) -> np.ndarray:
    """Two columns for a 2-D view of latent rows Z: their first two principal components
    (one column and zeros when Z has one)."""
    from sklearn.decomposition import PCA

    n_components = min(2, Z.shape[1], len(Z))
    view = PCA(n_components=n_components).fit_transform(Z)
    return np.pad(view, ((0, 0), (0, 2 - n_components)))


def plot_latent(
    Z: np.ndarray,
    labels: np.ndarray,
    path: str | Path,
    *,
    title: str | None = None,
    max_points: int = 5000,
    random_state: int = 0,
) -> Path:
    """A 2-D view of the latent space: the PCA of ``Z`` (e.g. ``transform(X)``), one
    point per row coloured by its cluster, at most ``max_points`` rows (drawn at
    random)."""
    plt = _pyplot()
    rng = np.random.default_rng(random_state)
    rows = rng.permutation(len(Z))[:max_points]
    view, labels = latent_pca(Z)[rows], labels[rows]
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    cmap = plt.get_cmap("tab10" if labels.max() < 10 else "tab20")
    for k in np.unique(labels):
        at = view[labels == k]
        ax.scatter(at[:, 0], at[:, 1], s=4, alpha=0.6, color=cmap(k % cmap.N), label=str(k))
    ax.set_xlabel("latent PC 1")
    ax.set_ylabel("latent PC 2")
    ax.legend(
        title="cluster", markerscale=3, fontsize=7, loc="center left", bbox_to_anchor=(1, 0.5)
    )
    return _save(fig, ax, path, title, dpi=120)
