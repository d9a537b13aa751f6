"""Whether the "umap" start can choose among several first assignments without labels:
the Hungarian accuracy of the assignment each rule picks from ``--draws`` UMAP
embeddings of the start's own codes, beside the mean and the best draw.

    python -m benchmarks.quality.start_selection --data mnist --rows 10000 --seeds 0 1 2
    python -m benchmarks.quality.start_selection --data mnist --rows 10000 --pretrain-steps 8000

For each seed the start's codes are taken as :mod:`benchmarks.quality.start_mixture`
takes them (``--cache`` keeps them in a folder, so that a rerun skips the
pre-training). Each draw is a UMAP embedding (the start's settings for the rows, those
of ``--umap`` over them; seeds from the start's own) and a full-covariance
``GaussianMixture`` with the start's ``GMM_N_INIT`` runs. The rules:

- ``first``: draw 0, the start's own assignment (what a fit uses today);
- ``medoid``: the assignment that agrees most with the others (largest summed
  adjusted Rand index to them);
- ``information``: the largest mutual information I(X; Y) of the mixture's
  responsibilities;
- ``information@N`` (``--among N ...``): the same among the first N draws only, what a
  start of N draws would keep.

One JSON line per (seed, draw), one per seed with each rule's pick; then the means.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import adjusted_rand_score
from sklearn.mixture import GaussianMixture

from benchmarks._common import load_datasets
from benchmarks.quality.start_mixture import start_codes
from sk_gmvae import _start
from sk_gmvae._config import AUTO_PRETRAIN_STEPS, preset
from sk_gmvae.metrics import hungarian_accuracy, mutual_information


def medoid(labels: list[np.ndarray]) -> int:
    """The index of the partition with the largest summed ARI to the others."""
    agreement = [
        sum(adjusted_rand_score(a, b) for j, b in enumerate(labels) if j != i)
        for i, a in enumerate(labels)
    ]
    return int(np.argmax(agreement))


def cached_codes(
    X: np.ndarray, k: int, seed: int, steps: int, cache: Path | None, name: str
) -> tuple[np.ndarray, int]:
    """:func:`start_codes` after ``steps`` steps of pre-training, kept in
    ``cache/<name>-<steps>-<seed>.npz`` when ``cache`` is given."""
    path = None if cache is None else cache / f"{name}-{steps}-{seed}.npz"
    if path is not None and path.exists():
        saved = np.load(path)
        return saved["codes"], int(saved["seed"])
    codes, start_seed = start_codes(X, k, seed, steps)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, codes=codes, seed=start_seed)
    return codes, start_seed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="digits", help="digits, mnist or fashion-mnist")
    parser.add_argument("--rows", type=int, default=10_000, help="first rows of MNIST sets")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--draws", type=int, default=5, help="UMAP embeddings per seed")
    parser.add_argument("--n-clusters", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument(
        "--pretrain-steps", type=int, default=AUTO_PRETRAIN_STEPS, help="the start's pre-training"
    )
    parser.add_argument("--cache", type=Path, default=None, help="folder for the codes")
    parser.add_argument(
        "--among", nargs="*", type=int, default=[], help="largest I(X; Y) of the first N draws"
    )
    parser.add_argument(
        "--umap",
        type=json.loads,
        default={},
        help="UMAP's parameters over the start's for the rows, as JSON",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    _start.require_umap()  # before the pre-training, not after it
    X, y, _ = load_datasets([args.data], args.rows)[args.data]
    rules = ["first", "medoid", "information", *(f"information@{n}" for n in args.among), "best"]
    picks: dict[str, list[float]] = {rule: [] for rule in rules}
    name = f"{args.data}-{len(X)}"
    umap = {**preset(len(X)).umap_settings, **args.umap}
    for seed in args.seeds:
        codes, start_seed = cached_codes(
            X, args.n_clusters, seed, args.pretrain_steps, args.cache, name
        )
        labels, accuracy, information = [], [], []
        for draw in range(args.draws):
            E = _start.umap_embedding(codes, start_seed + draw, umap)
            gmm = GaussianMixture(
                args.n_clusters,
                covariance_type="full",
                n_init=_start.GMM_N_INIT,
                random_state=start_seed,
            ).fit(E)
            R = gmm.predict_proba(E)
            labels.append(R.argmax(1))
            accuracy.append(float(hungarian_accuracy(y, labels[-1])))
            information.append(float(mutual_information(R)))
            row = {"seed": seed, "draw": draw, "hungarian_accuracy": round(accuracy[-1], 4)}
            print(json.dumps({**row, "mutual_information": round(information[-1], 4)}))
        chosen = {
            "first": 0,
            "medoid": medoid(labels),
            "information": int(np.argmax(information)),
            **{f"information@{n}": int(np.argmax(information[:n])) for n in args.among},
            "best": int(np.argmax(accuracy)),
        }
        for rule, draw in chosen.items():
            picks[rule].append(accuracy[draw])
        print(
            json.dumps(
                {
                    "seed": seed,
                    "mean": round(float(np.mean(accuracy)), 4),
                    **{rule: [draw, round(accuracy[draw], 4)] for rule, draw in chosen.items()},
                }
            ),
            flush=True,
        )
    for rule, values in picks.items():
        print(f"{rule}: {np.mean(values):.4f} ± {np.std(values):.4f} over {len(values)} seeds")


if __name__ == "__main__":
    main()
