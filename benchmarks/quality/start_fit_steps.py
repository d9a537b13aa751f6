"""How long the "umap" start should fit q(y|x) to its first assignment: q(y|x)'s
Hungarian accuracy, and its agreement with the assignment, after growing numbers of the
start's cross-entropy steps, then after growing numbers of its steps of the ELBO with y
observed at the assignment, from the longest cross-entropy fit and from the shortest.

    python -m benchmarks.quality.start_fit_steps --data mnist --rows 70000 --seed 0 \\
        --threads 2

One ``GMVAEClustering(init="umap", n_init=1)`` start (pre-training, UMAP, the first
assignment as a fit makes them); the training after it is not run. The cross-entropy
steps run in chunks up to each count of ``--qy-steps``; the ELBO steps up to each count
of ``--assignment-steps``, each chunk with its own seed of the binarization and noise
draws. One JSON line per measurement.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
import warnings
from typing import Any

import numpy as np
import torch
from skorch.callbacks import Callback

from benchmarks._common import load_datasets, qy_labels
from sk_gmvae import GMVAEClustering, _start
from sk_gmvae.metrics import hungarian_accuracy


class _StartDone(Exception):
    """Raised when the training after the start would begin."""


class _Halt(Callback):
    def on_train_begin(self, net: Any, **kwargs: Any) -> None:
        raise _StartDone


def probe(
    X: np.ndarray,
    y: np.ndarray,
    k: int,
    seed: int,
    qy_steps: list[int],
    assignment_steps: list[int],
    params: dict | None = None,
) -> list[dict]:
    """The measurements of one start, as dicts: ``stage`` ("assignment", "qy" or
    "assignment after qy <steps>"), ``steps``, ``accuracy`` (Hungarian, against y) and
    ``agreement`` (with the first assignment)."""
    began = time.perf_counter()
    rows: list[dict] = []

    def record(stage: str, steps: int, labels: np.ndarray, assignment: np.ndarray) -> None:
        rows.append(
            {
                "stage": stage,
                "steps": steps,
                "accuracy": round(hungarian_accuracy(y, labels), 4),
                "agreement": round(float(np.mean(labels == assignment)), 4),
                "s": round(time.perf_counter() - began),
            }
        )
        print(json.dumps(rows[-1]), flush=True)

    fit_qy, fit_to_assignment = _start.AutoencoderStart._fit_qy, _start.fit_to_assignment
    # The states the ELBO steps start from: after the most and the fewest qy steps.
    starts = sorted({max(qy_steps), min(qy_steps)}, reverse=True)
    saved: dict[int, tuple[dict, torch.Tensor]] = {}

    def chunked_qy(self, module, rows_, R, steps, net, generator):  # noqa: ANN001
        record("assignment", 0, self.assignment_, self.assignment_)
        done = 0
        for total in qy_steps:
            fit_qy(self, module, rows_, R, total - done, net, generator)
            done = total
            record("qy", total, qy_labels(module, X), self.assignment_)
            if total in starts:
                saved[total] = (copy.deepcopy(module.state_dict()), generator.get_state())
        return float("nan")

    def chunked_assignment(module, rows_, labels, steps, batch_size, generator, seed_):  # noqa: ANN001
        for start_from in starts:
            state, generator_state = saved[start_from]
            module.load_state_dict(state)
            generator.set_state(generator_state)
            done = 0
            for total in assignment_steps:
                fit_to_assignment(
                    module, rows_, labels, total - done, batch_size, generator, seed_ + total
                )
                done = total
                record(f"assignment after qy {start_from}", total, qy_labels(module, X), labels)

    _start.AutoencoderStart._fit_qy = chunked_qy
    _start.fit_to_assignment = chunked_assignment
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            GMVAEClustering(
                k,
                init="umap",
                n_init=1,
                random_state=seed,
                callbacks=[_Halt()],
                **(params or {}),
            ).fit(X)
    except _StartDone:
        pass
    finally:
        _start.AutoencoderStart._fit_qy, _start.fit_to_assignment = fit_qy, fit_to_assignment
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="mnist", help="digits, mnist or fashion-mnist")
    parser.add_argument("--rows", type=int, default=70_000, help="first rows of MNIST sets")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-clusters", type=int, default=10)
    parser.add_argument("--qy-steps", nargs="+", type=int, default=[500, 1000, 2000, 4000])
    parser.add_argument(
        "--assignment-steps", nargs="+", type=int, default=[500, 1000, 2000, 4000, 8000]
    )
    parser.add_argument("--params", default="{}", help="more GMVAEClustering parameters, JSON")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    X, y, _ = load_datasets([args.data], rows=args.rows)[args.data]
    probe(
        X,
        y,
        args.n_clusters,
        args.seed,
        sorted(args.qy_steps),
        sorted(args.assignment_steps),
        json.loads(args.params),
    )


if __name__ == "__main__":
    main()
