"""``GMVAEClassifier``: semi-supervised classification with a mixture VAE (Kingma et
al.'s M2 and its relatives), for data of which only some rows are labelled."""

from __future__ import annotations

from collections.abc import Mapping
from numbers import Integral, Real
from typing import Any

import numpy as np
import torch
from sklearn.base import ClassifierMixin, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from ._base import _MixtureVAEBase
from ._config import FitConfig, Supervision
from ._latent import check_positive_int
from ._model import VARIANTS
from ._scaling import to_data

# SelfTrainingClassifier's error for string-typed y, whose unlabelled rows cannot carry -1.
STRING_TARGETS = (
    "y has dtype string. If you wish to predict on string targets, use dtype object, "
    "and use -1 as the label for unlabeled samples."
)


def class_proba(proba: np.ndarray, n_classes: int) -> np.ndarray:
    """p(c|x) = sum of p(y|x) over class c's clusters (cluster k belongs to class k // m,
    m = K / C), from cluster probabilities (n, K); shape (n, C)."""
    return proba.reshape(len(proba), n_classes, proba.shape[1] // n_classes).sum(-1)


class GMVAEClassifier(ClassifierMixin, _MixtureVAEBase):
    """Semi-supervised classification with a mixture VAE (Kingma et al.'s M2, the
    GMVAE, the modified M2 or VaDE).

    ``fit(X, y)`` takes partly labelled data: the unlabelled rows carry the label -1,
    as in ``sklearn.semi_supervised``. The model is ``GMVAEClustering``'s, with its
    discrete variable y the class (or one of the class's clusters): labelled rows are
    trained on the ELBO with y observed, unlabelled rows on the ELBO with y summed
    out, and Kingma et al.'s classification term alpha * log q(y|x) is added on the
    labelled rows. Each batch mixes a fixed share of labelled rows with unlabelled
    ones, so that the few labels are seen throughout every epoch. With every row
    labelled it is a generative classifier.

    Read more in the user guide (docs/semi_supervised.md).

    Parameters
    ----------
    clusters_per_class : int, default=1
        Values of y per class, m: the model has K = m * n_classes clusters, cluster k
        belonging to class ``classes_[k // m]``; more than one for classes made of
        several modes.
    variant : {"m2", "modified_m2", "gmvae", "vade"}, default="m2"
        The generative model, as in ``GMVAEClustering``; ``"m2"`` is Kingma et al.'s.
        ``"dilokthanakul"`` is not offered.
    alpha : float or "auto", default="auto"
        Weight of the classification term alpha * E[-log q(y|x)] over the labelled
        rows, in the paper's units (its objective sums the ELBO over the N training
        rows): each of the N_l labelled rows adds -(alpha / N_l) log q(y|x) to its
        loss. ``"auto"``: n_features * N_l, so that this weight is the number of
        features, the scale of a row's ELBO (the paper's value is 0.1 * N).
    labelled_share : float in (0, 1], default=0.1
        When labelled rows are rarer than this share of the training rows, every batch
        holds round(labelled_share * batch_size) of them, drawn in turn from the
        labelled rows, and the rest unlabelled rows (an epoch is one pass over the
        unlabelled rows). The labelled rows are thus oversampled: their ELBO counts as
        often as they are drawn. Otherwise batches are plain shuffles.
    classes : array-like of shape (n_classes,) or None, default=None
        The classes; None: those of the labelled rows. Every class needs at least one
        labelled row, and every label must be one of them.
    variant_params, latent_dim, hidden_layer_sizes, likelihood, standardize, binarize, \
min_variance, beta, eta, entropy_weight, kl_warmup, pretrain_epochs, max_epochs, batch_size, \
learning_rate, learning_rate_decay, optimizer, net_params, n_init, trial_epochs, \
restart_selection, posterior_samples, stack_restarts, tol, n_iter_no_change, \
validation_fraction, max_grad_norm, callbacks, device, random_state, verbose, \
warm_start : see GMVAEClustering
        As in ``GMVAEClustering``: the same meaning and defaults, and the ``"auto"``
        values follow the same rules, by the number of training rows, labelled or not.
        Restarts never stack.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The class labels.
    transduction_ : ndarray of shape (n_samples,)
        The predicted class of every training row.
    n_clusters_ : int
        The number K = ``clusters_per_class * n_classes`` of clusters of the model.
    n_features_in_ : int
        Number of features seen during ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of the features seen during ``fit``, when X has string feature names.
    lower_bound_ : float
        Mean training ELBO per row (nats) of the last complete epoch, y observed on the
        labelled rows.
    lower_bounds_, n_iter_, restarts_, converged_, history_, net_, device_, \
hidden_layer_sizes_, latent_dim_, binarize_, entropy_weight_, n_init_, trial_epochs_, \
likelihood_, standardize_, mean_, scale_, variant_params_, means_, covariances_
        As in ``GMVAEClustering``; cluster k of ``means_`` belongs to class
        ``classes_[k // clusters_per_class]``.

    See Also
    --------
    GMVAEClustering : The same models without labels.
    sklearn.semi_supervised.LabelSpreading : Graph-based semi-supervised learning.
    sklearn.semi_supervised.SelfTrainingClassifier : Self-training of a classifier.

    Notes
    -----
    Unlabelled rows carry -1, so -1 cannot be a class. String-typed y (dtype ``str``)
    cannot hold -1; with "-1" in it, it is refused as ``SelfTrainingClassifier``
    refuses it (use dtype object). Persistence with ``sk_gmvae.persistence`` is for
    ``GMVAEClustering``; pickle a classifier.

    References
    ----------
    D. P. Kingma, D. J. Rezende, S. Mohamed, M. Welling. Semi-supervised learning with
    deep generative models. NeurIPS 2014.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.datasets import make_blobs
    >>> from sk_gmvae import GMVAEClassifier
    >>> X, y = make_blobs(n_samples=300, centers=3, random_state=0)
    >>> y_partial = np.where(np.arange(300) < 30, y, -1)  # 30 labelled rows
    >>> clf = GMVAEClassifier(latent_dim=2, hidden_layer_sizes=(32,), max_epochs=5,
    ...                       random_state=0).fit(X, y_partial)
    >>> clf.classes_, clf.predict_proba(X).shape
    (array([0, 1, 2]), (300, 3))
    """

    _parameter_constraints: dict = {
        **{k: v for k, v in _MixtureVAEBase._parameter_constraints.items() if k != "n_clusters"},
        "clusters_per_class": [Interval(Integral, 1, None, closed="left")],
        "variant": [StrOptions(set(VARIANTS))],
        "alpha": [Interval(Real, 0, None, closed="left"), StrOptions({"auto"})],
        "labelled_share": [Interval(Real, 0, 1, closed="right")],
        "classes": ["array-like", None],
    }

    def __init__(
        self,
        clusters_per_class: int = 1,
        *,
        variant: str = "m2",
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
        alpha: float | str = "auto",
        labelled_share: float = 0.1,
        classes: np.ndarray | None = None,
    ) -> None:
        self.clusters_per_class = clusters_per_class
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
        self.alpha = alpha
        self.labelled_share = labelled_share
        self.classes = classes

    # ------------------------------------------------------------------ training

    def _encode_labels(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The classes and each row's class index (-1: unlabelled), or a ``ValueError``
        for labels that cannot train a classifier."""
        if y.dtype.kind in "US" and (y == "-1").any():
            raise ValueError(STRING_TARGETS)
        unlabelled = y == -1
        if unlabelled.all():
            raise ValueError(
                "y has no labelled row (every row is -1); a classifier needs at least one "
                "labelled row per class. To cluster unlabelled data use GMVAEClustering."
            )
        check_classification_targets(y[~unlabelled])  # the labels, without the -1s
        found = np.unique(y[~unlabelled])
        if self.classes is None:
            classes = found
        else:
            classes = np.unique(column_or_1d(np.asarray(self.classes)))
            if len(classes) != len(self.classes):
                raise ValueError(f"classes has repeated values: {self.classes!r}.")
            if (classes == -1).any():
                raise ValueError("-1 marks unlabelled rows; it cannot be one of the classes.")
            unknown = np.setdiff1d(found, classes)
            if len(unknown):
                raise ValueError(
                    f"y has labels {unknown.tolist()} that are not in classes "
                    f"{classes.tolist()} (unlabelled rows carry -1)."
                )
            missing = np.setdiff1d(classes, found)
            if len(missing):
                raise ValueError(
                    f"classes {missing.tolist()} have no labelled row; every class needs "
                    "at least one, or its clusters could not be told apart from the others'."
                )
        codes = np.full(len(y), -1, dtype=np.int64)
        codes[~unlabelled] = np.searchsorted(classes, y[~unlabelled])
        return classes, codes

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: np.ndarray, y: np.ndarray) -> GMVAEClassifier:
        """Train the mixture VAE on X, of which the rows labelled in y are observed.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data, labelled and unlabelled rows.
        y : array-like of shape (n_samples,)
            The class of each row, -1 for an unlabelled row.

        Returns
        -------
        self : GMVAEClassifier
            The fitted estimator.
        """
        continuing = self.warm_start and hasattr(self, "net_")
        X, y = validate_data(self, X, y, dtype=[np.float64, np.float32], reset=not continuing)
        classes, labels = self._encode_labels(y)
        if continuing and not np.array_equal(classes, self.classes_):
            raise ValueError(
                f"warm_start=True trains the fitted network on, whose classes are "
                f"{self.classes_.tolist()}; y has classes {classes.tolist()}."
            )
        if continuing and self.clusters_per_class * len(classes) != self.n_clusters_:
            raise ValueError(
                "warm_start=True trains the fitted network on, built with "
                f"clusters_per_class={self.n_clusters_ // len(classes)}; set it back."
            )
        supervision = Supervision(len(classes), int((labels >= 0).sum()))
        X, config = self._configure(X, continuing, supervision)
        self._fit_classes = classes  # for _fitted_from_proba
        try:
            self._train(X, config, continuing, labels)
        finally:
            del self._fit_classes
        return self

    def _cluster_order(self, proba: np.ndarray, config: FitConfig) -> None:
        """None: the clusters keep their numbers, which tie them to the classes."""
        return None

    def _fitted_from_proba(self, proba: np.ndarray) -> dict[str, Any]:
        classes = self._fit_classes
        return {
            "classes_": classes,
            "n_clusters_": proba.shape[1],
            "transduction_": classes[class_proba(proba, len(classes)).argmax(axis=1)],
        }

    def _training_rows(self, fitted: Mapping[str, Any]) -> int:
        return len(fitted["transduction_"])

    # ------------------------------------------------------------------ inference

    @property
    def _clusters_per_class(self) -> int:
        return self.n_clusters_ // len(self.classes_)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities: the sum over each class's clusters of p(y|x)
        (``posterior_samples`` > 0) or q(y|x).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to classify.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            The probability of each class (in ``classes_`` order); rows sum to 1.
        """
        X = self._validate_for_inference(X)
        return class_proba(self._proba(X), len(self.classes_))

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Most probable class of each row, the argmax of ``predict_proba``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to classify.

        Returns
        -------
        y : ndarray of shape (n_samples,)
            Labels from ``classes_``.
        """
        proba = self.predict_proba(X)  # first: it checks that the model is fitted
        return self.classes_[proba.argmax(axis=1)]

    def sample(self, n_samples: int = 1, y: object = None) -> tuple[np.ndarray, np.ndarray]:
        """Draw rows from the fitted generative model, of one class if ``y`` is given.

        y ~ p(y) (restricted to the clusters of class ``y`` when given), z ~ p(z|y),
        x ~ p(x|z, y); seeded by ``random_state``.

        Parameters
        ----------
        n_samples : int, default=1
            Number of rows to draw.
        y : object, default=None
            A class of ``classes_``; None: every class, in proportion to p(y).

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
            Drawn rows, in the units of X (binary for the Bernoulli likelihood).
        y : ndarray of shape (n_samples,)
            Their classes, sorted by cluster.
        """
        check_is_fitted(self)
        check_positive_int(n_samples, "n_samples")
        clusters = None
        if y is not None:
            where = np.flatnonzero(self.classes_ == y)
            if len(where) != 1:
                raise ValueError(f"y={y!r} is not one of the classes {self.classes_.tolist()}.")
            m = self._clusters_per_class
            clusters = list(range(int(where[0]) * m, (int(where[0]) + 1) * m))
        rng = check_random_state(self.random_state)
        with torch.inference_mode():
            X, cluster = self._inference_module_.sample(n_samples, rng, clusters)
        classes = self.classes_[cluster.cpu().numpy() // self._clusters_per_class]
        return to_data(X.cpu().numpy(), self.mean_, self.scale_), classes
