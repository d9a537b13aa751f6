"""How the mixture starts (``init``), against the usual baselines, on the same rows and
seeds: KMeans, a GaussianMixture on the raw data, UMAP + GaussianMixture on the raw data
(N2D without the autoencoder), the package's autoencoder + UMAP + GaussianMixture at the
same optimizer-step budget as a pre-trained start's mixture VAE (pre-training +
training), and
``GMVAEClustering`` with each start. For a started model the table also gives the
first assignment's Hungarian accuracy ("start") and the change from it to the fitted
model's own labels ("drift"). One JSON line per (method, seed) is printed (and appended
to ``--out``, whose finished lines are skipped on a rerun); then a Markdown table of
mean ± sd over the seeds.

    python -m benchmarks.quality.image_starts --data digits --seeds 0 1 2 --threads 1
    python -m benchmarks.quality.image_starts --data digits --seeds 0 --curve \
        --methods "gmvae umap" "vade umap" --out drift.jsonl   # accuracy over the epochs
    python -m benchmarks.quality.image_starts --data mnist --rows 10000 --seeds 0 1 \\
        --threads 1 --methods KMeans "UMAP + GMM" "gmvae umap"

Every mixture VAE trains ``n_init=1`` run of the default length (but for ``n_init
auto`` and the defaults), with the default ``pretrain_steps`` for a pre-trained start;
``--params`` (JSON) adds parameters to all of them. The raw-data GaussianMixture is
full-covariance up to 100 features, diagonal above; every Gaussian mixture keeps the
best of ``GMM_N_INIT`` initializations, as the start's does.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.mixture import GaussianMixture

from benchmarks._common import METRICS, load_datasets, mean_sd
from sk_gmvae import GMVAEClustering
from sk_gmvae._config import AUTO_PRETRAIN_STEPS, resolve_config, resolve_init
from sk_gmvae._start import GMM_N_INIT, UMAP_SETTINGS, HoldAssignments, require_umap
from sk_gmvae.callbacks import ClusteringMonitor
from sk_gmvae.metrics import clustering_report, hungarian_accuracy

# The mixture VAEs: name -> GMVAEClustering parameters (n_init=1 unless given).
OURS: dict[str, dict] = {
    # The estimator's defaults (init="auto": "umap" for images), and the same with the
    # random start, the defaults before images took the "umap" start.
    "defaults": dict(n_init="auto"),
    "defaults, init random": dict(n_init="auto", init="random"),
    "gmvae random": dict(variant="gmvae", init="random"),
    "gmvae autoencoder": dict(variant="gmvae", init="autoencoder"),
    "gmvae umap": dict(variant="gmvae", init="umap"),
    # Two ways to keep the start: smaller steps for the mixture (the pre-training's
    # step size is its own), and the z-term's KL warmed up.
    "gmvae umap, mixture lr 1e-4": dict(variant="gmvae", init="umap", learning_rate=1e-4),
    "gmvae umap, kl_warmup 10": dict(variant="gmvae", init="umap", kl_warmup=10.0),
    # q(y|x) held at the first assignment for the first quarter of the training.
    "gmvae umap, hold 1/4": dict(variant="gmvae", init="umap", hold=0.25),
    # A longer pre-training; the autoencoder's pre-training below 10,000 rows too (where
    # the "umap" start takes the rows themselves); restarts, each with its own start.
    "gmvae umap, 5000 steps": dict(variant="gmvae", init="umap", pretrain_steps=5000),
    "gmvae umap, 2000 steps": dict(variant="gmvae", init="umap", pretrain_steps=2000),
    "gmvae umap, n_init auto": dict(variant="gmvae", init="umap", n_init="auto"),
    "vade recipe (pretrain_epochs)": dict(
        variant="vade", pretrain_epochs=2, latent_dim=10, binarize=False, entropy_weight=0.0
    ),
    "vade autoencoder": dict(variant="vade", init="autoencoder"),
    "vade umap": dict(variant="vade", init="umap"),
}
BASELINES = ("KMeans", "GaussianMixture", "UMAP + GMM", "AE + UMAP + GMM")


def _baseline(name: str, X: np.ndarray, k: int, seed: int, budget: int) -> tuple[np.ndarray, dict]:
    """The labels of a baseline on X, and what to record besides the metrics."""
    if name == "KMeans":
        return KMeans(k, n_init=10, random_state=seed).fit_predict(X), {}
    if name == "GaussianMixture":
        kind = "full" if X.shape[1] <= 100 else "diag"
        gmm = GaussianMixture(k, covariance_type=kind, n_init=GMM_N_INIT, random_state=seed)
        return gmm.fit_predict(X), {}
    if name == "UMAP + GMM":
        UMAP = require_umap()
        emb = UMAP(**UMAP_SETTINGS, random_state=seed, n_jobs=1).fit_transform(X)
        gmm = GaussianMixture(k, covariance_type="full", n_init=GMM_N_INIT, random_state=seed)
        return gmm.fit_predict(emb), {}
    # The "umap" start's first assignment with the whole budget of a pre-trained start
    # (its 2,000 steps + the training) as pre-training: the package's autoencoder
    # trained `budget` steps, UMAP of its codes, a full GMM there (from 10,000 rows the
    # most informative of the start's UMAP draws, as the start's own).
    est = GMVAEClustering(
        k, init="umap", pretrain_steps=budget, max_epochs=1, n_init=1, random_state=seed
    ).fit(X)
    return dict(est.net_.callbacks_)["start"].assignment_, {"steps": budget}


def _auto_epochs(X: np.ndarray, k: int) -> int:
    """The epochs of ``max_epochs="auto"`` on X (batches of 100)."""
    params = GMVAEClustering(k).get_params()
    return resolve_config(params, *X.shape, "bernoulli", "cpu").max_epochs


def _ours(
    params: dict[str, Any], X: np.ndarray, y: np.ndarray, k: int, seed: int, curve: bool
) -> tuple[np.ndarray, dict]:
    """The fitted model's own labels, the model, its start's assignment and, with
    ``curve``, the Hungarian accuracy of q(y|x) on the rows after about 20 evenly
    spaced epochs."""
    epochs = _auto_epochs(X, k)
    # About 20 points of the curve.
    callbacks = [ClusteringMonitor(X, y, name="rows", every=max(1, epochs // 20))] if curve else []
    if "hold" in params:  # a fraction of the epochs
        callbacks.append(HoldAssignments(epochs * params.pop("hold")))
    params = {**params, "callbacks": callbacks or None}
    est = GMVAEClustering(k, **{"n_init": 1, "random_state": seed, **params}).fit(X)
    extra: dict = {"model": est}
    if curve:
        extra["curve"] = [
            (r["epoch"], round(r["rows_hungarian_accuracy"], 4))
            for r in est.history_
            if "rows_hungarian_accuracy" in r
        ]
    start = dict(est.net_.callbacks_).get("start")
    if start is not None:
        extra.update(start_labels=start.assignment_, start_used=bool(start.used_))
    return est.labels_, extra


def run(
    name: str, X: np.ndarray, y: np.ndarray, k: int, seed: int, params: dict, curve: bool = False
) -> dict:
    """One method on one seed: its metrics, seconds, and the start's accuracy."""
    torch.manual_seed(seed)
    # A pre-trained "umap" start's steps: its pre-training (at least the auto 2,000 steps
    # of a pre-trained start, where UMAP takes the rows) and its training.
    pretraining = max(AUTO_PRETRAIN_STEPS, resolve_init("umap", "auto", len(X))[1])
    budget = pretraining + _auto_epochs(X, k) * math.ceil(len(X) / 100)
    began = time.perf_counter()
    if name in BASELINES:
        labels, extra = _baseline(name, X, k, seed, budget)
    else:
        labels, extra = _ours({**OURS[name], **params}, X, y, k, seed, curve)
    row = {"method": name, "seed": seed, "seconds": time.perf_counter() - began}
    row.update(clustering_report(y, labels))
    if "model" in extra:  # the fitted mixture's mean ELBO per row (nats), after the clock
        row["elbo"] = float(extra.pop("model").score(X))
    if "start_labels" in extra:
        row["start"] = hungarian_accuracy(y, extra.pop("start_labels"))
        row["drift"] = row["hungarian_accuracy"] - row["start"]
    return {**row, **extra}


def table(rows: list[dict], methods: list[str]) -> str:
    """Markdown: mean ± sd over the seeds of each method's metrics and seconds."""
    head = ["method", "seeds", *METRICS, "start", "drift", "seconds"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for method in methods:
        mine = [r for r in rows if r["method"] == method]
        if not mine:
            continue
        cells = [method, str(len(mine))]
        for key in [*METRICS, "start", "drift", "seconds"]:
            values = [r[key] for r in mine if key in r]
            cells.append(mean_sd(values) if values else "")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="digits", help="digits, mnist or fashion-mnist")
    parser.add_argument(
        "--rows", type=int, default=10_000, help="first rows of MNIST sets (70000: all)"
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--n-clusters", type=int, default=10)
    parser.add_argument("--methods", nargs="+", default=[*BASELINES, *OURS])
    parser.add_argument("--params", default="{}", help="more GMVAEClustering parameters, JSON")
    parser.add_argument("--out", type=Path, default=None, help="JSON lines, appended")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument(
        "--curve", action="store_true", help="record q(y|x)'s accuracy over the epochs"
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    unknown = set(args.methods) - {*BASELINES, *OURS}
    if unknown:
        parser.error(f"unknown methods {sorted(unknown)}; known: {[*BASELINES, *OURS]}")
    X, y, _ = load_datasets([args.data], args.rows)[args.data]
    params = json.loads(args.params)
    done: list[dict] = []
    if args.out is not None and args.out.exists():
        done = [json.loads(line) for line in args.out.read_text().splitlines() if line]
    rows = [r for r in done if r.get("data") == args.data]
    for seed in args.seeds:
        for name in args.methods:
            if any(r["method"] == name and r["seed"] == seed for r in rows):
                continue
            row = {"data": args.data, **run(name, X, y, args.n_clusters, seed, params, args.curve)}
            rows.append(row)
            print(json.dumps(row), flush=True)
            if args.out is not None:
                with args.out.open("a") as f:
                    f.write(json.dumps(row) + "\n")
    print(table([r for r in rows if r["seed"] in args.seeds], args.methods))


if __name__ == "__main__":
    main()
