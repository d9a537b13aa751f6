"""MNIST with the trained model as an embedding: for each seed, ``GMVAEClustering`` is
trained on the first ``--rows`` training images, then a full-covariance
``GaussianMixture`` is fitted to its embedding ``transform`` of those images; both
assign the 10,000 test images. Prints each seed's figures (a JSON line: seeds split
over processes can be pooled from them) and a Markdown table (mean ± sd over seeds of
majority-vote and Hungarian accuracy, NMI and ARI) for the model's own labels and for
the mixture's.

    python -m benchmarks.quality.embedding_recipe --n-clusters 10 --epochs 30 \\
        --seeds 0 1 2 3 4 5 --threads 1    # one process per core: split the seeds

The model is VaDE with its autoencoder + GMM start on grey images (``variant="vade",
pretrain_epochs=2, latent_dim=10, binarize=False, entropy_weight=0``), as the MNIST
recipe of ``mnist_recipe.py``; ``--params`` (JSON) overrides any of it.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from sklearn.mixture import GaussianMixture

from benchmarks._common import METRICS, mean_sd
from sk_gmvae import GMVAEClustering
from sk_gmvae.datasets import load_mnist
from sk_gmvae.metrics import clustering_report

VADE = dict(variant="vade", pretrain_epochs=2, latent_dim=10, binarize=False, entropy_weight=0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4, 5])
    parser.add_argument("--n-clusters", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--rows", type=int, default=50_000, help="training images")
    parser.add_argument("--params", default="{}", help="GMVAEClustering parameters, JSON")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    X, _ = load_mnist("train", return_X_y=True)
    X = X[: args.rows]
    X_test, y_test = load_mnist("test", return_X_y=True)
    k = args.n_clusters
    params = {**VADE, "max_epochs": args.epochs, **json.loads(args.params)}

    reports: dict[str, list[dict]] = {"own labels": [], "GaussianMixture on transform": []}
    for seed in args.seeds:
        start = time.perf_counter()
        model = GMVAEClustering(k, **{**params, "random_state": seed}).fit(X)
        seconds = time.perf_counter() - start
        mixture = GaussianMixture(k, covariance_type="full", random_state=seed)
        mixture.fit(model.transform(X))
        labels = {
            "own labels": model.predict(X_test),
            "GaussianMixture on transform": mixture.predict(model.transform(X_test)),
        }
        for name, predicted in labels.items():
            reports[name].append(clustering_report(y_test, predicted))
        figures = {name: {m: round(reports[name][-1][m], 4) for m in METRICS} for name in reports}
        print(json.dumps({"seed": seed, "fit_seconds": round(seconds, 1), **figures}), flush=True)

    print("\n| K | epochs | assignment | seeds | majority vote | Hungarian | NMI | ARI |")
    print("| --- | --- | --- | --- | " + " | ".join("---" for _ in METRICS) + " |")
    for name, rows in reports.items():
        cells = " | ".join(mean_sd([r[m] for r in rows]) for m in METRICS)
        print(f"| {k} | {args.epochs} | {name} | {len(rows)} | {cells} |")


if __name__ == "__main__":
    main()
