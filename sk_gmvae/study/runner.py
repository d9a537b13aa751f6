"""The study's experiment: variants x seeds x epochs with test-set metrics every epoch.

:func:`run_study` trains every (variant, seed) with the estimator, records held-out
metrics each epoch (:class:`~sk_gmvae.callbacks.ClusteringMonitor`), writes one history
CSV per run as it goes and checkpoints every epoch, so rerunning skips finished runs and
resumes unfinished ones. :func:`study_reference` gives the study's own logged curves and
:func:`results_table` sets a reproduction beside them.
"""

from __future__ import annotations

import contextlib
import csv
import math
import signal
import sys
import threading
import warnings
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from skorch.callbacks import Callback

from .._estimator import GMVAEClustering
from .._scaling import to_model
from .._stacked import PerRestart
from .._training import Run, build_net, restart_seeds
from ..callbacks import ClusteringMonitor, CSVHistoryLogger, RunCheckpoint, read_csv
from ..callbacks._checkpoint import epochs_done

# The study's three models (VaDE, also in the package, is not one of them).
VARIANTS = ("m2", "modified_m2", "gmvae")
# The study's settings, where the estimator's defaults differ (run_study's params win).
STUDY_SETTINGS = {
    "latent_dim": 64,
    "hidden_layer_sizes": (512, 512),
    "binarize": True,
    "entropy_weight": 0.0,
    "batch_size": 100,
    "learning_rate": 1e-3,
    "init": "random",  # the study's start: nothing but the random weights
    "n_init": 1,  # one training per seed, whatever the number of rows
    "posterior_samples": 0,  # clusters from q(y|x), as the study's
}


# Dilokthanakul et al.'s two-layer GMVAE, which the study argues against, trains with
# the authors' MNIST settings (docs/models.md) rather than the study's.
def dilokthanakul_settings(
    mc_samples: int = 1,
    hidden: int = 500,
    eta: float = 1.0,
    cv_weight: float = 1.0,
    free_bits: float = 0.0,
) -> dict[str, Any]:
    """``GMVAEClustering`` parameters of ``variant="dilokthanakul"`` with the authors'
    MNIST settings: widths ``hidden``-``hidden``, z of 200, w of 150, batches of 50,
    Adam at 1e-4, ``mc_samples`` (M) draws of (z, w), ``eta`` on the y-KL, ``cv_weight``
    (alpha) on the consistency term, ``free_bits`` (lambda) nats, one restart."""
    return {
        "variant_params": {
            "mc_samples": mc_samples,
            "w_dim": 150,
            "cv_weight": cv_weight,
            "free_bits": free_bits,
        },
        "eta": eta,
        "entropy_weight": 0.0,
        "latent_dim": 200,
        "hidden_layer_sizes": (hidden, hidden),
        "batch_size": 50,
        "learning_rate": 1e-4,
        "binarize": True,
        "n_init": 1,
        "posterior_samples": 0,
    }


# The settings a variant trains with in place of the shared ones (run_study's
# variant_settings), where it is not one of the study's.
VARIANT_SETTINGS = {"dilokthanakul": dilokthanakul_settings()}
# Runs of the study's published logs (sk_gmvae/data/study_logged_curves.csv) per variant.
STUDY_RUNS = {"m2": "m2.log.", "modified_m2": "modified_m2_method=relu.log.", "gmvae": "gmvae.log."}
# Our history keys for the study's columns (t_* on the test set, tr_* on 10k train rows).
STUDY_COLUMNS = {
    "test_accuracy": "t_acc",
    "test_entropy": "t_ent",
    "test_loss": "t_loss",
    "train_eval_entropy": "tr_ent",
    "train_eval_loss": "tr_loss",
}
DILOKTHANAKUL_TABLE = """\
Dilokthanakul et al. (2016), GMVAE on MNIST, K = 10, test accuracy (%) under their
protocol (as in adversarial autoencoders: each cluster labelled by its most frequent
class), reported as best run / mean over runs:

| M (z samples) | best | mean |
| --- | --- | --- |
| 1 | 87.71 | 74.47 |
| 10 | 93.67 | 86.94 |
"""


class _OnEpochEnd(Callback):
    """Call ``fn()`` after every epoch (``fn`` is shared, not copied, with the callback)."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.fn = fn

    def on_epoch_end(self, net: Any, **kwargs: Any) -> None:
        self.fn()


class StudyInterrupted(Exception):
    """The study was stopped by a signal (Ctrl-C or SIGTERM) at a safe point.

    Every run's last checkpoint is complete; rerunning the same study resumes it.
    ``signum`` is the signal, ``run`` the run that was training and ``epochs`` the
    epochs its last checkpoint holds.
    """

    def __init__(self, signum: int, run: str, epochs: int) -> None:
        self.signum, self.run, self.epochs = signum, run, epochs
        name = signal.Signals(signum).name
        super().__init__(
            f"stopped by {name} during {run}; its last complete checkpoint holds "
            f"{epochs} epochs. Rerun the same command to resume."
        )


class _StopWhen(Callback):
    """End training after the step at which ``requested()`` turns true (skorch ends
    ``fit`` on ``KeyboardInterrupt``): the last epoch's checkpoint is complete and the
    unfinished epoch is discarded. (``requested`` is a function, shared and not copied
    when the estimator copies its callbacks.)"""

    def __init__(self, requested: Callable[[], bool]) -> None:
        self.requested = requested

    def on_batch_end(self, net: Any, **kwargs: Any) -> None:
        if self.requested():
            raise KeyboardInterrupt


class _Signals:
    """SIGINT and SIGTERM recorded, rather than raised, inside ``installed()``; a second
    signal raises ``KeyboardInterrupt`` at once."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt  # asked twice: no more waiting
        self.signum = signum

    @contextlib.contextmanager
    def installed(self) -> Any:
        """Handle the two signals inside the block (main thread only; elsewhere the
        defaults stay)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {s: signal.signal(s, self.handle) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


def run_study(
    X_train: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    out_dir: str | Path,
    *,
    variants: Sequence[str] = VARIANTS,
    seeds: Sequence[int] = (0,),
    epochs: int = 10,
    X_train_eval: np.ndarray | None = None,
    progress: bool = True,
    prototypes: bool = True,
    stack_seeds: bool | str = "auto",
    variant_settings: dict[str, dict[str, Any]] | None = None,
    **params: Any,
) -> dict[tuple[str, int], list[dict[str, float]]]:
    """Train every (variant, seed) for ``epochs`` epochs, logging test metrics each epoch.

    Parameters
    ----------
    X_train : ndarray of shape (n_train, n_features)
        Training rows (an epoch is one pass over them).
    X_test, y_test : ndarray
        Held-out rows and their classes, evaluated after every epoch.
    out_dir : str or Path
        Where ``histories/<variant>-seed<k>.csv``, ``checkpoints/`` and
        ``prototypes-<variant>-seed<k>.npy`` go.
    variants : sequence of str, default=("m2", "modified_m2", "gmvae")
    seeds : sequence of int, default=(0,)
        One run per seed (its ``random_state``).
    epochs : int, default=10
        Epochs per run. Runs that have them already are skipped; shorter ones resume
        from their last checkpoint (weights, Adam state, history and random stream),
        continuing exactly as an uninterrupted run would.
    X_train_eval : ndarray, default=None
        Rows of the training set to monitor too (the study used 10k), logged as
        ``train_eval_*``.
    progress : bool, default=True
        Show a progress bar over all epochs of all runs, with ETA.
    prototypes : bool, default=True
        Save each trained run's ``cluster_prototypes(8)`` as ``prototypes-<run>.npy``,
        and its clusters of the test rows as ``test-labels-<run>.npy``.
    stack_seeds : bool or "auto", default="auto"
        Train the seeds of a variant at once, as one model with stacked weights (as
        ``stack_restarts`` does for ``n_init``): each seed keeps its own monitors, CSV,
        checkpoint and random stream, and its results equal those of the seed trained
        alone up to floating-point rounding. Seeds at different points (a resumed study)
        are stacked by the epoch they resume from. ``"auto"``: on CUDA devices (where
        one seed leaves the GPU mostly idle), not on the CPU (no faster there). A seed
        whose training diverges makes the others of its stack go on one by one. The
        rule is ``stack_restarts``': never with ``tol``, ``validation_fraction``,
        ``pretrain_epochs`` or the caller's ``callbacks`` (these act on one net).
    variant_settings : dict, default=None
        ``variant -> parameters`` that variant trains with, over ``params`` and the
        study's settings. None: ``VARIANT_SETTINGS``, the authors' MNIST settings for
        ``"dilokthanakul"`` (:func:`dilokthanakul_settings`).
    **params
        Other ``GMVAEClustering`` parameters (``n_clusters``, ``latent_dim``, ``device``,
        ...); where not given, the study's settings (``STUDY_SETTINGS``: 512-512, latent
        64, dynamic binarization, the plain ELBO, batch 100, Adam 1e-3) rather than the
        estimator's data-dependent defaults.

    Returns
    -------
    histories : dict
        ``(variant, seed) -> list of per-epoch dicts`` (the CSV rows; empty for a run
        that diverged before completing an epoch).
    """
    from tqdm.auto import tqdm

    own = VARIANT_SETTINGS if variant_settings is None else variant_settings
    settings = {v: {**STUDY_SETTINGS, **params, **own.get(v, {})} for v in variants}
    study = _Study(
        X_train, X_test, y_test, Path(out_dir), epochs, X_train_eval, prototypes, settings
    )
    runs = [(v, s) for v in variants for s in seeds]
    study.bar = tqdm(total=len(runs) * epochs, unit="epoch", disable=not progress, smoothing=0.1)
    done = {run: epochs_done(study.checkpoints(*run)) for run in runs}
    study.bar.update(sum(min(d, epochs) for d in done.values()))
    with study.stop.installed():
        for variant in variants:
            # The seeds stack when n_init restarts of these settings would (one rule).
            stacked = {"variant": variant, "stack_restarts": stack_seeds, "n_init": len(seeds)}
            probe = GMVAEClustering(**{**settings[variant], **stacked})
            if probe._configure(X_train)[1].stack_restarts:
                # Seeds that resume from the same epoch train as one stacked model.
                groups = defaultdict(list)
                for seed in seeds:
                    if done[variant, seed] < epochs:
                        groups[done[variant, seed]].append(seed)
                for start, group in groups.items():
                    if len(group) > 1:
                        study.train_stacked(variant, group, start)
                for seed in seeds:
                    done[variant, seed] = epochs_done(study.checkpoints(variant, seed))
            for seed in seeds:  # the rest, one by one (all of them without stacking)
                if done[variant, seed] < epochs:
                    study.train_alone(variant, seed, done[variant, seed])
    study.bar.close()
    histories = {}
    for variant, seed in runs:  # a run that diverged before its first epoch has no file
        path = study.out / "histories" / f"{variant}-seed{seed}.csv"
        histories[variant, seed] = read_csv(path)[:epochs] if path.exists() else []
    return histories


class _Study:
    """The runs of one ``run_study`` call: their callbacks, training alone or stacked,
    and what is saved after a run."""

    def __init__(
        self,
        X_train: np.ndarray,
        X_test: np.ndarray,
        y_test: np.ndarray,
        out: Path,
        epochs: int,
        X_train_eval: np.ndarray | None,
        prototypes: bool,
        settings: dict[str, dict[str, Any]],
    ) -> None:
        self.X_train, self.X_test, self.y_test = X_train, X_test, y_test
        self.out, self.epochs, self.X_train_eval = out, epochs, X_train_eval
        self.prototypes, self.settings = prototypes, settings
        self.stop = _Signals()
        self.bar: Any = None

    def checkpoints(self, variant: str, seed: int) -> Path:
        return self.out / "checkpoints" / f"{variant}-seed{seed}"

    def callbacks(self, variant: str, seed: int) -> list[tuple[str, Callback]]:
        """One run's callbacks: monitors, checkpoint, CSV, progress."""
        name = f"{variant}-seed{seed}"
        callbacks: list = [("test", ClusteringMonitor(self.X_test, self.y_test, name="test"))]
        if self.X_train_eval is not None:
            callbacks.append(
                ("train_eval", ClusteringMonitor(self.X_train_eval, name="train_eval"))
            )
        return [
            *callbacks,
            ("checkpoint", RunCheckpoint(self.checkpoints(variant, seed))),
            ("csv", CSVHistoryLogger(self.out / "histories" / f"{name}.csv")),
            ("progress", _OnEpochEnd(lambda: self.bar.update(1))),
        ]

    def _stopping(self) -> tuple[str, Callback]:
        return ("stop", _StopWhen(lambda: self.stop.signum is not None))

    def _announce(self, names: list[str], start: int) -> None:
        from tqdm.auto import tqdm

        self.bar.set_description(" + ".join(names))
        if start:
            whose = "its checkpoint" if len(names) == 1 else "their checkpoints"
            tqdm.write(f"{', '.join(names)}: resuming from {whose} at epoch {start}")
            sys.stdout.flush()

    def _check_stop(self, variant: str, seed: int) -> None:
        if self.stop.signum is not None:
            self.bar.close()
            epochs = epochs_done(self.checkpoints(variant, seed))
            raise StudyInterrupted(self.stop.signum, f"{variant}-seed{seed}", epochs)

    def _estimator(self, variant: str, seed: int, start: int, **kwargs: Any) -> GMVAEClustering:
        return GMVAEClustering(
            variant=variant,
            random_state=seed,
            max_epochs=self.epochs - start,
            **{**self.settings[variant], **kwargs},
        )

    def train_alone(self, variant: str, seed: int, start: int) -> None:
        """Train (or resume) one run with the estimator."""
        self._announce([f"{variant}-seed{seed}"], start)
        own = self.settings[variant].get("callbacks") or []  # the caller's, then the study's
        callbacks = [*own, *self.callbacks(variant, seed), self._stopping()]
        est = self._estimator(variant, seed, start, callbacks=callbacks)
        with warnings.catch_warnings():
            # A stop by signal is reported below, not as a training warning.
            warnings.filterwarnings("ignore", "Training was interrupted")
            est.fit(self.X_train)
        self._check_stop(variant, seed)
        self._save(est, variant, seed)

    def train_stacked(self, variant: str, seeds: list[int], start: int) -> None:
        """Train (or resume) the runs of ``seeds``, all at epoch ``start``, as one
        stacked model; each run's own callbacks follow it (``PerRestart``)."""
        self._announce([f"{variant}-seed{s}" for s in seeds], start)
        # The seeds' fits share one configuration (only random_state differs), and
        # the training data in the model's space (standardized if the fits would be).
        probe = self._estimator(variant, seeds[0], start)
        X_checked, config = probe._configure(self.X_train)
        scaling = probe._scaling(X_checked, config)
        X_model = to_model(X_checked, *scaling)
        net_seeds = [restart_seeds(seed, 1)[0] for seed in seeds]  # as the estimator's
        lone = [build_net(replace(config, callbacks=()), seed) for seed in net_seeds]
        for net in lone:
            net.initialize()
        follow = PerRestart(lone, [[cb for _, cb in self.callbacks(variant, s)] for s in seeds])
        stacked = build_net(config, net_seeds)
        stacked.callbacks = [*stacked.callbacks, ("per_restart", follow), self._stopping()]
        stacked.initialize()
        X = torch.tensor(X_model, dtype=torch.float32, device=config.device)
        follow.resume(stacked, X)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Training was interrupted")
            stacked.partial_fit(X, epochs=self.epochs - start)
        self._check_stop(variant, seeds[0])
        if dict(stacked.callbacks_)["divergence_guard"].stopped_:
            return  # the runs go on one by one from their checkpoints
        for seed, net in zip(seeds, lone, strict=True):
            # Each run becomes the fitted estimator of its seed, as if it had trained
            # alone (labels in the same order, the same prototypes).
            est = self._estimator(variant, seed, start)
            _, config = est._configure(self.X_train)
            run = Run(net, start, self.epochs - start)
            self._save(est._adopt(run, X_model, config, scaling=scaling), variant, seed)

    def _save(self, est: Any, variant: str, seed: int) -> None:
        if self.prototypes:
            name = f"{variant}-seed{seed}"
            np.save(self.out / f"prototypes-{name}.npy", est.cluster_prototypes(8))
            np.save(self.out / f"test-labels-{name}.npy", est.predict(self.X_test))


def study_reference(path: str | Path | None = None) -> dict[str, dict[int, dict[str, list]]]:
    """The study's logged curves: ``variant -> epoch -> our column -> values over runs``.

    Read from the logs published with the study's code (shipped with this package).
    """
    if path is None:
        path = resources.files("sk_gmvae") / "data" / "study_logged_curves.csv"
    curves: dict = {v: defaultdict(lambda: defaultdict(list)) for v in STUDY_RUNS}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            variant = next(
                (v for v, prefix in STUDY_RUNS.items() if row["run"].startswith(prefix)), None
            )
            if variant is None:
                continue
            for ours, theirs in STUDY_COLUMNS.items():
                curves[variant][int(row["epoch"])][ours].append(float(row[theirs]))
    return curves


def _mean_std(values: Sequence[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f}"


def results_table(
    histories: dict[tuple[str, int], list[dict[str, float]]],
    epochs: Sequence[int] = (1, 2, 5, 10, 20, 50, 100, 200),
    reference: dict | None = None,
) -> str:
    """Markdown: each variant's test metrics at ``epochs`` (mean ± sd over seeds), beside
    the study's logged values at the same epochs (mean ± sd over its runs), and the
    accuracy under Dilokthanakul et al.'s protocol beside their Table 1."""
    reference = study_reference() if reference is None else reference
    by_variant: dict[str, list] = defaultdict(list)
    for (variant, _), rows in histories.items():
        by_variant[variant].append(rows)
    lines = [
        "| variant | epoch | seeds | test accuracy | study | test H(Y\\|X) | study "
        "| test loss (nats) | study | test AAE accuracy |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for variant, runs in by_variant.items():
        for epoch in epochs:
            rows = [r[epoch - 1] for r in runs if len(r) >= epoch]
            if not rows:
                continue
            cells = [variant, str(epoch), str(len(rows))]
            for key in ("test_accuracy", "test_entropy", "test_loss"):
                ours = [r[key] for r in rows if key in r]
                theirs = reference.get(variant, {}).get(epoch, {}).get(key, [])
                cells += [_mean_std(ours), _mean_std(theirs)]
            aae = [r["test_aae_accuracy"] for r in rows if "test_aae_accuracy" in r]
            cells.append(_mean_std(aae))
            lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"ln K for K = 10: {math.log(10):.3f} nats.", "", DILOKTHANAKUL_TABLE]
    return "\n".join(lines)
