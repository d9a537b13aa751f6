"""The fitted model's latent space and generative side, as ``GMVAEClustering`` offers
them: the per-row Gaussians of the embedding (``latent_posterior``), decoding
(``inverse_transform``, ``cluster_prototypes``), sampling (``sample``) and the
per-cluster Gaussians (``means_``, ``covariances_``).

A mixin of the estimator: it reads the fitted float64 model (``_inference_module_``),
the estimator's validation of X and its standardization (``mean_``, ``scale_``: rows it
returns in the data space are in the units of X), and holds no state of its own.
"""

from __future__ import annotations

from numbers import Integral

import numpy as np
import torch
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_array, check_is_fitted, column_or_1d

from ._config import check_float32_range
from ._inference import decoded_mean, latent_moments, seeded_normal
from ._model import SEED_MAX
from ._scaling import to_data


def check_positive_int(value: object, name: str) -> None:
    """A ``ValueError`` unless ``value`` is a positive int (not a bool)."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")


class LatentSpaceMixin:
    """``latent_posterior``, ``inverse_transform``, ``sample``,
    ``cluster_prototypes``, ``means_`` and ``covariances_`` of a fitted mixture VAE."""

    def _cluster_gaussians(self) -> tuple[np.ndarray, np.ndarray]:
        """(K, L) means and variances of the per-cluster Gaussians, in label order."""
        check_is_fitted(self)
        module = self._inference_module_
        with torch.no_grad():
            gaussians = module.cluster_gaussians()
        if gaussians is None:
            raise AttributeError(
                f"variant={module.variant!r} has no per-cluster Gaussians (means_, "
                "covariances_); 'gmvae', 'vade', 'modified_m2' and 'dilokthanakul' have them."
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

    def sample(self, n_samples: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Draw rows from the fitted generative model: y ~ p(y), z ~ p(z|y), x ~ p(x|z, y).

        p(y) is uniform, except for ``variant="vade"`` (its learned weights). For
        ``variant="dilokthanakul"`` w ~ N(0, I) is drawn first and z ~ p(z|y, w).

        Parameters
        ----------
        n_samples : int, default=1
            Number of rows to draw.

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
            Drawn rows, in the units of X (binary for the Bernoulli likelihood).
        y : ndarray of shape (n_samples,)
            Their clusters, sorted, as in ``GaussianMixture.sample``.
        """
        check_is_fitted(self)
        check_positive_int(n_samples, "n_samples")
        rng = check_random_state(self.random_state)
        with torch.inference_mode():
            X, y = self._inference_module_.sample(n_samples, rng)
        return to_data(X.cpu().numpy(), self.mean_, self.scale_), y.cpu().numpy()

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
            Decoded means, in the units of X (pixel probabilities for the Bernoulli
            likelihood).
        """
        check_is_fitted(self)
        module = self._inference_module_
        Z = check_array(X, dtype=np.float64)
        check_float32_range(Z)
        if Z.shape[1] != module.latent_dim:
            raise ValueError(
                f"X has {Z.shape[1]} columns but the latent space has "
                f"latent_dim={module.latent_dim}."
            )
        if labels is not None:
            labels = column_or_1d(labels)
            if len(labels) != len(Z) or not np.isin(labels, np.arange(module.n_clusters)).all():
                raise ValueError(
                    f"labels must hold one cluster in 0..{module.n_clusters - 1} per row of X."
                )
        decoded = decoded_mean(module, Z, labels, torch.float64)
        return to_data(decoded, self.mean_, self.scale_)

    def cluster_prototypes(self, n_per_cluster: int = 8) -> np.ndarray:
        """What each cluster generates: decoded means E[x | z, y] for z ~ p(z|y).

        For the GMVAE z is drawn from the cluster's own Gaussian; for M2 and the modified
        M2 from N(0, I), with y entering the decoder; for ``"dilokthanakul"`` from
        p(z|y, w = 0), at the mode of w. Seeded by ``random_state``.

        Parameters
        ----------
        n_per_cluster : int, default=8
            Draws of z per cluster.

        Returns
        -------
        prototypes : ndarray of shape (n_clusters, n_per_cluster, n_features)
            Row k holds the decoded means of cluster label k, in the units of X
            (pixel probabilities for the Bernoulli likelihood).
        """
        check_is_fitted(self)
        check_positive_int(n_per_cluster, "n_per_cluster")
        module = self._inference_module_
        seed = check_random_state(self.random_state).randint(SEED_MAX)
        with torch.inference_mode():
            eps, _ = seeded_normal(module, (n_per_cluster, module.latent_dim), seed, torch.float64)
            means = module.likelihood.mean(module.generate(eps))  # (n, K, D)
        return to_data(means.transpose(0, 1).cpu().numpy(), self.mean_, self.scale_)
