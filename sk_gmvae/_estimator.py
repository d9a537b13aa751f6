"""``GMVAEClustering``: the scikit-learn estimator (parameters, validation, sklearn contract)."""

from __future__ import annotations

import copy
import warnings
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClusterMixin, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from ._inference import elbo, posterior, seeded_normal
from ._model import VARIANTS
from ._training import SEED_MAX, Restarts, hidden_sizes, keep_best, resolve_device, train_run


def _check_positive_int(value: object, name: str) -> None:
    if not isinstance(value, Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")


class GMVAEClustering(ClusterMixin, BaseEstimator):
    """Clustering with a mixture variational autoencoder (M2, modified M2 or GMVAE).

    A deep generative model with a discrete cluster variable y (K values) and a continuous
    latent z is fitted by maximizing the evidence lower bound (ELBO) with y summed out
    exactly; the inference network q(y|x) then clusters the data. The networks are
    PyTorch modules trained by a skorch ``NeuralNet``, on a GPU when one is available.

    Parameters
    ----------
    n_clusters : int, default=10
        Number of clusters K (values of y).
    variant : {"gmvae", "modified_m2", "m2"}, default="gmvae"
        The generative model. ``"gmvae"``: p(y) p(z|y) p(x|z) with a learned Gaussian
        N(mu_y, sigma2_y) per cluster (clusters best). ``"modified_m2"``: p(y) p(z)
        p(x|y, z) whose first decoder layer is ``ReLU(mu_y + sqrt(sigma2_y) * z)``.
        ``"m2"``: Kingma et al.'s M2 without labels, p(y) p(z) p(x|y, z) with decoder input
        ``[z, onehot(y)]``; its q(y|x) is known to collapse to uniform (H(Y|X) -> ln K),
        so it clusters no better than chance. All share the inference networks q(y|x) and
        q(z|x, y).
    latent_dim : int, default=64
        Dimension of z.
    hidden_layer_sizes : int or tuple of int, default=(512, 512)
        Widths of the hidden ReLU layers of every network.
    likelihood : {"auto", "bernoulli", "gaussian"}, default="auto"
        Observation model p(x|.). ``"bernoulli"`` needs X in [0, 1] (e.g. pixel
        intensities); ``"gaussian"`` has a learned variance per feature and suits
        real-valued data such as the output of a ``StandardScaler``. ``"auto"`` takes
        ``"bernoulli"`` when every value of X lies in [0, 1], else ``"gaussian"``.
    binarize : bool, default=True
        With the Bernoulli likelihood, dynamically binarize X during training (each
        value x becomes 1 with probability x, anew at every step). Inference uses X as
        given. Ignored with the Gaussian likelihood.
    min_variance : float, default=0.0
        Floor added to every softplus variance of z (in q(z|x, y) and the per-cluster
        Gaussians). The reference model has none; a small value such as 1e-4 keeps long
        trainings (notably ``"modified_m2"``) from dividing by a vanished variance.
    beta : float, default=1.0
        Weight on the z-term E_q(y|x) KL(q(z|x, y) || p(z|y)) of the loss.
    eta : float, default=1.0
        Weight on KL(q(y|x) || p(y)) in the loss.
    entropy_weight : float, default=0.0
        Weight on the conditional entropy H(q(y|x)) added to the loss (the
        consistency-violation penalty); positive values favour confident assignments.
        With ``beta=eta=1`` and ``entropy_weight=0`` the loss is the plain negative ELBO.
    max_epochs : int, default=100
        Number of passes over the training data.
    precision : {"float32", "tf32", "bfloat16"}, default="float32"
        Arithmetic of training. ``"tf32"``: float32, with matmuls on the TF32 tensor
        cores of NVIDIA GPUs (Ampere and later) during ``fit`` (the global torch setting
        is restored afterwards); the same as ``"float32"`` on the CPU. ``"bfloat16"``:
        the networks' forward pass under bf16 autocast (about twice as fast on CPUs and
        GPUs with bf16 matrix units). Densities, the ELBO, the optimizer and inference
        stay float32/float64 in every mode.
    compile : bool, default=False
        Compile the training forward pass with ``torch.compile`` (skorch's ``compile``;
        the networks themselves stay plain modules). Costs a compilation of tens of
        seconds per fit; pays off in long trainings: on a 2-core CPU an epoch ran 1.3x
        faster with ``precision="bfloat16"`` and no faster in float32.
    cuda_graph : bool or "auto", default="auto"
        On CUDA devices, capture the whole training step (forward, backward, gradient
        clipping, Adam's update, the random draws) as one CUDA graph and replay it, instead
        of launching its ~150 small kernels one by one. ``"auto"``: on CUDA, unless
        ``compile`` is set or a callback acts on the gradients (``on_grad_computed``). No
        effect on the CPU. The graphed step computes the same step as the eager one;
        Adam's step count then lives on the device (``capturable=True``), which may change
        results in the last bits.
    batch_size : int, default=100
        Rows per optimization step.
    learning_rate : float, default=1e-3
        Step size of the Adam optimizer.
    n_init : int, default=1
        Number of trainings from different random initializations; the one with the best
        final ELBO on the training data is kept.
    stack_restarts : bool or "auto", default="auto"
        Train the ``n_init`` restarts at once, as one model with stacked weights (one
        batched matmul per layer for all restarts): the same results as one restart after
        another, up to floating-point rounding. ``"auto"`` stacks on CUDA devices, where
        one restart's small kernels leave the GPU mostly idle, and not on the CPU, where
        stacking measured no faster. Not used with ``tol`` or ``callbacks`` (these act on
        one run at a time). If a restart diverges (a non-finite loss), the stacked training
        stops and the restarts are trained again one after another, each with its own
        divergence guard, so the result is still that of sequential restarts.
    tol : float or None, default=None
        If set, stop early once the training loss has not improved by at least ``tol``
        (nats) for ``n_iter_no_change`` epochs (skorch's ``EarlyStopping``); if it never
        does, a ``ConvergenceWarning`` is issued. ``None`` trains for ``max_epochs``.
    n_iter_no_change : int, default=10
        Patience of the early stopping, in epochs; used when ``tol`` is set.
    max_grad_norm : float or None, default=None
        If set, clip the gradient norm to this value (skorch's ``GradientNormClipping``).
    callbacks : list of skorch callbacks or None, default=None
        Extra skorch callbacks (instances or ``(name, callback)`` pairs), copied for
        each training.
    device : str or torch.device, default="auto"
        Where to train and predict: ``"auto"`` uses CUDA when available, else the CPU.
    random_state : int, RandomState instance or None, default=None
        Seeds the initialization, the data order, the binarization and the latent noise.
        The same integer gives the same clusters; the caller's global torch random state
        is left untouched.
    verbose : int, default=0
        0: silent; 1: a table of the training metrics per epoch; 2: also progress bars.
    warm_start : bool, default=False
        If True and already fitted, ``fit`` continues training the current networks (and
        optimizer state) for ``max_epochs`` more epochs; ``n_init`` is then ignored.

    Attributes
    ----------
    labels_ : ndarray of shape (n_samples,)
        Cluster of each training row, ``argmax_y q(y|x)``.
    n_features_in_ : int
        Number of features seen during ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of the features seen during ``fit``, when X has string feature names.
    n_iter_ : int
        Number of epochs trained (in total, across warm starts).
    lower_bound_ : float
        Mean ELBO per training row (nats) over the last training epoch of the kept
        model (with training's binarization and noise); ``n_init`` keeps the highest.
    converged_ : bool
        True when training stopped because the loss had stopped improving by ``tol``.
    likelihood_ : str
        The observation model used, ``"bernoulli"`` or ``"gaussian"``.
    device_ : str
        The device the networks were trained on and live on.
    history_ : skorch.History
        Per-epoch (and per-batch) training record of the kept model: ``train_loss``,
        ``train_elbo`` (nats), ``train_entropy`` (H(Y|X), nats), ``dur`` (seconds), ...
    net_ : skorch.NeuralNet
        The fitted skorch net; ``net_.module_`` is the PyTorch module.

    See Also
    --------
    sklearn.mixture.GaussianMixture : Gaussian mixture on the raw features.

    Notes
    -----
    Cluster labels are numbered by decreasing size on the training data, so the labels
    that occur are always 0, 1, ..., m - 1. Inference (``predict``, ``predict_proba``,
    ``score_samples``) runs in float64 in bounded-size batches, so a row's result does
    not depend on the other rows passed with it.

    References
    ----------
    D. P. Kingma, D. J. Rezende, S. Mohamed, M. Welling. Semi-supervised learning with
    deep generative models. NeurIPS 2014 (the M2 model).

    N. Dilokthanakul et al. Deep unsupervised clustering with Gaussian mixture
    variational autoencoders. arXiv:1611.02648, 2016.

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
        "variant": [StrOptions(set(VARIANTS))],
        "latent_dim": [Interval(Integral, 1, None, closed="left")],
        "hidden_layer_sizes": [Interval(Integral, 1, None, closed="left"), "array-like"],
        "likelihood": [StrOptions({"auto", "bernoulli", "gaussian"})],
        "binarize": ["boolean"],
        "min_variance": [Interval(Real, 0, None, closed="left")],
        "beta": [Interval(Real, 0, None, closed="left")],
        "eta": [Interval(Real, 0, None, closed="left")],
        "entropy_weight": [Interval(Real, None, None, closed="neither")],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "precision": [StrOptions({"float32", "tf32", "bfloat16"})],
        "compile": ["boolean"],
        "cuda_graph": ["boolean", StrOptions({"auto"})],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "n_init": [Interval(Integral, 1, None, closed="left")],
        "stack_restarts": ["boolean", StrOptions({"auto"})],
        "tol": [Interval(Real, 0, None, closed="left"), None],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
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
        latent_dim: int = 64,
        hidden_layer_sizes: int | tuple[int, ...] = (512, 512),
        likelihood: str = "auto",
        binarize: bool = True,
        min_variance: float = 0.0,
        beta: float = 1.0,
        eta: float = 1.0,
        entropy_weight: float = 0.0,
        max_epochs: int = 100,
        precision: str = "float32",
        compile: bool = False,
        cuda_graph: bool | str = "auto",
        batch_size: int = 100,
        learning_rate: float = 1e-3,
        n_init: int = 1,
        stack_restarts: bool | str = "auto",
        tol: float | None = None,
        n_iter_no_change: int = 10,
        max_grad_norm: float | None = None,
        callbacks: list | None = None,
        device: str | torch.device = "auto",
        random_state: int | np.random.RandomState | None = None,
        verbose: int = 0,
        warm_start: bool = False,
    ) -> None:
        self.n_clusters = n_clusters
        self.variant = variant
        self.latent_dim = latent_dim
        self.hidden_layer_sizes = hidden_layer_sizes
        self.likelihood = likelihood
        self.binarize = binarize
        self.min_variance = min_variance
        self.beta = beta
        self.eta = eta
        self.entropy_weight = entropy_weight
        self.max_epochs = max_epochs
        self.precision = precision
        self.compile = compile
        self.cuda_graph = cuda_graph
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.n_init = n_init
        self.stack_restarts = stack_restarts
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.max_grad_norm = max_grad_norm
        self.callbacks = callbacks
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.warm_start = warm_start

    # ------------------------------------------------------------------ validation

    def _resolve_likelihood(self, X: np.ndarray) -> str:
        in_unit_interval = X.size > 0 and X.min() >= 0.0 and X.max() <= 1.0
        if self.likelihood == "auto":
            return "bernoulli" if in_unit_interval else "gaussian"
        if self.likelihood == "bernoulli" and not in_unit_interval:
            raise ValueError(
                "likelihood='bernoulli' needs every value of X in [0, 1]; scale the data "
                "(e.g. MinMaxScaler) or use likelihood='gaussian'."
            )
        return self.likelihood

    def _check_bernoulli_range(self, X: np.ndarray) -> None:
        if self.likelihood_ == "bernoulli" and X.size and (X.min() < 0.0 or X.max() > 1.0):
            raise ValueError(
                "This model has a Bernoulli likelihood, fitted on data in [0, 1]; the "
                "ELBO of rows outside [0, 1] is undefined."
            )

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
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=not continuing)
        hidden_sizes(self.hidden_layer_sizes)  # fail early, before any training
        if X.size and np.abs(X).max() > np.finfo(np.float32).max:
            raise ValueError(
                "X has values beyond the float32 range (about 3.4e38) in which the networks "
                "are trained; rescale it (e.g. StandardScaler)."
            )
        rng = check_random_state(self.random_state)

        device = self.device_ if continuing else str(resolve_device(self.device))
        if continuing:
            self._check_bernoulli_range(X)
        likelihood = self.likelihood_ if continuing else self._resolve_likelihood(X)
        # The training data go to the device once; batches are slices of it.
        X_train = torch.tensor(X, dtype=torch.float32, device=device)

        # Every random draw of training comes from the nets' own generators, seeded here.
        seed = int(rng.randint(SEED_MAX))
        if continuing:
            epochs_before = len(self.net_.history)
            self.net_.reseed(seed)  # a new random stream for these epochs
            run = train_run(self.net_, X_train, epochs=self.max_epochs)
        else:
            seeds = (seed, *(int(rng.randint(SEED_MAX)) for _ in range(self.n_init - 1)))
            epochs_before = 0
            restarts = Restarts(self.get_params(), X.shape[1], likelihood, device, seeds)
            run = keep_best(restarts.fit(X_train))

        net = run.net
        self.net_, self.history_ = net, net.history
        self.device_, self.likelihood_ = device, likelihood
        self.lower_bound_ = run.final_elbo
        self.n_iter_ = len(net.history)
        self.converged_ = self.tol is not None and self.n_iter_ - epochs_before < self.max_epochs
        if run.diverged:
            warnings.warn(
                f"Training diverged (non-finite loss) {run.guard.recoveries_ + 1} times despite "
                f"lowering the learning rate; stopped after {self.n_iter_} epochs with the "
                "last finite model. Lower learning_rate, set max_grad_norm, or scale X.",
                ConvergenceWarning,
                stacklevel=2,
            )
        elif self.tol is not None and not self.converged_:
            warnings.warn(
                f"Training did not converge within max_epochs={self.max_epochs} "
                f"(tol={self.tol}); increase max_epochs or tol.",
                ConvergenceWarning,
                stacklevel=2,
            )

        # Number clusters by decreasing size on the training data, so that the labels
        # in use are 0..m-1 whatever clusters the model left empty: the model itself is
        # renumbered (its weights and optimizer state), as GaussianMixture's means_ are
        # stored in label order.
        counts = np.bincount(self._trained_labels(X), minlength=self.n_clusters)
        net.permute_clusters(np.argsort(-counts, kind="stable"))
        self._inference_module_ = self._float64_copy()
        self.labels_ = self._proba(X).argmax(axis=1)
        return self

    def __getstate__(self) -> dict:
        state = dict(super().__getstate__())  # object.__getstate__ may give __dict__ itself
        state.pop("_inference_module_", None)  # a copy of net_'s module, rebuilt on load
        return state

    def __setstate__(self, state: dict) -> None:
        order = state.pop("_cluster_order", None)
        state.setdefault("cuda_graph", "auto")  # pickled before the parameter existed
        super().__setstate__(state)
        if "net_" in self.__dict__:
            # skorch maps a net pickled on a GPU to the CPU where CUDA is missing; follow it.
            self.device_ = str(self.net_.device)
            if order is not None:  # pickled before the model was stored in label order
                self.net_.permute_clusters(order)
            self._inference_module_ = self._float64_copy()

    # ------------------------------------------------------------------ inference

    def _float64_copy(self) -> torch.nn.Module:
        """A float64 copy of the fitted module in eval mode, for inference (the fitted one
        stays float32 for training); made once per fit, or on unpickling."""
        return copy.deepcopy(self.net_.module_).to(torch.float64).eval()

    def _trained_labels(self, X: np.ndarray) -> np.ndarray:
        """Labels ``argmax_y q(y|x)`` of the module as trained, before renumbering."""
        return self._proba(X, self._float64_copy()).argmax(axis=1)

    def _proba(self, X: np.ndarray, module: torch.nn.Module | None = None) -> np.ndarray:
        """q(y|x) of every row, in float64."""
        return posterior(module or self._inference_module_, X, torch.float64)

    def _validate_for_inference(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self)
        return validate_data(self, X, dtype=[np.float64, np.float32], reset=False)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Posterior cluster probabilities q(y|x).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to assign.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_clusters)
            q(y|x) for every row; rows sum to 1.
        """
        X = self._validate_for_inference(X)
        return self._proba(X)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Most probable cluster of each row, ``argmax_y q(y|x)``.

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
        this is the plain ELBO.

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
        self._check_bernoulli_range(X)
        seed = check_random_state(self.random_state).randint(SEED_MAX)
        return elbo(self._inference_module_, X, int(seed), torch.float64)

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

    def sample(self, n_samples: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Draw rows from the fitted generative model: y ~ p(y), z ~ p(z|y), x ~ p(x|z, y).

        Parameters
        ----------
        n_samples : int, default=1
            Number of rows to draw.

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
            Drawn rows (binary for the Bernoulli likelihood).
        y : ndarray of shape (n_samples,)
            Their clusters, sorted, as in ``GaussianMixture.sample``.
        """
        check_is_fitted(self)
        _check_positive_int(n_samples, "n_samples")
        rng = check_random_state(self.random_state)
        counts = rng.multinomial(n_samples, np.full(self.n_clusters, 1.0 / self.n_clusters))
        labels = np.repeat(np.arange(self.n_clusters), counts)
        module = self._inference_module_
        with torch.inference_mode():
            shape = (n_samples, module.latent_dim)
            eps, generator = seeded_normal(module, shape, rng.randint(SEED_MAX), torch.float64)
            rows = torch.arange(n_samples, device=eps.device)
            params = module.generate(eps)[rows, torch.as_tensor(labels, device=eps.device)]
            X = module.likelihood.sample(params, generator=generator)
        return X.cpu().numpy(), labels

    def cluster_prototypes(self, n_per_cluster: int = 8) -> np.ndarray:
        """What each cluster generates: decoded means E[x | z, y] for z ~ p(z|y).

        For the GMVAE z is drawn from the cluster's own Gaussian; for M2 and the modified
        M2 from N(0, I), with y entering the decoder. Seeded by ``random_state``.

        Parameters
        ----------
        n_per_cluster : int, default=8
            Draws of z per cluster.

        Returns
        -------
        prototypes : ndarray of shape (n_clusters, n_per_cluster, n_features)
            Row k holds the decoded means of cluster label k (pixel probabilities for
            the Bernoulli likelihood).
        """
        check_is_fitted(self)
        _check_positive_int(n_per_cluster, "n_per_cluster")
        module = self._inference_module_
        seed = check_random_state(self.random_state).randint(SEED_MAX)
        with torch.inference_mode():
            eps, _ = seeded_normal(module, (n_per_cluster, module.latent_dim), seed, torch.float64)
            means = module.likelihood.mean(module.generate(eps))  # (n, K, D)
        return means.transpose(0, 1).cpu().numpy()
