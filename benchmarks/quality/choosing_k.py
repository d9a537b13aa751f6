"""Which label-free score recovers the number of clusters K: held-out ELBO, I(X; Y),
H(Y|X), used clusters and stability across K (``sk_gmvae.model_selection``) on blobs
of known K, and on the digits.

    python -m benchmarks.quality.choosing_k --centers 3 4 5 --seeds 0 1
    python -m benchmarks.quality.choosing_k --centers --seeds 0 --digits

Blobs: ``make_blobs(n_samples=300, centers=c, n_features=5, random_state=0)`` in a
StandardScaler pipeline, a small network trained 60 epochs; digits: sklearn's 1,797
8x8 digits (10 classes) in [0, 1], 30 epochs. 3-fold cross-validation; for every data
set and seed it prints the table and the K each rule picks. The figures are in
docs/models.md, "Choosing K".
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from sklearn.datasets import load_digits, make_blobs
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sk_gmvae import GMVAEClustering
from sk_gmvae.model_selection import compare_n_clusters, suggest_n_clusters

BLOB_PARAMS = dict(
    latent_dim=2, hidden_layer_sizes=(32,), max_epochs=60, batch_size=50, learning_rate=1e-2
)
DIGITS_PARAMS = dict(latent_dim=10, hidden_layer_sizes=(64, 64), max_epochs=30)


def rules(results: dict[str, np.ndarray]) -> dict[str, int]:
    """The K that each candidate rule picks from a ``compare_n_clusters`` table."""
    k = results["n_clusters"]
    elbo, splits = results["elbo"], 3
    best = int(np.argmax(elbo))
    # One-standard-error rule: the smallest K within one standard error of the best.
    within = elbo >= elbo[best] - results["elbo_std"][best] / np.sqrt(splits)
    confident = k[(results["used_clusters"] == k) & (results["conditional_entropy"] <= 0.1)]
    return {
        "best ELBO": int(k[best]),
        "ELBO within 1 s.e.": int(k[np.argmax(within)]),
        "best I(X;Y)": int(k[np.argmax(results["mutual_information"])]),
        "suggest_n_clusters (I(X;Y) >= 0.9 ln K)": suggest_n_clusters(results),
        "largest K all used with H(Y|X) <= 0.1": int(confident.max(initial=0)),
        "most used clusters": int(k[np.argmax(results["used_clusters"])]),
        "best stability": int(k[np.argmax(results["stability"])]),
    }


def report(name: str, results: dict[str, np.ndarray], seconds: float) -> dict[str, int]:
    print(f"\n{name} ({seconds:.0f} s)")
    print("| K | held-out ELBO | I(X;Y) | ln K | H(Y\\|X) | used clusters | stability |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for i, k in enumerate(results["n_clusters"]):
        print(
            f"| {k} | {results['elbo'][i]:.3f} ± {results['elbo_std'][i]:.3f} "
            f"| {results['mutual_information'][i]:.3f} | {np.log(k):.3f} "
            f"| {results['conditional_entropy'][i]:.3f} | {results['used_clusters'][i]:.2f} "
            f"| {results['stability'][i]:.3f} |"
        )
    picks = rules(results)
    print("picks: " + ", ".join(f"{rule} {k}" for rule, k in picks.items()), flush=True)
    return picks


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--centers", nargs="*", type=int, default=[3, 4, 5])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--candidates", nargs="+", type=int, default=[2, 3, 4, 5, 6, 7])
    parser.add_argument("--digits", action="store_true", help="also the digits, K 6-14")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    found: dict[str, list[bool]] = {}
    for centers in args.centers:
        X, _ = make_blobs(n_samples=300, centers=centers, n_features=5, random_state=0)
        for seed in args.seeds:
            est = make_pipeline(StandardScaler(), GMVAEClustering(random_state=seed, **BLOB_PARAMS))
            start = time.perf_counter()
            results = compare_n_clusters(est, X, args.candidates)
            picks = report(
                f"blobs, {centers} centres, seed {seed}", results, time.perf_counter() - start
            )
            for rule, k in picks.items():
                found.setdefault(rule, []).append(k == centers)
    if found:
        print("\n| rule | true K found (blobs) |\n| --- | --- |")
        for rule, hits in found.items():
            print(f"| {rule} | {sum(hits)} of {len(hits)} |")
    if args.digits:
        X = load_digits().data / 16.0
        for seed in args.seeds:
            est = GMVAEClustering(random_state=seed, **DIGITS_PARAMS)
            start = time.perf_counter()
            results = compare_n_clusters(est, X, [6, 8, 10, 12, 14])
            report(f"digits (10 classes), seed {seed}", results, time.perf_counter() - start)


if __name__ == "__main__":
    main()
