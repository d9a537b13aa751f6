"""The MNIST recipe, measured: several seeds of one configuration trained on MNIST's
training images with test-set metrics every epoch, and the summary the quality issue
asks for (mean +/- sd over seeds of majority-vote and Hungarian accuracy, NMI, ARI, at
the epochs asked, with K).

    # the candidate recipe, on a GPU (seeds stacked: one model for all six)
    python -m benchmarks.quality.mnist_recipe --device cuda --seeds 0 1 2 3 4 5 --epochs 300 \\
        --n-clusters 20 --learning-rate-decay 0.1 --out runs/recipe-k20
    # the K = 10 figure beside it (Hungarian accuracy is one-to-one at K = 10)
    python -m benchmarks.quality.mnist_recipe --device cuda --seeds 0 1 2 3 4 5 --epochs 300 \\
        --n-clusters 10 --learning-rate-decay 0.1 --out runs/recipe-k10
    # a short CPU trend
    python -m benchmarks.quality.mnist_recipe --rows 10000 --epochs 10 --seeds 0 1

It runs :func:`sk_gmvae.study.run_study` (so runs checkpoint every epoch, resume when
rerun, and stop cleanly on Ctrl-C) with the variant and settings given here; the
defaults are the study's (GMVAE, 512-512, latent 64, binarized, plain ELBO, batch 100,
Adam 1e-3, 50,000 training images). Seeds can be split over processes with the same
``--out`` (each seed has its own files); a last run with all seeds prints the table.

    # VaDE with its autoencoder + GMM start, on grey images (the CPU figures in
    # docs/results.md)
    python -m benchmarks.quality.mnist_recipe --variant vade --pretrain-epochs 2 --binarize no \\
        --latent-dim 10 --learning-rate-decay 1 --n-clusters 20 --epochs 30
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from benchmarks._common import mean_sd
from sk_gmvae.datasets import load_mnist
from sk_gmvae.study import run_study
from sk_gmvae.study.cli import auto_yes_no
from sk_gmvae.study.protocol import binarize_once

METRICS = {
    "test_accuracy": "majority vote",
    "test_hungarian_accuracy": "Hungarian",
    "test_nmi": "NMI",
    "test_ari": "ARI",
    "test_entropy": "H(Y|X)",
}


def summary(histories: dict, epochs: list[int], n_clusters: int) -> str:
    """Markdown: each metric's mean +/- sd over the seeds at each of ``epochs``."""
    lines = [
        "| K | epoch | seeds | " + " | ".join(METRICS.values()) + " |",
        "| --- | --- | --- | " + " | ".join("---" for _ in METRICS) + " |",
    ]
    for epoch in epochs:
        rows = [h[epoch - 1] for h in histories.values() if len(h) >= epoch]
        if not rows:
            continue
        cells = [mean_sd([r[key] for r in rows]) for key in METRICS]
        lines.append(f"| {n_clusters} | {epoch} | {len(rows)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def kmeans_row(X: np.ndarray, X_test: np.ndarray, y_test: np.ndarray, k: int) -> str:
    """KMeans(k) fitted on the training images, scored on the test images: a table row."""
    from sklearn.cluster import KMeans

    from sk_gmvae.metrics import clustering_report

    labels = KMeans(k, n_init=1, random_state=0).fit(X).predict(X_test)
    report = clustering_report(y_test, labels)
    cells = [f"{report[key]:.3f}" for key in ("accuracy", "hungarian_accuracy", "nmi", "ari")]
    return f"| {k} (KMeans) | - | 1 | " + " | ".join(cells) + " | - |"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4, 5])
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--rows", type=int, default=50_000, help="training images")
    parser.add_argument("--variant", default="gmvae")
    parser.add_argument("--n-clusters", type=int, default=20)
    parser.add_argument(
        "--binarize",
        choices=["yes", "no"],
        default="yes",
        help="dynamic binarization in training (yes: the test set binarized once, as in "
        "the study; no: grey test images)",
    )
    parser.add_argument("--pretrain-epochs", type=int, default=0, help="VaDE's start")
    parser.add_argument("--latent-dim", type=int, default=64)
    parser.add_argument("--hidden", type=int, nargs="+", default=[512, 512])
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--learning-rate-decay", type=float, default=0.1)
    parser.add_argument("--entropy-weight", type=float, default=0.0)
    parser.add_argument("--kl-warmup", type=float, default=0.0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="float32")
    parser.add_argument("--stack-seeds", choices=["auto", "yes", "no"], default="auto")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--out", default=None, help="run folder (default: under runs/)")
    parser.add_argument("--report", type=int, nargs="+", default=None, help="epochs to show")
    parser.add_argument(
        "--kmeans",
        action="store_true",
        help="also KMeans with the same K on the same images (majority vote rises with K "
        "for any method: this is the baseline at that K)",
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    X, _ = load_mnist("train", return_X_y=True)
    X_test, y_test = load_mnist("test", return_X_y=True)
    binarize = args.binarize == "yes"
    if binarize:
        X_test = binarize_once(X_test, 0)  # as the study evaluates
    out = Path(args.out or f"runs/recipe-{args.variant}-k{args.n_clusters}-e{args.epochs}")
    histories = run_study(
        X[: args.rows],
        X_test,
        y_test,
        out,
        variants=[args.variant],
        seeds=args.seeds,
        epochs=args.epochs,
        prototypes=False,
        stack_seeds=auto_yes_no(args.stack_seeds),
        n_clusters=args.n_clusters,
        latent_dim=args.latent_dim,
        hidden_layer_sizes=tuple(args.hidden),
        learning_rate=args.learning_rate,
        learning_rate_decay=args.learning_rate_decay,
        entropy_weight=args.entropy_weight,
        kl_warmup=args.kl_warmup,
        binarize=binarize,
        pretrain_epochs=args.pretrain_epochs,
        device=args.device,
        net_params={"precision": args.precision},
    )
    marks = {e for e in (1, 10, 50, 100, 200, 300, 500) if e <= args.epochs}
    report = args.report or sorted(marks | {args.epochs})
    table = summary(histories, report, args.n_clusters)
    if args.kmeans:
        table += "\n" + kmeans_row(X[: args.rows], X_test, y_test, args.n_clusters)
    print(table)
    (out / "recipe.md").write_text(f"{vars(args)}\n\n{table}\n")
    (out / "recipe.json").write_text(json.dumps({"args": vars(args), "table": table}))


if __name__ == "__main__":
    main()
