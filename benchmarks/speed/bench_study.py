"""The study's seeds stacked against one after another, in one run: ``run_study`` seconds
per epoch of all seeds (monitoring every epoch, as ``sk-gmvae reproduce`` does), and the
whole study's time extrapolated from them.

    python -m benchmarks.speed.bench_study                     # CPU: 5,000 rows, 2 epochs
    python -m benchmarks.speed.bench_study --device cuda --rows 50000 --seeds 0 1 2 3 4 5

The timed part is one variant (``--variant``) for ``--epochs`` epochs, after one epoch of
warm-up per mode (left out); the extrapolation multiplies the per-epoch time by 3
variants and ``--study-epochs`` epochs per seed and scales it to 50,000 rows.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch

from sk_gmvae.study import run_study


def _data(rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """MNIST's first rows when it is at hand, else random pixels of its shape."""
    try:
        from sk_gmvae.datasets import load_mnist

        X, y = load_mnist("train", return_X_y=True)
        X_test, y_test = load_mnist("test", return_X_y=True)
        return X[:rows], X_test, y_test, X[:10_000]
    except Exception:  # noqa: BLE001 - no MNIST here: data of its shape do for timing
        rng = np.random.default_rng(0)
        X = rng.random((rows, 784), dtype=np.float32)
        return X, X[:10_000], rng.integers(0, 10, len(X[:10_000])), X[:10_000]


def _seconds_per_epoch(data: tuple, args: argparse.Namespace, stack: bool) -> float:
    X, X_test, y_test, X_eval = data
    with tempfile.TemporaryDirectory() as out:
        kwargs = dict(
            variants=[args.variant],
            seeds=args.seeds,
            X_train_eval=X_eval,
            progress=False,
            prototypes=False,
            stack_seeds=stack,
            device=args.device,
            net_params={"precision": args.precision},
        )
        run_study(X, X_test, y_test, out, epochs=1, **kwargs)  # warm-up, capture
        start = time.perf_counter()
        run_study(X, X_test, y_test, out, epochs=1 + args.epochs, **kwargs)
        return (time.perf_counter() - start) / args.epochs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rows", type=int, default=5_000)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs")
    parser.add_argument("--variant", default="gmvae")
    parser.add_argument("--precision", default="float32")
    parser.add_argument("--study-epochs", type=int, default=200)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    data = _data(args.rows)
    alone = _seconds_per_epoch(data, args, stack=False)
    stacked = _seconds_per_epoch(data, args, stack=True)
    n = len(args.seeds)
    scale = 50_000 / args.rows * 3 * args.study_epochs / 60
    print(f"{n} seeds of {args.variant}, {args.rows} rows, {args.device}, {args.precision}")
    print(f"one after another: {alone:.2f} s per epoch of all seeds")
    print(f"stacked:           {stacked:.2f} s per epoch of all seeds (x{alone / stacked:.2f})")
    print(
        f"the study (3 variants x {n} seeds x {args.study_epochs} epochs of 50,000 rows), "
        f"extrapolated: {alone * scale:.0f} min one after another, {stacked * scale:.0f} min "
        "stacked"
    )


if __name__ == "__main__":
    main()
