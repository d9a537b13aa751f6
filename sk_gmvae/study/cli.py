"""The study's commands: ``sk-gmvae mnist`` clusters MNIST and prints its test-set
metrics; ``sk-gmvae reproduce`` runs the study (variants x seeds x epochs) and writes its
figure and table. Their estimator options come from :mod:`sk_gmvae._cli.options`, with
the study's settings as defaults."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from .._cli.options import (
    HelpFormatter,
    UsageError,
    add_estimator_options,
    auto_yes_no,
    check_file,
    check_folder,
    estimator_params,
    non_negative_int,
    positive_int,
)
from .._estimator import GMVAEClustering
from .._model import ALL_VARIANTS
from ..metrics import clustering_report
from .protocol import binarize_once, load_protocol
from .runner import STUDY_SETTINGS, dilokthanakul_settings

__all__ = ["add_commands", "auto_yes_no", "mnist", "reproduce"]


def add_commands(commands: Any) -> None:
    """Add ``mnist`` and ``reproduce`` to the ``sk-gmvae`` subcommands."""
    # Options both commands take.
    common = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    common.add_argument("--n-train", type=positive_int, default=50_000, help="training images used")
    common.add_argument(
        "--data-home", default=None, help="data cache folder (None: scikit-learn's)"
    )

    mnist_parser = commands.add_parser(
        "mnist",
        parents=[common],
        formatter_class=HelpFormatter,
        allow_abbrev=False,
        help="cluster MNIST and print test-set metrics",
        description="Train one model on MNIST's first --n-train training images and "
        "print the clustering metrics on the 10k test images (binarized once, with "
        "--seed). The defaults are the study's settings.",
    )
    mnist_parser.add_argument("--json", default=None, help="also write the results to this file")
    mnist_parser.add_argument(
        "--plots",
        default=None,
        metavar="DIR",
        help="also write figures of the test set to DIR (needs matplotlib): prototypes, "
        "typical images, confusion matrix, latent PCA",
    )
    add_estimator_options(mnist_parser, {**STUDY_SETTINGS, "max_epochs": 3, "random_state": 0})
    mnist_parser.set_defaults(run=mnist)

    rep = commands.add_parser(
        "reproduce",
        parents=[common],
        formatter_class=HelpFormatter,
        allow_abbrev=False,
        help="the study: variants x seeds x epochs, figure and results table",
        description="Train every variant with every seed, monitoring the clustering "
        "every epoch, then write the study's figure, prototype grids and results table.",
    )
    rep.add_argument(
        "--dataset",
        default="mnist",
        choices=["mnist", "fashion-mnist"],
        help="the images to cluster",
    )
    rep.add_argument(
        "--variants",
        nargs="+",
        default=["m2", "modified_m2", "gmvae"],
        choices=list(ALL_VARIANTS),
        metavar="VARIANT",
        help=f"the variants to train, among {', '.join(ALL_VARIANTS)}; dilokthanakul "
        "(the two-layer GMVAE the study argues against) trains with its authors' MNIST "
        "settings (widths 500-500, z 200, w 150, batches of 50, Adam 1e-4, eta = alpha = "
        "1), which win over the estimator options below",
    )
    rep.add_argument(
        "--mc-samples",
        type=positive_int,
        default=1,
        metavar="M",
        help="dilokthanakul's draws of (z, w) per row and step (the authors' M: 1 or 10)",
    )
    rep.add_argument(
        "--seeds", nargs="+", type=non_negative_int, default=[0, 1], help="one run per seed"
    )
    rep.add_argument("--epochs", type=positive_int, default=20, help="epochs per run")
    rep.add_argument("--out", default=None, help="output folder (None: runs/DATASET)")
    rep.add_argument(
        "--n-train-eval",
        type=positive_int,
        default=10_000,
        help="training rows on which the clustering is monitored",
    )
    rep.add_argument(
        "--seed", type=non_negative_int, default=0, help="seed of the test binarization"
    )
    rep.add_argument(
        "--stack-seeds",
        choices=["auto", "yes", "no"],
        default="auto",
        help="train a variant's seeds at once as one stacked model (auto: on CUDA)",
    )
    rep.add_argument("--no-progress", action="store_true", help="no progress bars")
    # One training per seed, of --epochs: the seeds, variants and epochs are the study's.
    skip = ("variant", "max_epochs", "random_state", "n_init", "trial_epochs")
    add_estimator_options(rep, STUDY_SETTINGS, skip=skip)
    rep.set_defaults(run=reproduce)


def _check_plotting(command: str) -> None:
    """Raise :class:`UsageError` unless matplotlib can be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UsageError(
            f"{command} draws its figures with matplotlib, which is not installed: "
            "pip install 'sk_gmvae[plot]' (or matplotlib)"
        ) from None


def mnist(args: argparse.Namespace) -> int:
    """Train on MNIST and print (and with ``--json`` write) the test-set metrics; status 0.
    The output paths are checked before the data are loaded."""
    if args.json:
        check_file(args.json)
    if args.plots:
        _check_plotting("sk-gmvae mnist --plots")
        check_folder(args.plots)
    X_train, _, X_test, y_test = load_protocol(
        n_train=args.n_train, seed=args.random_state, data_home=args.data_home
    )
    est = GMVAEClustering(**{**STUDY_SETTINGS, **estimator_params(args)}, verbose=1)
    print(
        f"Training {est.variant} (K={est.n_clusters}, latent {est.latent_dim}) on "
        f"{len(X_train)} MNIST images for {est.max_epochs} epochs, seed {est.random_state} ...",
        flush=True,
    )
    start = time.perf_counter()
    est.fit(X_train)
    train_seconds = time.perf_counter() - start

    proba = est.predict_proba(X_test)
    results = {
        "variant": est.variant,
        "seed": est.random_state,
        "epochs": est.n_iter_,
        "n_train": len(X_train),
        "device": est.device_,
        "precision": args.precision,
        "train_seconds": round(train_seconds, 1),
        **clustering_report(y_test, proba.argmax(axis=1), proba),
        "test_elbo": est.score(X_test),
    }
    print(f"\nTest set (10k, binarized), after {est.n_iter_} epochs on {est.device_}:")
    print(f"  cluster accuracy (majority vote) {results['accuracy']:.3f}")
    print(f"  Hungarian accuracy               {results['hungarian_accuracy']:.3f}")
    print(f"  NMI / ARI                        {results['nmi']:.3f} / {results['ari']:.3f}")
    print(
        f"  H(Y|X)                           {results['conditional_entropy']:.3f} nats "
        f"(ln K = {math.log(est.n_clusters):.3f})"
    )
    print(
        f"  ELBO                             {results['test_elbo']:.2f} nats "
        f"(loss {-results['test_elbo']:.2f})"
    )
    print(f"  training time                    {train_seconds:.0f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    if args.plots:
        for path in _write_plots(est, X_test, y_test, proba, Path(args.plots)):
            print(f"wrote {path}")
    return 0


def _write_plots(
    est: GMVAEClustering, X: np.ndarray, y: np.ndarray, proba: np.ndarray, out: Path
) -> list[Path]:
    """The test set's figures: prototypes and most typical images per cluster (rows
    labelled with size and majority class), the confusion matrix, the latent PCA view."""
    from .plots import (
        cluster_summary,
        plot_cluster_examples,
        plot_confusion,
        plot_latent,
        plot_prototypes,
    )

    labels = proba.argmax(axis=1)
    sizes, majority = cluster_summary(labels, y, est.n_clusters)
    title = f"{est.variant}, K={est.n_clusters}, {est.n_iter_} epochs, seed {est.random_state}"
    return [
        plot_prototypes(
            est.cluster_prototypes(8),
            out / "prototypes.png",
            sizes=sizes,
            majority=majority,
            title=f"decoded prototypes; {title}",
        ),
        plot_cluster_examples(X, proba, out / "examples.png", title=f"test images; {title}"),
        plot_confusion(y, labels, out / "confusion.png", est.n_clusters, title=title),
        plot_latent(est.transform(X), labels, out / "latent.png", title=f"latent PCA; {title}"),
    ]


def reproduce(args: argparse.Namespace) -> int:
    """Run the study; exit status 0 when every run finished, 128 + the signal's number
    when stopped by Ctrl-C or SIGTERM (every checkpoint complete: rerun to resume).
    matplotlib and the output folder are checked before any data are loaded."""
    from .plots import cluster_summary, plot_prototypes, plot_study
    from .runner import StudyInterrupted, results_table, run_study

    out = Path(args.out or f"runs/{args.dataset}")
    _check_plotting("sk-gmvae reproduce")
    check_folder(out)
    X_train, _, X_test, y_test = load_protocol(
        args.dataset, args.n_train, args.seed, args.data_home
    )  # the data, before any training
    rows = np.random.default_rng(args.seed).permutation(len(X_train))[: args.n_train_eval]
    print(
        f"{len(args.variants)} variants x {len(args.seeds)} seeds x {args.epochs} epochs of "
        f"{len(X_train)} {args.dataset} images -> {out}",
        flush=True,
    )
    try:
        histories = run_study(
            X_train,
            X_test,
            y_test,
            out,
            variants=args.variants,
            seeds=args.seeds,
            epochs=args.epochs,
            X_train_eval=binarize_once(X_train[rows], args.seed + 1),
            progress=not args.no_progress,
            stack_seeds=auto_yes_no(args.stack_seeds),
            variant_settings={"dilokthanakul": dilokthanakul_settings(args.mc_samples)},
            **estimator_params(args),
        )
    except StudyInterrupted as stopped:
        print(f"\nsk-gmvae reproduce: {stopped}", file=sys.stderr)
        return 128 + stopped.signum
    figure = plot_study(
        histories,
        out / "figure",
        n_clusters=args.n_clusters,
        n_train=len(X_train),
        title=args.command_line,
    )
    for npy in sorted(out.glob("prototypes-*.npy")):
        prototypes, labels = np.load(npy), out / npy.name.replace("prototypes-", "test-labels-")
        summary, title = {}, npy.stem
        if labels.exists():  # each cluster's size and majority class on the test set
            sizes, majority = cluster_summary(np.load(labels), y_test, len(prototypes))
            summary = {"sizes": sizes, "majority": majority}
            title += ": size and majority class of each cluster on the test set"
        plot_prototypes(prototypes, npy.with_suffix(".png"), title=title, **summary)
    table = results_table(histories)
    (out / "results.md").write_text(
        f"# {args.dataset}: {', '.join(args.variants)}\n\nMade by `{args.command_line}`.\n\n"
        f"![figure](figure.png)\n\n{table}\n"
    )
    print(table)
    print(f"wrote {figure[0]}, {figure[1]}, {out / 'results.md'}")
    return 0
