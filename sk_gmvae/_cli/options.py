"""What every ``sk-gmvae`` command shares: the estimator's options (added to a parser by
:func:`add_estimator_options`, turned into ``GMVAEClustering`` keyword arguments by
:func:`estimator_params`), value types that refuse bad values at parse time, and the
checks of output paths made before any training."""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from .._config import resolve_device
from .._estimator import GMVAEClustering
from .._model import VARIANTS
from .._start import INIT_METHODS


class UsageError(Exception):
    """A problem with what the command was given (a path, a file), found before or
    instead of training: ``sk-gmvae`` prints it on one line and exits with status 2."""


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Help with every option's default, and descriptions kept as written."""


def _number(convert: Callable[[str], Any], ok: Callable[[Any], bool], what: str) -> Any:
    """An argparse ``type``: ``convert(text)``, refused with "must be <what>" unless ``ok``
    (text that is no number gets argparse's "invalid int/float value")."""

    def parse(text: str) -> Any:
        value = convert(text)
        if not ok(value):
            raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
        return value

    parse.__name__ = convert.__name__
    return parse


def _or_auto(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse ``type`` taking "auto" or what ``parse`` takes."""

    def parse_or_auto(text: str) -> Any:
        return "auto" if text == "auto" else parse(text)

    parse_or_auto.__name__ = parse.__name__
    return parse_or_auto


positive_int = _number(int, lambda v: v >= 1, "a positive integer")
non_negative_int = _number(int, lambda v: v >= 0, "a non-negative integer")
positive_float = _number(float, lambda v: v > 0, "a positive number")
non_negative_float = _number(float, lambda v: v >= 0, "a non-negative number")
_decay = _number(float, lambda v: 0 < v <= 1, "in (0, 1]")


def torch_device(text: str) -> str:
    """An argparse ``type``: a device name torch knows ("auto", "cpu", "cuda:1", ...)."""
    try:
        resolve_device(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


_AUTO_YES_NO = {"auto": "auto", "yes": True, "no": False}


def auto_yes_no(choice: str) -> bool | str:
    """An ``auto|yes|no`` option's value as the estimator takes it: "auto", True or False."""
    return _AUTO_YES_NO[choice]


class _Widths(argparse.Action):
    """``--hidden 512 512`` -> (512, 512); ``--hidden auto`` -> "auto"."""

    def __call__(self, parser, namespace, values, option_string=None):
        if values == ["auto"]:
            setattr(namespace, self.dest, "auto")
            return
        try:
            widths = tuple(positive_int(v) for v in values)
        except (ValueError, argparse.ArgumentTypeError):
            parser.error(f"argument {option_string}: widths must be positive integers or auto")
        setattr(namespace, self.dest, widths)


# The net's engine switches, set through the estimator's net_params, and their defaults.
_ENGINE_DEFAULTS = {"precision": "float32", "compile": False, "cuda_graph": "auto"}
# Estimator parameter -> (option names, argparse keywords, help). The option's dest is the
# parameter's name; its default the estimator's, or the command's (``add_estimator_options``).
_ESTIMATOR_OPTIONS: dict[str, tuple[Sequence[str], dict[str, Any], str]] = {
    "n_clusters": (["--n-clusters"], {"type": positive_int}, "clusters K"),
    "variant": (["--variant"], {"choices": list(VARIANTS)}, "the generative model"),
    "latent_dim": (
        ["--latent-dim"],
        {"type": _or_auto(positive_int)},
        "dimension of the latent z (auto: from the data's shape)",
    ),
    "hidden_layer_sizes": (
        ["--hidden"],
        {"nargs": "+", "action": _Widths, "metavar": "WIDTH"},
        "widths of the hidden layers of every network (auto: from the data's shape)",
    ),
    "max_epochs": (
        ["--max-epochs", "--epochs"],
        {"type": _or_auto(positive_int)},
        "passes over the training rows (auto: as many as make 2,400 optimizer steps, at most "
        "600 passes, below 10,000 rows; 3,600 steps from 10,000)",
    ),
    "batch_size": (["--batch-size"], {"type": positive_int}, "rows per optimizer step"),
    "learning_rate": (
        ["--learning-rate"],
        {"type": _or_auto(positive_float)},
        "Adam's step size (auto: 1e-2 x sqrt(batch size / rows) within [1e-3, 1e-2])",
    ),
    "learning_rate_decay": (
        ["--learning-rate-decay"],
        {"type": _decay},
        "final learning rate / initial (exponential decay; 1: constant)",
    ),
    "entropy_weight": (
        ["--entropy-weight"],
        {"type": _or_auto(float)},
        "weight of H(q(y|x)) in the loss (0: the plain ELBO; auto: half of eta below "
        "10,000 rows, 0 from 10,000)",
    ),
    "kl_warmup": (
        ["--kl-warmup"],
        {"type": non_negative_float},
        "epochs over which the z-term KL's weight rises from 0 to 1 (0: none)",
    ),
    "pretrain_epochs": (
        ["--pretrain-epochs"],
        {"type": non_negative_int},
        "epochs of VaDE's autoencoder start (variant vade only)",
    ),
    "init": (
        ["--init"],
        {"choices": ["auto", *INIT_METHODS]},
        "how the mixture starts: random weights, or a pre-trained autoencoder's codes "
        "clustered (umap: through UMAP, needs umap-learn) (auto: umap for images, "
        "data in [0, 1] of 64 or more columns and 1,000 or more rows, when umap-learn "
        "is installed; else random)",
    ),
    "pretrain_steps": (
        ["--pretrain-steps"],
        {"type": _or_auto(non_negative_int)},
        "optimizer steps of the autoencoder's pre-training of --init autoencoder|umap, "
        "0 for none: the rows themselves are clustered (auto: 2,000; for umap below "
        "10,000 rows 0, from 28,000 rows one per 14 rows)",
    ),
    "binarize": (
        ["--binarize"],
        {"choices": list(_AUTO_YES_NO)},
        "dynamic binarization of data in [0, 1] (auto: from 10,000 rows)",
    ),
    "standardize": (
        ["--standardize"],
        {"choices": list(_AUTO_YES_NO)},
        "fit real-valued data standardized per column, results in its own units "
        "(auto: yes with the Gaussian likelihood)",
    ),
    "n_init": (
        ["--n-init"],
        {"type": _or_auto(positive_int)},
        "restarts, the most informative one kept (auto: 4 below 10,000 rows, else 1)",
    ),
    "trial_epochs": (
        ["--trial-epochs"],
        {"type": _or_auto(positive_int)},
        "epochs of each restart's trial (auto: a sixth of --max-epochs)",
    ),
    "random_state": (
        ["--seed"],
        {"type": non_negative_int},
        "seed of the training (None: a different one every run)",
    ),
    "device": (["--device"], {"type": torch_device}, "auto, cpu, cuda, cuda:1, ..."),
    "precision": (
        ["--precision"],
        {"choices": ["float32", "tf32", "bfloat16"]},
        "arithmetic of training (net_params' precision)",
    ),
    "compile": (["--compile"], {"action": "store_true"}, "torch.compile the training pass"),
    "cuda_graph": (
        ["--cuda-graph"],
        {"choices": list(_AUTO_YES_NO)},
        "replay the training step as one CUDA graph (auto: on CUDA, unless --compile)",
    ),
}


def add_estimator_options(
    parser: argparse.ArgumentParser,
    defaults: Mapping[str, Any] | None = None,
    skip: Collection[str] = (),
) -> None:
    """Add the ``GMVAEClustering`` options to ``parser``.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The command's parser.
    defaults : mapping, default=None
        Parameter name -> the command's default, where it is not the estimator's own
        (keys that name no option are ignored, so the study's settings can be passed
        whole).
    skip : collection of str, default=()
        Parameters the command sets itself (their options are not added).
    """
    defaults = {**GMVAEClustering().get_params(), **_ENGINE_DEFAULTS, **(defaults or {})}
    group = parser.add_argument_group("estimator options (GMVAEClustering's parameters)")
    for param, (flags, kwargs, help) in _ESTIMATOR_OPTIONS.items():
        if param in skip:
            continue
        default = defaults[param]
        if kwargs.get("choices") == list(_AUTO_YES_NO):  # "auto" | True | False, as option
            default = {value: name for name, value in _AUTO_YES_NO.items()}[default]
        if "type" in kwargs:  # --seed SEED, not --seed RANDOM_STATE
            kwargs = {"metavar": flags[0][2:].upper().replace("-", "_"), **kwargs}
        group.add_argument(*flags, dest=param, default=default, help=help, **kwargs)


def estimator_params(args: argparse.Namespace) -> dict[str, Any]:
    """The ``GMVAEClustering`` keyword arguments of the estimator options in ``args``
    (those :func:`add_estimator_options` added to the command's parser)."""
    params = {p: getattr(args, p) for p in _ESTIMATOR_OPTIONS if hasattr(args, p)}
    for param in ("binarize", "standardize", "cuda_graph"):
        if param in params:
            params[param] = auto_yes_no(params[param])
    engine = {p: params.pop(p) for p in _ENGINE_DEFAULTS if p in params}
    changed = {p: v for p, v in engine.items() if v != _ENGINE_DEFAULTS[p]}
    if changed:
        params["net_params"] = changed
    return params


def check_file(path: str | Path) -> None:
    """Raise :class:`UsageError` unless a file can be written at ``path`` (a new file is
    made, then removed)."""
    path = Path(path)
    existed = path.exists()
    try:
        with open(path, "a"):
            pass
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None
    if not existed:
        path.unlink()


def check_folder(folder: str | Path) -> None:
    """Raise :class:`UsageError` unless ``folder`` can be made and written in."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise UsageError(f"the output folder {folder} is not writable: {exc}") from None
