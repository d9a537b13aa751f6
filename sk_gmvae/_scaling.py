"""The Gaussian likelihood's standardization of the features (``standardize``).

The model is fitted to u = (x - mean) / scale, feature by feature; what it returns in
the data space (decoded means, samples, prototypes) goes back through x = u * scale +
mean, and its densities through the change of variables:
log p(x) = log p(u) - sum_d log scale_d. ``mean`` and ``scale`` None: no
standardization, X as it is.
"""

from __future__ import annotations

import numpy as np
from sklearn.preprocessing import StandardScaler


def feature_scaling(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and standard deviation of X, as float64 arrays of shape
    (n_features,); a feature without variance gets scale 1 (``StandardScaler``'s rule)."""
    scaler = StandardScaler().fit(X)
    return scaler.mean_.astype(np.float64), scaler.scale_.astype(np.float64)


def to_model(X: np.ndarray, mean: np.ndarray | None, scale: np.ndarray | None) -> np.ndarray:
    """X in the model's space: u = (x - mean) / scale, or X itself without scaling."""
    return X if scale is None else (X - mean) / scale


def to_data(U: np.ndarray, mean: np.ndarray | None, scale: np.ndarray | None) -> np.ndarray:
    """Rows of the model's space back in the data space: x = u * scale + mean."""
    return U if scale is None else U * scale + mean


def log_jacobian(scale: np.ndarray | None) -> float:
    """log |det du/dx| = -sum_d log scale_d, added to a log density of u to make it one
    of x (0 without scaling)."""
    return 0.0 if scale is None else -float(np.log(scale).sum())
