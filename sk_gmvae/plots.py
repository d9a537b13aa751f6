"""Moved to :mod:`sk_gmvae.study.plots` (this name is kept for existing code)."""

from .study.plots import plot_prototypes, plot_study  # noqa: F401
