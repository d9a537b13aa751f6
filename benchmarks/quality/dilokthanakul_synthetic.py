"""Dilokthanakul et al.'s Fig. 2 on a synthetic 2-D pinwheel: the two-layer GMVAE
(``variant="dilokthanakul"``) fitted with eta=1 alpha=0 (the plain ELBO), eta=0 alpha=0
and eta=1 alpha=2, and a picture of each fit's clusters (argmax q(y|x)) in the data
space beside the true arms. Prints, per setting, the clusters in use, the ARI against
the arms, H(Y|X) of q(y|x), the mean entropy of the model's own p(y|z, w) and the ELBO.

    python -m benchmarks.quality.dilokthanakul_synthetic --out docs/dilokthanakul_synthetic.png

The pinwheel (5 arms, the rows of each arm a Gaussian bent into a spiral, as in Johnson
et al.'s SVAE paper) stands in for the authors' spiral data set; it is standardized and
fitted with the Gaussian likelihood.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from sklearn.metrics import adjusted_rand_score
from sklearn.preprocessing import StandardScaler

from sk_gmvae import GMVAEClustering
from sk_gmvae._objective import elbo_terms
from sk_gmvae.metrics import conditional_entropy

# (title, eta, alpha): the paper's three settings.
SETTINGS = [
    ("eta=1, alpha=0 (plain ELBO)", 1.0, 0.0),
    ("eta=0, alpha=0", 0.0, 0.0),
    ("eta=1, alpha=2", 1.0, 2.0),
]


def pinwheel(n_per_arm: int, arms: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``arms`` spiral arms of ``n_per_arm`` rows each: (x, y) ~ N((1, 0), diag(0.3^2,
    0.05^2)) turned by an angle growing with the radius, then by the arm's angle."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(arms), n_per_arm)
    points = rng.normal(size=(len(labels), 2)) * [0.3, 0.05] + [1.0, 0.0]
    # Angle of a row: its arm's, 2 pi k / arms, plus 0.25 * exp(its radius) (the bend).
    angle = 2 * np.pi * labels / arms + 0.25 * np.exp(points[:, 0])
    cos, sin = np.cos(angle), np.sin(angle)
    X = np.stack([cos * points[:, 0] - sin * points[:, 1], sin * points[:, 0] + cos * points[:, 1]])
    return X.T, labels


def model_entropy(est: GMVAEClustering, X: np.ndarray) -> float:
    """Mean over the rows of (1/M) sum_j H(p(y|z_j, w_j)), the consistency term."""
    module = est._inference_module_
    with torch.no_grad():
        out = module(torch.as_tensor(X, dtype=torch.float64))
    return float(elbo_terms(out).consistency.mean())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows-per-arm", type=int, default=200)
    parser.add_argument("--arms", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0, help="of the data and of every fit")
    parser.add_argument("--mc-samples", type=int, default=1, help="M")
    parser.add_argument("--out", default=None, help="the picture (png); none if omitted")
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)  # the consistency term's draws in model_entropy

    X_raw, arm = pinwheel(args.rows_per_arm, args.arms, args.seed)
    X = StandardScaler().fit_transform(X_raw)
    fits = []
    print("| setting | clusters in use | ARI | H(Y|X) | mean H(p(y|z,w)) | ELBO | seconds |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for title, eta, alpha in SETTINGS:
        est = GMVAEClustering(
            args.arms,
            variant="dilokthanakul",
            variant_params={"mc_samples": args.mc_samples, "cv_weight": alpha},
            eta=eta,
            entropy_weight=0.0,
            latent_dim=2,
            hidden_layer_sizes=(64, 64),
            batch_size=50,
            max_epochs=args.epochs,
            n_init=1,
            posterior_samples=0,
            random_state=args.seed,
        )
        start = time.perf_counter()
        est.fit(X)
        seconds = time.perf_counter() - start
        proba = est.predict_proba(X)
        labels = proba.argmax(axis=1)
        used = int((np.bincount(labels, minlength=args.arms) >= 0.01 * len(X)).sum())
        print(
            f"| {title} | {used} | {adjusted_rand_score(arm, labels):.3f} "
            f"| {conditional_entropy(proba):.3f} | {model_entropy(est, X):.3f} "
            f"| {est.score(X):.3f} | {seconds:.0f} |",
            flush=True,
        )
        fits.append((title, labels))
    if args.out:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        panels = [("the arms (truth)", arm), *fits]
        fig, axes = plt.subplots(1, len(panels), figsize=(3 * len(panels), 3))
        for ax, (title, labels) in zip(axes, panels, strict=True):
            ax.scatter(X[:, 0], X[:, 1], c=labels, cmap="tab10", vmin=0, vmax=9, s=3)
            ax.set_title(title, fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
        fig.tight_layout()
        fig.savefig(args.out, dpi=72)
        print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
