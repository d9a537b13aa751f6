"""Which label-free score picks the best of several restarts? The evidence from the
reference study's own logs (shipped as ``sk_gmvae/data/study_logged_curves.csv``): its
six K = 10 GMVAE runs on MNIST, at several epochs, ranked by the training ELBO and by the
mean entropy H(Y|X) of q(y|x) on 10k training images, against their test accuracy.

    python -m benchmarks.quality.restart_selection_evidence
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from importlib import resources

from scipy.stats import spearmanr


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.parse_args(argv)  # no options: --help only
    path = resources.files("sk_gmvae") / "data" / "study_logged_curves.csv"
    runs: dict[str, dict[int, dict[str, str]]] = defaultdict(dict)
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if row["run"].startswith("gmvae.log."):
                runs[row["run"]][int(row["epoch"])] = row
    print("| epoch | runs | Spearman(acc, -H) | Spearman(acc, ELBO) | kept by H | by ELBO | mean |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for epoch in (100, 200, 300, 500):
        rows = [r[epoch] for r in runs.values() if epoch in r]
        accuracy = [float(r["t_acc"]) for r in rows]
        confidence = [-float(r["tr_ent"]) for r in rows]  # low H(Y|X) on training rows
        elbo = [-float(r["tr_loss"]) for r in rows]  # training ELBO
        by_h = accuracy[confidence.index(max(confidence))]
        by_elbo = accuracy[elbo.index(max(elbo))]
        print(
            f"| {epoch} | {len(rows)} | {spearmanr(accuracy, confidence)[0]:.2f} | "
            f"{spearmanr(accuracy, elbo)[0]:.2f} | {by_h:.3f} | {by_elbo:.3f} | "
            f"{sum(accuracy) / len(accuracy):.3f} |"
        )


if __name__ == "__main__":
    main()
