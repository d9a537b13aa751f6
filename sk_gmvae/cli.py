"""The ``sk-gmvae`` command: its top-level parser and the dispatch to the subcommands,
``cluster`` and ``predict`` for any data file (:mod:`sk_gmvae._cli.cluster`), ``mnist``
and ``reproduce`` for the study (:mod:`sk_gmvae.study.cli`)."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence

from . import __version__
from ._cli import cluster
from ._cli.options import HelpFormatter, UsageError
from .datasets import DatasetUnavailableError
from .study import cli as study_cli

_DESCRIPTION = """\
Cluster data with mixture variational autoencoders (M2, modified M2, GMVAE, VaDE).

commands:
  cluster    train on a data file (CSV, NPY, NPZ, Parquet) and write each row's cluster
  predict    assign the rows of a data file with a model saved by 'cluster --save'
  mnist      train one model on MNIST and print its test-set clustering metrics
  reproduce  the study: every variant x seed, with a figure and a results table

Run 'sk-gmvae COMMAND --help' for a command's options."""


def build_parser() -> argparse.ArgumentParser:
    """The ``sk-gmvae`` argument parser (every command); every option has its default
    and, where it has them, its choices in ``--help``, no option may be abbreviated, and
    bad values are refused before any data are loaded."""
    parser = argparse.ArgumentParser(
        prog="sk-gmvae",
        description=_DESCRIPTION,
        formatter_class=HelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    cluster.add_commands(commands)
    study_cli.add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sk-gmvae`` command: its exit status (2 for a bad option,
    path or data file, found before training; 1 when the study's data are unavailable;
    130, as a shell reports SIGINT, when Ctrl-C stopped it)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.command_line = "sk-gmvae " + " ".join(argv)
    try:
        return args.run(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except DatasetUnavailableError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C: the fit stopped, nothing more is written
        print("\nsk-gmvae: stopped by Ctrl-C", file=sys.stderr)
        return 128 + signal.SIGINT


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
