"""The one place where ``GMVAEClustering``'s ``"auto"`` values are decided.

:func:`resolve_config` turns the estimator's parameters and the shape of the training
data into a :class:`FitConfig`: a frozen, typed record of everything a fit builds and
trains with. The nets, the restarts and the estimator read that record; none of them
decides an ``"auto"`` value of its own.

The rules that depend on the size of the data are one table, :data:`PRESETS`: data of
fewer than :data:`LARGE_DATA_ROWS` rows take the ``"small"`` column, larger data the
``"large"`` one. Why each rule is what it is, with the measurement behind it and the
command that repeats it, is on the documentation's "Why the defaults" page
(docs/defaults.md); the code holds only the rules.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from numbers import Integral, Real
from typing import Any

import numpy as np
import torch
from sklearn.utils._param_validation import InvalidParameterError
from skorch.callbacks import Callback, EarlyStopping

from .callbacks._checkpoint import RunCheckpoint


@dataclass(frozen=True)
class DataPreset:
    """The ``"auto"`` values that depend on the size of the training data."""

    binarize: bool  # dynamic binarization of Bernoulli data
    entropy_share: float  # entropy_weight = entropy_share * eta
    n_init: int  # restarts
    steps: int  # optimizer steps of a max_epochs="auto" training
    max_epochs: int | None  # at most this many epochs for those steps (None: no limit)
    stack_on_cpu: bool  # restarts trained at once as one stacked model on the CPU too
    umap_pretrain_steps: int  # the "umap" start's pre-training (0: UMAP of the rows)
    umap_draws: int  # the "umap" start's UMAP embeddings, the most informative kept
    umap_draw_rows: int  # ... or more: as many as embed this many rows in all (0: no more)
    umap_max_draws: int  # ... but at most this many
    umap_settings: Mapping[str, Any]  # UMAP's parameters in the "umap" start, over N2D's


# docs/defaults.md, "The start": optimizer steps of the autoencoder's pre-training of a
# pretrain_steps="auto" start: init="autoencoder", and init="umap" from LARGE_DATA_ROWS
# (below, the preset's umap_pretrain_steps: UMAP of the rows themselves).
AUTO_PRETRAIN_STEPS = 2000
# ... and for init="umap" at least a step per UMAP_PRETRAIN_ROWS_PER_STEP rows (5,000
# steps at 70,000 rows, more than 2,000 from 28,000).
UMAP_PRETRAIN_ROWS_PER_STEP = 14
# docs/defaults.md, "Small and large data".
LARGE_DATA_ROWS = 10_000
# docs/defaults.md, "The start": init="auto" takes the "umap" start for images, data
# of the Bernoulli likelihood with at least IMAGE_FEATURES columns and IMAGE_ROWS rows,
# for the variants it was measured with, when umap-learn is installed.
IMAGE_FEATURES = 64
IMAGE_ROWS = 1000
AUTO_UMAP_VARIANTS = ("gmvae", "vade")
PRESETS = {
    "small": DataPreset(
        binarize=False,
        entropy_share=0.5,
        n_init=4,
        steps=2400,
        max_epochs=600,
        stack_on_cpu=True,
        umap_pretrain_steps=0,
        umap_draws=1,  # each of the n_init restarts draws its own start(s)
        umap_draw_rows=6000,
        umap_max_draws=3,
        umap_settings={},  # N2D's (_start.UMAP_SETTINGS)
    ),
    "large": DataPreset(
        binarize=True,
        entropy_share=0.0,
        n_init=1,
        steps=3600,
        max_epochs=None,
        stack_on_cpu=False,
        umap_pretrain_steps=AUTO_PRETRAIN_STEPS,
        umap_draws=5,
        umap_draw_rows=100_000,
        umap_max_draws=10,
        umap_settings={"n_neighbors": 10, "n_components": 5, "metric": "cosine"},
    ),
}
# docs/defaults.md, "Sizes of the networks": hidden_layer_sizes="auto" is two layers of
# clip(n_features, 64, WIDTH); a start that pre-trains an autoencoder (its codes are
# the first assignment's) gets PRETRAINED_WIDTH.
WIDTH = 256
PRETRAINED_WIDTH = 512
# docs/defaults.md, "Training length": learning_rate="auto" is
# LEARNING_RATE * sqrt(batch_size / n_samples) within LEARNING_RATE_RANGE: the study's
# 1e-3 for batches of 100 from 10,000 rows, larger steps where a batch is more of the data.
LEARNING_RATE = 1e-2
LEARNING_RATE_RANGE = (1e-3, 1e-2)
# docs/defaults.md, "The start": after the "umap" start q(y|x) keeps the (strong) first
# assignment it was fitted to: its own network learns at this fraction of the learning
# rate; VaDE, whose q(y|x) is the prior's responsibility p(y|z), has none, and its
# "auto" learning rate is multiplied by STARTED_LEARNING_RATE_FACTOR instead.
STARTED_ASSIGNMENT_RATE_FACTOR = 0.001
STARTED_LEARNING_RATE_FACTOR = 0.1
# docs/defaults.md, "Restarts": a restart's trial is this fraction of max_epochs.
TRIAL_FRACTION = 1 / 6


# The settings of variant="dilokthanakul" (the estimator's variant_params) and their
# defaults, the authors' (docs/models.md); the criterion takes those in
# CRITERION_VARIANT_PARAMS, the model the others. No other variant has any.
VARIANT_PARAMS: dict[str, dict[str, Any]] = {
    "dilokthanakul": {"mc_samples": 1, "w_dim": "auto", "cv_weight": 1.0, "free_bits": 0.0},
}
CRITERION_VARIANT_PARAMS = ("cv_weight", "free_bits")


def preset(n_samples: int) -> DataPreset:
    """The column of :data:`PRESETS` for training data of ``n_samples`` rows."""
    return PRESETS["small" if n_samples < LARGE_DATA_ROWS else "large"]


@dataclass(frozen=True)
class FitConfig:
    """Everything one fit builds and trains with, every ``"auto"`` resolved.

    The fields are the estimator's parameters of the same names, except:
    ``n_features`` (columns of X), ``likelihood`` and ``device`` (resolved from X and
    the machine), ``standardize`` (whether the Gaussian likelihood's features are
    standardized: :func:`resolve_standardize`), ``trial_epochs`` (None when every
    restart trains ``max_epochs``), ``stack_restarts`` (whether the restarts train at
    once, as one stacked model), ``init`` and ``pretrain_steps`` (the start,
    :func:`resolve_init`), ``start_draws`` and ``start_umap`` (the ``"umap"``
    start's UMAP embeddings and UMAP's parameters, see :func:`resolve_config`) and
    ``variant_params`` (the variant's settings, defaults filled in, ``"auto"``
    resolved: :func:`resolve_variant_params`).
    """

    n_features: int
    n_clusters: int
    variant: str
    likelihood: str
    standardize: bool
    latent_dim: int
    hidden_layer_sizes: tuple[int, ...]
    binarize: bool
    min_variance: float
    beta: float
    eta: float
    entropy_weight: float
    kl_warmup: float
    pretrain_epochs: int
    max_epochs: int
    batch_size: int
    learning_rate: float
    learning_rate_decay: float
    optimizer: Any
    max_grad_norm: float | None
    tol: float | None
    n_iter_no_change: int
    validation_fraction: float | None
    verbose: int
    device: str
    n_init: int
    trial_epochs: int | None
    restart_selection: str
    stack_restarts: bool
    callbacks: tuple = ()
    net_params: Mapping[str, Any] = field(default_factory=dict)
    variant_params: Mapping[str, Any] = field(default_factory=dict)
    init: str = "random"
    pretrain_steps: int = 0
    start_draws: int = 1
    start_umap: Mapping[str, Any] = field(default_factory=dict)
    # Semi-supervised training (GMVAEClassifier; 0 classes: none), see resolve_supervision.
    n_classes: int = 0
    labelled_per_batch: int | None = None
    classification_weight: float = 0.0
    # q(y|x)'s network's learning rate where it differs from learning_rate (None: it
    # does not), see resolve_config.
    assignment_learning_rate: float | None = None

    @property
    def clusters_per_class(self) -> int:
        """Clusters of each class (cluster k belongs to class k // m); 0 without classes."""
        return self.n_clusters // self.n_classes if self.n_classes else 0

    @property
    def checkpoints_runs(self) -> bool:
        """Whether a ``RunCheckpoint`` among the callbacks resumes one run from its files."""
        return has_callback(self.callbacks, RunCheckpoint)


# The device types the networks train and predict on.
DEVICE_TYPES = ("cpu", "cuda")


def _torch_device(device: Any) -> torch.device | None:
    """``device`` (not ``"auto"``) as a torch device of a type in :data:`DEVICE_TYPES`,
    or None when it is not one."""
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        return None
    return resolved if resolved.type in DEVICE_TYPES else None


def resolve_device(device: str | torch.device) -> torch.device:
    """The torch device of the estimator's ``device`` parameter (``"auto"``: CUDA when
    available, else the CPU); a clear ``ValueError`` for an unusable one."""
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = _torch_device(device)
    if resolved is None:
        raise ValueError(
            f"device={device!r} is not a device the networks run on: use 'auto', 'cpu', "
            "'cuda' or 'cuda:N', or a torch.device of type 'cpu' or 'cuda'."
        )
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was requested but CUDA is not available.")
    if resolved.type == "cuda" and (resolved.index or 0) >= torch.cuda.device_count():
        raise ValueError(
            f"device={device!r} was requested but there are only "
            f"{torch.cuda.device_count()} CUDA devices."
        )
    return resolved


def resolve_likelihood(likelihood: str, X: np.ndarray) -> str:
    """The observation model of the estimator's ``likelihood`` parameter for data X
    (``"auto"``: Bernoulli when every value lies in [0, 1], else Gaussian); a
    ``ValueError`` for a Bernoulli likelihood on data outside [0, 1]."""
    in_unit_interval = X.size > 0 and X.min() >= 0.0 and X.max() <= 1.0
    if likelihood == "auto":
        return "bernoulli" if in_unit_interval else "gaussian"
    if likelihood == "bernoulli" and not in_unit_interval:
        raise ValueError(
            "likelihood='bernoulli' needs every value of X in [0, 1]; scale the data "
            "(e.g. MinMaxScaler) or use likelihood='gaussian'."
        )
    return likelihood


def resolve_standardize(standardize: bool | str, likelihood: str) -> bool:
    """Whether the model is fitted to standardized features (the estimator's
    ``standardize``): never with the Bernoulli likelihood, whose data are probabilities
    in [0, 1]; ``"auto"``: always with the Gaussian likelihood (docs/defaults.md,
    "Standardization")."""
    if likelihood != "gaussian":
        return False
    return True if standardize == "auto" else bool(standardize)


def hidden_sizes(hidden_layer_sizes: Any) -> tuple[int, ...]:
    """``hidden_layer_sizes`` (an int or a sequence of ints) as a tuple of positive ints."""
    sizes = np.atleast_1d(np.asarray(hidden_layer_sizes))
    if (
        sizes.ndim != 1
        or sizes.size == 0
        or not np.issubdtype(sizes.dtype, np.integer)
        or (sizes < 1).any()
    ):
        raise ValueError(
            "hidden_layer_sizes must be a positive int or a non-empty sequence of "
            f"positive ints, got {hidden_layer_sizes!r}."
        )
    return tuple(int(s) for s in sizes)


def check_float32_range(X: np.ndarray) -> None:
    """A ``ValueError`` for an X with values beyond the float32 range, in which the
    networks are trained (inference, in float64, would turn them into NaN)."""
    if X.size and np.abs(X).max() > np.finfo(np.float32).max:
        raise ValueError(
            "X has values beyond the float32 range (about 3.4e38) in which the networks "
            "are trained; rescale it (e.g. StandardScaler)."
        )


def check_n_samples(n_clusters: int, n_samples: int) -> None:
    """A ``ValueError`` for fewer training rows than clusters, as scikit-learn's
    mixtures and ``KMeans`` raise: the extra clusters could only stay empty."""
    if n_samples < n_clusters:
        raise ValueError(
            f"Expected n_samples >= n_clusters but got n_clusters = {n_clusters}, "
            f"n_samples = {n_samples}."
        )


def check_fitted_domain(X: np.ndarray, likelihood: str) -> None:
    """A ``ValueError`` for rows outside the domain of a fitted Bernoulli model, [0, 1]."""
    if likelihood == "bernoulli" and X.size and (X.min() < 0.0 or X.max() > 1.0):
        raise ValueError(
            "This model has a Bernoulli likelihood, fitted on data in [0, 1]; rows "
            "outside [0, 1] are outside its domain (their ELBO is undefined). Scale them "
            "as the training data were (e.g. divide pixels by 255)."
        )


def _is_callback(item: Any) -> bool:
    """Whether ``item`` is a skorch callback instance or a ``(name, instance)`` pair."""
    if isinstance(item, tuple):
        return len(item) == 2 and isinstance(item[0], str) and isinstance(item[1], Callback)
    return isinstance(item, Callback)


def check_parameters(
    params: Mapping[str, Any], caller: str, constraints: Mapping[str, list]
) -> None:
    """The checks of the estimator's parameters (its ``get_params()``) that
    scikit-learn's parameter ``constraints`` do not express: bools refused for integer
    parameters (:func:`refuse_bools`), ``net_params`` (:func:`check_net_params`),
    ``hidden_layer_sizes`` as widths (:func:`hidden_sizes`); an ``InvalidParameterError``
    (scikit-learn's message) for an ``optimizer`` that is not a torch optimizer class,
    ``callbacks`` that are not skorch callbacks and a ``device`` that is not a CPU or
    CUDA device; a ``ValueError`` for a positive ``entropy_weight`` of at least ``eta``.
    """
    refuse_bools(params, constraints)
    check_net_params(params["net_params"])
    if not isinstance(params["hidden_layer_sizes"], str):
        hidden_sizes(params["hidden_layer_sizes"])  # fail early, before any training
    optimizer = params["optimizer"]
    if not (isinstance(optimizer, type) and issubclass(optimizer, torch.optim.Optimizer)):
        raise InvalidParameterError(
            f"The 'optimizer' parameter of {caller} must be a subclass of "
            f"torch.optim.Optimizer. Got {optimizer!r} instead."
        )
    callbacks = params["callbacks"]
    if callbacks is not None and not all(_is_callback(cb) for cb in callbacks):
        raise InvalidParameterError(
            f"The 'callbacks' parameter of {caller} must be a list of skorch callbacks "
            f"(Callback instances or (name, Callback) pairs) or None. Got {callbacks!r} "
            "instead."
        )
    device = params["device"]
    if not (isinstance(device, str) and device == "auto") and _torch_device(device) is None:
        raise InvalidParameterError(
            f"The 'device' parameter of {caller} must be 'auto', 'cpu', 'cuda', 'cuda:N' "
            f"or a torch.device of type 'cpu' or 'cuda'. Got {device!r} instead."
        )
    weight, eta = params["entropy_weight"], params["eta"]
    # The loss's y-terms: eta KL(q(y|x) || p(y)) + w H(q(y|x))
    #                   = -(eta - w) H(q(y|x)) - eta E_q[log p(y)],
    # so at w >= eta nothing in the loss rewards spread-out assignments any more.
    if not isinstance(weight, str) and weight > 0 and weight >= eta:
        raise ValueError(
            f"entropy_weight={weight!r} is at least eta={eta!r}: the loss would then "
            "reward putting every row in one cluster. Use an entropy_weight below eta."
        )


def check_warm_start(estimator: Any) -> None:
    """A ``ValueError`` when a parameter that shapes the fitted ``estimator``'s network
    is set to a value other than the one the network was built with: a warm start
    trains that network on and cannot reshape it. ``"auto"`` keeps the fitted value."""
    module = estimator.net_.module_
    built = {  # the parameters that shape the network, as built
        "n_clusters": module.n_clusters,
        "variant": module.variant,
        "latent_dim": estimator.latent_dim_,
        "hidden_layer_sizes": hidden_sizes(estimator.hidden_layer_sizes_),
        "likelihood": estimator.likelihood_,
        "standardize": estimator.standardize_,
        "binarize": estimator.binarize_,
        "min_variance": module.min_variance,
    }
    for name, fitted in built.items():
        value = getattr(estimator, name, "auto")  # a classifier has no n_clusters
        if isinstance(value, str) and value == "auto":
            continue
        if name == "hidden_layer_sizes":
            value = hidden_sizes(value)
        elif name == "standardize":  # as resolved: never with the Bernoulli likelihood
            value = resolve_standardize(value, estimator.likelihood_)
        elif not isinstance(value, str):
            value = type(fitted)(value)  # numpy scalars as the fitted int, float or bool
        if value != fitted:
            raise ValueError(
                f"warm_start=True trains the fitted network on, which was built with "
                f"{name}={fitted!r}; {name}={value!r} needs a new network. Set "
                f"warm_start=False to refit, or {name} back to {fitted!r}."
            )


# skorch settings that an estimator parameter holds: the parameter to set instead.
_HELD_BY_PARAMETERS = {
    "module": "variant",
    "criterion": "beta, eta, entropy_weight",
    "optimizer": "optimizer",
    "lr": "learning_rate",
    "max_epochs": "max_epochs",
    "batch_size": "batch_size",
    "iterator_train": "(fixed)",
    "train_split": "validation_fraction",
    "callbacks": "callbacks",
    "device": "device",
    "verbose": "verbose",
    "random_state": "random_state",
    "warm_start": "warm_start",
}
_HELD_PREFIXES = ("module__", "criterion__", "callbacks__")
# The net's engine switches that net_params may set, and the values each takes.
ENGINE_SWITCHES = {
    "precision": ("float32", "tf32", "bfloat16"),
    "compile": (True, False),
    "cuda_graph": ("auto", True, False),
}


def check_net_params(net_params: Mapping[str, Any] | None) -> None:
    """A ``ValueError`` for a ``net_params`` key that an estimator parameter holds, or an
    engine switch (``precision``, ``compile``, ``cuda_graph``) with a value it does not
    take."""
    for key, value in (net_params or {}).items():
        if not isinstance(key, str):
            raise ValueError(f"net_params keys must be strings, got {key!r}.")
        if key in _HELD_BY_PARAMETERS:
            raise ValueError(
                f"net_params[{key!r}] is set by the estimator's parameter "
                f"{_HELD_BY_PARAMETERS[key]}; set that instead."
            )
        if key.startswith(_HELD_PREFIXES):
            raise ValueError(
                f"net_params[{key!r}]: the module and criterion are configured by the "
                "estimator's parameters (variant, latent_dim, beta, ...)."
            )
        allowed = ENGINE_SWITCHES.get(key)
        if allowed is not None and not any(
            value is a or (isinstance(a, str) and value == a) for a in allowed
        ):
            raise ValueError(f"net_params[{key!r}] must be one of {allowed}, got {value!r}.")


def _is_number(value: Any, kind: type, low: float) -> bool:
    """Whether ``value`` is a ``kind`` (Integral or Real, not a bool) of at least ``low``."""
    number = isinstance(value, kind) and not isinstance(value, bool | np.bool_)
    return number and bool(value >= low)


# Each setting's type, lowest value and, for the error message, the two in words.
_VARIANT_PARAM_RULES = {
    "mc_samples": (Integral, 1, "an int >= 1"),
    "w_dim": (Integral, 1, 'an int >= 1 or "auto"'),
    "cv_weight": (Real, 0, "a number >= 0"),
    "free_bits": (Real, 0, "a number >= 0"),
}


def resolve_variant_params(
    variant: str, variant_params: Mapping[str, Any] | None, latent_dim: int
) -> dict[str, Any]:
    """The settings of ``variant``: ``variant_params`` over the defaults of
    :data:`VARIANT_PARAMS`, with ``w_dim="auto"`` resolved to ``latent_dim``; a
    ``ValueError`` for a key the variant does not take (any key, for a variant without
    settings) or a value out of range."""
    defaults = VARIANT_PARAMS.get(variant, {})
    given = dict(variant_params or {})
    unknown = sorted(map(str, set(given) - set(defaults)))
    if unknown and not defaults:
        raise ValueError(
            f"variant={variant!r} has no settings of its own; variant_params must be "
            f"None or empty, got keys {unknown}."
        )
    if unknown:
        raise ValueError(
            f"variant_params {unknown} are not settings of variant={variant!r}; "
            f"its settings are {sorted(defaults)}."
        )
    resolved = {**defaults, **given}
    for key, value in resolved.items():
        kind, low, what = _VARIANT_PARAM_RULES[key]
        auto = key == "w_dim" and isinstance(value, str) and value == "auto"
        if not (auto or _is_number(value, kind, low)):
            raise ValueError(f"variant_params[{key!r}] must be {what}, got {value!r}.")
    if resolved.get("w_dim") == "auto":
        resolved["w_dim"] = int(latent_dim)
    kinds = {"mc_samples": int, "w_dim": int, "cv_weight": float, "free_bits": float}
    return {key: kinds[key](value) for key, value in resolved.items()}


def unscaled_warning(X: np.ndarray, likelihood: str) -> str | None:
    """Why real-valued X looks unstandardized for the Gaussian likelihood (None if it
    does not): the features' standard deviations differ by more than a factor of 10,
    or a feature's mean lies more than 10 of its standard deviations from 0. The
    networks start at unit scale, and on such data, unless ``standardize`` scales it,
    training can put every row in one cluster (docs/defaults.md, "Standardization")."""
    if likelihood != "gaussian" or len(X) < 2:
        return None
    std = X.std(axis=0)
    varying = std > 0
    if not varying.any():
        return None
    spread = std[varying].max() / std[varying].min()
    offset = (np.abs(X.mean(axis=0))[varying] / std[varying]).max()
    if spread <= 10 and offset <= 10:
        return None
    return (
        f"X does not look standardized (feature standard deviations from "
        f"{std[varying].min():.3g} to {std[varying].max():.3g}) and standardize=False "
        "fits the Gaussian likelihood to it as it is; unscaled data can end in one "
        "cluster. Leave standardize='auto' (or True), or scale X first, e.g. "
        "make_pipeline(StandardScaler(), GMVAEClustering(...))."
    )


def has_callback(callbacks: Sequence | None, kind: type) -> bool:
    """Whether ``callbacks`` (instances or ``(name, instance)`` pairs) hold a ``kind``."""
    return any(isinstance(cb, kind) for _, cb in _named(callbacks or []))


def _trial_epochs(
    trial: int | str | None, max_epochs: int, pretrain_epochs: int, n_init: int, stops_early: bool
) -> int | None:
    """Epochs of each restart's trial before the restarts are ranked, or None when every
    restart trains ``max_epochs``: one restart, ``trial_epochs=None`` or not shorter
    than ``max_epochs``, or early stopping (whose patience would start again with the
    kept run's continuation). ``"auto"``: ``TRIAL_FRACTION`` of ``max_epochs``, rounded
    up, and at least one epoch past VaDE's pretraining."""
    if trial == "auto":
        trial = max(math.ceil(max_epochs * TRIAL_FRACTION), pretrain_epochs + 1)
    if n_init == 1 or trial is None or stops_early or trial >= max_epochs:
        return None
    return int(trial)


def _stacks(
    params: Mapping[str, Any], n_init: int, device: str, on_cpu: bool, init: str = "random"
) -> bool:
    """Whether the ``n_init`` restarts train at once as one stacked model on ``device``.
    Never with early stopping (per restart), user callbacks (which expect a plain net),
    a validation split, VaDE's pretraining or a pre-trained start (one net at a time);
    ``"auto"``: on CUDA, and on the CPU when ``on_cpu`` (the data's preset;
    docs/defaults.md, "Restarts")."""
    if (
        n_init == 1
        or init != "random"
        or params["tol"] is not None
        or params["callbacks"]
        or params["validation_fraction"]
        or params["pretrain_epochs"]
    ):
        return False
    if params["stack_restarts"] == "auto":
        return on_cpu or torch.device(device).type == "cuda"
    return bool(params["stack_restarts"])


def refuse_bools(params: Mapping[str, Any], constraints: Mapping[str, list]) -> None:
    """A ``ValueError`` for a bool given to an integer parameter (sklearn's validation
    takes True for 1); ``constraints`` are the estimator's ``_parameter_constraints``."""
    for name, allowed in constraints.items():
        integral = any(getattr(c, "type", None) is Integral for c in allowed)
        if integral and isinstance(params.get(name), bool | np.bool_):
            raise ValueError(
                f"The {name!r} parameter must be an int, not a bool; got {params[name]!r}."
            )


def _named(callbacks: Sequence) -> list[tuple[str, Any]]:
    """Callbacks given as instances or ``(name, instance)`` pairs, as pairs."""
    return [cb if isinstance(cb, tuple) else (type(cb).__name__, cb) for cb in callbacks]


def wants_umap_start(
    params: Mapping[str, Any], n_samples: int, n_features: int, likelihood: str
) -> bool:
    """Whether the estimator's ``init="auto"`` takes the ``"umap"`` start where
    umap-learn is installed: for images (the Bernoulli likelihood, at least
    ``IMAGE_FEATURES`` columns and ``IMAGE_ROWS`` rows) with a variant of
    ``AUTO_UMAP_VARIANTS`` and no VaDE start of its own (``pretrain_epochs``)."""
    return (
        params.get("init") == "auto"
        and likelihood == "bernoulli"
        and n_features >= IMAGE_FEATURES
        and n_samples >= IMAGE_ROWS
        and params["variant"] in AUTO_UMAP_VARIANTS
        and not params["pretrain_epochs"]
    )


def umap_installed() -> bool:
    """Whether umap-learn can be imported (without importing it)."""
    return importlib.util.find_spec("umap") is not None


def resolve_init(
    init: str, pretrain_steps: int | str, n_samples: int, umap: bool = False
) -> tuple[str, int]:
    """The start method and its pre-training steps of the estimator's ``init`` and
    ``pretrain_steps`` on ``n_samples`` rows. ``init="auto"``: ``"umap"`` where
    ``umap`` (:func:`wants_umap_start`) and umap-learn is installed, else ``"random"``
    (docs/defaults.md, "The start"); ``pretrain_steps="auto"``:
    ``AUTO_PRETRAIN_STEPS`` for the ``"autoencoder"`` start, the data's :data:`PRESETS`
    ``umap_pretrain_steps`` for the ``"umap"`` start (none below ``LARGE_DATA_ROWS``),
    and there at least a step per ``UMAP_PRETRAIN_ROWS_PER_STEP`` rows; 0 for
    ``"random"``."""
    if init == "auto":
        init = "umap" if umap and umap_installed() else "random"
    if init == "random":
        return init, 0
    if pretrain_steps != "auto":
        return init, int(pretrain_steps)
    if init == "umap":
        steps = preset(n_samples).umap_pretrain_steps
        return init, steps and max(steps, n_samples // UMAP_PRETRAIN_ROWS_PER_STEP)
    return init, AUTO_PRETRAIN_STEPS


def check_trainable(config: FitConfig) -> None:
    """A ``ValueError`` for a configuration that cannot train as asked (an
    ``ImportError`` for ``init="umap"`` without umap-learn)."""
    if config.init != "random":
        if config.variant == "dilokthanakul":
            raise ValueError(
                f"init={config.init!r} starts a one-layer mixture VAE; variant="
                "'dilokthanakul' starts from random weights only: set init='random'."
            )
        if config.pretrain_epochs:
            raise ValueError(
                f"init={config.init!r} replaces VaDE's in-training start pretrain_epochs="
                f"{config.pretrain_epochs}: set pretrain_epochs=0 (the pre-training's "
                "length is pretrain_steps)."
            )
        if config.init == "umap":
            from ._start import require_umap

            require_umap()
    if config.pretrain_epochs and config.variant != "vade":
        raise ValueError(
            f"pretrain_epochs is VaDE's initialisation (variant='vade'); variant="
            f"{config.variant!r} has no start of its own to replace (docs/defaults.md). "
            "Set pretrain_epochs=0."
        )
    if config.pretrain_epochs >= config.max_epochs:
        raise ValueError(
            f"pretrain_epochs={config.pretrain_epochs} leaves no epoch of the "
            f"max_epochs={config.max_epochs} to train the mixture; raise "
            "max_epochs or lower pretrain_epochs."
        )
    if config.n_init > 1 and config.checkpoints_runs:
        raise ValueError(
            f"n_init={config.n_init} restarts would share the RunCheckpoint's "
            "files (each resuming the previous one's run); set n_init=1."
        )
    trial = config.trial_epochs
    if trial is not None and trial <= config.pretrain_epochs:
        raise ValueError(
            f"trial_epochs={trial} would rank the restarts during the autoencoder's "
            f"pretraining (pretrain_epochs={config.pretrain_epochs}); raise "
            "trial_epochs, or set it to None (full restarts)."
        )
    if config.validation_fraction is None:
        for name, callback in _named(config.callbacks):
            monitor = getattr(callback, "monitor", None)
            if isinstance(monitor, str) and monitor.startswith("valid_"):
                raise ValueError(
                    f"The callback {name} monitors {monitor!r}, which is recorded "
                    "only with a validation split: set validation_fraction (e.g. "
                    "0.1), or make the callback monitor a train_* score."
                )


@dataclass(frozen=True)
class Supervision:
    """What a classifier's labels tell the config: ``n_classes`` classes and
    ``n_labelled`` labelled rows (the others carry -1)."""

    n_classes: int
    n_labelled: int


def labelled_rows_per_batch(
    n_labelled: int, n_samples: int, batch_size: int, share: float
) -> int | None:
    """Labelled rows in every batch when they are oversampled, or None for plain
    shuffled batches: oversampled, each batch holds round(share * batch_size) of them
    (at least 1, and at least one unlabelled row), when labelled rows are rarer than
    ``share`` among the ``n_samples`` and some rows are unlabelled."""
    if n_labelled >= n_samples or n_labelled / n_samples >= share or batch_size < 2:
        return None
    return int(min(batch_size - 1, max(1, round(share * batch_size))))


def resolve_supervision(
    params: Mapping[str, Any], n_samples: int, n_features: int, supervision: Supervision
) -> dict[str, Any]:
    """The FitConfig fields of semi-supervised training (docs/semi_supervised.md).

    ``n_clusters`` is ``clusters_per_class`` (m) times the classes (cluster k belongs
    to class k // m). Kingma et al.'s objective J + alpha E_l[-log q(y|x)], J the
    ELBO summed over the N rows (y observed on the N_l labelled ones), gives each
    labelled row the loss -ELBO - (alpha / N_l) log q(y|x): alpha / N_l is the
    classification weight. ``alpha="auto"`` makes it ``n_features``, the scale of a
    row's ELBO, which sums over the features (alpha = n_features * N_l; the paper's
    0.1 N learned less in short trainings: docs/defaults.md). A batch's loss is the
    mean of its rows' losses; the labelled rows, oversampled
    (:func:`labelled_rows_per_batch`), count as often as they are drawn.
    """
    n_classes, n_labelled = supervision.n_classes, supervision.n_labelled
    n_clusters = int(params["clusters_per_class"]) * n_classes
    alpha = params["alpha"]
    alpha = float(n_features * n_labelled if alpha == "auto" else alpha)
    return {
        "n_clusters": n_clusters,
        "n_classes": n_classes,
        "labelled_per_batch": labelled_rows_per_batch(
            n_labelled, n_samples, int(params["batch_size"]), float(params["labelled_share"])
        ),
        "classification_weight": alpha / n_labelled,
    }


def resolve_config(
    params: Mapping[str, Any],
    n_samples: int,
    n_features: int,
    likelihood: str,
    device: str,
    supervision: Supervision | None = None,
) -> FitConfig:
    """The :class:`FitConfig` of an estimator with parameters ``params`` (its
    ``get_params()``) on data of ``n_samples`` rows and ``n_features`` columns, with the
    ``likelihood`` and ``device`` already resolved (:func:`resolve_likelihood`,
    :func:`resolve_device`).

    The ``"auto"`` rules (docs/defaults.md):

    - ``hidden_layer_sizes``: two layers of width clip(n_features, 64, ``WIDTH``),
      ``PRETRAINED_WIDTH`` for a start that pre-trains an autoencoder;
    - ``latent_dim``: clip(n_features // 8, 10, 64);
    - ``max_epochs``: enough epochs for the data's :data:`PRESETS` ``steps``, at most
      its ``max_epochs``;
    - ``learning_rate``: ``LEARNING_RATE * sqrt(batch_size / n_samples)``, clipped to
      ``LEARNING_RATE_RANGE``; after the ``"umap"`` start q(y|x)'s own network
      learns at ``STARTED_ASSIGNMENT_RATE_FACTOR`` times the learning rate, auto or
      not (``assignment_learning_rate``), and VaDE, which has no such network (its
      q(y|x) is the prior's responsibility), at ``STARTED_LEARNING_RATE_FACTOR`` times
      the auto rate;
    - ``binarize``, ``n_init``: the data's :data:`PRESETS`
      column; ``entropy_weight``: its ``entropy_share`` times ``eta``; ``n_init`` is 1
      with a ``RunCheckpoint`` (it resumes one run); ``start_draws``: the column's
      ``umap_draws``, or ``umap_draw_rows // n_samples`` where that is more, at most
      its ``umap_max_draws``;
      ``start_umap``: its ``umap_settings``;
    - ``trial_epochs``: see :func:`_trial_epochs`; ``stack_restarts``: :func:`_stacks`
      (on the CPU: the preset's ``stack_on_cpu``);
    - ``init``, ``pretrain_steps``: see :func:`resolve_init`;
    - ``variant_params``: see :func:`resolve_variant_params`;
    - ``standardize``: see :func:`resolve_standardize`;
    - with ``supervision`` (a classifier's labels), ``n_clusters`` (from
      ``clusters_per_class``), ``alpha`` and the batches' labelled rows: see
      :func:`resolve_supervision`; the restarts never stack.
    """
    data = preset(n_samples)
    init, pretrain_steps = resolve_init(
        params.get("init", "random"),
        params.get("pretrain_steps", "auto"),
        n_samples,
        wants_umap_start(params, n_samples, n_features, likelihood),
    )
    if isinstance(params["hidden_layer_sizes"], str):
        pretrains = pretrain_steps > 0 or params["pretrain_epochs"] > 0
        widest = PRETRAINED_WIDTH if pretrains else WIDTH
        width = int(np.clip(n_features, 64, widest))
        hidden = (width, width)
    else:
        hidden = hidden_sizes(params["hidden_layer_sizes"])
    latent_dim = params["latent_dim"]
    if latent_dim == "auto":
        latent_dim = int(np.clip(n_features // 8, 10, 64))
    max_epochs = params["max_epochs"]
    if max_epochs == "auto":
        steps_per_epoch = math.ceil(n_samples / params["batch_size"])
        max_epochs = max(1, math.ceil(data.steps / steps_per_epoch))
        if data.max_epochs is not None:
            max_epochs = min(max_epochs, data.max_epochs)
    learning_rate = params["learning_rate"]
    if learning_rate == "auto":
        # Adam's square-root scaling with the batch's share of the data.
        scaled = LEARNING_RATE * math.sqrt(params["batch_size"] / n_samples)
        learning_rate = float(np.clip(scaled, *LEARNING_RATE_RANGE))
        if init == "umap" and params["variant"] == "vade":
            learning_rate *= STARTED_LEARNING_RATE_FACTOR
    assignment_learning_rate = None
    if init == "umap" and params["variant"] != "vade":
        assignment_learning_rate = float(learning_rate) * STARTED_ASSIGNMENT_RATE_FACTOR
    binarize = data.binarize if params["binarize"] == "auto" else bool(params["binarize"])
    entropy_weight = params["entropy_weight"]
    if entropy_weight == "auto":
        entropy_weight = data.entropy_share * params["eta"]
    callbacks = tuple(params["callbacks"] or ())
    n_init = params["n_init"]
    if n_init == "auto":
        n_init = 1 if has_callback(callbacks, RunCheckpoint) else data.n_init
    stops_early = params["tol"] is not None or has_callback(callbacks, EarlyStopping)
    trial = _trial_epochs(
        params["trial_epochs"], max_epochs, params["pretrain_epochs"], n_init, stops_early
    )
    supervised = (
        {}
        if supervision is None
        else resolve_supervision(params, n_samples, n_features, supervision)
    )
    return FitConfig(
        n_features=int(n_features),
        n_clusters=int(supervised.pop("n_clusters") if supervised else params["n_clusters"]),
        variant=params["variant"],
        likelihood=likelihood,
        standardize=resolve_standardize(params["standardize"], likelihood),
        latent_dim=int(latent_dim),
        hidden_layer_sizes=hidden,
        binarize=binarize,
        min_variance=float(params["min_variance"]),
        beta=float(params["beta"]),
        eta=float(params["eta"]),
        entropy_weight=float(entropy_weight),
        kl_warmup=float(params["kl_warmup"]),
        pretrain_epochs=int(params["pretrain_epochs"]),
        max_epochs=int(max_epochs),
        batch_size=int(params["batch_size"]),
        learning_rate=float(learning_rate),
        learning_rate_decay=float(params["learning_rate_decay"]),
        optimizer=params["optimizer"],
        max_grad_norm=params["max_grad_norm"],
        tol=params["tol"],
        n_iter_no_change=int(params["n_iter_no_change"]),
        validation_fraction=params["validation_fraction"],
        verbose=int(params["verbose"]),
        device=str(device),
        n_init=int(n_init),
        trial_epochs=trial,
        restart_selection=params["restart_selection"],
        stack_restarts=supervision is None
        and _stacks(params, int(n_init), device, data.stack_on_cpu, init),
        callbacks=callbacks,
        net_params=dict(params["net_params"] or {}),
        variant_params=resolve_variant_params(
            params["variant"], params.get("variant_params"), int(latent_dim)
        ),
        init=init,
        pretrain_steps=pretrain_steps,
        start_draws=min(
            max(data.umap_draws, data.umap_draw_rows // n_samples), data.umap_max_draws
        ),
        start_umap=dict(data.umap_settings),
        assignment_learning_rate=assignment_learning_rate,
        **supervised,
    )
