"""Small data: the defaults' fit time as a ratio to GaussianMixture's, with the quality
of both, in one run; and ``check_estimator`` on the defaults, per variant.

    python -m benchmarks.speed.bench_small_data                      # digits, iris, wine
    python -m benchmarks.speed.bench_small_data --seeds 0 1 2 3 4 5
    python -m benchmarks.speed.bench_small_data --check-estimator    # + sklearn's checks
    python -m benchmarks.speed.bench_small_data --previous   # + the defaults before #25
    python -m benchmarks.speed.bench_small_data --datasets mnist --rows 10000 --previous

For every data set and seed it fits, on the same rows, ``GaussianMixture(k,
covariance_type="full")``, ``KMeans(k, n_init=10)`` and ``GMVAEClustering(k)`` with its
defaults (real-valued data in a ``StandardScaler`` pipeline, for all three), and prints
majority-vote accuracy and ARI (mean ± sd over the seeds), the median seconds per fit
and the ratio of our median to GaussianMixture's. The methods alternate seed by seed,
so a busy machine slows them alike: the ratios hold where the seconds do not. One fit
runs first and is not timed: the first optimizer a process builds imports
``torch._dynamo`` (seconds, once per process).

``--check-estimator`` then times ``check_estimator(GMVAEClustering(variant=v))`` with
every other parameter at its default, for each variant.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.mixture import GaussianMixture
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import check_estimator

from benchmarks._common import load_datasets, mean_sd
from sk_gmvae import GMVAEClustering
from sk_gmvae._model import ALL_VARIANTS
from sk_gmvae.metrics import clustering_report

K = {"digits": 10, "iris": 3, "wine": 3, "blobs": 3, "blobs5d": 4, "mnist": 10, "fashion-mnist": 10}


# The defaults before issue #25 (3,600 steps at 1e-3, restarts one after another, rows
# assigned by 64 importance draws, nets up to 512 wide), for --previous.
PREVIOUS = dict(learning_rate=1e-3, stack_restarts=False, posterior_samples=64)


def _methods(k: int, seed: int, shape: tuple[int, int], previous: bool) -> dict:
    n_samples, n_features = shape
    methods = {
        "GaussianMixture": GaussianMixture(k, covariance_type="full", random_state=seed),
        "KMeans": KMeans(k, n_init=10, random_state=seed),
        "GMVAEClustering": GMVAEClustering(k, random_state=seed),
    }
    if previous:
        epochs = -(-3600 // -(-n_samples // 100))  # ceil(3600 / ceil(n / 100))
        width = int(np.clip(n_features, 64, 512))
        methods["GMVAEClustering, previous defaults"] = GMVAEClustering(
            k, random_state=seed, max_epochs=epochs, hidden_layer_sizes=(width, width), **PREVIOUS
        )
    return methods


def _time_fits(
    name: str, X: np.ndarray, y: np.ndarray, scale: bool, seeds: list[int], previous: bool
) -> None:
    k = K[name]
    figures: dict[str, dict[str, list[float]]] = {}
    for seed in seeds:
        for method, estimator in _methods(k, seed, X.shape, previous).items():
            model = make_pipeline(StandardScaler(), estimator) if scale else estimator
            start = time.perf_counter()
            labels = model.fit_predict(X)
            seconds = time.perf_counter() - start
            report = clustering_report(y, labels)
            row = figures.setdefault(method, {"accuracy": [], "ari": [], "seconds": []})
            row["accuracy"].append(report["accuracy"])
            row["ari"].append(report["ari"])
            row["seconds"].append(seconds)
    base = np.median(figures["GaussianMixture"]["seconds"])
    print(f"\n{name} ({len(X)} rows, K = {k}, seeds {seeds})\n")
    print("| method | majority vote | ARI | s per fit (median) | / GaussianMixture |")
    print("| --- | --- | --- | --- | --- |")
    for method, row in figures.items():
        median = np.median(row["seconds"])
        print(
            f"| {method} | {mean_sd(row['accuracy'])} | {mean_sd(row['ari'])} | "
            f"{median:.2f} | {median / base:.1f}x |"
        )


def _time_checks() -> None:
    print("\n| variant | check_estimator, defaults (s) |\n| --- | --- |")
    for variant in ALL_VARIANTS:
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            check_estimator(GMVAEClustering(variant=variant))
        print(f"| {variant} | {time.perf_counter() - start:.0f} |", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="*", default=["digits", "iris", "wine"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument(
        "--rows", type=int, default=10_000, help="the first rows of mnist / fashion-mnist"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--check-estimator", action="store_true")
    parser.add_argument(
        "--previous", action="store_true", help="also the defaults before issue #25"
    )
    args = parser.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # each table as it is measured, into a file too
    if args.threads:
        torch.set_num_threads(args.threads)
    X, y, _ = load_datasets(["iris"], 0)["iris"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the untimed first fit's, KMeans's notices, ...
        GMVAEClustering(3, max_epochs=1, n_init=1).fit(StandardScaler().fit_transform(X))
        for name, (X, y, scale) in load_datasets(args.datasets, args.rows).items():
            _time_fits(name, X, y, scale, args.seeds, args.previous)
    if args.check_estimator:
        _time_checks()


if __name__ == "__main__":
    main()
