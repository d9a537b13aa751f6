"""``GMVAEClustering``: the scikit-learn estimator (parameters, validation, sklearn contract)."""

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
    ClusterMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data
from skorch.history import History

from ._config import (
    FitConfig,
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

# The fitted attributes that record a resolved "auto" parameter, and the FitConfig
# field each one holds.
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


class GMVAEClustering(
    LatentSpaceMixin,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    ClusterMixin,
    BaseEstimator,
):
    """Clustering with a mixture variational autoencoder (M2, modified M2, GMVAE, VaDE or
    Dilokthanakul et al.'s two-layer GMVAE).

    A deep generative model with a discrete cluster variable y (K values) and a continuous
    latent z is fitted by maximizing the evidence lower bound (ELBO) with y summed out
    exactly; the inference network q(y|x) then clusters the data. The networks are
    PyTorch modules trained by a skorch ``NeuralNet``, on a GPU when one is available.

    Read more in the user guide (docs/index.md); why each ``"auto"`` value is what it
    is: docs/defaults.md.

    Parameters
    ----------
    n_clusters : int, default=10
        Number of clusters K (values of y).
    variant : {"gmvae", "modified_m2", "m2", "vade", "dilokthanakul"}, default="gmvae"
        The generative model. ``"gmvae"``: p(y) p(z|y) p(x|z) with a learned Gaussian
        N(mu_y, sigma2_y) per cluster. ``"modified_m2"``: p(y) p(z) p(x|y, z) whose first
        decoder layer is ``ReLU(mu_y + sqrt(sigma2_y) * z)``. ``"m2"``: Kingma et al.'s
        M2 without labels, decoder input ``[z, onehot(y)]``; its q(y|x) is known to
        collapse to uniform. These three share the inference networks q(y|x) and
        q(z|x, y). ``"vade"``: VaDE, the GMVAE's generative model with learned mixture
        weights, one Gaussian q(z|x), and q(y|x) the mixture's responsibilities.
        ``"dilokthanakul"``: Dilokthanakul et al.'s two-layer GMVAE, p(w) p(y) p(z|y, w)
        p(x|z) with w ~ N(0, I) moving the clusters' Gaussians, mean-field q(y|x) q(z|x)
        q(w|x), trained with M draws and a consistency term (``variant_params``).
    variant_params : dict or None, default=None
        Settings of the variant's own model; only ``"dilokthanakul"`` has any (any key
        is refused for the others): ``"mc_samples"`` (int, default 1), the number M of
        paired draws (z, w) per row and step; ``"cv_weight"`` (float, default 1.0),
        the weight alpha of the consistency term, the mean entropy of the model's
        posterior p(y|z, w) over the draws (0: none); ``"w_dim"`` (int or ``"auto"``,
        default ``"auto"``: ``latent_dim``), the dimension of w; ``"free_bits"``
        (float, default 0.0), a floor lambda in nats on the y-term, which becomes
        ``eta * max(KL_y, lambda)``, KL_y its mean over the batch (0: none).
    latent_dim : int or "auto", default="auto"
        Dimension of z. ``"auto"``: clip(n_features // 8, 10, 64).
    hidden_layer_sizes : int, tuple of int or "auto", default="auto"
        Widths of the hidden ReLU layers of every network. ``"auto"``: two layers of
        width clip(n_features, 64, 512).
    likelihood : {"auto", "bernoulli", "gaussian"}, default="auto"
        Observation model p(x|.). ``"bernoulli"`` needs X in [0, 1] (e.g. pixel
        intensities); ``"gaussian"`` has a learned variance per feature and suits
        standardized real-valued data. ``"auto"``: ``"bernoulli"`` when every value of
        X lies in [0, 1], else ``"gaussian"``.
    standardize : bool or "auto", default="auto"
        With the Gaussian likelihood, fit the model to each feature minus its mean,
        divided by its standard deviation (``mean_``, ``scale_``; scale 1 for a
        constant feature), as a ``StandardScaler`` in front would, but with the
        results in the data's own units: ``inverse_transform``, ``sample`` and
        ``cluster_prototypes`` return rows in the scale of X, and ``score_samples``
        is a density of X (it includes -sum(log ``scale_``)). Not used with the
        Bernoulli likelihood. ``"auto"``: True with the Gaussian likelihood.
    binarize : bool or "auto", default="auto"
        With the Bernoulli likelihood, dynamically binarize X during training (x_d
        becomes 1 with probability x_d, anew at every step); inference uses X as
        given. ``"auto"``: True from 10,000 training rows, False below.
    min_variance : float, default=0.0
        Floor added to every softplus variance of z (q(z|x, y) and the per-cluster
        Gaussians); a small value such as 1e-4 keeps long trainings from dividing by
        a vanished variance.
    beta : float, default=1.0
        Weight on the z-term E_q(y|x) KL(q(z|x, y) || p(z|y)) of the loss.
    eta : float, default=1.0
        Weight on KL(q(y|x) || p(y)) in the loss.
    entropy_weight : float or "auto", default="auto"
        Weight on the conditional entropy H(q(y|x)) added to the loss; positive values
        favour confident assignments. At ``eta`` or more the ELBO's reward for
        spread-out assignments is gone and every row goes to one cluster, so a positive
        value of at least ``eta`` is refused. With ``beta=eta=1`` and 0 the loss is the
        plain negative ELBO. ``"auto"``: ``eta / 2`` below 10,000 training rows, 0 from
        10,000.
    kl_warmup : float, default=0.0
        Epochs over which the weight of the z-term rises linearly from 0 to 1
        (``KLWarmup``); 0: the loss is the same at every step.
    pretrain_epochs : int, default=0
        VaDE's start (``variant="vade"`` only): the first ``pretrain_epochs`` of the
        ``max_epochs`` train without the z-term, then a diagonal ``GaussianMixture``
        fitted to the codes E[z|x] starts the mixture prior (``GMMPriorInit``). 0: none.
    max_epochs : int or "auto", default="auto"
        Number of passes over the training data. ``"auto"``: as many as take 1,200
        optimizer steps below 10,000 training rows, 3,600 from 10,000.
    batch_size : int, default=100
        Rows per optimization step.
    learning_rate : float or "auto", default="auto"
        Step size of the optimizer (skorch's ``lr``). ``"auto"``: 1e-2 below 10,000
        training rows, 1e-3 (the study's) from 10,000.
    learning_rate_decay : float in (0, 1], default=1.0
        Ratio of the final learning rate to ``learning_rate``: after epoch e the rate is
        ``learning_rate * decay ** (e / max_epochs)``. 1 keeps it constant.
    optimizer : torch optimizer class, default=torch.optim.Adam
        The optimizer (skorch's ``optimizer``); Adam and AdamW run their fused kernel.
    net_params : dict or None, default=None
        Further settings of the skorch net by skorch's names (``optimizer__*``,
        ``iterator_train__*``, ...), and its engine switches: ``"precision"``
        (``"float32"``, ``"tf32"``: TF32 matmuls on NVIDIA GPUs, or ``"bfloat16"``: the
        forward pass under bf16 autocast), ``"compile"`` (``torch.compile`` the training
        forward pass) and ``"cuda_graph"`` (``"auto"``, True or False: replay the whole
        training step as one CUDA graph; ``"auto"`` on CUDA unless ``compile`` is set
        or a callback acts on the gradients). Settings an estimator parameter holds
        (``lr``, ``max_epochs``, ``module__*``, ...) are refused.
    n_init : int or "auto", default="auto"
        Number of trainings from different random initializations; the one ranked best
        by ``restart_selection`` is kept. ``"auto"``: 4 below 10,000 training rows, 1
        from 10,000 rows or with a ``RunCheckpoint`` callback.
    trial_epochs : int, "auto" or None, default="auto"
        With ``n_init > 1``, each restart first trains this many epochs; the one ranked
        best then trains on to ``max_epochs``, as its seed would alone. ``"auto"``:
        ceil(max_epochs / 6), and at least one epoch past ``pretrain_epochs``.
        ``None``, or a value of at least ``max_epochs``: every restart trains
        ``max_epochs``. Not used with ``tol`` or an ``EarlyStopping`` callback.
    restart_selection : {"mutual_information", "entropy", "elbo"}, \
            default="mutual_information"
        How the restarts are ranked on the training data, without labels: the highest
        I(X; Y) = H(Y) - H(Y|X) of q(y|x) (confident assignments to evenly used
        clusters), the lowest H(Y|X), or the highest final training ELBO.
    posterior_samples : int, default=0
        How rows are assigned (``predict_proba``, ``predict``, ``labels_``). 0: by
        q(y|x). n > 0: by the model's posterior p(y|x) = p(y) p(x|y) / p(x), p(x|y)
        estimated from n importance draws of q(z|x, y) (fixed draws); costs n passes
        of the model per row. A number set after ``fit`` applies to the next
        ``predict``.
    stack_restarts : bool or "auto", default="auto"
        Train the ``n_init`` restarts at once as one model with stacked weights (the
        same results as one after another, up to rounding). ``"auto"``: on CUDA
        devices, and on the CPU below 10,000 training rows. Not used with ``tol``,
        ``callbacks``, ``validation_fraction`` or ``pretrain_epochs``.
    tol : float or None, default=None
        If set, stop once the training loss (the validation loss with
        ``validation_fraction``) has not improved by ``tol`` nats for
        ``n_iter_no_change`` epochs (skorch's ``EarlyStopping``). None: train
        ``max_epochs``.
    n_iter_no_change : int, default=10
        Patience of the early stopping, in epochs; used when ``tol`` is set.
    validation_fraction : float or None, default=None
        If set, hold out this fraction of the training rows (skorch's ``ValidSplit``)
        and record ``valid_loss``, ``valid_elbo`` and ``valid_entropy`` every epoch, as
        callbacks that monitor a validation score need. ``labels_`` covers all rows.
    max_grad_norm : float or None, default=None
        If set, clip the gradient norm to this value (skorch's ``GradientNormClipping``).
    callbacks : list of skorch callbacks or None, default=None
        Extra skorch callbacks (instances or ``(name, callback)`` pairs), copied for
        each training.
    device : str or torch.device, default="auto"
        Where to train and predict: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` (or a
        ``torch.device`` of those), or ``"auto"``: CUDA when available, else the CPU.
    random_state : int, RandomState instance or None, default=None
        Seeds the initialization, the data order, the binarization and the latent noise;
        the caller's global torch random state is left untouched.
    verbose : int, default=0
        0: silent. 1: a progress bar per training run. 2: also skorch's table of the
        metrics of every epoch.
    warm_start : bool, default=False
        If True and already fitted, ``fit`` trains the current networks for
        ``max_epochs`` more epochs; ``n_init`` is then ignored. The parameters that
        shape the networks (``n_clusters``, ``variant``, ``latent_dim``,
        ``hidden_layer_sizes``, ``likelihood``, ``binarize``, ``min_variance``) must
        keep their fitted values (``"auto"`` keeps them).

    Attributes
    ----------
    labels_ : ndarray of shape (n_samples,)
        Cluster of each training row, the most probable under ``predict_proba``.
    n_features_in_ : int
        Number of features seen during ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of the features seen during ``fit``, when X has string feature names.
    weights_ : ndarray of shape (n_clusters,)
        Mean of ``predict_proba`` over the training rows (sums to 1; in label order).
    means_ : ndarray of shape (n_clusters, latent_dim)
        Means of the per-cluster Gaussians: p(z|y) for ``"gmvae"`` and ``"vade"``, the
        shifts mu_y of ``"modified_m2"``'s first decoder layer, p(z|y, w = 0) (at the
        mode of p(w)) for ``"dilokthanakul"``. Absent for ``"m2"``.
    covariances_ : ndarray of shape (n_clusters, latent_dim)
        The matching diagonal variances (``GaussianMixture``'s ``"diag"`` layout).
    lower_bounds_ : ndarray of shape (n_iter_,)
        Mean training ELBO (nats) of every epoch of the kept model.
    n_iter_ : int
        Number of complete epochs trained (in total, across warm starts).
    lower_bound_ : float
        Mean training ELBO per row (nats) of the last complete epoch; NaN when none.
    hidden_layer_sizes_, latent_dim_, binarize_, entropy_weight_, n_init_, \
trial_epochs_, variant_params_
        The values used for the parameters of these names (``"auto"`` resolved;
        ``trial_epochs_`` is None when every restart trained ``max_epochs``;
        ``variant_params_`` holds every setting of the variant, defaults included).
    restarts_ : list of dict
        One dict per restart, in training order: its ``seed``, ``lower_bound`` and, with
        ``n_init > 1``, ``conditional_entropy`` and ``mutual_information`` of q(y|x) on
        the training data, as ranked by ``restart_selection``.
    converged_ : bool
        True when early stopping ended training because the loss stopped improving.
    likelihood_ : str
        The observation model used, ``"bernoulli"`` or ``"gaussian"``.
    standardize_ : bool
        Whether the model was fitted to standardized features.
    mean_ : ndarray of shape (n_features_in_,) or None
        Per-feature mean of the training data subtracted before the model (None
        when ``standardize_`` is False).
    scale_ : ndarray of shape (n_features_in_,) or None
        Per-feature standard deviation of the training data the model's input is
        divided by (1 for a constant feature; None when ``standardize_`` is False).
    device_ : str
        The device the networks were trained on and live on.
    history_ : skorch.History
        Per-epoch training record of the kept model: ``train_loss``, ``train_elbo``,
        ``train_entropy`` (H(Y|X)), ``dur``, ...
    net_ : skorch.NeuralNet
        The fitted skorch net; ``net_.module_`` is the PyTorch module.

    See Also
    --------
    sklearn.mixture.GaussianMixture : Gaussian mixture on the raw features.
    sklearn.cluster.KMeans : k-means; its ``transform`` gives distances to the centres.

    Notes
    -----
    Cluster labels are numbered by decreasing size on the training data, so the labels
    that occur are always 0, 1, ..., m - 1. Inference runs in float64 in bounded-size
    batches, so a row's result does not depend on the other rows passed with it.

    ``transform`` maps rows to the latent space and ``inverse_transform`` back, so the
    estimator is also a non-linear dimensionality reduction, usable in a ``Pipeline``
    and with ``set_output(transform="pandas")``.

    Training warns (``ConvergenceWarning``) when it diverged, was stopped by a
    callback, or did not meet ``tol``. ``n_clusters`` larger than the number of rows
    is refused, as in ``GaussianMixture``. ``sample_weight`` and ``partial_fit`` are
    not supported.

    Ctrl-C (SIGINT) during ``fit`` stops the training at once; the fit keeps the model
    reached (the best of the restarts trained so far), sets the fitted attributes, and
    then raises ``KeyboardInterrupt``, so that scripts, loops and ``GridSearchCV`` stop
    too (a second Ctrl-C raises at once). A callback that raises
    ``KeyboardInterrupt``, skorch's way to stop training early, only ends the training,
    with a ``ConvergenceWarning``. Ctrl-C is handled so only in the main thread and
    while SIGINT has Python's default handler; a program with a SIGINT handler of its
    own keeps it.

    References
    ----------
    D. P. Kingma, D. J. Rezende, S. Mohamed, M. Welling. Semi-supervised learning with
    deep generative models. NeurIPS 2014 (the M2 model).

    N. Dilokthanakul et al. Deep unsupervised clustering with Gaussian mixture
    variational autoencoders. arXiv:1611.02648, 2016.

    Z. Jiang, Y. Zheng, H. Tan, B. Tang, H. Zhou. Variational deep embedding: an
    unsupervised and generative approach to clustering. IJCAI 2017 (VaDE).

    R. Shu. Gaussian mixture VAE: lessons in variational inference, generative models,
    and deep nets. Blog post, 2016 (the M2 / modified M2 / GMVAE comparison).

    Examples
    --------
    >>> from sklearn.datasets import make_blobs
    >>> from sk_gmvae import GMVAEClustering
    >>> X, _ = make_blobs(n_samples=200, centers=3, random_state=0)
    >>> est = GMVAEClustering(n_clusters=3, latent_dim=2, hidden_layer_sizes=(32,),
    ...                       max_epochs=5, random_state=0)
    >>> labels = est.fit_predict(X)
    >>> labels.shape, est.predict_proba(X).shape
    ((200,), (200, 3))
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
        "pretrain_steps": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
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

    def _configure(self, X: Any, continuing: bool = False) -> tuple[np.ndarray, FitConfig]:
        """X validated and the fit's :class:`FitConfig` (every ``"auto"`` resolved for
        X), or a ``ValueError`` for settings that cannot train as asked. Continuing a
        fit (``warm_start``) keeps the fitted device and likelihood."""
        self._validate_params()  # as fit's _fit_context does; for callers outside fit
        check_parameters(self.get_params(), type(self).__name__, self._parameter_constraints)
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=not continuing)
        check_float32_range(X)
        check_n_samples(int(self.n_clusters), len(X))
        if continuing:
            check_warm_start(self)
            check_fitted_domain(X, self.likelihood_)
            device, likelihood = self.device_, self.likelihood_
        else:
            device = str(resolve_device(self.device))
            likelihood = resolve_likelihood(self.likelihood, X)
        config = resolve_config(self.get_params(), *X.shape, likelihood, device)
        if not continuing:
            check_trainable(config)
        return X, config

    # ------------------------------------------------------------------ training

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: np.ndarray, y: object = None) -> GMVAEClustering:
        """Train the mixture VAE on X and cluster it.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data.
        y : None
            Ignored; present for API consistency.

        Returns
        -------
        self : GMVAEClustering
            The fitted estimator.
        """
        continuing = self.warm_start and hasattr(self, "net_")
        X, config = self._configure(X, continuing)
        if not config.standardize and (message := unscaled_warning(X, config.likelihood)):
            warnings.warn(message, UserWarning, stacklevel=3)
        # The model's data: standardized with the training data's statistics (a warm
        # start keeps the fitted ones, in which its networks were trained).
        scaling = self._scaling(X, config, continuing)
        X = to_model(X, *scaling)
        # The training data go to the device once; batches are slices of it.
        X_train = torch.tensor(X, dtype=torch.float32, device=config.device)
        # Every random draw of training comes from the nets' own generators, seeded here.
        seeds = restart_seeds(self.random_state, 1 if continuing else config.n_init)
        # Ctrl-C ends the training (skorch stops on KeyboardInterrupt), the model kept
        # is assembled, then KeyboardInterrupt goes on to stop the program.
        with ctrl_c() as interrupt:
            if continuing:
                self.net_.reseed(seeds[0])  # a new random stream for these epochs
                run = train_run(self.net_, X_train, epochs=config.max_epochs)
                runs, scores = [run], [{"seed": seeds[0], "lower_bound": run.final_elbo}]
                config = self._fitted_config(config)
            else:
                restarts = Restarts(config, seeds)
                runs = restarts.fit(X_train)
                kept, scores = keep_best(runs, config.restart_selection, X)
                run = restarts.finish(runs, kept, X_train)
            interrupt.training = False  # a first Ctrl-C from here waits for the model
            self._adopt(run, X, config, scores, scaling)
        messages = run.warnings(config.tol, len(runs), len(seeds))
        if interrupt.received:
            stopped = (
                f"{type(self).__name__}.fit stopped by Ctrl-C; it is fitted with the model kept."
            )
            raise KeyboardInterrupt(" ".join([stopped, *messages]))
        for message in messages:
            warnings.warn(message, ConvergenceWarning, stacklevel=3)
        found = len(np.unique(self.labels_))
        if found < config.n_clusters:
            warnings.warn(
                f"Number of distinct clusters ({found}) found smaller than n_clusters "
                f"({config.n_clusters}); the other clusters were left empty.",
                ConvergenceWarning,
                stacklevel=3,
            )
        return self

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
    ) -> GMVAEClustering:
        """Make the trained ``run`` (on the rows X of the model's space, with
        ``config`` and the standardization ``scaling``, ``(mean_, scale_)``) this
        estimator's fitted model: number its clusters by decreasing size on X, label
        X, and set the fitted attributes. ``fit`` ends here, and so does a run trained
        elsewhere (the study's stacked seeds)."""
        net = run.net
        # Number clusters by decreasing size on the training data, so that the labels
        # in use are 0..m-1 whatever clusters the model left empty: the model itself is
        # renumbered (its weights and optimizer state), as GaussianMixture's means_ are
        # stored in label order. One pass of inference: new cluster k is old order[k].
        proba = self._proba(X, float64_copy(net.module_))
        counts = np.bincount(proba.argmax(axis=1), minlength=config.n_clusters)
        order = np.argsort(-counts, kind="stable")
        net.permute_clusters(order)
        proba = proba[:, order]
        fitted = {name: getattr(config, field) for name, field in RESOLVED.items()}
        fitted.update(
            mean_=scaling[0],
            scale_=scaling[1],
            labels_=proba.argmax(axis=1),
            weights_=proba.mean(axis=0),
            lower_bound_=run.final_elbo,
            n_iter_=run.epochs,
            converged_=run.stopped_early,
            restarts_=scores
            if scores is not None
            else [{"seed": int(net.random_state), "lower_bound": run.final_elbo}],
        )
        return self._assemble(net, fitted)

    def _assemble(self, net: Any, fitted: Mapping[str, Any]) -> GMVAEClustering:
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
    ) -> GMVAEClustering:
        """This (unfitted) estimator as the fitted one whose ``fitted`` attributes,
        module weights, history and training seed were saved (``persistence``): the net
        is rebuilt from the parameters and the saved resolved values, on ``device``."""
        resolved = str(resolve_device(device))
        n_samples, n_features = len(fitted["labels_"]), int(fitted["n_features_in_"])
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

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Posterior cluster probabilities: p(y|x) (``posterior_samples`` > 0) or q(y|x).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to assign.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_clusters)
            The probability of each cluster for every row; rows sum to 1.
        """
        X = self._validate_for_inference(X)
        return self._proba(X)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Most probable cluster of each row, the argmax of ``predict_proba``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to assign.

        Returns
        -------
        labels : ndarray of shape (n_samples,)
            Cluster labels in ``0..n_clusters-1``.
        """
        return self.predict_proba(X).argmax(axis=1)

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

    def score(self, X: np.ndarray, y: object = None) -> float:
        """Mean per-row ELBO (nats; higher is better), for model selection.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to score.
        y : None
            Ignored; present for API consistency.

        Returns
        -------
        score : float
            Mean of ``score_samples(X)``.
        """
        return float(np.mean(self.score_samples(X)))

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
