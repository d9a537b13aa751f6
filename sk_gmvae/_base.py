"""What the package's estimators share: ``_MixtureVAEBase`` holds the parameters, their
validation, the training (restarts, callbacks, Ctrl-C), the assembly of a fitted model
and the inference that does not depend on what the estimator predicts.

``GMVAEClustering`` (``_estimator``) and ``GMVAEClassifier`` (``_classifier``) are thin
subclasses: what they predict, and how the fitted clusters are numbered.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping, Sequence
from numbers import Integral, Real
from typing import Any

import numpy as np
import torch
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data
from skorch.history import History

from ._config import (
    FitConfig,
    Supervision,
    check_fitted_domain,
    check_float32_range,
    check_n_samples,
    check_parameters,
    check_trainable,
    check_warm_start,
    hidden_sizes,
    resolve_config,
    resolve_device,
    resolve_likelihood,
    unscaled_warning,
)
from ._inference import (
    elbo,
    float64_copy,
    latent_mean,
    model_posterior,
    posterior,
)
from ._interrupt import ctrl_c
from ._latent import LatentSpaceMixin
from ._model import ALL_VARIANTS
from ._scaling import feature_scaling, log_jacobian, to_model
from ._start import INIT_METHODS
from ._training import (
    RESTART_CRITERIA,
    SEED_MAX,
    Restarts,
    Run,
    build_net,
    keep_best,
    restart_seeds,
    train_run,
)

RESOLVED = {
    "hidden_layer_sizes_": "hidden_layer_sizes",
    "latent_dim_": "latent_dim",
    "binarize_": "binarize",
    "entropy_weight_": "entropy_weight",
    "n_init_": "n_init",
    "trial_epochs_": "trial_epochs",
    "likelihood_": "likelihood",
    "standardize_": "standardize",
    "variant_params_": "variant_params",
}


class _MixtureVAEBase(
    LatentSpaceMixin,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    BaseEstimator,
):
    """The parameters, training, assembly and shared inference of a mixture VAE
    estimator; the subclasses' docstrings document the parameters.

    A subclass defines ``fit`` (which validates its inputs, calls ``_configure`` and
    ``_train``), ``_cluster_order`` (how the fitted clusters are numbered) and
    ``_fitted_from_proba`` (its fitted attributes that depend on the training rows'
    cluster probabilities).
    """

    _parameter_constraints: dict = {
        "n_clusters": [Interval(Integral, 1, None, closed="left")],
        "variant": [StrOptions(set(ALL_VARIANTS))],
        "variant_params": [dict, None],
        "latent_dim": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "hidden_layer_sizes": [
            Interval(Integral, 1, None, closed="left"),
            "array-like",
            StrOptions({"auto"}),
        ],
        "likelihood": [StrOptions({"auto", "bernoulli", "gaussian"})],
        "standardize": ["boolean", StrOptions({"auto"})],
        "binarize": ["boolean", StrOptions({"auto"})],
        "min_variance": [Interval(Real, 0, None, closed="left")],
        "beta": [Interval(Real, 0, None, closed="left")],
        "eta": [Interval(Real, 0, None, closed="left")],
        "entropy_weight": [Interval(Real, None, None, closed="neither"), StrOptions({"auto"})],
        "kl_warmup": [Interval(Real, 0, None, closed="left")],
        "pretrain_epochs": [Interval(Integral, 0, None, closed="left")],
        "init": [StrOptions({"auto", *INIT_METHODS})],
        "pretrain_steps": [Interval(Integral, 0, None, closed="left"), StrOptions({"auto"})],
        "max_epochs": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither"), StrOptions({"auto"})],
        "learning_rate_decay": [Interval(Real, 0, 1, closed="right")],
        "optimizer": [callable],
        "net_params": [dict, None],
        "n_init": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "trial_epochs": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"}), None],
        "restart_selection": [StrOptions(set(RESTART_CRITERIA))],
        "posterior_samples": [Interval(Integral, 0, None, closed="left")],
        "stack_restarts": ["boolean", StrOptions({"auto"})],
        "tol": [Interval(Real, 0, None, closed="left"), None],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither"), None],
        "max_grad_norm": [Interval(Real, 0, None, closed="neither"), None],
        "callbacks": [list, None],
        "device": [str, torch.device],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
    }

    def __init__(
        self,
        n_clusters: int = 10,
        *,
        variant: str = "gmvae",
        variant_params: dict | None = None,
        latent_dim: int | str = "auto",
        hidden_layer_sizes: int | tuple[int, ...] | str = "auto",
        likelihood: str = "auto",
        standardize: bool | str = "auto",
        binarize: bool | str = "auto",
        min_variance: float = 0.0,
        beta: float = 1.0,
        eta: float = 1.0,
        entropy_weight: float | str = "auto",
        kl_warmup: float = 0.0,
        pretrain_epochs: int = 0,
        init: str = "auto",
        pretrain_steps: int | str = "auto",
        max_epochs: int | str = "auto",
        batch_size: int = 100,
        learning_rate: float | str = "auto",
        learning_rate_decay: float = 1.0,
        optimizer: type[torch.optim.Optimizer] = torch.optim.Adam,
        net_params: dict | None = None,
        n_init: int | str = "auto",
        trial_epochs: int | str | None = "auto",
        restart_selection: str = "mutual_information",
        posterior_samples: int = 0,
        stack_restarts: bool | str = "auto",
        tol: float | None = None,
        n_iter_no_change: int = 10,
        validation_fraction: float | None = None,
        max_grad_norm: float | None = None,
        callbacks: list | None = None,
        device: str | torch.device = "auto",
        random_state: int | np.random.RandomState | None = None,
        verbose: int = 0,
        warm_start: bool = False,
    ) -> None:
        self.n_clusters = n_clusters
        self.variant = variant
        self.variant_params = variant_params
        self.latent_dim = latent_dim
        self.hidden_layer_sizes = hidden_layer_sizes
        self.likelihood = likelihood
        self.standardize = standardize
        self.binarize = binarize
        self.min_variance = min_variance
        self.beta = beta
        self.eta = eta
        self.entropy_weight = entropy_weight
        self.kl_warmup = kl_warmup
        self.pretrain_epochs = pretrain_epochs
        self.init = init
        self.pretrain_steps = pretrain_steps
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_decay = learning_rate_decay
        self.optimizer = optimizer
        self.net_params = net_params
        self.n_init = n_init
        self.trial_epochs = trial_epochs
        self.restart_selection = restart_selection
        self.posterior_samples = posterior_samples
        self.stack_restarts = stack_restarts
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.validation_fraction = validation_fraction
        self.max_grad_norm = max_grad_norm
        self.callbacks = callbacks
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.warm_start = warm_start

    # ------------------------------------------------------------------ validation

    def _configure(
        self, X: Any, continuing: bool = False, supervision: Supervision | None = None
    ) -> tuple[np.ndarray, FitConfig]:
        """X validated and the fit's :class:`FitConfig` (every ``"auto"`` resolved for
        X, and for the labels' ``supervision`` when given), or a ``ValueError`` for
        settings that cannot train as asked. Continuing a fit (``warm_start``) keeps the
        fitted device and likelihood."""
        self._validate_params()  # as fit's _fit_context does; for callers outside fit
        check_parameters(self.get_params(), type(self).__name__, self._parameter_constraints)
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=not continuing)
        check_float32_range(X)
        if supervision is None:
            check_n_samples(int(self.n_clusters), len(X))
        if continuing:
            check_warm_start(self)
            check_fitted_domain(X, self.likelihood_)
            device, likelihood = self.device_, self.likelihood_
        else:
            device = str(resolve_device(self.device))
            likelihood = resolve_likelihood(self.likelihood, X)
        config = resolve_config(self.get_params(), *X.shape, likelihood, device, supervision)
        if supervision is not None:  # n_clusters resolved from the classes
            check_n_samples(config.n_clusters, len(X))
        if not continuing:
            check_trainable(config)
        return X, config

    # ------------------------------------------------------------------ training

    def _train(
        self,
        X: np.ndarray,
        config: FitConfig,
        continuing: bool,
        labels: np.ndarray | None = None,
    ) -> FitConfig:
        """Train on the validated rows X with ``config`` (``continuing``: a warm start
        of the fitted net), with their class ``labels`` (-1: unlabelled) when given;
        make the model kept this estimator's fitted model (``_adopt``); warn, or raise
        ``KeyboardInterrupt`` after Ctrl-C, as training ended. Returns the config of
        the fitted model."""
        if not config.standardize and (message := unscaled_warning(X, config.likelihood)):
            warnings.warn(message, UserWarning, stacklevel=4)
        # The model's data: standardized with the training data's statistics (a warm
        # start keeps the fitted ones, in which its networks were trained).
        scaling = self._scaling(X, config, continuing)
        X = to_model(X, *scaling)
        # The training data go to the device once; batches are slices of it.
        X_train = torch.tensor(X, dtype=torch.float32, device=config.device)
        y_train = (
            None if labels is None else torch.tensor(labels, dtype=torch.long, device=config.device)
        )
        # Every random draw of training comes from the nets' own generators, seeded here.
        seeds = restart_seeds(self.random_state, 1 if continuing else config.n_init)
        # Ctrl-C ends the training (skorch stops on KeyboardInterrupt), the model kept
        # is assembled, then KeyboardInterrupt goes on to stop the program.
        with ctrl_c() as interrupt:
            if continuing:
                self.net_.reseed(seeds[0])  # a new random stream for these epochs
                run = train_run(self.net_, X_train, config.max_epochs, y_train)
                runs, scores = [run], [{"seed": seeds[0], "lower_bound": run.final_elbo}]
                config = self._fitted_config(config)
            else:
                restarts = Restarts(config, seeds)
                runs = restarts.fit(X_train, y_train)
                kept, scores = keep_best(runs, config.restart_selection, X)
                run = restarts.finish(runs, kept, X_train, y_train)
            interrupt.training = False  # a first Ctrl-C from here waits for the model
            self._adopt(run, X, config, scores, scaling)
        messages = run.warnings(config.tol, len(runs), len(seeds))
        if interrupt.received:
            stopped = (
                f"{type(self).__name__}.fit stopped by Ctrl-C; it is fitted with the model kept."
            )
            raise KeyboardInterrupt(" ".join([stopped, *messages]))
        for message in messages:
            warnings.warn(message, ConvergenceWarning, stacklevel=4)
        return config

    def _scaling(
        self, X: np.ndarray, config: FitConfig, continuing: bool = False
    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """The ``(mean_, scale_)`` of a fit on the validated X with ``config``: the
        features' means and standard deviations when it standardizes, else
        ``(None, None)``; a warm start keeps the fitted ones."""
        if continuing:
            return self.mean_, self.scale_
        return feature_scaling(X) if config.standardize else (None, None)

    def _fitted_config(self, config: FitConfig) -> FitConfig:
        """``config`` with the resolved values of the fitted model (a warm start keeps
        its architecture and assignment rule)."""
        kept = {f: getattr(self, name) for name, f in RESOLVED.items()}
        return dataclasses.replace(config, **kept)

    def _adopt(
        self,
        run: Run,
        X: np.ndarray,
        config: FitConfig,
        scores: list[dict] | None = None,
        scaling: tuple[np.ndarray | None, np.ndarray | None] = (None, None),
    ) -> _MixtureVAEBase:
        """Make the trained ``run`` (on the rows X of the model's space, with
        ``config`` and the standardization ``scaling``, ``(mean_, scale_)``) this
        estimator's fitted model: number its clusters (``_cluster_order``), and set the
        fitted attributes. ``fit`` ends here, and so does a run trained elsewhere (the
        study's stacked seeds)."""
        net = run.net
        # The model itself is renumbered (its weights and optimizer state), as
        # GaussianMixture's means_ are stored in label order. One pass of inference: new
        # cluster k is old order[k].
        proba = self._proba(X, float64_copy(net.module_))
        order = self._cluster_order(proba, config)
        if order is not None:
            net.permute_clusters(order)
            proba = proba[:, order]
        fitted = {name: getattr(config, field) for name, field in RESOLVED.items()}
        fitted.update(
            self._fitted_from_proba(proba),
            mean_=scaling[0],
            scale_=scaling[1],
            lower_bound_=run.final_elbo,
            n_iter_=run.epochs,
            converged_=run.stopped_early,
            restarts_=scores
            if scores is not None
            else [{"seed": int(net.random_state), "lower_bound": run.final_elbo}],
        )
        return self._assemble(net, fitted)

    def _cluster_order(self, proba: np.ndarray, config: FitConfig) -> np.ndarray | None:
        """How to number the fitted clusters, given the training rows' cluster
        probabilities ``proba``: new cluster k is old ``order[k]``; None keeps them."""
        raise NotImplementedError

    def _fitted_from_proba(self, proba: np.ndarray) -> dict[str, Any]:
        """The fitted attributes that the training rows' cluster probabilities give."""
        raise NotImplementedError

    def _training_rows(self, fitted: Mapping[str, Any]) -> int:
        """The number of training rows, from saved ``fitted`` attributes."""
        raise NotImplementedError

    def _assemble(self, net: Any, fitted: Mapping[str, Any]) -> _MixtureVAEBase:
        """The one assembler of a fitted estimator: the trained ``net`` and the
        ``fitted`` attributes (``labels_``, ``weights_``, the resolved values, ...)
        become this estimator's state, with the float64 copy of the model that
        inference uses. ``fit`` (through ``_adopt``), unpickling and
        ``persistence.load_weights`` all end here."""
        self.__dict__.update(fitted)
        self.net_, self.history_ = net, net.history
        # skorch maps a net pickled on a GPU to the CPU where CUDA is missing; follow it.
        self.device_ = str(net.device)
        self._inference_module_ = float64_copy(net.module_)
        return self

    def _restore(
        self,
        fitted: Mapping[str, Any],
        state_dict: Mapping[str, torch.Tensor],
        history: Sequence[dict],
        seed: int,
        device: str = "auto",
    ) -> _MixtureVAEBase:
        """This (unfitted) estimator as the fitted one whose ``fitted`` attributes,
        module weights, history and training seed were saved (``persistence``): the net
        is rebuilt from the parameters and the saved resolved values, on ``device``."""
        resolved = str(resolve_device(device))
        n_samples, n_features = self._training_rows(fitted), int(fitted["n_features_in_"])
        config = resolve_config(
            self.get_params(), n_samples, n_features, fitted["likelihood_"], resolved
        )
        saved = {field: fitted[name] for name, field in RESOLVED.items() if name in fitted}
        saved["hidden_layer_sizes"] = hidden_sizes(saved["hidden_layer_sizes"])
        net = build_net(dataclasses.replace(config, **saved), seed)
        net.initialize()
        net.module_.load_state_dict(state_dict)
        net.history = History(list(history))
        return self._assemble(net, fitted)

    # ------------------------------------------------------------------ fitted state

    @property
    def lower_bounds_(self) -> np.ndarray:
        """Mean training ELBO (nats) of every epoch, (n_iter_,)."""
        check_is_fitted(self)
        return np.array([row.get("train_elbo", np.nan) for row in self.history_], dtype=float)

    @property
    def _n_features_out(self) -> int:
        """Columns of ``transform``'s output (for ``get_feature_names_out``)."""
        return self.net_.module_.latent_dim

    def __getstate__(self) -> dict:
        state = dict(super().__getstate__())  # object.__getstate__ may give __dict__ itself
        state.pop("_inference_module_", None)  # a copy of net_'s module, rebuilt on load
        return state

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        if "net_" in self.__dict__:
            self._assemble(self.net_, {})

    # ------------------------------------------------------------------ inference

    def _proba(self, X: np.ndarray, module: torch.nn.Module | None = None) -> np.ndarray:
        """The cluster probabilities of every row, in float64: q(y|x), or the model's
        p(y|x) from ``posterior_samples`` importance draws (also when set after fit)."""
        module = module or self._inference_module_
        samples = int(self.posterior_samples)
        if samples:
            return model_posterior(module, X, samples, torch.float64)
        return posterior(module, X, torch.float64)

    def _validate_for_inference(self, X: np.ndarray) -> np.ndarray:
        """X checked as every inference method takes it: fitted, the training's features,
        values within float32's range, and for a Bernoulli model in [0, 1]; returned
        in the model's space (standardized as the training data were)."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        check_fitted_domain(X, self.likelihood_)
        check_float32_range(X)
        return to_model(X, self.mean_, self.scale_)

    def score_samples(self, X: np.ndarray) -> np.ndarray:
        """Per-row evidence lower bound, ELBO(x) <= log p(x), in nats.

        The expectation over z is a one-sample Monte Carlo estimate whose noise is drawn
        from ``random_state`` (the same for every call when it is an int); y is summed
        out exactly. The weights ``beta``, ``eta`` and ``entropy_weight`` do not enter:
        this is the plain ELBO. With ``standardize_`` it bounds the density of X itself:
        the standardized rows' ELBO minus sum(log ``scale_``). For ``"dilokthanakul"``
        it is the ELBO of its mean-field q(y|x) q(z|x) q(w|x), with the KLs of z and w
        analytic and the expectations over (z, w) estimated with its M draws;
        ``cv_weight`` and ``free_bits`` do not enter.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to score.

        Returns
        -------
        elbo : ndarray of shape (n_samples,)
            ELBO of each row (higher is better).
        """
        X = self._validate_for_inference(X)
        seed = check_random_state(self.random_state).randint(SEED_MAX)
        # log p(x) = log p(u) + log |du/dx|, u = (x - mean_) / scale_
        return elbo(self._inference_module_, X, int(seed), torch.float64) + log_jacobian(
            self.scale_
        )

    # Here, not in LatentSpaceMixin: set_output wraps only methods the class defines.
    def transform(self, X: np.ndarray) -> np.ndarray:
        """Latent embedding: the mean of q(z|x), E_q[z|x] = sum_y q(y|x) mu(x, y).

        ``latent_posterior`` gives the per-cluster means mu(x, y) and variances.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to embed.

        Returns
        -------
        Z : ndarray of shape (n_samples, latent_dim)
            Their latent means (float64).
        """
        X = self._validate_for_inference(X)
        return latent_mean(self._inference_module_, X, torch.float64)
