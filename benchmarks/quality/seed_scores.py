"""Seed-to-seed spread of one configuration, and which label-free score finds the good
seeds.

Fits ``GMVAEClustering`` once per seed on one data set and prints each fit's accuracy
beside the scores ``restart_selection`` can rank restarts by, on the training rows: the
final training ELBO, the mean conditional entropy H(Y|X) and the mutual information
I(X; Y) of q(y|x). Then, for each score, its Spearman correlation with
accuracy and the mean accuracy of keeping the best of ``--keep`` fits by that score, over
every subset of ``--keep`` of the seeds: what ``n_init=keep`` with full restarts
(``trial_epochs=None``) would give on average. ``--kmeans`` adds ``KMeans`` per seed (one
k-means++ start, and the best inertia of 10) on the same rows; ``--embedding-gmm`` a
full-covariance ``GaussianMixture`` on each fit's embedding ``transform(X)``.

    python -m benchmarks.quality.seed_scores --dataset fashion-mnist --rows 10000 \\
        --seeds 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 --threads 1 --kmeans \\
        --params '{"variant": "vade", "pretrain_epochs": 2, "latent_dim": 10,
                   "binarize": false, "entropy_weight": 0, "max_epochs": 10}'
"""

from __future__ import annotations

import argparse
import itertools
import json
import time

import numpy as np
import torch
from scipy.stats import spearmanr
from sklearn.cluster import KMeans
from sklearn.mixture import GaussianMixture
from sklearn.preprocessing import StandardScaler

from benchmarks._common import load_datasets, mean_sd
from sk_gmvae import GMVAEClustering
from sk_gmvae.metrics import cluster_accuracy, conditional_entropy, mutual_information

# Each score, and its sign: larger is better after multiplying.
SCORES = {"elbo": 1.0, "conditional_entropy": -1.0, "mutual_information": 1.0}


def fit_scores(
    X: np.ndarray, y: np.ndarray, k: int, seed: int, params: dict, embedding_gmm: bool = False
) -> dict:
    """One fit's majority-vote accuracy and label-free scores; with ``embedding_gmm``
    also the accuracy of a full-covariance ``GaussianMixture`` fitted to its embedding
    ``transform(X)`` (the second step of ``make_pipeline(GMVAEClustering(...),
    GaussianMixture(k, covariance_type="full"))``)."""
    start = time.perf_counter()
    est = GMVAEClustering(k, **{**params, "random_state": seed}).fit(X)
    # q(y|x), as restart_selection ranks restarts (labels_ may come from the posterior).
    proba = est.set_params(posterior_samples=0).predict_proba(X)
    fit = {
        "seed": seed,
        "accuracy": cluster_accuracy(y, est.labels_),
        "elbo": float(est.lower_bound_),
        "conditional_entropy": conditional_entropy(proba),
        "mutual_information": mutual_information(proba),
    }
    if embedding_gmm:
        gmm = GaussianMixture(k, covariance_type="full", random_state=seed)
        fit["embedding_gmm_accuracy"] = cluster_accuracy(y, gmm.fit_predict(est.transform(X)))
    return {**fit, "seconds": time.perf_counter() - start}


def best_of(accuracy: np.ndarray, score: np.ndarray, keep: int) -> float:
    """Mean accuracy of the highest-scoring fit of every ``keep``-subset of the fits: a
    NaN score (a diverged fit) never wins, tied winners count at their mean accuracy."""
    score = np.where(np.isnan(score), -np.inf, score)
    picks = []
    for subset in itertools.combinations(range(len(accuracy)), keep):
        sub = list(subset)
        picks.append(accuracy[sub][score[sub] == score[sub].max()].mean())
    return float(np.mean(picks))


def summarize(fits: list[dict], keep: int) -> None:
    """The fits' accuracy, then each score's rank correlation with it and the mean
    accuracy of the best of ``keep`` fits by that score, as a Markdown table."""
    accuracy = np.array([fit["accuracy"] for fit in fits])
    print(f"\naccuracy {mean_sd(accuracy)} over {len(fits)} seeds")
    print(f"\n| score | Spearman with accuracy | mean accuracy, best of {keep} |")
    print("| --- | --- | --- |")
    for name, sign in SCORES.items():
        score = sign * np.array([fit[name] for fit in fits])
        rho = spearmanr(accuracy, score).statistic
        best = best_of(accuracy, score, keep) if keep <= len(fits) else float("nan")
        print(f"| {name} | {rho:.2f} | {best:.3f} |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--rows", type=int, default=10_000, help="images of (Fashion-)MNIST")
    parser.add_argument("--seeds", nargs="+", type=int, default=list(range(8)))
    parser.add_argument("--params", default="{}", help="GMVAEClustering parameters, JSON")
    parser.add_argument("--keep", type=int, default=3, help="fits per simulated n_init")
    parser.add_argument("--kmeans", action="store_true", help="also KMeans per seed")
    parser.add_argument(
        "--embedding-gmm",
        action="store_true",
        help="also a full-covariance GaussianMixture on each fit's transform(X)",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--json", default=None, help="also write every fit's figures here")
    args = parser.parse_args(argv)
    if args.keep < 1:
        parser.error("--keep must be at least 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    X, y, scale = load_datasets([args.dataset], args.rows)[args.dataset]
    if scale:  # as bench_quality's StandardScaler pipeline
        X = StandardScaler().fit_transform(X)
    k = len(np.unique(y))
    params = json.loads(args.params)

    fits = []
    for seed in args.seeds:
        fits.append(fit_scores(X, y, k, seed, params, args.embedding_gmm))
        print(json.dumps(fits[-1]), flush=True)
    if len(fits) > 1:  # a spread and correlations need two fits at least
        summarize(fits, args.keep)
    if args.embedding_gmm:
        runs = [fit["embedding_gmm_accuracy"] for fit in fits]
        print(f"GaussianMixture(full) on transform(X): {mean_sd(runs)} (best {max(runs):.3f})")
    if args.kmeans:
        for n_init in (1, 10):
            runs = [
                cluster_accuracy(y, KMeans(k, n_init=n_init, random_state=s).fit_predict(X))
                for s in args.seeds
            ]
            print(f"KMeans(n_init={n_init}): {mean_sd(runs)} (best {max(runs):.3f})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(fits, f, indent=1)


if __name__ == "__main__":
    main()
