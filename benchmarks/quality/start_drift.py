"""Where a started mixture loses its start: the Hungarian accuracy of the model's own
q(y|x) on the training rows right after the start (step 0) and after chosen optimizer
steps of the mixture's training, beside the first assignment's.

    python -m benchmarks.quality.start_drift --data mnist --rows 10000 --seed 0 \\
        --params '{"variant": "gmvae", "init": "umap"}' --steps 30 100 300 1000 3600

One ``GMVAEClustering(n_init=1)`` fit with ``--params``; a callback evaluates q(y|x)
(``posterior``, eval mode, float32) when training begins, after the start, and after
each step in ``--steps``. ``--assignment-fraction`` sets the start's steps of the ELBO
with y observed at the first assignment, as a fraction of the pre-training's (default:
the package's ``ASSIGNMENT_FRACTION``; 0: none), ``--assignment-steps`` their number
for a start without a pre-training (``ASSIGNMENT_STEPS``; the "umap" start below
10,000 rows).
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from typing import Any

import torch
from skorch.callbacks import Callback, LRScheduler
from torch.optim.lr_scheduler import LinearLR

from benchmarks._common import load_datasets, qy_labels
from sk_gmvae import GMVAEClustering, _start
from sk_gmvae.metrics import hungarian_accuracy


class StepProbe(Callback):
    """q(y|x)'s Hungarian accuracy on (X, y) when training begins and after the given
    training steps, in ``scores_`` as (step, accuracy)."""

    def __init__(self, X: Any, y: Any, steps: list[int]) -> None:
        self.X, self.y, self.steps = X, y, steps

    def _score(self, net: Any, step: int) -> None:
        labels = qy_labels(net.module_, self.X)
        self.scores_.append((step, round(hungarian_accuracy(self.y, labels), 4)))
        print(f"step {step}: {self.scores_[-1][1]}", flush=True)

    def on_train_begin(self, net: Any, **kwargs: Any) -> None:
        self.done_, self.scores_ = 0, []
        start = dict(net.callbacks_).get("start")
        if start is not None and getattr(start, "used_", False):
            accuracy = hungarian_accuracy(self.y, start.assignment_)
            print(f"first assignment: {accuracy:.4f}", flush=True)
        self._score(net, 0)

    def on_batch_end(self, net: Any, training: bool = False, **kwargs: Any) -> None:
        if training:
            self.done_ += 1
            if self.done_ in self.steps:
                self._score(net, self.done_)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="mnist", help="digits, mnist or fashion-mnist")
    parser.add_argument("--rows", type=int, default=10_000, help="first rows of MNIST sets")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-clusters", type=int, default=10)
    parser.add_argument("--params", default='{"init": "umap"}', help="GMVAEClustering, JSON")
    parser.add_argument("--steps", nargs="+", type=int, default=[30, 100, 300, 1000, 3600])
    parser.add_argument("--assignment-fraction", type=float, default=None)
    parser.add_argument("--assignment-steps", type=int, default=None)
    parser.add_argument(
        "--warmup", type=int, default=0, help="steps of a linear learning-rate warm-up"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.assignment_fraction is not None:
        _start.ASSIGNMENT_FRACTION = args.assignment_fraction
    if args.assignment_steps is not None:
        _start.ASSIGNMENT_STEPS = args.assignment_steps
    X, y, _ = load_datasets([args.data], rows=args.rows)[args.data]
    probe = StepProbe(X, y, args.steps)
    callbacks: list[Any] = [probe]
    if args.warmup:  # lr of step t (from 0) = learning_rate * min(1, (t + 1) / warmup)
        ramp = dict(start_factor=1 / args.warmup, total_iters=args.warmup - 1)
        callbacks.append(LRScheduler(LinearLR, step_every="batch", **ramp))
    params = json.loads(args.params)
    began = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = GMVAEClustering(
            args.n_clusters, n_init=1, random_state=args.seed, callbacks=callbacks, **params
        ).fit(X)
    seconds = time.perf_counter() - began
    print(
        f"labels_: {hungarian_accuracy(y, est.labels_):.4f}, {seconds:.0f} s, "
        f"ELBO per row {est.score(X):.2f}",
        flush=True,
    )


if __name__ == "__main__":
    main()
