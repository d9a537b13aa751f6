"""Real-valued data as it comes: the Gaussian likelihood on raw and on standardized
input, with the model's own standardization (``standardize``) on and off, beside
KMeans and GaussianMixture on the same data.

    python -m benchmarks.quality.standardize --seeds 0 1 2

Data sets, each clustered into its number of classes: wine, iris, breast_cancer,
``make_blobs(n_samples=500, centers=4, n_features=5, random_state=0)`` with its
features multiplied by 1, 10, 100, 0.1 and 1000 and shifted by 0, 50, -300, 2 and
10,000 ("blobs (scaled)"), and sklearn's 8x8 digits in [0, 1] (pixels / 16) with
``likelihood="gaussian"``. Inputs: "raw" (as loaded) and "scaled"
(``StandardScaler().fit_transform``). GMVAEClustering has its defaults but
``max_epochs``, set to about ``--steps`` optimizer steps (600, a sixth of the
``"auto"`` 3,600), on one torch thread; the table gives each method's adjusted Rand
index (mean ± sd over the seeds, which seed the GMVAE, KMeans and GaussianMixture
alike), the number of clusters its labels use, and, for the GMVAE on scaled input with
``standardize=True``, on how many seeds its labels equal those of ``standardize=False``
(standardizing data that already are standardized). The figures are in
docs/defaults.md, "Standardization".
"""

from __future__ import annotations

import argparse
import math
import time
import warnings

import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.datasets import load_breast_cancer, load_digits, load_iris, load_wine, make_blobs
from sklearn.metrics import adjusted_rand_score
from sklearn.mixture import GaussianMixture
from sklearn.preprocessing import StandardScaler

from benchmarks._common import mean_sd
from sk_gmvae import GMVAEClustering

DATASETS = ("wine", "iris", "breast_cancer", "blobs", "digits")
# The scaled blobs' feature scales and offsets.
BLOB_SCALES = np.array([1.0, 10.0, 100.0, 0.1, 1000.0])
BLOB_SHIFTS = np.array([0.0, 50.0, -300.0, 2.0, 10_000.0])


def load(name: str) -> tuple[np.ndarray, np.ndarray, dict]:
    """(X, y, the GMVAE's extra parameters) of a data set, raw."""
    if name == "wine":
        return (*load_wine(return_X_y=True), {})
    if name == "iris":
        return (*load_iris(return_X_y=True), {})
    if name == "breast_cancer":
        return (*load_breast_cancer(return_X_y=True), {})
    if name == "blobs":
        X, y = make_blobs(n_samples=500, centers=4, n_features=5, random_state=0)
        return X * BLOB_SCALES + BLOB_SHIFTS, y, {}
    if name == "digits":
        X, y = load_digits(return_X_y=True)
        return X / 16.0, y, {"likelihood": "gaussian"}
    raise ValueError(f"unknown data set {name!r}")


def gmvae_labels(X: np.ndarray, k: int, seed: int, standardize: bool, steps: int, extra: dict):
    """Labels of a GMVAEClustering with its defaults but ~``steps`` optimizer steps."""
    epochs = math.ceil(steps / math.ceil(len(X) / 100))  # batch_size=100
    est = GMVAEClustering(k, max_epochs=epochs, standardize=standardize, random_state=seed, **extra)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the unscaled-data and empty-cluster warnings
        return est.fit(X).labels_


def run(name: str, seeds: list[int], steps: int) -> list[tuple]:
    """The table rows of one data set."""
    X_raw, y, extra = load(name)
    k = len(np.unique(y))
    inputs = {"raw": X_raw, "scaled": StandardScaler().fit_transform(X_raw)}
    labels: dict[tuple, list[np.ndarray]] = {}
    for seed in seeds:
        for kind, X in inputs.items():
            for standardize in (False, True):
                key = ("GMVAEClustering", kind, f"standardize={standardize}")
                found = gmvae_labels(X, k, seed, standardize, steps, extra)
                labels.setdefault(key, []).append(found)
            kmeans = KMeans(k, n_init=10, random_state=seed).fit_predict(X)
            labels.setdefault(("KMeans", kind, ""), []).append(kmeans)
            mixture = GaussianMixture(k, random_state=seed).fit_predict(X)
            labels.setdefault(("GaussianMixture", kind, ""), []).append(mixture)
    same = sum(
        np.array_equal(a, b)
        for a, b in zip(
            labels["GMVAEClustering", "scaled", "standardize=True"],
            labels["GMVAEClustering", "scaled", "standardize=False"],
            strict=True,
        )
    )
    rows = []
    for (method, kind, setting), found in labels.items():
        ari = [adjusted_rand_score(y, f) for f in found]
        used = np.mean([len(np.unique(f)) for f in found])
        note = ""
        if (method, kind, setting) == ("GMVAEClustering", "scaled", "standardize=True"):
            note = f"{same}/{len(seeds)}"
        rows.append((name, method, kind, setting, mean_sd(ari), f"{used:.1f} of {k}", note))
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--steps", type=int, default=600, help="optimizer steps per fit")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print(
        "| data | method | input | setting | ARI, mean ± sd | clusters used "
        "| labels = standardize=False |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |", flush=True)
    for name in args.datasets:  # each data set's rows as soon as they are measured
        start = time.perf_counter()
        for row in run(name, args.seeds, args.steps):
            print("| " + " | ".join(row) + " |")
        print(f"({name}: {time.perf_counter() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
