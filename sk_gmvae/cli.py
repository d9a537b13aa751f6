"""Command line: ``sk-gmvae mnist`` clusters MNIST and prints its metrics; ``sk-gmvae
reproduce`` runs the study (variants x seeds x epochs) and writes its figure and table
(its glue is :mod:`sk_gmvae.study.cli`). ``sk-gmvae --help`` lists both."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import GMVAEClustering, __version__
from ._model import VARIANTS
from ._training import resolve_device
from .datasets import DatasetUnavailableError
from .metrics import clustering_report
from .study import cli as study_cli
from .study.protocol import load_protocol


def _mnist(args: argparse.Namespace) -> int:
    X_train, _, X_test, y_test = load_protocol(args)

    est = GMVAEClustering(
        n_clusters=args.n_clusters,
        variant=args.variant,
        latent_dim=args.latent_dim,
        hidden_layer_sizes=tuple(args.hidden),
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        entropy_weight=args.entropy_weight,
        kl_warmup=args.kl_warmup,
        learning_rate_decay=args.learning_rate_decay,
        binarize=True,  # the study's dynamic binarization, whatever --n-train
        max_epochs=args.epochs,
        n_init=1,  # one training, as the study's runs, whatever --n-train
        posterior_samples=0,  # clusters from q(y|x), as the study's
        random_state=args.seed,
        device=args.device,
        precision=args.precision,
        compile=args.compile,
        cuda_graph=study_cli.auto_yes_no(args.cuda_graph),
        verbose=1,
    )
    print(
        f"Training {args.variant} (K={args.n_clusters}, latent {args.latent_dim}) on "
        f"{len(X_train)} MNIST images for {args.epochs} epochs, seed {args.seed} ...",
        flush=True,
    )
    start = time.perf_counter()
    est.fit(X_train)
    train_seconds = time.perf_counter() - start

    proba = est.predict_proba(X_test)
    results = {
        "variant": args.variant,
        "seed": args.seed,
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
        f"(ln K = {math.log(args.n_clusters):.3f})"
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
        for path in _write_plots(est, X_test, y_test, proba, args):
            print(f"wrote {path}")
    return 0


def _write_plots(
    est: GMVAEClustering,
    X: np.ndarray,
    y: np.ndarray,
    proba: np.ndarray,
    args: argparse.Namespace,
) -> list[Path]:
    """The test set's figures: prototypes and most typical images per cluster (rows
    labelled with size and majority class), the confusion matrix, the latent PCA view."""
    from .study.plots import (
        cluster_summary,
        plot_cluster_examples,
        plot_confusion,
        plot_latent,
        plot_prototypes,
    )

    out = Path(args.plots)
    out.mkdir(parents=True, exist_ok=True)
    labels = proba.argmax(axis=1)
    sizes, majority = cluster_summary(labels, y, est.n_clusters)
    title = f"{args.variant}, K={args.n_clusters}, {est.n_iter_} epochs, seed {args.seed}"
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


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Help with every option's default, and descriptions kept as written."""


def _number(convert: Callable[[str], Any], ok: Callable[[Any], bool], what: str) -> Any:
    """An argparse ``type``: ``convert(text)``, refused with "must be <what>" unless ``ok``
    (text that is no number gets argparse's "invalid int/float value")."""

    def parse(text: str) -> Any:
        value = convert(text)
        if not ok(value):
            raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
        return value

    parse.__name__ = convert.__name__
    return parse


_positive_int = _number(int, lambda v: v >= 1, "a positive integer")
_non_negative_int = _number(int, lambda v: v >= 0, "a non-negative integer")
_positive_float = _number(float, lambda v: v > 0, "a positive number")
_non_negative_float = _number(float, lambda v: v >= 0, "a non-negative number")
_decay = _number(float, lambda v: 0 < v <= 1, "in (0, 1]")


def _device(text: str) -> str:
    try:
        resolve_device(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


_DESCRIPTION = """\
Cluster images with mixture variational autoencoders (M2, modified M2, GMVAE).

commands:
  mnist      train one model on MNIST and print its test-set clustering metrics
  reproduce  the study: every variant x seed, with a figure and a results table

Run 'sk-gmvae COMMAND --help' for a command's options."""


def build_parser() -> argparse.ArgumentParser:
    """The ``sk-gmvae`` argument parser (both commands); every option has its default
    and, where it has them, its choices in ``--help``, and bad values are refused before
    any data are loaded."""
    parser = argparse.ArgumentParser(
        prog="sk-gmvae", description=_DESCRIPTION, formatter_class=_HelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    # Options both commands take.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--n-train", type=_positive_int, default=50_000, help="training images used"
    )
    common.add_argument("--n-clusters", type=_positive_int, default=10, help="clusters K")
    common.add_argument(
        "--latent-dim", type=_positive_int, default=64, help="dimension of the latent z"
    )
    common.add_argument(
        "--hidden",
        nargs="+",
        type=_positive_int,
        default=[512, 512],
        metavar="WIDTH",
        help="widths of the hidden layers of every network",
    )
    common.add_argument(
        "--device", type=_device, default="auto", help="auto, cpu, cuda, cuda:1, ..."
    )
    common.add_argument(
        "--precision",
        default="float32",
        choices=["float32", "tf32", "bfloat16"],
        help="arithmetic of training (see GMVAEClustering's precision)",
    )
    common.add_argument("--compile", action="store_true", help="torch.compile the training pass")
    common.add_argument(
        "--cuda-graph",
        choices=["auto", "yes", "no"],
        default="auto",
        help="replay the training step as one CUDA graph (auto: on CUDA, unless --compile)",
    )
    common.add_argument(
        "--data-home", default=None, help="data cache folder (None: scikit-learn's)"
    )

    mnist = commands.add_parser(
        "mnist",
        parents=[common],
        formatter_class=_HelpFormatter,
        help="cluster MNIST and print test-set metrics",
        description="Train one model on MNIST's first --n-train training images and "
        "print the clustering metrics on the 10k test images (binarized once).",
    )
    mnist.add_argument(
        "--variant", default="gmvae", choices=list(VARIANTS), help="the generative model"
    )
    mnist.add_argument(
        "--epochs", type=_positive_int, default=3, help="passes over the training images"
    )
    mnist.add_argument("--batch-size", type=_positive_int, default=100, help="rows per step")
    mnist.add_argument(
        "--learning-rate", type=_positive_float, default=1e-3, help="Adam's step size"
    )
    mnist.add_argument(
        "--entropy-weight",
        type=float,
        default=0.0,
        help="weight of H(q(y|x)) in the loss (0: the study's plain ELBO; the "
        "estimator's default on 10,000 rows and more is 0 too, half of eta below)",
    )
    mnist.add_argument(
        "--kl-warmup",
        type=_non_negative_float,
        default=0.0,
        help="epochs over which the z-term KL's weight rises from 0 to 1 (0: none, the study)",
    )
    mnist.add_argument(
        "--learning-rate-decay",
        type=_decay,
        default=1.0,
        help="final learning rate / initial (exponential decay; 1: constant, the study)",
    )
    mnist.add_argument(
        "--seed",
        type=_non_negative_int,
        default=0,
        help="seed of training and of the test binarization",
    )
    mnist.add_argument("--json", default=None, help="also write the results to this file")
    mnist.add_argument(
        "--plots",
        default=None,
        metavar="DIR",
        help="also write figures of the test set to DIR (needs matplotlib): prototypes, "
        "typical images, confusion matrix, latent PCA",
    )
    mnist.set_defaults(run=_mnist)

    rep = commands.add_parser(
        "reproduce",
        parents=[common],
        formatter_class=_HelpFormatter,
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
        choices=list(VARIANTS),
        metavar="VARIANT",
        help=f"the variants to train, among {', '.join(VARIANTS)}",
    )
    rep.add_argument(
        "--seeds", nargs="+", type=_non_negative_int, default=[0, 1], help="one run per seed"
    )
    rep.add_argument("--epochs", type=_positive_int, default=20, help="epochs per run")
    rep.add_argument("--out", default=None, help="output folder (None: runs/DATASET)")
    rep.add_argument(
        "--n-train-eval",
        type=_positive_int,
        default=10_000,
        help="training rows on which the clustering is monitored",
    )
    rep.add_argument(
        "--seed", type=_non_negative_int, default=0, help="seed of the test binarization"
    )
    rep.add_argument(
        "--stack-seeds",
        choices=["auto", "yes", "no"],
        default="auto",
        help="train a variant's seeds at once as one stacked model (auto: on CUDA)",
    )
    rep.add_argument("--no-progress", action="store_true", help="no progress bars")
    rep.set_defaults(run=study_cli.reproduce)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sk-gmvae`` command."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.command_line = "sk-gmvae " + " ".join(argv)
    try:
        return args.run(args)
    except DatasetUnavailableError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
