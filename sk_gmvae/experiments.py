"""Moved to :mod:`sk_gmvae.study` (this name is kept for existing code)."""

from .study.runner import (  # noqa: F401
    DILOKTHANAKUL_TABLE,
    STUDY_COLUMNS,
    STUDY_RUNS,
    results_table,
    run_study,
    study_reference,
)
