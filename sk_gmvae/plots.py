"""Moved to :mod:`sk_gmvae.study.plots` (this name is kept for existing code)."""

from .study.plots import (  # noqa: F401
    plot_cluster_examples,
    plot_confusion,
    plot_latent,
    plot_prototypes,
    plot_study,
)
