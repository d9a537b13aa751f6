"""Command line: ``sk-gmvae mnist`` clusters MNIST and prints its metrics; ``sk-gmvae
reproduce`` runs the study (variants x seeds x epochs) and writes its figure and table
(its glue is :mod:`sk_gmvae.study.cli`)."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence

from . import GMVAEClustering
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
        max_epochs=args.epochs,
        random_state=args.seed,
        device=args.device,
        precision=args.precision,
        compile=args.compile,
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
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sk-gmvae`` command."""
    parser = argparse.ArgumentParser(prog="sk-gmvae", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    # Options both commands take.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--n-train", type=int, default=50_000, help="training images used")
    common.add_argument("--n-clusters", type=int, default=10)
    common.add_argument("--latent-dim", type=int, default=64)
    common.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    common.add_argument("--precision", default="float32", choices=["float32", "tf32", "bfloat16"])
    common.add_argument("--compile", action="store_true", help="torch.compile the training pass")
    common.add_argument("--data-home", default=None, help="data cache folder")

    mnist = commands.add_parser(
        "mnist", parents=[common], help="cluster MNIST and print test-set metrics"
    )
    mnist.add_argument("--variant", default="gmvae", choices=["gmvae", "modified_m2", "m2"])
    mnist.add_argument("--epochs", type=int, default=3, help="passes over the training images")
    mnist.add_argument("--seed", type=int, default=0)
    mnist.add_argument("--json", default=None, help="also write the results to this file")
    mnist.set_defaults(run=_mnist)

    rep = commands.add_parser(
        "reproduce",
        parents=[common],
        help="the study: variants x seeds x epochs, figure and results table",
    )
    rep.add_argument("--dataset", default="mnist", choices=["mnist", "fashion-mnist"])
    rep.add_argument("--variants", nargs="+", default=["m2", "modified_m2", "gmvae"])
    rep.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    rep.add_argument("--epochs", type=int, default=20, help="epochs per run")
    rep.add_argument("--out", default=None, help="output folder (default runs/<dataset>)")
    rep.add_argument("--n-train-eval", type=int, default=10_000, help="train rows monitored")
    rep.add_argument("--hidden", nargs="+", type=int, default=[512, 512])
    rep.add_argument("--seed", type=int, default=0, help="seed of the test binarization")
    rep.add_argument("--no-progress", action="store_true")
    rep.set_defaults(run=study_cli.reproduce)

    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    args.command_line = "sk-gmvae " + " ".join(argv)
    try:
        return args.run(args)
    except DatasetUnavailableError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
