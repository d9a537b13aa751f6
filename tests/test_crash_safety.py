"""Runs survive anything: ``sk-gmvae reproduce`` killed at random moments, killed in the
middle of checkpoint writes, and stopped by SIGINT / SIGTERM, then rerun: every rerun
resumes, and the finished per-epoch histories equal an uninterrupted run's exactly.

``SK_GMVAE_KILLS`` (default 4) sets the number of random kills.
"""

import os
import random
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

from sk_gmvae.callbacks import read_csv
from sk_gmvae.callbacks._checkpoint import epochs_done

DRIVER = Path(__file__).with_name("study_driver.py")
VARIANTS = ("gmvae", "modified_m2")
ARGS = [
    "reproduce",
    "--variants",
    *VARIANTS,
    "--seeds",
    "0",
    "--epochs",
    "8",
    "--n-train",
    "300",
    "--n-train-eval",
    "20",
    "--hidden",
    "16",
    "--latent-dim",
    "2",
    "--n-clusters",
    "3",
    "--no-progress",
]


def _start(out: Path, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(DRIVER), *ARGS, "--out", str(out)],
        env={**os.environ, "PYTHONHASHSEED": "0", **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _histories(out: Path) -> dict[str, list[dict]]:
    """Each run's per-epoch history, without the epochs' durations (wall-clock)."""
    return {
        v: [{k: x for k, x in row.items() if k != "dur"} for row in read_csv(p)]
        for v in VARIANTS
        for p in [out / "histories" / f"{v}-seed0.csv"]
    }


def _epochs_logged(out: Path) -> int:
    return sum(len(p.read_bytes().splitlines()) for p in out.glob("checkpoints/*/history.jsonl"))


def _epochs_checkpointed(out: Path) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a kill between two renames: said, and handled
        return sum(epochs_done(folder) for folder in out.glob("checkpoints/*"))


def _wait_for_training(process: subprocess.Popen, out: Path) -> None:
    """Until the process has logged an epoch of its own (past start-up), or ended."""
    before = _epochs_logged(out)
    deadline = time.monotonic() + 120
    while _epochs_logged(out) <= before and process.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.02)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The uninterrupted run's histories, and how long its training took."""
    out = tmp_path_factory.mktemp("uninterrupted")
    process = _start(out)
    _wait_for_training(process, out)
    start = time.perf_counter()
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    return _histories(out), time.perf_counter() - start


def test_killed_anywhere_resumes_to_the_uninterrupted_history(uninterrupted, tmp_path):
    expected, seconds = uninterrupted
    rng = random.Random(0)
    kills = int(os.environ.get("SK_GMVAE_KILLS", "4"))
    out = tmp_path / "study"
    outcomes, resumed, progress = [], [], []
    # Deliberately inside checkpoint and history writes: the k-th write dies half-way.
    for k in (1, 2, 3, 6):
        process = _start(out, SK_GMVAE_TEST_DIE_IN_WRITE=str(k))
        stdout, err = process.communicate(timeout=300)
        outcomes.append(process.returncode)
        resumed.append("resuming from its checkpoint" in stdout)
        progress.append(_epochs_checkpointed(out))
        assert process.returncode in (137, 0), err  # died as told (or had finished)
    # At random moments of training (SIGKILL: no chance to clean up).
    for _ in range(kills):
        process = _start(out)
        _wait_for_training(process, out)
        time.sleep(rng.uniform(0.0, 0.5) * seconds)
        process.kill()
        stdout, err = process.communicate(timeout=300)
        outcomes.append(process.returncode)
        resumed.append("resuming from its checkpoint" in stdout)
        progress.append(_epochs_checkpointed(out))
        assert process.returncode in (-signal.SIGKILL, 0), err  # never a crash on resume
    process = _start(out)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    assert outcomes.count(137) >= 3  # the write deaths happened
    # Reruns went on from their checkpoints: no kill ever lost a checkpointed epoch.
    assert any(resumed) and progress == sorted(progress) and progress[-1] > 0
    assert _histories(out) == expected
    assert (out / "results.md").exists()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_at_a_safe_point_exits_non_zero_and_the_rerun_resumes(
    uninterrupted, tmp_path, signum
):
    expected, _ = uninterrupted
    out = tmp_path / "study"
    process = _start(out)
    deadline = time.monotonic() + 120
    while _epochs_logged(out) < 3 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signum)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 128 + signum, err
    assert f"stopped by {signal.Signals(signum).name}" in err and "Rerun" in err
    assert "Traceback" not in err
    # Nothing downstream took the stopped run as finished.
    assert not (out / "results.md").exists() and not list(out.glob("prototypes-*"))
    process = _start(out)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    assert _histories(out) == expected
