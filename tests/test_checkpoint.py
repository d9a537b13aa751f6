"""RunCheckpoint: crash-safe checkpoints of a fit, and exact resume (in-process)."""

import json

import numpy as np
import pytest
import torch
from _helpers import small_params
from sklearn.exceptions import ConvergenceWarning
from skorch.callbacks import Callback

from sk_gmvae import GMVAEClustering
from sk_gmvae.callbacks import RunCheckpoint, history_records
from sk_gmvae.callbacks._checkpoint import CHECKPOINT, HISTORY, PREVIOUS, epochs_done

SMALL = small_params(batch_size=64, random_state=0)


@pytest.fixture(scope="module")
def X(digits):
    return digits[0][:200]


def _fit(X, folder, epochs):
    callbacks = [RunCheckpoint(folder)]
    return GMVAEClustering(3, max_epochs=epochs, callbacks=callbacks, **SMALL).fit(X)


def _records(est):
    return [{k: v for k, v in row.items() if k != "dur"} for row in history_records(est.history_)]


@pytest.fixture(scope="module")
def straight(X, tmp_path_factory):
    return _fit(X, tmp_path_factory.mktemp("straight"), 4)


def _same_model(a, b):
    for p, q in zip(a.net_.module_.parameters(), b.net_.module_.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


def test_resumed_fit_equals_an_uninterrupted_one(X, straight, tmp_path):
    _fit(X, tmp_path, 2)
    assert epochs_done(tmp_path) == 2
    resumed = _fit(X, tmp_path, 2)  # the 2 epochs still to do
    assert resumed.n_iter_ == 4 and _records(resumed) == _records(straight)
    _same_model(resumed, straight)
    # On disk: one line per epoch, per-epoch values only.
    lines = (tmp_path / HISTORY).read_text().splitlines()
    assert len(lines) == 4 and all("batches" not in json.loads(line) for line in lines)


def test_a_damaged_checkpoint_falls_back_to_the_previous_one(X, straight, tmp_path):
    _fit(X, tmp_path, 3)
    data = (tmp_path / CHECKPOINT).read_bytes()
    (tmp_path / CHECKPOINT).write_bytes(data[: len(data) // 3])  # torn
    with pytest.warns(RuntimeWarning, match="resuming from checkpoint.prev.pt"):
        assert epochs_done(tmp_path) == 2
    with pytest.warns(RuntimeWarning, match="epoch 2"):
        resumed = _fit(X, tmp_path, 2)
    assert _records(resumed) == _records(straight)
    _same_model(resumed, straight)


def test_history_lines_beyond_the_checkpoint_are_dropped(X, straight, tmp_path):
    _fit(X, tmp_path, 2)
    with open(tmp_path / HISTORY, "a") as f:  # killed after logging epoch 3, half a line
        f.write('{"epoch": 3, "train_lo')
    resumed = _fit(X, tmp_path, 2)
    assert _records(resumed) == _records(straight)


def test_nothing_usable_starts_over_with_a_warning(X, straight, tmp_path):
    _fit(X, tmp_path, 2)
    for name in (CHECKPOINT, PREVIOUS):
        (tmp_path / name).write_bytes(b"garbage")
    with pytest.warns(RuntimeWarning, match="starts over"):
        fresh = _fit(X, tmp_path, 4)
    assert _records(fresh) == _records(straight)
    np.testing.assert_array_equal(fresh.labels_, straight.labels_)


class StopAfter(Callback):
    """Ctrl-C after the first epoch this training runs."""

    def on_epoch_end(self, net, **kwargs):
        raise KeyboardInterrupt


def test_a_resumed_run_reports_its_own_epochs(X, tmp_path):
    # Resumed at epoch 2 with 3 epochs still to do, interrupted after 1 of them: the
    # epochs restored from the checkpoint are not counted as this training's.
    _fit(X, tmp_path, 2)
    callbacks = [RunCheckpoint(tmp_path), StopAfter()]
    est = GMVAEClustering(3, max_epochs=3, callbacks=callbacks, **SMALL)
    with pytest.warns(ConvergenceWarning, match="interrupted after 1 of 3 epochs"):
        est.fit(X)
    assert est.n_iter_ == 3


def test_a_run_checkpoint_takes_one_training(X, straight, tmp_path):
    # It resumes one run from its files: n_init="auto" is 1 with it (200 rows would
    # give 4 restarts), and restarts that would resume each other's runs are refused.
    assert straight.n_init_ == 1 and len(straight.restarts_) == 1
    est = GMVAEClustering(3, n_init=2, max_epochs=2, callbacks=[RunCheckpoint(tmp_path)], **SMALL)
    with pytest.raises(ValueError, match="n_init=2 restarts would share"):
        est.fit(X)
    assert not list(tmp_path.iterdir())  # refused before any training


def test_the_progress_bar_of_a_resumed_run_goes_on_from_the_restored_epochs(X, tmp_path):
    import io

    from sk_gmvae.callbacks import FitProgressBar

    _fit(X, tmp_path, 2)
    out = io.StringIO()
    bar = FitProgressBar(file=out, log_every=0.25)
    callbacks = [bar, RunCheckpoint(tmp_path)]  # as verbose=1: the bar begins first
    GMVAEClustering(3, max_epochs=2, callbacks=callbacks, **SMALL).fit(X)  # epochs 3-4
    epochs = [line.split()[2] for line in out.getvalue().splitlines()]
    assert epochs == ["3/4", "4/4"]
