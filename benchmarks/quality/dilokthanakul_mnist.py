"""MNIST head to head: the study's GMVAE (``variant="gmvae"`` with the study's
settings) against Dilokthanakul et al.'s two-layer GMVAE (``variant="dilokthanakul"``
with the authors' settings) at M=1 and M=10, K=10, the same seeds and epochs. Prints,
per model and seed and then as mean ± sd (and the best run) over the seeds, on the test
set: majority-vote, Hungarian and AAE-protocol accuracy, H(Y|X), the test ELBO and the
seconds per epoch.

    python -m benchmarks.quality.dilokthanakul_mnist --seeds 0 1 2 --epochs 20

The data are the study's protocol (the first 50,000 training images, binarized anew at
every step; the 10,000 test images binarized once), for both models. The authors'
settings: hidden width 500 (their script's default), z of 200, w of 150, batches of 50,
Adam at 1e-4, alpha = eta = 1 (their defaults), no free bits. The study's reference
(Dilokthanakul et al., Table 1, AAE protocol): M=1 best 87.71 %, mean 74.47 %; M=10
best 93.67 %, mean 86.94 %.
"""

from __future__ import annotations

import argparse

import numpy as np

from benchmarks._common import mean_sd
from sk_gmvae import GMVAEClustering
from sk_gmvae.metrics import clustering_report
from sk_gmvae.study.protocol import load_protocol
from sk_gmvae.study.runner import STUDY_SETTINGS, dilokthanakul_settings

COLUMNS = {
    "accuracy": "majority vote",
    "hungarian_accuracy": "Hungarian",
    "aae_accuracy": "AAE protocol",
    "conditional_entropy": "H(Y|X)",
    "test_elbo": "test ELBO",
    "seconds_per_epoch": "s / epoch",
}
MODELS = ("gmvae", "dilokthanakul-m1", "dilokthanakul-m10")


def estimator(model: str, args: argparse.Namespace, seed: int) -> GMVAEClustering:
    """The unfitted estimator of ``model``: the study's GMVAE, or the two-layer model with
    M = 1 or 10 and the authors' settings."""
    common = dict(n_clusters=10, max_epochs=args.epochs, random_state=seed, device=args.device)
    if model == "gmvae":
        return GMVAEClustering(variant="gmvae", **{**STUDY_SETTINGS, **common})
    samples = int(model.rsplit("-m", 1)[1])
    authors = dilokthanakul_settings(samples, args.hidden, args.eta, args.cv_weight, args.free_bits)
    authors["learning_rate"] = args.learning_rate
    return GMVAEClustering(variant="dilokthanakul", **{**authors, **common})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--rows", type=int, default=50_000, help="training images")
    parser.add_argument("--test-rows", type=int, default=10_000, help="test images scored")
    parser.add_argument("--hidden", type=int, default=500, help="the authors' width")
    parser.add_argument("--eta", type=float, default=1.0, help="the two-layer model's eta")
    parser.add_argument("--cv-weight", type=float, default=1.0, help="its alpha")
    parser.add_argument("--free-bits", type=float, default=0.0, help="its lambda")
    parser.add_argument(
        "--learning-rate", type=float, default=1e-4, help="its Adam step (the authors': 1e-4)"
    )
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)

    X_train, _, X_test, y_test = load_protocol("mnist", n_train=args.rows)
    X_test, y_test = X_test[: args.test_rows], y_test[: args.test_rows]
    print(f"{len(X_train)} training and {len(X_test)} test images, {args.epochs} epochs")
    results: dict[str, list[dict]] = {m: [] for m in args.models}
    for seed in args.seeds:
        for model in args.models:
            est = estimator(model, args, seed).fit(X_train)
            proba = est.predict_proba(X_test)
            row = clustering_report(y_test, proba.argmax(axis=1), proba)
            row["test_elbo"] = est.score(X_test)
            # The training epochs' own durations (not the labelling pass after them).
            row["seconds_per_epoch"] = float(np.mean([r["dur"] for r in est.history_]))
            results[model].append(row)
            print(
                f"{model} seed {seed}: " + "  ".join(f"{COLUMNS[k]} {row[k]:.4g}" for k in COLUMNS),
                flush=True,
            )

    print(f"\n| model | {' | '.join(COLUMNS.values())} | best AAE |")
    print("|" + " --- |" * (len(COLUMNS) + 2))
    for model, rows in results.items():
        cells = [mean_sd([row[k] for row in rows]) for k in COLUMNS]
        best = max(row["aae_accuracy"] for row in rows)
        print(f"| {model} | {' | '.join(cells)} | {best:.3f} |")


if __name__ == "__main__":
    main()
