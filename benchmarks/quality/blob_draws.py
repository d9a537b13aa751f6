"""Adjusted Rand index on many random draws of ``make_blobs``, not one: each draw is
``make_blobs(n_samples=300, centers=c, random_state=r)`` in a StandardScaler
pipeline, clustered by the quality benchmark's methods with ``random_state=0``.
Prints each draw's ARI, then per number of centres (and over all draws) each method's
mean ± sd over the draws and its wins / ties / losses against GaussianMixture with its
defaults (a tie: within 0.001).

    python -m benchmarks.quality.blob_draws --centers 3 4 5 --draws 0 1 2 3 4 5 6 7 8 9 \\
        --jobs 2

One draw is one data set: the overlapping blobs of ``bench_quality.py`` (3 centres,
draw 0) are a single point of this picture, and there a one-row boundary decides.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from joblib import Parallel, delayed
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score
from sklearn.mixture import GaussianMixture
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from benchmarks._common import mean_sd, quality_methods

DEFAULT_METHODS = [
    "GMVAEClustering (defaults)",
    "KMeans",
    "GaussianMixture",
    "GaussianMixture (n_init=10)",
]


def score_draw(centers: int, draw: int, methods: list[str]) -> dict:
    """ARI of each method on one draw, fitted on one torch thread."""
    torch.set_num_threads(1)
    X, y = make_blobs(n_samples=300, centers=centers, random_state=draw)
    makers = quality_methods(centers, 0, True, None)
    # GaussianMixture's default is one EM run; with 10, as KMeans and the GMVAE's
    # restarts, a local optimum is rarer.
    makers["GaussianMixture (n_init=10)"] = lambda: make_pipeline(
        StandardScaler(), GaussianMixture(centers, n_init=10, random_state=0)
    )
    scores = {m: adjusted_rand_score(y, makers[m]().fit_predict(X)) for m in methods}
    print(
        f"centers {centers} draw {draw}: " + "  ".join(f"{m} {s:.3f}" for m, s in scores.items()),
        flush=True,
    )
    return {"centers": centers, "draw": draw, **scores}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--centers", nargs="+", type=int, default=[3, 4, 5])
    parser.add_argument("--draws", nargs="+", type=int, default=list(range(10)))
    parser.add_argument("--methods", nargs="+", default=DEFAULT_METHODS)
    parser.add_argument("--jobs", type=int, default=1, help="draws fitted at once")
    args = parser.parse_args(argv)
    if "GaussianMixture" not in args.methods:
        args.methods.append("GaussianMixture")  # the reference of the win count

    rows = Parallel(n_jobs=args.jobs)(
        delayed(score_draw)(c, r, args.methods) for c in args.centers for r in args.draws
    )
    print("\n| centres | method | ARI, mean ± sd over draws | wins / ties / losses |")
    print("| --- | --- | --- | --- |")
    groups = [(str(c), [row for row in rows if row["centers"] == c]) for c in args.centers]
    if len(args.centers) > 1:
        groups.append(("all", rows))
    for centers, group in groups:
        reference = np.array([row["GaussianMixture"] for row in group])
        for method in args.methods:
            ari = np.array([row[method] for row in group])
            diff = ari - reference
            record = f"{(diff > 1e-3).sum()} / {(abs(diff) <= 1e-3).sum()} / {(diff < -1e-3).sum()}"
            print(f"| {centers} | {method} | {mean_sd(ari)} | {record} |")


if __name__ == "__main__":
    main()
