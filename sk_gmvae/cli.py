"""Command line: ``sk-gmvae mnist`` clusters MNIST and prints its metrics."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence

import numpy as np

from . import GMVAEClustering
from .datasets import DatasetUnavailableError, load_mnist
from .metrics import clustering_report


def _mnist(args: argparse.Namespace) -> int:
    try:
        X_train, _ = load_mnist("train", return_X_y=True, data_home=args.data_home)
        X_test, y_test = load_mnist("test", return_X_y=True, data_home=args.data_home)
    except DatasetUnavailableError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    # The study's protocol: train on the first 50k training images (an epoch is then
    # 500 steps of 100), evaluate on the 10k test images, binarized once.
    X_train = X_train[: args.n_train]
    rng = np.random.default_rng(args.seed)
    X_test = (rng.random(X_test.shape, dtype=np.float32) < X_test).astype(np.float32)

    est = GMVAEClustering(
        n_clusters=args.n_clusters,
        variant=args.variant,
        latent_dim=args.latent_dim,
        max_epochs=args.epochs,
        random_state=args.seed,
        device=args.device,
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

    mnist = commands.add_parser("mnist", help="cluster MNIST and print test-set metrics")
    mnist.add_argument("--variant", default="gmvae", choices=["gmvae", "modified_m2", "m2"])
    mnist.add_argument("--epochs", type=int, default=3, help="passes over the training images")
    mnist.add_argument("--seed", type=int, default=0)
    mnist.add_argument("--n-clusters", type=int, default=10)
    mnist.add_argument("--latent-dim", type=int, default=64)
    mnist.add_argument("--n-train", type=int, default=50_000, help="training images used")
    mnist.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    mnist.add_argument("--data-home", default=None, help="data cache folder")
    mnist.add_argument("--json", default=None, help="also write the results to this file")
    mnist.set_defaults(run=_mnist)

    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
