"""``n_init`` restarts trained at once (stacked) against one after another, end to end.

    python -m benchmarks.speed.bench_restarts                       # CPU, study-sized nets
    python -m benchmarks.speed.bench_restarts --device cuda
    python -m benchmarks.speed.bench_restarts --hidden 64 64 --latent 8   # a small model

Fits ``GMVAEClustering(n_init=R)`` on MNIST rows (the first ``--rows`` training images;
uniform noise in [0, 1] if MNIST cannot be loaded) with ``stack_restarts=True`` and
``False``, alternately, ``--repeats`` times each, and prints the best wall time of each,
their ratio (sequential / stacked: > 1 means stacking is faster), and whether both kept
the same restart with the same final ELBO (they should: stacked restarts equal
independent fits up to rounding).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from sk_gmvae import GMVAEClustering
from sk_gmvae.datasets import DatasetUnavailableError, load_mnist


def _data(rows: int) -> tuple[np.ndarray, str]:
    try:
        X, _ = load_mnist("train", return_X_y=True)
        return X[:rows], "MNIST"
    except DatasetUnavailableError:
        return np.random.default_rng(0).random((rows, 784), dtype=np.float32), "uniform noise"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--variant", default="gmvae")
    parser.add_argument("--restarts", type=int, default=6)
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--hidden", type=int, nargs="+", default=[512, 512])
    parser.add_argument("--latent", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    X, source = _data(args.rows)
    params = dict(
        n_clusters=10,
        variant=args.variant,
        latent_dim=args.latent,
        hidden_layer_sizes=tuple(args.hidden),
        n_init=args.restarts,
        trial_epochs=None,  # every restart trains all epochs, stacked or not
        max_epochs=args.epochs,
        device=args.device,
        random_state=0,
    )
    times: dict[bool, list[float]] = {True: [], False: []}
    fitted: dict[bool, GMVAEClustering] = {}
    for _ in range(args.repeats):
        for stack in (True, False):
            start = time.perf_counter()
            fitted[stack] = GMVAEClustering(stack_restarts=stack, **params).fit(X)
            times[stack].append(time.perf_counter() - start)
    stacked, sequential = min(times[True]), min(times[False])
    same = fitted[True].net_.random_state == fitted[False].net_.random_state
    print(
        f"{args.variant}, {args.restarts} restarts x {args.epochs} epoch(s) of {len(X)} "
        f"{source} rows, widths {tuple(args.hidden)}, latent {args.latent}, "
        f"{fitted[True].device_}: stacked {stacked:.1f} s, sequential {sequential:.1f} s, "
        f"x{sequential / stacked:.2f}; same restart kept: {same}, final ELBO "
        f"{fitted[True].lower_bound_:.4f} vs {fitted[False].lower_bound_:.4f}"
    )


if __name__ == "__main__":
    main()
