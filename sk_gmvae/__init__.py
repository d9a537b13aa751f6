"""sk_gmvae: unsupervised clustering with mixture variational autoencoders.

The public estimator is :class:`GMVAEClustering`; :mod:`sk_gmvae.metrics` scores
clusterings and :mod:`sk_gmvae.datasets` loads MNIST.
"""

from ._estimator import GMVAEClustering

__all__ = ["GMVAEClustering", "__version__"]
__version__ = "0.1.0"
