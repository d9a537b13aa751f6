"""run_study with a variant's seeds stacked: each seed's files equal its run alone."""

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning

from sk_gmvae.callbacks._checkpoint import epochs_done
from sk_gmvae.study import run_study, runner
from sk_gmvae.study.runner import StudyInterrupted

KEYS = ("train_loss", "train_elbo", "train_entropy", "test_loss", "test_entropy")
SETTINGS = dict(n_clusters=4, latent_dim=2, hidden_layer_sizes=(8,), batch_size=50)


@pytest.fixture(scope="module")
def data():
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    return X[:150], X[150:250], y[150:250]


def _study(data, out, epochs, stack, seeds=(0, 1, 2), **kwargs):
    return run_study(
        *data,
        out,
        variants=["gmvae"],
        seeds=list(seeds),
        epochs=epochs,
        progress=False,
        stack_seeds=stack,
        **SETTINGS,
        **kwargs,
    )


@pytest.fixture(scope="module")
def alone(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("alone")
    return out, _study(data, out, 3, stack=False)


@pytest.fixture
def stacks(monkeypatch):
    """The (seeds, start epoch) of every stacked training, in order."""
    calls = []
    original = runner._Study.train_stacked

    def spy(self, variant, seeds, start):
        calls.append((list(seeds), start))
        return original(self, variant, seeds, start)

    monkeypatch.setattr(runner._Study, "train_stacked", spy)
    return calls


def _assert_same(histories, reference, out, reference_out):
    assert set(histories) == set(reference)
    for run, rows in histories.items():
        assert len(rows) == len(reference[run]) == 3
        for key in KEYS:
            np.testing.assert_allclose(
                [r[key] for r in rows], [r[key] for r in reference[run]], rtol=1e-4, atol=1e-5
            )
        name = f"{run[0]}-seed{run[1]}"
        np.testing.assert_allclose(
            np.load(out / f"prototypes-{name}.npy"),
            np.load(reference_out / f"prototypes-{name}.npy"),
            atol=1e-4,
        )


def test_stacked_seeds_equal_seeds_trained_alone(data, alone, tmp_path, stacks):
    stacked = _study(data, tmp_path, 3, stack=True)
    assert stacks == [([0, 1, 2], 0)]
    _assert_same(stacked, alone[1], tmp_path, alone[0])
    for seed in (0, 1, 2):  # each seed has its own checkpoint and test labels
        assert epochs_done(tmp_path / "checkpoints" / f"gmvae-seed{seed}") == 3
        labels = np.load(tmp_path / f"test-labels-gmvae-seed{seed}.npy")
        assert labels.shape == (100,)
    # The test accuracy of each seed is its own, not the stack's.
    accuracies = {run: rows[-1]["test_accuracy"] for run, rows in stacked.items()}
    assert accuracies == {run: rows[-1]["test_accuracy"] for run, rows in alone[1].items()}


def test_stacked_resume_from_mixed_points_equals_alone(data, alone, tmp_path, stacks):
    # Seed 0 trained 1 epoch alone, seeds 1 and 2 two epochs stacked; resuming stacks
    # what resumes from the same epoch and trains the rest alone.
    _study(data, tmp_path, 1, stack=False, seeds=(0,))
    _study(data, tmp_path, 2, stack=True, seeds=(1, 2))
    resumed = _study(data, tmp_path, 3, stack=True)
    # Seeds 1 and 2 stacked from epoch 0, then resumed stacked from 2; seed 0 alone.
    assert stacks == [([1, 2], 0), ([1, 2], 2)]
    _assert_same(resumed, alone[1], tmp_path, alone[0])


def test_a_stacked_study_resumes_one_seed_at_a_time(data, alone, tmp_path):
    _study(data, tmp_path, 2, stack=True)
    resumed = _study(data, tmp_path, 3, stack=False)
    _assert_same(resumed, alone[1], tmp_path, alone[0])


def test_signal_stops_a_stacked_study_with_complete_checkpoints(
    data, alone, tmp_path, stacks, monkeypatch
):
    import os
    import signal

    from skorch.callbacks import Callback

    class _Interrupt(Callback):
        """Send SIGINT to this process after a seed's first epoch (once)."""

        sent = False

        def on_epoch_end(self, net, **kwargs):
            if len(net.history) == 1 and not _Interrupt.sent:
                _Interrupt.sent = True
                os.kill(os.getpid(), signal.SIGINT)

    run_callbacks = runner._Study.callbacks
    # Each seed's callbacks (run by PerRestart on the seed's lone net) get the interrupt.
    monkeypatch.setattr(
        runner._Study,
        "callbacks",
        lambda self, v, s: [*run_callbacks(self, v, s), ("interrupt", _Interrupt())],
    )
    with pytest.raises(StudyInterrupted) as stopped:
        _study(data, tmp_path, 3, stack=True)
    assert stacks == [([0, 1, 2], 0)]
    assert stopped.value.epochs == 1  # the second epoch, cut short, is not kept
    for seed in (0, 1, 2):
        assert epochs_done(tmp_path / "checkpoints" / f"gmvae-seed{seed}") == 1
    monkeypatch.setattr(runner._Study, "callbacks", run_callbacks)
    resumed = _study(data, tmp_path, 3, stack=True)
    assert stacks[-1] == ([0, 1, 2], 1)
    _assert_same(resumed, alone[1], tmp_path, alone[0])


def test_the_callers_callbacks_keep_the_seeds_apart(data, tmp_path, stacks):
    from skorch.callbacks import Callback

    _study(data, tmp_path, 1, stack=True, callbacks=[Callback()], prototypes=False)
    assert stacks == []  # callbacks expect one plain net each: the seeds train alone


def test_a_diverging_stack_goes_on_seed_by_seed(data, tmp_path, stacks):
    # At this rate every seed diverges in its first epoch, stacked or alone: the stack
    # stops at once and each seed then trains alone, with its own divergence guard.
    kwargs = dict(learning_rate=1e6, prototypes=False)
    with pytest.warns(ConvergenceWarning, match="diverged"):
        stacked = _study(data, tmp_path / "stacked", 2, stack=True, seeds=(0, 1), **kwargs)
    assert stacks == [([0, 1], 0)]
    with pytest.warns(ConvergenceWarning, match="diverged"):
        alone = _study(data, tmp_path / "alone", 2, stack=False, seeds=(0, 1), **kwargs)

    def without_durations(histories):
        return {
            run: [{k: v for k, v in r.items() if k != "dur"} for r in rows]
            for run, rows in histories.items()
        }

    np.testing.assert_equal(without_durations(stacked), without_durations(alone))  # NaN = NaN
