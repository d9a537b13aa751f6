"""Train the modified M2 long and watch the divergence guard.

    python -m benchmarks.quality.divergence_modified_m2 --epochs 300   # the study's regime
    python -m benchmarks.quality.divergence_modified_m2 --epochs 20 \\
        --learning-rate 0.05                                          # forced

The study's modified M2 went NaN in 3 of 3 runs at epochs 227-255 (an epoch = 500 steps
of 100 MNIST images). Here every epoch prints the training loss, H(Y|X), the guard's
recoveries so far and whether the parameters are finite; at the end the test accuracy
and whether any prediction is NaN. Run it with and without ``--min-variance`` and
``--max-grad-norm`` to compare the safeguards.
"""

import argparse
import time

import numpy as np
import torch
from skorch.callbacks import Callback

from sk_gmvae import GMVAEClustering
from sk_gmvae.datasets import load_mnist
from sk_gmvae.metrics import cluster_accuracy


class Report(Callback):
    def on_epoch_end(self, net, **kwargs):
        row = net.history[-1]
        guard = dict(net.callbacks_)["divergence_guard"]
        finite = all(torch.isfinite(p).all() for p in net.module_.parameters())
        print(
            f"epoch {row['epoch']:4d}  loss {row.get('train_loss', float('nan')):9.3f}  "
            f"H(Y|X) {row.get('train_entropy', float('nan')):.3f}  "
            f"recoveries {guard.recoveries_}  finite {finite}  {row['dur']:.1f}s",
            flush=True,
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--n-train", type=int, default=50_000)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--min-variance", type=float, default=0.0)
    parser.add_argument("--max-grad-norm", type=float, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)

    X, _ = load_mnist("train", return_X_y=True)
    X_test, y_test = load_mnist("test", return_X_y=True)
    est = GMVAEClustering(
        variant="modified_m2",
        max_epochs=args.epochs,
        learning_rate=args.learning_rate,
        min_variance=args.min_variance,
        max_grad_norm=args.max_grad_norm,
        random_state=args.seed,
        device=args.device,
        callbacks=[Report()],
    )
    start = time.perf_counter()
    est.fit(X[: args.n_train])
    proba = est.predict_proba(X_test)
    guard = dict(est.net_.callbacks_)["divergence_guard"]
    print(
        f"\n{est.n_iter_} epochs in {time.perf_counter() - start:.0f} s; guard recoveries "
        f"{guard.recoveries_}, stopped {guard.stopped_}; NaN in predictions: "
        f"{bool(np.isnan(proba).any())}; test accuracy "
        f"{cluster_accuracy(y_test, proba.argmax(1)):.3f}"
    )


if __name__ == "__main__":
    main()
