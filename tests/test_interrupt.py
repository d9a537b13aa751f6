"""Ctrl-C during fit: training stops, the estimator keeps a fitted model, and the
``KeyboardInterrupt`` goes on, so that scripts, loops and GridSearchCV stop. A callback
that raises ``KeyboardInterrupt`` (skorch's way to stop training) stays a stop of the
training only (tests/test_estimator.py)."""

import signal
import warnings

import pytest
from _helpers import small_params
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV
from skorch.callbacks import Callback

from sk_gmvae import GMVAEClustering
from sk_gmvae._interrupt import ctrl_c

SMALL = small_params(max_epochs=5, n_init=1)


class CtrlCAt(Callback):
    """Send this process a SIGINT, as Ctrl-C does, at the end of the given step of the
    given training (1-based; ``trainings`` counts the fits' trainings across clones)."""

    trainings = 0

    def __init__(self, training=1, epoch=1, batch=1):
        self.training, self.epoch, self.batch = training, epoch, batch

    def on_train_begin(self, net, **kwargs):
        type(self).trainings += 1

    def on_batch_end(self, net, **kwargs):
        step = (len(net.history), len(net.history[-1]["batches"]))
        if type(self).trainings == self.training and step == (self.epoch, self.batch):
            signal.raise_signal(signal.SIGINT)


@pytest.fixture(autouse=True)
def python_sigint_handler():
    """Python's own SIGINT handler during each test, whatever the process inherited (a
    run started in the background, or under nohup, ignores SIGINT, and the estimator
    leaves a handler it did not install in charge)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture
def ctrl_c_at():
    """A fresh ``CtrlCAt`` class (its training count at 0) for each test."""
    return type("CtrlCAt", (CtrlCAt,), {"trainings": 0})


def test_ctrl_c_raises_after_the_fit_keeps_the_model_reached(blobs, ctrl_c_at):
    X, _ = blobs
    est = GMVAEClustering(3, random_state=0, callbacks=[ctrl_c_at(epoch=3, batch=2)], **SMALL)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)  # said in the exception instead
        with pytest.raises(KeyboardInterrupt, match="stopped by Ctrl-C.*after 2 of 5 epochs"):
            est.fit(X)
    # Fitted with the two complete epochs; the handler of SIGINT is Python's again.
    assert est.n_iter_ == 2 and len(est.history_) == 3 and est.labels_.shape == (120,)
    assert est.lower_bound_ == est.history_[1, "train_elbo"]
    assert est.predict(X).shape == (120,)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_ctrl_c_in_a_restart_keeps_the_restarts_trained_and_trains_no_further(blobs, ctrl_c_at):
    X, _ = blobs
    params = {**SMALL, "max_epochs": 8, "n_init": 3}
    est = GMVAEClustering(
        3, trial_epochs=3, random_state=0, callbacks=[ctrl_c_at(training=2)], **params
    )
    with pytest.raises(KeyboardInterrupt, match="stopped by Ctrl-C"):
        est.fit(X)
    assert ctrl_c_at.trainings == 2  # no third restart, and the kept one did not go on
    assert len(est.restarts_) == 2 and est.n_iter_ == 3


def test_ctrl_c_stops_a_grid_search(blobs, ctrl_c_at):
    X, _ = blobs
    est = GMVAEClustering(random_state=0, callbacks=[ctrl_c_at(epoch=2)], **SMALL)
    search = GridSearchCV(est, {"n_clusters": [2, 3, 4]}, cv=2)
    with pytest.raises(KeyboardInterrupt):
        search.fit(X)
    assert ctrl_c_at.trainings == 1  # no further fold, no further candidate
    assert not hasattr(search, "best_params_")


def test_a_programs_own_sigint_handler_is_left_in_charge(blobs, ctrl_c_at):
    X, _ = blobs
    received = []

    def handler(signum, frame):
        received.append(signum)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        est = GMVAEClustering(3, random_state=0, callbacks=[ctrl_c_at(epoch=2)], **SMALL)
        est.fit(X)  # the handler only records: training goes on
        assert signal.getsignal(signal.SIGINT) is handler
    finally:
        signal.signal(signal.SIGINT, previous)
    assert received == [signal.SIGINT] and est.n_iter_ == 5


def test_after_training_a_first_ctrl_c_waits_and_a_second_raises():
    with ctrl_c() as interrupt:
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)  # while training: at once
    assert interrupt.received
    with ctrl_c() as interrupt:
        interrupt.training = False  # the fit assembles its model
        signal.raise_signal(signal.SIGINT)
        assert interrupt.received
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
