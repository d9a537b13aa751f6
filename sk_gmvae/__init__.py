"""sk_gmvae: clustering, and semi-supervised classification, with mixture variational
autoencoders.

The public estimators are :class:`GMVAEClustering` and, for partly labelled data,
:class:`GMVAEClassifier`; :mod:`sk_gmvae.metrics` scores clusterings and
:mod:`sk_gmvae.datasets` loads MNIST.
"""

from ._classifier import GMVAEClassifier
from ._estimator import GMVAEClustering

__all__ = ["GMVAEClassifier", "GMVAEClustering", "__version__"]
__version__ = "0.1.0"
