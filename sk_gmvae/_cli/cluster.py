"""``sk-gmvae cluster FILE``: train on any data file, write each row's cluster and
probabilities, save the model; ``sk-gmvae predict --model MODEL FILE``: assign the rows
of another file with the saved model, in the same format."""

from __future__ import annotations

import argparse
import pickle
import sys
from pathlib import Path
from typing import Any

import numpy as np

from .._estimator import GMVAEClustering
from ..persistence import load_weights, save_weights
from .files import FORMATS, read_table, write_labels
from .options import (
    HelpFormatter,
    UsageError,
    add_estimator_options,
    check_file,
    estimator_params,
    torch_device,
)

_LABELS_HELP = (
    "write each row's cluster and cluster probabilities to this CSV file: a header "
    "label,proba_0,...,proba_{K-1}, then one line per input row, in the input's order"
)


def add_commands(commands: Any) -> None:
    """Add ``cluster`` and ``predict`` to the ``sk-gmvae`` subcommands."""
    cluster = commands.add_parser(
        "cluster",
        formatter_class=HelpFormatter,
        allow_abbrev=False,
        help="train on a data file and write each row's cluster",
        description="Train a mixture VAE on the rows of FILE and write each row's cluster and\n"
        "its cluster probabilities. A CSV file's first row is a header when any of its\n"
        "cells is not a number. The estimator options are GMVAEClustering's parameters,\n"
        "with its defaults (10 clusters; auto: sized from the data). Output paths are\n"
        "checked before training.",
    )
    _add_io(cluster)
    cluster.add_argument("--out", metavar="CSV", default=None, help=_LABELS_HELP)
    cluster.add_argument(
        "--save",
        metavar="MODEL",
        default=None,
        help="save the trained model to this file (weights only), for sk-gmvae predict",
    )
    add_estimator_options(cluster)
    cluster.set_defaults(run=run_cluster)

    predict = commands.add_parser(
        "predict",
        formatter_class=HelpFormatter,
        allow_abbrev=False,
        help="assign the rows of a data file with a model saved by cluster --save",
        description="Assign each row of FILE to a cluster of the model saved by\n"
        "'sk-gmvae cluster --save', and write the rows' clusters and probabilities as\n"
        "'cluster --out' does.",
    )
    _add_io(predict)
    predict.add_argument(
        "--model", required=True, help="the model file written by sk-gmvae cluster --save"
    )
    predict.add_argument("--out", metavar="CSV", required=True, help=_LABELS_HELP)
    predict.add_argument(
        "--device", type=torch_device, default="auto", help="auto, cpu, cuda, cuda:1, ..."
    )
    predict.set_defaults(run=run_predict)


def _add_io(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help=f"the data, one row per sample: {FORMATS}")
    parser.add_argument(
        "--key", default=None, help="the array to read from an .npz file that holds several"
    )
    parser.add_argument(
        "--quiet", action="store_true", help="print nothing but errors (no progress, no summary)"
    )


def run_cluster(args: argparse.Namespace) -> int:
    """Train on ``args.file`` and write what was asked; status 0."""
    for path in (args.out, args.save):
        if path is not None:
            check_file(path)
    if args.out is not None and args.save is not None and Path(args.out) == Path(args.save):
        raise UsageError(f"--out and --save name the same file, {args.out}")
    X = read_table(args.file, args.key)
    est = GMVAEClustering(**estimator_params(args), verbose=0 if args.quiet else 1)
    _say(
        args,
        f"Training {est.variant} (K={est.n_clusters}) on {len(X)} rows x {X.shape[1]} "
        f"columns of {args.file} ...",
    )
    try:
        est.fit(X)
    except ValueError as exc:  # the data refused by the estimator's checks
        raise UsageError(f"{args.file}: {exc}") from None
    if args.save is not None:
        save_weights(est, args.save)
        _say(args, f"wrote {args.save}")
    _write(args, est.predict_proba(X))
    return 0


def run_predict(args: argparse.Namespace) -> int:
    """Assign the rows of ``args.file`` with the model ``args.model``; status 0."""
    check_file(args.out)
    if not Path(args.model).is_file():
        raise UsageError(f"{args.model}: no such file")
    try:
        est = load_weights(args.model, device=args.device)
    except (ValueError, pickle.UnpicklingError) as exc:
        raise UsageError(str(exc).splitlines()[0]) from None
    X = read_table(args.file, args.key)
    try:
        proba = est.predict_proba(X)
    except ValueError as exc:  # other columns than the model's, or values out of range
        raise UsageError(f"{args.file}: {exc}") from None
    _write(args, proba)
    return 0


def _say(args: argparse.Namespace, text: str) -> None:
    if not args.quiet:
        print(text, flush=True)


def _write(args: argparse.Namespace, proba: np.ndarray) -> None:
    """The labels file (when asked), then the summary of cluster sizes."""
    if args.out is not None:
        write_labels(args.out, proba)
        _say(args, f"wrote {args.out}")
    _say(args, size_summary(proba.argmax(axis=1), proba.shape[1], _bar_character()))


def _bar_character() -> str:
    """A full block where standard output can show it, else "#"."""
    try:
        "\u2588".encode(sys.stdout.encoding or "ascii")
    except (UnicodeEncodeError, LookupError):
        return "#"
    return "\u2588"


def size_summary(labels: np.ndarray, n_clusters: int, bar: str = "#", width: int = 30) -> str:
    """A table of the clusters' sizes: each cluster's rows, its percent of all rows and a
    bar (the largest cluster's is ``width`` characters long)."""
    counts = np.bincount(labels, minlength=n_clusters)
    used = np.count_nonzero(counts)
    digits = max(len("rows"), len(str(counts.max())))
    lines = [
        f"{counts.sum()} rows in {used} of {n_clusters} clusters:",
        f"  cluster  {'rows':>{digits}}        %",
    ]
    for k, count in enumerate(counts):
        share = 100 * count / counts.sum()
        length = round(width * count / counts.max())
        lines.append(f"  {k:>7}  {count:>{digits}}  {share:5.1f} %  {bar * length}".rstrip())
    return "\n".join(lines)
