"""``GMVAEClustering``: the scikit-learn clustering estimator (its docstring, ``fit`` and
what it predicts; the rest is shared with ``GMVAEClassifier`` in ``_base``)."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
from sklearn.base import ClusterMixin, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import Tags

from ._base import RESOLVED, _MixtureVAEBase
from ._config import FitConfig, wants_umap_start

__all__ = ["RESOLVED", "GMVAEClustering"]


class GMVAEClustering(ClusterMixin, _MixtureVAEBase):
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
        width clip(n_features, 64, 256); clip(n_features, 64, 512) when the start
        pre-trains an autoencoder: ``init`` "autoencoder" or "umap" with
        ``pretrain_steps`` (``"auto"`` resolved) above 0, or ``pretrain_epochs`` above 0.
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
    init : {"auto", "random", "autoencoder", "umap"}, default="auto"
        How the mixture starts. ``"random"``: from the random weights (the study's).
        ``"autoencoder"``: the encoder and decoder first train as an autoencoder for
        ``pretrain_steps`` steps, a diagonal ``GaussianMixture`` on its codes gives the
        first assignment, which starts the per-cluster prior (``gmvae``, ``vade``) and
        q(y|x); the whole model then trains half as many steps (500 without a
        pre-training) on its ELBO with y observed at that assignment. ``"umap"``: the
        same, the first assignment from a full-covariance ``GaussianMixture`` on a UMAP of
        the codes, or of the rows themselves below 10,000 rows (needs
        ``sk_gmvae[umap]``); q(y|x)'s network (VaDE has none) then trains at a
        thousandth of ``learning_rate``, so that it keeps that assignment. A start
        whose pre-training learned nothing, or whose codes (rows) do not vary, is not
        used, with a warning. Not with
        ``variant="dilokthanakul"`` or ``pretrain_epochs``. ``"auto"``: ``"umap"`` for
        images (values in [0, 1], the Bernoulli likelihood, at least 64 features and
        1,000 training rows) with ``variant="gmvae"``, or ``"vade"`` without
        ``pretrain_epochs``, when umap-learn is installed (else ``"random"``, with a
        warning); ``"random"`` otherwise.
    pretrain_steps : int or "auto", default="auto"
        Optimizer steps of a pre-trained start's autoencoder; 0: no autoencoder, the
        start's Gaussian mixture (``"umap"``: and UMAP) takes the rows themselves, as
        the model sees them (standardized with the Gaussian likelihood). ``"auto"``:
        2,000; for ``"umap"`` 0 below 10,000 training rows, and a step per 14 rows
        from 28,000 rows (0 for the random start).
    max_epochs : int or "auto", default="auto"
        Number of passes over the training data. ``"auto"``: as many as take 2,400
        optimizer steps (at most 600 passes) below 10,000 training rows, 3,600 from
        10,000.
    batch_size : int, default=100
        Rows per optimization step.
    learning_rate : float or "auto", default="auto"
        Step size of the optimizer (skorch's ``lr``). ``"auto"``: 1e-2 x
        sqrt(batch_size / n_samples), within [1e-3, 1e-2] (the study's 1e-3 from
        10,000 training rows with batches of 100); for VaDE a tenth of that after
        the ``"umap"`` start.
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
        (``lr``, ``max_epochs``, ``module__*``, ...) are refused. Parameter groups
        (``optimizer__param_groups``) come before the ``"umap"`` start's group of
        q(y|x)'s network.
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
        umap = wants_umap_start(self.get_params(), *X.shape, config.likelihood)
        if umap and config.init == "random" and not continuing:
            warnings.warn(
                "init='auto' starts images from UMAP (init='umap'), which needs the "
                "package umap-learn: pip install 'sk_gmvae[umap]'. Starting from random "
                "weights instead; set init='random' to silence this warning.",
                UserWarning,
                stacklevel=2,
            )
        config = self._train(X, config, continuing)
        found = len(np.unique(self.labels_))
        if found < config.n_clusters:
            warnings.warn(
                f"Number of distinct clusters ({found}) found smaller than n_clusters "
                f"({config.n_clusters}); the other clusters were left empty.",
                ConvergenceWarning,
                stacklevel=2,
            )
        return self

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        # ClusterMixin, first in the bases, empties the list; transform returns float64
        # whatever the dtype of X, so float64 is preserved.
        tags.transformer_tags.preserves_dtype = ["float64"]
        return tags

    def _cluster_order(self, proba: np.ndarray, config: FitConfig) -> np.ndarray:
        """Clusters by decreasing size on the training data, so that the labels in use
        are 0..m-1 whatever clusters the model left empty."""
        counts = np.bincount(proba.argmax(axis=1), minlength=config.n_clusters)
        return np.argsort(-counts, kind="stable")

    def _fitted_from_proba(self, proba: np.ndarray) -> dict[str, Any]:
        return {"labels_": proba.argmax(axis=1), "weights_": proba.mean(axis=0)}

    def _training_rows(self, fitted: Mapping[str, Any]) -> int:
        return len(fitted["labels_"])

    # ------------------------------------------------------------------ inference

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
