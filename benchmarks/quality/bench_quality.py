"""Clustering quality against the alternatives, in one run: GMVAEClustering with its
defaults (``GMVAEClustering(n_clusters=k)``, in a StandardScaler pipeline for real-valued
data) against KMeans, GaussianMixture and PCA + GaussianMixture, on the same data and
seeds. Majority-vote and Hungarian accuracy, NMI, ARI (mean +/- sd over seeds) and
seconds per fit; a Markdown table on stdout.

    python benchmarks/bench_quality.py                       # digits, iris, wine, blobs
    python benchmarks/bench_quality.py --datasets mnist fashion-mnist --rows 10000 \\
        --epochs 10                                           # image sets (minutes per fit)

"VaDE start" is ``variant="vade"`` with ``pretrain_epochs`` (2 of the 10 epochs of an
image set, 20 on small data), ``latent_dim=10``, ``binarize=False``,
``entropy_weight=0``; "VaDE start + GaussianMixture" clusters that model's embedding
``transform(X)`` with a full-covariance ``GaussianMixture`` (one pipeline). "n_init=1"
is the defaults with one training instead of the restarts of ``n_init="auto"`` (4
trials below 10,000 rows). "posterior_samples=0" is the defaults with rows assigned by
the inference network q(y|x) instead of the model's own posterior (64 importance draws
below 10,000 rows).

MNIST and Fashion-MNIST are clustered on their first ``--rows`` training images
(pixels in [0, 1]) and scored on those rows; ``--epochs`` overrides ``max_epochs`` for
them (the defaults' "auto" trains 3,600 steps).
"""

from __future__ import annotations

import argparse
import json
import time
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
from sk_gmvae.metrics import clustering_report

METRICS = ("accuracy", "hungarian_accuracy", "nmi", "ari")


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
            from sk_gmvae.datasets import load_fashion_mnist, load_mnist

            load = load_mnist if name == "mnist" else load_fashion_mnist
            X, y = load("train", return_X_y=True)
            out[name] = (X[:rows], y[:rows], False)
        else:
            raise ValueError(f"unknown data set {name!r}")
    return out


def _methods(k: int, seed: int, scale: bool, epochs: int | None) -> dict[str, Callable]:
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
        # Rows assigned by q(y|x) instead of the model's posterior (posterior_samples).
        "GMVAEClustering (posterior_samples=0)": lambda: pipe(
            GMVAEClustering(k, random_state=seed, posterior_samples=0, **gmvae)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--datasets", nargs="+", default=["digits", "iris", "wine", "blobs", "blobs5d"]
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--rows", type=int, default=10_000, help="images of (Fashion-)MNIST")
    parser.add_argument("--epochs", type=int, default=None, help="max_epochs for image sets")
    parser.add_argument("--methods", nargs="+", default=None, help="a subset of the methods")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--json", default=None, help="also write every fit's figures here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    rows = []
    for name, (X, y, scale) in load_datasets(args.datasets, args.rows).items():
        k = len(np.unique(y))
        epochs = args.epochs if name in ("mnist", "fashion-mnist") else None
        for seed in args.seeds:
            for method, make in _methods(k, seed, scale, epochs).items():
                if args.methods and method not in args.methods:
                    continue
                start = time.perf_counter()
                labels = make().fit_predict(X)
                seconds = time.perf_counter() - start
                report = clustering_report(y, labels)
                rows.append({"data": name, "method": method, "seed": seed, "seconds": seconds})
                rows[-1].update({m: report[m] for m in METRICS})
                print(
                    f"{name:14} {method:28} seed {seed}: "
                    + "  ".join(f"{m} {report[m]:.3f}" for m in METRICS)
                    + f"  {seconds:.1f} s",
                    flush=True,
                )

    print("\n| data | method | majority vote | Hungarian | NMI | ARI | s/fit |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name in dict.fromkeys(r["data"] for r in rows):
        for method in dict.fromkeys(r["method"] for r in rows if r["data"] == name):
            group = [r for r in rows if r["data"] == name and r["method"] == method]
            cells = [mean_sd([r[metric] for r in group]) for metric in METRICS]
            seconds = np.mean([r["seconds"] for r in group])
            print(f"| {name} | {method} | " + " | ".join(cells) + f" | {seconds:.1f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
