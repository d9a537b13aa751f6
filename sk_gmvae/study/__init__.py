"""The study: mixture VAEs on MNIST, variants x seeds x epochs, beside the study's logs.

- :func:`run_study` (``runner``): trains every (variant, seed) with held-out metrics
  every epoch, CSV histories and checkpoints (reruns resume);
- :func:`study_reference`, :func:`results_table`: the study's logged curves and a
  reproduction set beside them;
- :func:`plot_study`, :func:`plot_prototypes`, :func:`plot_cluster_examples`,
  :func:`plot_confusion`, :func:`plot_latent` (``plots``, needs matplotlib): figures;
- ``protocol`` and ``cli``: the data protocol and the ``sk-gmvae reproduce`` command.
"""

from .plots import (
    plot_cluster_examples,
    plot_confusion,
    plot_latent,
    plot_prototypes,
    plot_study,
)
from .runner import results_table, run_study, study_reference

__all__ = [
    "plot_cluster_examples",
    "plot_confusion",
    "plot_latent",
    "plot_prototypes",
    "plot_study",
    "results_table",
    "run_study",
    "study_reference",
]
