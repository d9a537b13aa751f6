"""Clustering quality against the alternatives, in one run: GMVAEClustering with its
defaults (``GMVAEClustering(n_clusters=k)``, in a StandardScaler pipeline for real-valued
data) against KMeans, GaussianMixture and PCA + GaussianMixture, on the same data and
seeds. Majority-vote and Hungarian accuracy, NMI, ARI (mean +/- sd over seeds) and
seconds per fit; a Markdown table on stdout.

    python -m benchmarks.quality.bench_quality          # digits, iris, wine, blobs
    python -m benchmarks.quality.bench_quality --datasets mnist fashion-mnist \\
        --rows 10000 --epochs 10                         # image sets (minutes per fit)

"VaDE start" is ``variant="vade"`` with ``pretrain_epochs`` (2 of the 10 epochs of an
image set, 20 on small data), ``latent_dim=10``, ``binarize=False``,
``entropy_weight=0``; "VaDE start + GaussianMixture" clusters that model's embedding
``transform(X)`` with a full-covariance ``GaussianMixture`` (one pipeline). "n_init=1"
is the defaults with one training instead of the restarts of ``n_init="auto"`` (4
trials below 10,000 rows). "posterior_samples=64" is the defaults with rows assigned by
the model's own posterior (64 importance draws) instead of the inference network q(y|x).

MNIST and Fashion-MNIST are clustered on their first ``--rows`` training images
(pixels in [0, 1]) and scored on those rows; ``--epochs`` overrides ``max_epochs`` for
them (the defaults' "auto" trains 3,600 steps).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from benchmarks._common import METRICS, load_datasets, mean_sd, quality_methods
from sk_gmvae.metrics import clustering_report


def main(argv: list[str] | None = None) -> None:
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
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    rows = []
    for name, (X, y, scale) in load_datasets(args.datasets, args.rows).items():
        k = len(np.unique(y))
        epochs = args.epochs if name in ("mnist", "fashion-mnist") else None
        for seed in args.seeds:
            for method, make in quality_methods(k, seed, scale, epochs).items():
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
