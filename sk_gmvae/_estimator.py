"""``GMVAEClustering``: the scikit-learn estimator (parameters, validation, sklearn contract)."""

from __future__ import annotations

import warnings
from numbers import Integral, Real

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
from sklearn.utils.validation import check_array, check_is_fitted, column_or_1d, validate_data

from ._inference import (
    decoded_mean,
    elbo,
    float64_copy,
    latent_mean,
    latent_moments,
    model_posterior,
    posterior,
    seeded_normal,
)
from ._model import VARIANTS
from ._training import (
    RESTART_CRITERIA,
    SEED_MAX,
    Restarts,
    Run,
    check_net_params,
    checkpoints_runs,
    hidden_sizes,
    keep_best,
    posterior_draws,
    resolve_device,
    resolve_likelihood,
    resolve_params,
    restart_seeds,
    train_run,
)


def _check_positive_int(value: object, name: str) -> None:
    if isinstance(value, bool | np.bool_) or not isinstance(value, Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")


class GMVAEClustering(
    ClassNamePrefixFeaturesOutMixin, TransformerMixin, ClusterMixin, BaseEstimator
):
    """Clustering with a mixture variational autoencoder (M2, modified M2 or GMVAE).

    A deep generative model with a discrete cluster variable y (K values) and a continuous
    latent z is fitted by maximizing the evidence lower bound (ELBO) with y summed out
    exactly; the inference network q(y|x) then clusters the data. The networks are
    PyTorch modules trained by a skorch ``NeuralNet``, on a GPU when one is available.

    Parameters
    ----------
    n_clusters : int, default=10
        Number of clusters K (values of y).
    variant : {"gmvae", "modified_m2", "m2", "vade"}, default="gmvae"
        The generative model. ``"gmvae"``: p(y) p(z|y) p(x|z) with a learned Gaussian
        N(mu_y, sigma2_y) per cluster (clusters best). ``"modified_m2"``: p(y) p(z)
        p(x|y, z) whose first decoder layer is ``ReLU(mu_y + sqrt(sigma2_y) * z)``.
        ``"m2"``: Kingma et al.'s M2 without labels, p(y) p(z) p(x|y, z) with decoder input
        ``[z, onehot(y)]``; its q(y|x) is known to collapse to uniform (H(Y|X) -> ln K),
        so it clusters no better than chance. These three share the inference networks
        q(y|x) and q(z|x, y). ``"vade"``: VaDE (Jiang et al., 2017), the GMVAE's
        generative model with learned mixture weights p(y) = pi, one Gaussian q(z|x),
        and q(y|x) the mixture's responsibilities p(y|z) (no q(y|x) network).
    latent_dim : int or "auto", default="auto"
        Dimension of z. ``"auto"``: clip(n_features // 8, 10, 64), i.e. 10 for small
        tabular data and sklearn's 8x8 digits, 64 (the study's) for MNIST.
    hidden_layer_sizes : int, tuple of int or "auto", default="auto"
        Widths of the hidden ReLU layers of every network. ``"auto"``: two layers of
        width clip(n_features, 64, 512): 64 for small data (wider measured worse on
        digits: 0.73 at 128, 0.49-0.65 at 512), 512-512 (the study's) for MNIST.
    likelihood : {"auto", "bernoulli", "gaussian"}, default="auto"
        Observation model p(x|.). ``"bernoulli"`` needs X in [0, 1] (e.g. pixel
        intensities); ``"gaussian"`` has a learned variance per feature and suits
        real-valued data such as the output of a ``StandardScaler``. ``"auto"`` takes
        ``"bernoulli"`` when every value of X lies in [0, 1], else ``"gaussian"``.
    binarize : bool or "auto", default="auto"
        With the Bernoulli likelihood, dynamically binarize X during training (each
        value x becomes 1 with probability x, anew at every step). Inference uses X as
        given. Ignored with the Gaussian likelihood. ``"auto"``: from 10,000 rows (as the
        study on MNIST), not below (on digits binarizing cost 0.03-0.09 accuracy).
    min_variance : float, default=0.0
        Floor added to every softplus variance of z (in q(z|x, y) and the per-cluster
        Gaussians). The reference model has none; a small value such as 1e-4 keeps long
        trainings (notably ``"modified_m2"``) from dividing by a vanished variance.
    beta : float, default=1.0
        Weight on the z-term E_q(y|x) KL(q(z|x, y) || p(z|y)) of the loss.
    eta : float, default=1.0
        Weight on KL(q(y|x) || p(y)) in the loss.
    entropy_weight : float or "auto", default="auto"
        Weight on the conditional entropy H(q(y|x)) added to the loss (the
        consistency-violation penalty); positive values favour confident assignments.
        With ``beta=eta=1`` and ``entropy_weight=0`` the loss is the plain negative ELBO
        (the study's setting). ``"auto"``: ``eta / 2`` below 10,000 rows, 0 from
        10,000 rows. Since the loss holds ``eta * KL(q(y|x) || p(y)) = eta * (ln K -
        H)``, the weight halves the ELBO's reward for spread-out assignments; at ``eta``
        or more the reward is gone and every row goes to one cluster. On digits 0, 0.25
        and 0.5 gave 0.76, 0.79 and 0.81 mean accuracy over 3 seeds, 1.0 put everything
        in one cluster; on 10,000 images (10 epochs, K = 10) 0.5 lost instead: MNIST
        0.44 / 0.49 against 0.50 / 0.50 (seeds 0 / 1), Fashion-MNIST 0.39 against 0.51.
    kl_warmup : float, default=0.0
        Epochs of KL warm-up: the weight of the z-term E_q(y|x) KL(q(z|x, y) || p(z|y))
        rises linearly from 0 at the first step to 1 after this many epochs
        (``KLWarmup``), so that training starts close to an autoencoder whose codes the
        mixture then organizes. KL(q(y|x) || p(y)) keeps its weight: without it q(y|x)
        puts every row in one cluster and stays there (measured on Fashion-MNIST). 0 (the
        study's setting): the loss is the same at every step.
    pretrain_epochs : int, default=0
        VaDE's initialisation (Jiang et al., 2017): train the first ``pretrain_epochs``
        of the ``max_epochs`` without the z-term KL (its weight 0), then fit a
        diagonal ``GaussianMixture`` to the codes E[z|x] of the training rows and start
        the per-cluster prior p(z|y) (and VaDE's mixture weights) from it
        (``GMMPriorInit``); any ``kl_warmup`` starts after it. ``variant="vade"`` only:
        there it lifted accuracy on 10,000 Fashion-MNIST images from 0.45 (one seed) to
        0.59 (three seeds; 10 epochs, 2 of them pre-training), whereas the GMVAE, whose
        q(y|x) network does not follow the new prior, fell to 0.37 on Fashion-MNIST and
        to one cluster on digits. 0: none.
    max_epochs : int or "auto", default="auto"
        Number of passes over the training data. ``"auto"``: as many as take 3,600
        optimizer steps (200 epochs of digits' 1,797 rows at ``batch_size=100``, 8 of
        MNIST's 50,000: long MNIST runs need an explicit number, the study trained 200
        and more).
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
        results in the last bits. Optimizers that cannot be captured (without
        ``capturable``: SGD, LBFGS, ...) and callbacks with an ``on_grad_computed`` of
        their own (skorch's ``GradientNormClipping`` excepted; a class may declare
        ``graph_safe = True`` when its hook is tensor arithmetic) keep the step eager. A
        callback's ``on_batch_end`` receives the graph's own output tensors (``loss``,
        ``stats``), which the next step overwrites: clone what it keeps.
    batch_size : int, default=100
        Rows per optimization step.
    learning_rate : float, default=1e-3
        Step size of the optimizer (skorch's ``lr``).
    optimizer : torch optimizer class, default=torch.optim.Adam
        The optimizer (skorch's ``optimizer``); its other arguments go in ``net_params``
        as ``{"optimizer__weight_decay": 1e-4}``. Adam and AdamW run their fused
        kernel unless ``net_params`` says otherwise.
    net_params : dict or None, default=None
        Further settings of the skorch net, by skorch's names: ``optimizer__*``,
        ``iterator_train__*``, ``iterator_valid__*``, ``dataset__*``, ... They are
        passed to ``skorch.NeuralNet`` as given (``GridSearchCV`` can search over whole
        dicts). Settings that an estimator parameter already holds (``lr``,
        ``max_epochs``, ``train_split``, ``module__*``, ``criterion__*``, ...) are
        refused with the parameter to use instead.
    learning_rate_decay : float in (0, 1], default=1.0
        Ratio of the final learning rate to ``learning_rate``: the rate decays
        exponentially, to ``learning_rate * decay ** (e / max_epochs)`` after epoch e
        (skorch's ``LRScheduler`` with ``ExponentialLR``). 1 keeps it constant (the
        study's setting); long runs often end better with a decay such as 0.1.
    n_init : int or "auto", default="auto"
        Number of trainings from different random initializations; the one ranked best
        by ``restart_selection`` is kept. ``"auto"``: 4 below 10,000 rows, where a
        training is cheap and a single one now and then merges two clusters (4
        well-separated blobs: one seed in three; none of six with 4 restarts), 1 from
        10,000 rows (the study's setting) and with a ``RunCheckpoint`` callback (it
        resumes one run; ``n_init > 1`` is refused with it). Ctrl-C during a restart
        ends the fit with the restarts trained so far.
    init_epochs : int, "auto" or None, default="auto"
        With ``n_init > 1``, the restarts are trials of this many epochs; the one ranked
        best then trains on, to ``max_epochs`` (the "short runs" start of mixture
        models, Biernacki et al., 2003): n restarts cost about one training plus n - 1
        trials. The kept model is the one its seed trains alone, uninterrupted (the
        learning-rate decay, KL warm-up, VaDE's start and the divergence guard go on
        across the pause; a callback of yours sees a second ``on_train_begin``, see
        the callbacks page).
        ``"auto"``: a sixth of ``max_epochs`` (at 1/6 the blobs' merged restarts already
        had the lowest mutual information; at 1/18 not yet), and at least one epoch past
        ``pretrain_epochs``. ``None``, or a value of at least ``max_epochs``: every
        restart trains ``max_epochs`` epochs (as ``GaussianMixture``'s ``n_init``), at n
        times the cost. Not used with ``tol`` or an ``EarlyStopping`` callback (each
        restart trains until it stops).
    restart_selection : {"mutual_information", "entropy", "elbo"}, default="mutual_information"
        How the ``n_init`` restarts are ranked, on the training data, without labels.
        ``"elbo"``: the highest final training ELBO (as ``GaussianMixture`` keeps the
        best lower bound). ``"entropy"``: the lowest mean conditional entropy H(Y|X) of
        q(y|x), i.e. the most confident assignments. ``"mutual_information"``: the
        highest I(X; Y) = H(Y) - H(Y|X), confident assignments to evenly used clusters
        (never a run that put every row in one cluster, which has H(Y|X) = 0 too). In
        the reference study's MNIST logs, the restarts' accuracy tracks a low H(Y|X)
        (Spearman 0.89-0.94 at epochs 200-500) and hardly the ELBO (0.37 to -0.03);
        see the docs' results page. Every restart's scores are in ``restarts_``.
    posterior_samples : int, bool or "auto", default="auto"
        How rows are assigned to clusters (``predict_proba``, ``predict``, ``labels_``).
        0: by the inference network q(y|x), in one pass. n > 0: by the model's own
        posterior p(y|x) = p(y) p(x|y) / p(x), with p(x|y) estimated by importance
        sampling from n draws of q(z|x, y) (fixed draws, the same for every row and
        call), as ``GaussianMixture`` assigns by its posterior. q(y|x) is trained to
        approximate it, but shares one network across all rows and is pulled towards
        confident assignments by ``entropy_weight``; where clusters overlap this moves the
        boundary (sklearn's overlapping ``make_blobs``: ARI 0.762 with q(y|x), 0.765
        with 64 draws, over 12 seeds; iris 0.901 and 0.910; level on digits and wine).
        Costs n passes of the model per row. ``"auto"``: 64 below 10,000 training rows,
        0 from 10,000 rows (the study's q(y|x); there n passes cost minutes, and on
        MNIST the posterior assigned worse, 0.46 against 0.49). A number set after
        ``fit`` applies to the next ``predict`` (``labels_`` stay as fitted): e.g.
        ``set_params(posterior_samples=0)`` to predict many rows fast. True: 64 draws
        at any size; False: 0. Restart selection, ``transform`` and
        ``ClusteringMonitor`` use q(y|x).
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
        With ``validation_fraction`` the validation loss is monitored instead.
    n_iter_no_change : int, default=10
        Patience of the early stopping, in epochs; used when ``tol`` is set.
    validation_fraction : float or None, default=None
        If set, hold out this fraction of the training rows (skorch's ``ValidSplit``,
        drawn from ``random_state``) and record ``valid_loss``, ``valid_elbo`` and
        ``valid_entropy`` in the history every epoch, so that skorch's callbacks with
        their defaults (``EarlyStopping()``, ``Checkpoint()``, ``LRScheduler``) work.
        The model is trained on the other rows only; ``labels_`` still covers all rows.
        ``None``: no split (train on every row).
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
        0: silent. 1: one progress bar per training run, over its epochs, with the ELBO
        and the time left (on a terminal; elsewhere, such as a log file, a plain line
        every tenth of the run). 2: also skorch's table of the metrics of every epoch.
    warm_start : bool, default=False
        If True and already fitted, ``fit`` continues training the current networks (and
        optimizer state) for ``max_epochs`` more epochs; ``n_init`` is then ignored.

    Attributes
    ----------
    labels_ : ndarray of shape (n_samples,)
        Cluster of each training row, the most probable under ``predict_proba``.
    n_features_in_ : int
        Number of features seen during ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of the features seen during ``fit``, when X has string feature names.
    weights_ : ndarray of shape (n_clusters,)
        Weight of each cluster on the training data, the mean of ``predict_proba`` over
        the rows (sums to 1; in label order). The model's own prior p(y) is uniform
        (VaDE's is learned).
    means_ : ndarray of shape (n_clusters, latent_dim)
        ``"gmvae"``: the means mu_y of the per-cluster Gaussians p(z|y) in latent space.
        ``"modified_m2"``: the shifts mu_y of its per-cluster table, h = mu_y +
        sqrt(sigma2_y) * z with z ~ N(0, I), so that h|y ~ N(mu_y, sigma2_y). Absent for
        ``"m2"``, which has no per-cluster Gaussian. In label order.
    covariances_ : ndarray of shape (n_clusters, latent_dim)
        The matching diagonal variances sigma2_y (``GaussianMixture``'s ``"diag"``
        layout); absent for ``"m2"``.
    lower_bounds_ : ndarray of shape (n_iter_,)
        Mean training ELBO (nats) of every epoch of the kept model;
        ``lower_bounds_[-1] == lower_bound_``.
    n_iter_ : int
        Number of complete epochs trained (in total, across warm starts). An epoch cut
        short (by Ctrl-C, a callback, or the divergence guard) does not count.
    lower_bound_ : float
        Mean ELBO per training row (nats) over the last complete training epoch of the
        kept model (with training's binarization and noise). NaN when no epoch
        completed.
    hidden_layer_sizes_, latent_dim_, binarize_, entropy_weight_, n_init_
        The values used for the parameters of these names (``"auto"`` resolved from
        the training data's shape).
    init_epochs_ : int or None
        Epochs of each restart's trial, or None when every restart trained
        ``max_epochs`` (or there was one).
    posterior_samples_ : int
        The value of ``posterior_samples`` used for ``labels_`` (0: q(y|x)).
    restarts_ : list of dict
        One dict per restart, in training order: its ``seed``, ``lower_bound`` (last
        training ELBO) and, with ``n_init > 1``, ``conditional_entropy`` and
        ``mutual_information`` of q(y|x) on the training data (nats), all at the end of
        its trial (``init_epochs_``) or training, as ranked by ``restart_selection``;
        ``pandas.DataFrame(est.restarts_)`` makes it a table.
    converged_ : bool
        True only when early stopping (``tol``, or a skorch ``EarlyStopping`` among the
        ``callbacks``) ended training because the loss had
        stopped improving; False when training ran its ``max_epochs``, diverged (the
        divergence guard stopped it) or was interrupted. A ``ConvergenceWarning`` says
        which of the last two happened, that the guard undid epochs and training went on
        with a lower learning rate, or that ``tol`` was never met.
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
    sklearn.cluster.KMeans : k-means; its ``transform`` gives distances to the centres.

    Notes
    -----
    Cluster labels are numbered by decreasing size on the training data, so the labels
    that occur are always 0, 1, ..., m - 1. Inference (``predict``, ``predict_proba``,
    ``score_samples``) runs in float64 in bounded-size batches, so a row's result does
    not depend on the other rows passed with it.

    ``transform`` maps rows to the latent space (the mean of q(z|x), ``latent_dim``
    columns), and ``inverse_transform`` maps latent rows back to the data space, so the
    estimator is also a (non-linear, probabilistic) dimensionality reduction, usable in a
    ``Pipeline`` and with ``set_output(transform="pandas")``.

    To choose ``n_clusters``, compare the held-out ELBO (``score``) across values, e.g.
    with ``GridSearchCV``; see the user guide.

    ``sample_weight`` is not supported. There is no ``partial_fit``: ``warm_start=True``
    continues training for ``max_epochs`` more epochs on the data given to ``fit``.

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
        "latent_dim": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "hidden_layer_sizes": [
            Interval(Integral, 1, None, closed="left"),
            "array-like",
            StrOptions({"auto"}),
        ],
        "likelihood": [StrOptions({"auto", "bernoulli", "gaussian"})],
        "binarize": ["boolean", StrOptions({"auto"})],
        "min_variance": [Interval(Real, 0, None, closed="left")],
        "beta": [Interval(Real, 0, None, closed="left")],
        "eta": [Interval(Real, 0, None, closed="left")],
        "entropy_weight": [Interval(Real, None, None, closed="neither"), StrOptions({"auto"})],
        "kl_warmup": [Interval(Real, 0, None, closed="left")],
        "pretrain_epochs": [Interval(Integral, 0, None, closed="left")],
        "max_epochs": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "precision": [StrOptions({"float32", "tf32", "bfloat16"})],
        "compile": ["boolean"],
        "cuda_graph": ["boolean", StrOptions({"auto"})],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "learning_rate_decay": [Interval(Real, 0, 1, closed="right")],
        "optimizer": [callable],
        "net_params": [dict, None],
        "n_init": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "init_epochs": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"}), None],
        "restart_selection": [StrOptions(set(RESTART_CRITERIA))],
        "posterior_samples": [
            Interval(Integral, 0, None, closed="left"),
            "boolean",
            StrOptions({"auto"}),
        ],
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
        latent_dim: int | str = "auto",
        hidden_layer_sizes: int | tuple[int, ...] | str = "auto",
        likelihood: str = "auto",
        binarize: bool | str = "auto",
        min_variance: float = 0.0,
        beta: float = 1.0,
        eta: float = 1.0,
        entropy_weight: float | str = "auto",
        kl_warmup: float = 0.0,
        pretrain_epochs: int = 0,
        max_epochs: int | str = "auto",
        precision: str = "float32",
        compile: bool = False,
        cuda_graph: bool | str = "auto",
        batch_size: int = 100,
        learning_rate: float = 1e-3,
        learning_rate_decay: float = 1.0,
        optimizer: type[torch.optim.Optimizer] = torch.optim.Adam,
        net_params: dict | None = None,
        n_init: int | str = "auto",
        init_epochs: int | str | None = "auto",
        restart_selection: str = "mutual_information",
        posterior_samples: int | str = "auto",
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
        self.latent_dim = latent_dim
        self.hidden_layer_sizes = hidden_layer_sizes
        self.likelihood = likelihood
        self.binarize = binarize
        self.min_variance = min_variance
        self.beta = beta
        self.eta = eta
        self.entropy_weight = entropy_weight
        self.kl_warmup = kl_warmup
        self.pretrain_epochs = pretrain_epochs
        self.max_epochs = max_epochs
        self.precision = precision
        self.compile = compile
        self.cuda_graph = cuda_graph
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_decay = learning_rate_decay
        self.optimizer = optimizer
        self.net_params = net_params
        self.n_init = n_init
        self.init_epochs = init_epochs
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

    def _resolve_likelihood(self, X: np.ndarray) -> str:
        return resolve_likelihood(self.likelihood, X)

    def _check_bernoulli_range(self, X: np.ndarray) -> None:
        if self.likelihood_ == "bernoulli" and X.size and (X.min() < 0.0 or X.max() > 1.0):
            raise ValueError(
                "This model has a Bernoulli likelihood, fitted on data in [0, 1]; rows "
                "outside [0, 1] are outside its domain (their ELBO is undefined). Scale them "
                "as the training data were (e.g. divide pixels by 255)."
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
        if not isinstance(self.hidden_layer_sizes, str):
            hidden_sizes(self.hidden_layer_sizes)  # fail early, before any training
        check_net_params(self.net_params)
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
        params = resolve_params(self.get_params(), *X.shape)
        seeds = restart_seeds(rng, 1 if continuing else params["n_init"])
        if continuing:
            self.net_.reseed(seeds[0])  # a new random stream for these epochs
            run = train_run(self.net_, X_train, epochs=params["max_epochs"])
            runs = [run]
            self.restarts_ = [{"seed": seeds[0], "lower_bound": run.final_elbo}]
        else:
            restarts = Restarts(params, X.shape[1], likelihood, device, seeds)
            trial = restarts.trial_epochs
            self._check_training(params, trial)
            self.hidden_layer_sizes_ = params["hidden_layer_sizes"]
            self.latent_dim_, self.binarize_ = params["latent_dim"], params["binarize"]
            self.entropy_weight_, self.n_init_ = params["entropy_weight"], params["n_init"]
            self.init_epochs_ = trial
            runs = self._train(restarts, X_train)
            run, self.restarts_ = keep_best(runs, self.restart_selection, X)
            run = restarts.finish(runs, run, X_train)

        net = run.net
        self.net_, self.history_ = net, net.history
        self.posterior_samples_ = params["posterior_samples"]  # for the labels below
        self.device_, self.likelihood_ = device, likelihood
        self.lower_bound_ = run.final_elbo
        self.n_iter_ = run.epochs
        self.converged_ = run.stopped_early
        self._warn_about(run, len(runs), len(seeds))

        # Number clusters by decreasing size on the training data, so that the labels
        # in use are 0..m-1 whatever clusters the model left empty: the model itself is
        # renumbered (its weights and optimizer state), as GaussianMixture's means_ are
        # stored in label order. One pass of inference: new cluster k is old order[k].
        proba = self._proba(X, float64_copy(net.module_))
        counts = np.bincount(proba.argmax(axis=1), minlength=self.n_clusters)
        order = np.argsort(-counts, kind="stable")
        net.permute_clusters(order)
        self._inference_module_ = float64_copy(net.module_)
        proba = proba[:, order]
        self.labels_ = proba.argmax(axis=1)
        self.weights_ = proba.mean(axis=0)
        return self

    def _check_training(self, params: dict, trial: int | None) -> None:
        """``ValueError`` for settings that cannot train as asked (``params`` resolved,
        ``trial`` the restarts' trial length or None)."""
        if self.pretrain_epochs and self.variant != "vade":
            raise ValueError(
                f"pretrain_epochs is VaDE's initialisation (variant='vade'); with "
                f"variant={self.variant!r} it measured worse (see the parameter's "
                "documentation). Set pretrain_epochs=0."
            )
        if self.pretrain_epochs >= params["max_epochs"]:
            raise ValueError(
                f"pretrain_epochs={self.pretrain_epochs} leaves no epoch of the "
                f"max_epochs={params['max_epochs']} to train the mixture; raise "
                "max_epochs or lower pretrain_epochs."
            )
        if params["n_init"] > 1 and checkpoints_runs(params):
            raise ValueError(
                f"n_init={params['n_init']} restarts would share the RunCheckpoint's "
                "files (each resuming the previous one's run); set n_init=1."
            )
        if trial is not None and trial <= self.pretrain_epochs:
            raise ValueError(
                f"init_epochs={trial} would rank the restarts during the autoencoder's "
                f"pretraining (pretrain_epochs={self.pretrain_epochs}); raise "
                "init_epochs, or set it to None (full restarts)."
            )

    def _train(self, restarts: Restarts, X: torch.Tensor) -> list[Run]:
        """The fit's training runs, one per restart (a hook: ``Restarts.fit``)."""
        return restarts.fit(X)

    def _warn_about(self, run: Run, trained: int = 1, restarts: int = 1) -> None:
        """A ``ConvergenceWarning`` saying how training ended when it did not simply run
        its epochs (or stop early by ``tol``, as asked), and one when an interruption
        left ``trained`` of the ``restarts`` trained while the kept ``run`` ended."""
        if trained < restarts and not run.interrupted:
            warnings.warn(
                f"Training was interrupted in restart {trained} of {restarts}; the model "
                "is the best of the restarts trained before.",
                ConvergenceWarning,
                stacklevel=3,
            )
        undone = f"{run.divergences} epoch" + ("s" if run.divergences != 1 else "")
        if run.diverged:
            kept = (
                f"the last finite model, after {run.epochs} complete epochs"
                if run.epochs
                else "no complete epoch: the model is its initialization"
            )
            message = (
                f"Training diverged (non-finite loss) in {undone}, undone, despite lowering "
                f"the learning rate; stopped with {kept}. Lower "
                "learning_rate, set max_grad_norm, or scale X."
            )
        elif run.interrupted:
            message = (
                f"Training was interrupted after {run.epochs - run.epochs_before} of "
                f"{run.epochs_asked} epochs; the model is the one reached then."
            )
        elif run.recovered:
            factor = run.guard.lr_factor**run.guard.recoveries_
            done = run.epochs - run.epochs_before
            message = (
                f"Training diverged (non-finite loss) in {undone}, undone; it went on with "
                f"the learning rate multiplied by {factor:.3g}"
                + ("" if run.stopped_early else f" and completed {done} of {run.epochs_asked}")
                + ". Lower learning_rate, set max_grad_norm, or scale X."
            )
        elif self.tol is not None and not run.stopped_early:
            message = (
                f"Training did not converge within max_epochs={self.max_epochs} "
                f"(tol={self.tol}); increase max_epochs or tol."
            )
        else:
            return
        warnings.warn(message, ConvergenceWarning, stacklevel=3)

    # ------------------------------------------------------------------ the mixture

    def _cluster_gaussians(self) -> tuple[np.ndarray, np.ndarray]:
        """(K, L) means and variances of the per-cluster Gaussians, in label order."""
        check_is_fitted(self)
        module = self._inference_module_
        with torch.no_grad():
            gaussians = module.cluster_gaussians()
        if gaussians is None:
            raise AttributeError(
                f"variant={module.variant!r} has no per-cluster Gaussians (means_, "
                "covariances_); 'gmvae', 'vade' and 'modified_m2' have them."
            )
        mean, var = gaussians
        return mean.cpu().numpy(), var.cpu().numpy()

    @property
    def means_(self) -> np.ndarray:
        """Per-cluster means, (n_clusters, latent_dim); see the class docstring."""
        return self._cluster_gaussians()[0]

    @property
    def covariances_(self) -> np.ndarray:
        """Per-cluster diagonal variances, (n_clusters, latent_dim)."""
        return self._cluster_gaussians()[1]

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
        order = state.pop("_cluster_order", None)
        # Pickled before these parameters existed.
        state.setdefault("cuda_graph", "auto")
        state.setdefault("kl_warmup", 0.0)
        state.setdefault("pretrain_epochs", 0)
        state.setdefault("init_epochs", None)  # restarts then trained max_epochs each
        state.setdefault("posterior_samples", 0)  # rows were assigned by q(y|x)
        if "net_" in state:  # fitted before n_init_ and init_epochs_ were recorded
            state.setdefault("n_init_", len(state.get("restarts_", [None])))
            state.setdefault("init_epochs_", None)
            state.setdefault("posterior_samples_", 0)
        super().__setstate__(state)
        if "net_" in self.__dict__:
            # skorch maps a net pickled on a GPU to the CPU where CUDA is missing; follow it.
            self.device_ = str(self.net_.device)
            if order is not None:  # pickled before the model was stored in label order
                self.net_.permute_clusters(order)
            self._inference_module_ = float64_copy(self.net_.module_)

    # ------------------------------------------------------------------ inference

    def _proba(self, X: np.ndarray, module: torch.nn.Module | None = None) -> np.ndarray:
        """The cluster probabilities of every row, in float64: q(y|x), or the model's
        p(y|x) from importance draws: ``posterior_samples`` if set to a number (also
        after fit), else as resolved in fit."""
        module = module or self._inference_module_
        auto = self.posterior_samples == "auto"
        samples = self.posterior_samples_ if auto else posterior_draws(self.posterior_samples, 0)
        if samples:
            return model_posterior(module, X, samples, torch.float64)
        return posterior(module, X, torch.float64)

    def _validate_for_inference(self, X: np.ndarray) -> np.ndarray:
        """X checked as every inference method takes it: fitted, the training's features,
        and for a Bernoulli model values in [0, 1]."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        self._check_bernoulli_range(X)
        return X

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

        p(y) is uniform, except for ``variant="vade"`` (its learned weights).

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
        with torch.inference_mode():
            X, y = self._inference_module_.sample(n_samples, rng)
        return X.cpu().numpy(), y.cpu().numpy()

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

    def latent_posterior(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The Gaussians q(z|x, y) of every row and cluster.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to embed.

        Returns
        -------
        means : ndarray of shape (n_samples, n_clusters, latent_dim)
            mu(x, y), in label order.
        variances : ndarray of shape (n_samples, n_clusters, latent_dim)
            The diagonal variances sigma2(x, y).
        """
        X = self._validate_for_inference(X)
        moments = latent_moments(self._inference_module_, X, torch.float64)
        means, variances = np.split(moments, 2, axis=-1)
        return means, variances

    def inverse_transform(self, X: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
        """Map latent rows back to the data space: the decoder's mean E[x | z].

        Parameters
        ----------
        X : array-like of shape (n_samples, latent_dim)
            Latent rows z, e.g. the output of ``transform``.
        labels : array-like of shape (n_samples,) or None, default=None
            Clusters y to decode with, giving E[x | z, y]. Without them y is averaged
            out: the GMVAE's decoder does not depend on y, and in M2 and the modified M2
            z and y are independent a priori, so E[x|z] = (1/K) sum_y E[x | z, y].

        Returns
        -------
        X_decoded : ndarray of shape (n_samples, n_features)
            Decoded means (pixel probabilities for the Bernoulli likelihood).
        """
        check_is_fitted(self)
        module = self._inference_module_
        Z = check_array(X, dtype=np.float64)
        if Z.shape[1] != module.latent_dim:
            raise ValueError(
                f"X has {Z.shape[1]} columns but the latent space has "
                f"latent_dim={module.latent_dim}."
            )
        if labels is not None:
            labels = column_or_1d(labels)
            if len(labels) != len(Z) or not np.isin(labels, np.arange(self.n_clusters)).all():
                raise ValueError(
                    f"labels must hold one cluster in 0..{self.n_clusters - 1} per row of X."
                )
        return decoded_mean(module, Z, labels, torch.float64)

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
