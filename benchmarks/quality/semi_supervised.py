"""Semi-supervised MNIST (or digits): GMVAEClassifier against scikit-learn's semi-supervised
baselines, on the same training rows and the same labels.

    python -m benchmarks.quality.semi_supervised --rows 5000 --test-rows 2000 \\
        --labels 100 1000 --seeds 0 1 2 --epochs 8

For every number of labels and seed, a balanced labelled set is drawn from the first
``--rows`` MNIST training rows (labels / 10 of each digit, ``RandomState(seed)``); the
other training rows are unlabelled (-1). Every method gets those rows and labels, and
is scored by its accuracy on the first ``--test-rows`` rows of the MNIST test set:

- ``GMVAEClassifier`` for each ``--variants`` and each ``--alpha`` (one restart,
  ``--epochs`` epochs, the networks of ``--hidden`` and ``--latent-dim``,
  ``--learning-rate`` (1e-3, the study's), ``--params`` (JSON), the other
  parameters the defaults);
- ``LabelSpreading(kernel="knn")`` on all the training rows;
- ``SelfTrainingClassifier(LogisticRegression(max_iter=--lr-iter))`` on all the
  training rows;
- ``LogisticRegression(max_iter=--lr-iter)`` on the labelled rows alone;
- cluster, then name: ``GMVAEClustering`` (10 clusters, gmvae, the same networks,
  epochs and learning rate, rows assigned by q(y|x); fitted once per seed, on the
  training rows without labels), each cluster named by its labelled rows (the class c
  maximizing sum_i q(k|x_i) [y_i = c]).

``--data digits`` takes sklearn's digits instead (scaled to [0, 1], a fixed shuffle,
the last ``--test-rows`` rows the test set, labels / 10 of each digit labelled).

One torch thread, one BLAS thread. Prints each score as it comes (and how many clusters
the clustering used), then one Markdown table (mean ± sd over the seeds, and the mean
seconds of a fit); ``--methods`` runs only some. The figures are in docs/results.md,
"Semi-supervised MNIST".
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from collections.abc import Callable

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.semi_supervised import LabelSpreading, SelfTrainingClassifier
from threadpoolctl import threadpool_limits

from benchmarks._common import mean_sd
from sk_gmvae import GMVAEClassifier, GMVAEClustering


def draw_labels(y: np.ndarray, n_labels: int, seed: int) -> np.ndarray:
    """y with all but a balanced draw of ``n_labels`` rows (n_labels / 10 per class,
    ``RandomState(seed)``) set to -1."""
    rng = np.random.RandomState(seed)
    classes = np.unique(y)
    partial = np.full(len(y), -1)
    for c in classes:
        rows = rng.choice(np.flatnonzero(y == c), n_labels // len(classes), replace=False)
        partial[rows] = c
    return partial


def name_clusters(proba: np.ndarray, y_partial: np.ndarray, n_classes: int) -> np.ndarray:
    """The class of each cluster: argmax_c sum over labelled rows i of q(k|x_i) [y_i = c]."""
    labelled = y_partial >= 0
    onehot = np.eye(n_classes)[y_partial[labelled]]  # (n_labelled, C)
    return (proba[labelled].T @ onehot).argmax(axis=1)  # (K,)


def _net(args: argparse.Namespace, seed: int) -> dict:
    """The network and training settings every mixture VAE of the run shares."""
    return dict(
        hidden_layer_sizes=tuple(args.hidden),
        latent_dim=args.latent_dim,
        max_epochs=args.epochs,
        learning_rate=args.learning_rate,
        n_init=1,
        random_state=seed,
    )


def methods(args: argparse.Namespace, seed: int) -> dict[str, Callable]:
    """name -> a function of (X, y_partial) returning a fitted object with ``predict``."""
    net = _net(args, seed)
    found: dict[str, Callable] = {}
    for variant in args.variants:
        for alpha in args.alpha:
            label = f"GMVAEClassifier ({variant})"
            if len(args.alpha) > 1:
                label = f"GMVAEClassifier ({variant}, alpha={alpha})"
            value = "auto" if alpha == "auto" else float(alpha)
            found[label] = lambda X, y, v=variant, a=value: GMVAEClassifier(
                variant=v, alpha=a, **net, **args.params
            ).fit(X, y)
    found["LabelSpreading (knn)"] = lambda X, y: LabelSpreading(kernel="knn").fit(X, y)
    found["SelfTraining (LogisticRegression)"] = lambda X, y: SelfTrainingClassifier(
        LogisticRegression(max_iter=args.lr_iter)
    ).fit(X, y)
    found["LogisticRegression (labelled rows)"] = lambda X, y: LogisticRegression(
        max_iter=args.lr_iter
    ).fit(X[y >= 0], y[y >= 0])
    return found


class ClusterThenName:
    """``GMVAEClustering`` fitted once on the unlabelled training rows; ``name`` gives
    it a class per cluster from one labelled set."""

    def __init__(self, X: np.ndarray, args: argparse.Namespace, seed: int) -> None:
        self.est = GMVAEClustering(n_clusters=10, variant="gmvae", **_net(args, seed)).fit(X)
        self.proba = self.est.predict_proba(X)

    def predict(self, X: np.ndarray, names: np.ndarray) -> np.ndarray:
        return names[self.est.predict(X)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000, help="MNIST training rows")
    parser.add_argument("--test-rows", type=int, default=2_000, help="MNIST test rows")
    parser.add_argument("--labels", nargs="+", type=int, default=[100, 1000])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--variants", nargs="+", default=["m2", "gmvae"])
    parser.add_argument("--hidden", nargs="+", type=int, default=[256, 256])
    parser.add_argument("--latent-dim", type=int, default=16)
    parser.add_argument(
        "--alpha", nargs="+", default=["auto"], help="GMVAEClassifier's alpha (one fit each)"
    )
    parser.add_argument("--data", choices=["mnist", "digits"], default="mnist")
    parser.add_argument(
        "--params", type=json.loads, default={}, help="more GMVAEClassifier parameters, JSON"
    )
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--lr-iter", type=int, default=200, help="LogisticRegression max_iter")
    parser.add_argument(
        "--methods", nargs="+", help="run only the methods whose names contain one of these"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    with threadpool_limits(1):
        run(args)


def load(args: argparse.Namespace) -> tuple[np.ndarray, ...]:
    """Training rows, their labels, test rows, their labels: MNIST's first ``--rows``
    training and first ``--test-rows`` test images, or sklearn's digits (scaled to
    [0, 1]) in a fixed shuffle, the last ``--test-rows`` rows the test set."""
    if args.data == "digits":
        from sklearn.datasets import load_digits

        X, y = load_digits(return_X_y=True)
        order = np.random.RandomState(0).permutation(len(X))
        X, y = (X / 16.0)[order], y[order]
        cut = len(X) - args.test_rows
        rows = min(cut, args.rows)
        return X[:rows], y[:rows], X[cut:], y[cut:]
    from sk_gmvae.datasets import load_mnist

    X, y = load_mnist("train", return_X_y=True)
    X_test, y_test = load_mnist("test", return_X_y=True)
    return X[: args.rows], y[: args.rows], X_test[: args.test_rows], y_test[: args.test_rows]


def run(args: argparse.Namespace) -> None:
    """Fit and score every method for every seed and number of labels; print the table."""
    X, y, X_test, y_test = load(args)
    scores: dict[tuple[int, str], list[float]] = {}
    seconds: dict[tuple[int, str], list[float]] = {}
    name = "GMVAEClustering, then name clusters"

    def chosen(method: str) -> bool:
        return not args.methods or any(part in method for part in args.methods)

    for seed in args.seeds:
        clustering = None
        if chosen(name):
            start = time.perf_counter()
            clustering = ClusterThenName(X, args, seed)
            fit_seconds = time.perf_counter() - start
            used = len(np.unique(clustering.est.labels_))
            print(f"seed {seed}, {name}: {used} clusters used of 10", flush=True)
        for n_labels in args.labels:
            y_partial = draw_labels(y, n_labels, seed)
            for method, fit in methods(args, seed).items():
                if not chosen(method):
                    continue
                start = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    model = fit(X, y_partial)
                seconds.setdefault((n_labels, method), []).append(time.perf_counter() - start)
                accuracy = float(np.mean(model.predict(X_test) == y_test))
                scores.setdefault((n_labels, method), []).append(accuracy)
                print(f"seed {seed}, {n_labels} labels, {method}: {accuracy:.4f}", flush=True)
            if clustering is not None:
                names = name_clusters(clustering.proba, y_partial, 10)
                accuracy = float(np.mean(clustering.predict(X_test, names) == y_test))
                scores.setdefault((n_labels, name), []).append(accuracy)
                seconds.setdefault((n_labels, name), []).append(fit_seconds)
                print(f"seed {seed}, {n_labels} labels, {name}: {accuracy:.4f}", flush=True)
    print(
        f"\n{args.data}: {len(X)} training rows, {len(X_test)} test rows, "
        f"seeds {args.seeds}, {args.epochs} epochs, hidden {tuple(args.hidden)}, "
        f"latent_dim {args.latent_dim}, alpha {args.alpha}, params {args.params}"
    )
    print("| labels | method | test accuracy | seconds per fit |\n| --- | --- | --- | --- |")
    for (n_labels, method), values in scores.items():
        spent = np.mean(seconds[(n_labels, method)])
        print(f"| {n_labels} | {method} | {mean_sd(values)} | {spent:.0f} |")


if __name__ == "__main__":
    main()
