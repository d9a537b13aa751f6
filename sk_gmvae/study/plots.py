"""Figures: the study's three panels and cluster prototypes (needs matplotlib)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

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


def plot_study(
    histories: dict[tuple[str, int], list[dict[str, float]]],
    path: str | Path,
    reference: dict | None = None,
) -> list[Path]:
    """Three panels against epoch: H(Y|X), loss and accuracy on the test set.

    One colour per variant: the mean over seeds as a line, the range over seeds as a
    band, and the study's logged runs (mean, dashed, with markers) for comparison.
    Writes ``path`` with the suffixes ``.png`` and ``.svg``; returns the two paths.
    """
    plt = _pyplot()
    reference = study_reference() if reference is None else reference
    runs_by_variant: dict[str, list] = defaultdict(list)
    for (variant, _), rows in histories.items():
        runs_by_variant[variant].append(rows)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    max_epoch = max(len(rows) for rows in histories.values())
    for ax, (key, title) in zip(axes, PANELS, strict=True):
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
        ax.set_title(title)
        ax.set_xlabel("epoch (50k samples)")
        ax.grid(alpha=0.3)
    axes[0].axhline(np.log(10), color="grey", lw=0.8, ls=":")
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    outputs = [path.with_suffix(".png"), path.with_suffix(".svg")]
    for output in outputs:
        fig.savefig(output, dpi=120)
    plt.close(fig)
    return outputs


def plot_prototypes(
    prototypes: np.ndarray, path: str | Path, image_shape: tuple[int, int] = (28, 28)
) -> Path:
    """A grid image: one row per cluster, its decoded samples side by side.

    ``prototypes`` is (n_clusters, n_per_cluster, n_features), as returned by
    ``GMVAEClustering.cluster_prototypes``.
    """
    plt = _pyplot()
    k, n, _ = prototypes.shape
    h, w = image_shape
    grid = prototypes.reshape(k, n, h, w).transpose(0, 2, 1, 3).reshape(k * h, n * w)
    fig, ax = plt.subplots(figsize=(n * 0.6, k * 0.6 + 0.3))
    ax.imshow(grid, cmap="gray_r", vmin=0, vmax=1)
    ax.set_yticks(np.arange(k) * h + h / 2, [str(i) for i in range(k)])
    ax.set_xticks([])
    ax.set_ylabel("cluster")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
