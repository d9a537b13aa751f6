"""``sk-gmvae reproduce``: the command-line glue of the study."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from .protocol import binarize_once, load_protocol


def reproduce(args: argparse.Namespace) -> int:
    from .plots import plot_prototypes, plot_study
    from .runner import results_table, run_study

    X_train, _, X_test, y_test = load_protocol(args)
    rows = np.random.default_rng(args.seed).permutation(len(X_train))[: args.n_train_eval]
    out = Path(args.out or f"runs/{args.dataset}")
    out.mkdir(parents=True, exist_ok=True)
    print(
        f"{len(args.variants)} variants x {len(args.seeds)} seeds x {args.epochs} epochs of "
        f"{len(X_train)} {args.dataset} images -> {out}",
        flush=True,
    )
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
        n_clusters=args.n_clusters,
        latent_dim=args.latent_dim,
        hidden_layer_sizes=tuple(args.hidden),
        device=args.device,
        precision=args.precision,
        compile=args.compile,
    )
    figure = plot_study(
        histories,
        out / "figure",
        n_clusters=args.n_clusters,
        n_train=len(X_train),
        title=args.command_line,
    )
    for npy in sorted(out.glob("prototypes-*.npy")):
        plot_prototypes(np.load(npy), npy.with_suffix(".png"), title=npy.stem)
    table = results_table(histories)
    (out / "results.md").write_text(
        f"# {args.dataset}: {', '.join(args.variants)}\n\nMade by `{args.command_line}`.\n\n"
        f"![figure](figure.png)\n\n{table}\n"
    )
    print(table)
    print(f"wrote {figure[0]}, {figure[1]}, {out / 'results.md'}")
    return 0
