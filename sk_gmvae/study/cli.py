"""``sk-gmvae reproduce``: the command-line glue of the study."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

from .protocol import binarize_once, load_protocol


def auto_yes_no(choice: str) -> bool | str:
    """An ``auto|yes|no`` option's value as the estimator takes it: "auto", True or False."""
    return {"auto": "auto", "yes": True, "no": False}[choice]


def _writable(folder: Path) -> str | None:
    """Why ``folder`` cannot hold the study's output (None if it can)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        return f"the output folder {folder} is not writable: {exc}"
    return None


def _plotting() -> str | None:
    """Why the figures could not be drawn (None if they can)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return (
            "sk-gmvae reproduce draws its figures with matplotlib, which is not installed: "
            "pip install 'sk_gmvae[plot]' (or matplotlib)"
        )
    return None


def reproduce(args: argparse.Namespace) -> int:
    """Run the study; exit status 0 when every run finished, 2 when a requirement is
    missing (checked before any training), 128 + the signal's number when stopped by
    Ctrl-C or SIGTERM (every checkpoint complete: rerun to resume)."""
    from .plots import cluster_summary, plot_prototypes, plot_study
    from .runner import StudyInterrupted, results_table, run_study

    out = Path(args.out or f"runs/{args.dataset}")
    for problem in (_plotting(), _writable(out)):
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            return 2
    X_train, _, X_test, y_test = load_protocol(args)  # the data, before any training
    rows = np.random.default_rng(args.seed).permutation(len(X_train))[: args.n_train_eval]
    print(
        f"{len(args.variants)} variants x {len(args.seeds)} seeds x {args.epochs} epochs of "
        f"{len(X_train)} {args.dataset} images -> {out}",
        flush=True,
    )
    try:
        histories = run_study(
            X_train,
            X_test,
            y_test,
            out,
            variants=args.variants,
            seeds=args.seeds,
            epochs=args.epochs,
            X_train_eval=binarize_once(X_train[rows], args.seed + 1),
            progress=not args.no_progress,
            stack_seeds=auto_yes_no(args.stack_seeds),
            n_clusters=args.n_clusters,
            latent_dim=args.latent_dim,
            hidden_layer_sizes=tuple(args.hidden),
            device=args.device,
            precision=args.precision,
            compile=args.compile,
            cuda_graph=auto_yes_no(args.cuda_graph),
        )
    except StudyInterrupted as stopped:
        print(f"\nsk-gmvae reproduce: {stopped}", file=sys.stderr)
        return 128 + stopped.signum
    figure = plot_study(
        histories,
        out / "figure",
        n_clusters=args.n_clusters,
        n_train=len(X_train),
        title=args.command_line,
    )
    for npy in sorted(out.glob("prototypes-*.npy")):
        prototypes, labels = np.load(npy), out / npy.name.replace("prototypes-", "test-labels-")
        summary, title = {}, npy.stem
        if labels.exists():  # each cluster's size and majority class on the test set
            sizes, majority = cluster_summary(np.load(labels), y_test, len(prototypes))
            summary = {"sizes": sizes, "majority": majority}
            title += ": size and majority class of each cluster on the test set"
        plot_prototypes(prototypes, npy.with_suffix(".png"), title=title, **summary)
    table = results_table(histories)
    (out / "results.md").write_text(
        f"# {args.dataset}: {', '.join(args.variants)}\n\nMade by `{args.command_line}`.\n\n"
        f"![figure](figure.png)\n\n{table}\n"
    )
    print(table)
    print(f"wrote {figure[0]}, {figure[1]}, {out / 'results.md'}")
    return 0
