"""How many EM runs the "umap" start's Gaussian mixture needs: the Hungarian accuracy of
the first assignment from one run and from the best of ``GMM_N_INIT`` runs (by
likelihood), on the same UMAP embeddings of the start's own codes.

    python -m benchmarks.quality.start_mixture --data mnist --rows 10000 --seeds 0 1 2

For each seed, ``GMVAEClustering(init="umap", pretrain_steps=AUTO_PRETRAIN_STEPS,
random_state=seed)`` pre-trains its autoencoder as a fit does (from 10,000 rows, the
"umap" start's default; below, the default takes the rows themselves); its codes are
taken where the start hands them to ``first_assignment`` (and the fit stops there).
Then ``--draws`` UMAP embeddings of those codes (the start's own UMAP seed and the next
ones) each get a full-covariance ``GaussianMixture`` with ``n_init=1`` and with
``n_init=GMM_N_INIT``, both from the start's seed. One JSON line per (seed, draw,
n_init); then the means.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np
import torch
from sklearn.mixture import GaussianMixture

from benchmarks._common import load_datasets
from sk_gmvae import GMVAEClustering, _start
from sk_gmvae._config import AUTO_PRETRAIN_STEPS
from sk_gmvae.metrics import hungarian_accuracy, mutual_information


class _Codes(Exception):
    """Raised by the probe with the codes the start assigns, and the start's seed."""

    def __init__(self, codes: np.ndarray, seed: int) -> None:
        super().__init__("codes captured")
        self.codes, self.seed = codes, seed


def start_codes(
    X: np.ndarray, k: int, seed: int, pretrain_steps: int = AUTO_PRETRAIN_STEPS
) -> tuple[np.ndarray, int]:
    """The codes of a ``init="umap"`` fit with ``random_state=seed`` after
    ``pretrain_steps`` steps of pre-training, and the seed its start draws UMAP and the
    mixture from."""

    def probe(codes: np.ndarray, n_clusters: int, method: str, seed: int, *draws: int) -> Any:
        raise _Codes(codes, seed)

    original = _start.first_assignment
    _start.first_assignment = probe
    try:
        GMVAEClustering(
            k, init="umap", pretrain_steps=pretrain_steps, n_init=1, random_state=seed
        ).fit(X)
    except _Codes as captured:
        return captured.codes, captured.seed
    finally:
        _start.first_assignment = original
    raise RuntimeError("the start did not reach its first assignment")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="digits", help="digits, mnist or fashion-mnist")
    parser.add_argument("--rows", type=int, default=10_000, help="first rows of MNIST sets")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--draws", type=int, default=3, help="UMAP embeddings per seed")
    parser.add_argument("--n-clusters", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    _start.require_umap()  # before the pre-training, not after it
    X, y, _ = load_datasets([args.data], args.rows)[args.data]
    results: dict[int, list[float]] = {1: [], _start.GMM_N_INIT: []}
    for seed in args.seeds:
        codes, start_seed = start_codes(X, args.n_clusters, seed)
        for draw in range(args.draws):
            umap_seed = start_seed + draw  # draw 0: the start's own embedding
            E = _start.umap_embedding(codes, umap_seed)
            for n_init in results:
                gmm = GaussianMixture(
                    args.n_clusters, covariance_type="full", n_init=n_init, random_state=start_seed
                ).fit(E)
                R = gmm.predict_proba(E)
                accuracy = hungarian_accuracy(y, R.argmax(1))
                results[n_init].append(accuracy)
                row = {
                    "data": args.data,
                    "seed": seed,
                    "draw": draw,
                    "n_init": n_init,
                    "hungarian_accuracy": round(float(accuracy), 4),
                    "log_likelihood": round(float(gmm.score(E)), 3),
                    "mutual_information": round(float(mutual_information(R)), 4),
                }
                print(json.dumps(row), flush=True)
    for n_init, values in results.items():
        print(f"n_init={n_init}: mean {np.mean(values):.4f} over {len(values)} embeddings")


if __name__ == "__main__":
    main()
