"""A progress bar over the epochs of a training run, with the ELBO and the time left."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

import numpy as np
from skorch.callbacks import Callback
from tqdm.auto import tqdm


class FitProgressBar(Callback):
    """One bar over all the epochs of a training run (``GMVAEClustering(verbose=1)``).

    The epochs are counted in the net's history: a training that continues a net (the
    restart kept after its trial, a warm start, a run a ``RunCheckpoint`` resumes) goes on
    from the epochs it has, up to those plus the epochs it runs (``epochs_asked_`` of
    ``MixtureVAENet``, else ``max_epochs``).

    On a terminal a tqdm bar shows the epochs done, the last epoch's mean ELBO (with
    stacked restarts, the best restart's) and the time left (ETA); on anything else (a
    log file, a pipe, CI) tqdm's carriage returns would garble the log, so a plain line
    is written every ``log_every`` of the run
    instead: ``epoch 10/100  elbo -97.31  elapsed 0:12  left 1:48``.

    Parameters
    ----------
    file : text stream or None, default=None
        Where to write; ``None``: ``sys.stderr`` at the start of training.
    log_every : float, default=0.1
        Fraction of the run between two plain lines (when ``file`` is not a terminal).
    desc : str, default="training"
        Label of the bar and of each line.
    """

    def __init__(
        self, file: TextIO | None = None, log_every: float = 0.1, desc: str = "training"
    ) -> None:
        self.file = file
        self.log_every = log_every
        self.desc = desc

    def on_train_begin(self, net: Any, **kwargs: Any) -> None:
        self.file_ = self.file if self.file is not None else sys.stderr
        self.start_ = time.monotonic()
        self.first_ = None  # set at the first epoch, once a resumed history is loaded
        self.bar_ = None

    def on_epoch_begin(self, net: Any, **kwargs: Any) -> None:
        if self.first_ is None:
            self._start(net)

    def _start(self, net: Any) -> None:
        # Epochs before this training's first: a trial's, a warm start's, or those a
        # RunCheckpoint restored in its on_train_begin (the history has this epoch's row).
        self.first_ = self.done_ = len(net.history) - 1
        self.total_ = self.done_ + int(getattr(net, "epochs_asked_", net.max_epochs))
        if getattr(self.file_, "isatty", lambda: False)():
            self.bar_ = tqdm(
                total=self.total_,
                initial=self.done_,
                desc=self.desc,
                unit="epoch",
                file=self.file_,
                leave=True,
            )

    def on_epoch_end(self, net: Any, **kwargs: Any) -> None:
        if self.first_ is None:  # a caller that forwards epoch ends only
            self._start(net)
        self.done_ += 1
        # Stacked restarts record one ELBO per restart: show the best.
        elbo = float(np.nanmax(np.atleast_1d(net.history[-1].get("train_elbo", np.nan))))
        if self.bar_ is not None:
            self.bar_.set_postfix(elbo=f"{elbo:.2f}", refresh=False)
            self.bar_.update(1)
            return
        step = max(1, round(self.total_ * self.log_every))
        if self.done_ % step == 0 or self.done_ == self.total_:
            elapsed = time.monotonic() - self.start_
            # time left = elapsed / (epochs run here) * (epochs still to run)
            left = elapsed / (self.done_ - self.first_) * max(self.total_ - self.done_, 0)
            print(
                f"{self.desc}: epoch {self.done_}/{self.total_}  elbo {elbo:.2f}  "
                f"elapsed {tqdm.format_interval(elapsed)}  left {tqdm.format_interval(left)}",
                file=self.file_,
                flush=True,
            )

    def on_train_end(self, net: Any, **kwargs: Any) -> None:
        if self.bar_ is not None:
            self.bar_.close()
        self.bar_ = None  # a bar holds a stream: nothing of it is pickled with the net
        self.file_ = None

    def __getstate__(self) -> dict:
        # Streams do not pickle: a pickled bar writes to sys.stderr.
        state = dict(self.__dict__, file=None)
        state.pop("bar_", None)
        state.pop("file_", None)
        return state

    def __deepcopy__(self, memo: dict) -> FitProgressBar:
        # The estimator copies its callbacks for each run; the copies share the stream.
        return type(self)(file=self.file, log_every=self.log_every, desc=self.desc)
