"""What the benchmark scripts share: the quality table's metrics and ``mean ± sd``, the
small data sets, the clustering methods the quality benchmark compares, and q(y|x)'s
labels of a module during its training."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.datasets import load_digits, load_iris, load_wine, make_blobs
from sklearn.decomposition import PCA
from sklearn.mixture import GaussianMixture
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sk_gmvae import GMVAEClustering
from sk_gmvae._inference import posterior

METRICS = ("accuracy", "hungarian_accuracy", "nmi", "ari")


def qy_labels(module: torch.nn.Module, X: np.ndarray) -> np.ndarray:
    """argmax q(y|x) of every row of X, in eval mode and float32; the module's mode
    is put back."""
    training = module.training
    module.eval()
    labels = posterior(module, X, torch.float32).argmax(1)
    module.train(training)
    return labels


def mean_sd(values: list[float] | np.ndarray) -> str:
    """``mean ± sd`` (sample sd) to 3 decimals; the mean alone for one value."""
    sd = f" ± {np.std(values, ddof=1):.3f}" if len(values) > 1 else ""
    return f"{np.mean(values):.3f}{sd}"


def load_datasets(names: list[str], rows: int) -> dict[str, tuple[np.ndarray, np.ndarray, bool]]:
    """name -> (X, y, scale): ``scale`` says the data are real-valued (standardize)."""
    out = {}
    for name in names:
        if name == "digits":
            X, y = load_digits(return_X_y=True)
            out[name] = (X / 16.0, y, False)
        elif name == "iris":
            out[name] = (*load_iris(return_X_y=True), True)
        elif name == "wine":
            out[name] = (*load_wine(return_X_y=True), True)
        elif name == "blobs":  # sklearn's default blobs: 3 overlapping clusters in 2-D
            out[name] = (*make_blobs(n_samples=300, centers=3, random_state=0), True)
        elif name == "blobs5d":
            X, y = make_blobs(n_samples=500, centers=4, n_features=5, random_state=0)
            out[name] = (X, y, True)
        elif name in ("mnist", "fashion-mnist"):
            from sk_gmvae.datasets import DatasetUnavailableError, load_fashion_mnist, load_mnist

            load = load_mnist if name == "mnist" else load_fashion_mnist
            # Beyond the 60,000 training images: all 70,000 (train + test), as the
            # peers score MNIST.
            subset = "train" if rows <= 60_000 else "all"
            try:
                X, y = load(subset, return_X_y=True)
            except DatasetUnavailableError as exc:  # its message says how to get the data
                raise SystemExit(f"error: {exc}") from None
            out[name] = (X[:rows], y[:rows], False)
        else:
            raise ValueError(f"unknown data set {name!r}")
    return out


def quality_methods(k: int, seed: int, scale: bool, epochs: int | None) -> dict[str, Callable]:
    """name -> a function that makes the method's unfitted estimator: ``k`` clusters,
    ``random_state=seed``, in a StandardScaler pipeline when ``scale``; ``epochs`` (None:
    the defaults) is the GMVAE's ``max_epochs``."""

    def pipe(estimator):
        return make_pipeline(StandardScaler(), estimator) if scale else estimator

    gmvae = {} if epochs is None else {"max_epochs": epochs}
    # VaDE with its autoencoder + GMM start: 2 of the 10 epochs of an image set, 20 of
    # the ~200 of a small one; latent 10, grey values kept, the plain ELBO.
    vade = dict(
        variant="vade",
        pretrain_epochs=2 if epochs else 20,
        latent_dim=10,
        binarize=False,
        entropy_weight=0.0,
    )
    return {
        "GMVAEClustering (defaults)": lambda: pipe(GMVAEClustering(k, random_state=seed, **gmvae)),
        # One training instead of n_init="auto"'s trials (4 below 10,000 rows).
        "GMVAEClustering (n_init=1)": lambda: pipe(
            GMVAEClustering(k, random_state=seed, n_init=1, **gmvae)
        ),
        # Rows assigned by the model's posterior (64 importance draws) instead of q(y|x).
        "GMVAEClustering (posterior_samples=64)": lambda: pipe(
            GMVAEClustering(k, random_state=seed, posterior_samples=64, **gmvae)
        ),
        "GMVAEClustering (VaDE start)": lambda: pipe(
            GMVAEClustering(k, random_state=seed, **gmvae, **vade)
        ),
        # The same model as an embedding (transform: E[z|x]), then full covariances there.
        "VaDE start + GaussianMixture": lambda: pipe(
            make_pipeline(
                GMVAEClustering(k, random_state=seed, **gmvae, **vade),
                GaussianMixture(k, covariance_type="full", random_state=seed),
            )
        ),
        "KMeans": lambda: pipe(KMeans(k, n_init=10, random_state=seed)),
        "GaussianMixture": lambda: pipe(GaussianMixture(k, random_state=seed)),
        "PCA + GaussianMixture": lambda: pipe(
            make_pipeline(PCA(0.9, random_state=seed), GaussianMixture(k, random_state=seed))
        ),
    }
