"""The ``sk-gmvae mnist`` command, on small data the test makes."""

import json

import numpy as np
import pytest

import sk_gmvae
from sk_gmvae import GMVAEClustering, cli
from sk_gmvae.callbacks import read_csv
from sk_gmvae.datasets import DatasetUnavailableError
from sk_gmvae.study import protocol, runner


def test_mnist_command_prints_metrics(monkeypatch, tmp_path, capsys):
    rng = np.random.default_rng(0)

    def fake_load(subset, return_X_y, data_home):
        n = 60 if subset == "train" else 40
        return rng.random((n, 784), dtype=np.float32), rng.integers(0, 10, n)

    monkeypatch.setattr(protocol, "load_mnist", fake_load)
    out_json = tmp_path / "r.json"
    code = cli.main(
        [
            "mnist",
            "--epochs",
            "1",
            "--latent-dim",
            "2",
            "--n-clusters",
            "3",
            "--json",
            str(out_json),
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    for text in ("cluster accuracy (majority vote)", "H(Y|X)", "ELBO", "Hungarian"):
        assert text in out
    results = json.loads(out_json.read_text())
    assert results["epochs"] == 1 and results["n_train"] == 60
    assert 0 < results["accuracy"] <= 1 and np.isfinite(results["test_elbo"])


def test_mnist_command_reports_missing_data_without_traceback(monkeypatch, capsys):
    def unavailable(*args, **kwargs):
        raise DatasetUnavailableError("MNIST could not be loaded from any source")

    monkeypatch.setattr(protocol, "load_mnist", unavailable)
    assert cli.main(["mnist"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: MNIST could not be loaded") and "Traceback" not in err


def _tiny_mnist(monkeypatch):
    rng = np.random.default_rng(0)
    data = {
        s: (rng.random((n, 784), dtype=np.float32), rng.integers(0, 10, n))
        for s, n in (("train", 50), ("test", 30))
    }
    monkeypatch.setattr(protocol, "load_mnist", lambda subset, return_X_y, data_home: data[subset])


REPRODUCE = [
    "reproduce",
    "--seeds",
    "0",
    "1",
    "--n-train",
    "40",
    "--n-train-eval",
    "20",
    "--hidden",
    "8",
    "--latent-dim",
    "2",
    "--n-clusters",
    "3",
    "--no-progress",
]


def test_reproduce_writes_every_artefact_then_skips_and_resumes(monkeypatch, tmp_path, capsys):
    _tiny_mnist(monkeypatch)
    out = tmp_path / "study"
    assert cli.main([*REPRODUCE, "--epochs", "2", "--out", str(out)]) == 0
    for variant in ("m2", "modified_m2", "gmvae"):
        for seed in (0, 1):
            rows = read_csv(out / "histories" / f"{variant}-seed{seed}.csv")
            assert len(rows) == 2
            assert {"test_accuracy", "test_entropy", "test_loss", "train_eval_loss"} <= set(rows[0])
            assert (out / f"prototypes-{variant}-seed{seed}.png").stat().st_size > 0
            labels = np.load(out / f"test-labels-{variant}-seed{seed}.npy")
            assert labels.shape == (30,) and labels.max() < 3
    for name in ("figure.png", "figure.svg", "results.md"):
        assert (out / name).stat().st_size > 0
    results = (out / "results.md").read_text()
    assert "| gmvae | 1 | 2 |" in results and "Dilokthanakul" in results
    assert "sk-gmvae reproduce --seeds 0 1" in results
    first = read_csv(out / "histories" / "gmvae-seed0.csv")

    # Finished runs are skipped: no training happens on a rerun.
    def no_fit(*args, **kwargs):
        raise AssertionError("finished runs must not be trained again")

    monkeypatch.setattr(GMVAEClustering, "fit", no_fit)
    assert cli.main([*REPRODUCE, "--epochs", "2", "--out", str(out)]) == 0
    monkeypatch.undo()

    # More epochs resume from the checkpoints: earlier epochs are kept as they were.
    _tiny_mnist(monkeypatch)
    assert cli.main([*REPRODUCE, "--epochs", "3", "--out", str(out)]) == 0
    resumed = read_csv(out / "histories" / "gmvae-seed0.csv")
    assert len(resumed) == 3 and resumed[:2] == first
    capsys.readouterr()


def test_reproduce_checks_what_it_needs_before_loading_data(monkeypatch, tmp_path, capsys):
    def no_load(*args, **kwargs):
        raise AssertionError("nothing is loaded or trained when a requirement is missing")

    monkeypatch.setattr(protocol, "load_mnist", no_load)
    # matplotlib missing: said at once, exit status 2.
    monkeypatch.setitem(__import__("sys").modules, "matplotlib", None)
    assert cli.main([*REPRODUCE, "--out", str(tmp_path / "out")]) == 2
    assert "matplotlib" in capsys.readouterr().err
    monkeypatch.undo()
    monkeypatch.setattr(protocol, "load_mnist", no_load)
    # An output folder that cannot be made.
    (tmp_path / "a-file").write_text("")
    assert cli.main([*REPRODUCE, "--out", str(tmp_path / "a-file" / "out")]) == 2
    assert "not writable" in capsys.readouterr().err


def _help(capsys, *argv):
    try:
        cli.main([*argv, "--help"])
    except SystemExit as exc:
        assert exc.code == 0
    return capsys.readouterr().out


def test_help_shows_defaults_and_choices_without_markup(capsys):
    top = _help(capsys)
    assert "mnist" in top and "reproduce" in top and "``" not in top
    for command in ("mnist", "reproduce"):
        text = _help(capsys, command)
        assert "``" not in text
        assert "(default: 10)" in text  # --n-clusters
        assert "{float32,tf32,bfloat16}" in text
    mnist = _help(capsys, "mnist")
    for option in ("--hidden", "--batch-size", "--learning-rate", "{m2,modified_m2,gmvae,vade}"):
        assert option in mnist


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"sk-gmvae {sk_gmvae.__version__}"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["reproduce", "--variants", "foo"], "invalid choice: 'foo'"),
        (["reproduce", "--epochs", "0"], "positive integer"),
        (["mnist", "--learning-rate", "-1"], "positive number"),
        (["mnist", "--hidden", "16", "0"], "positive integer"),
        (["mnist", "--device", "tpu:9"], "not a valid torch device"),
    ],
)
def test_bad_options_are_refused_before_loading_data(monkeypatch, capsys, argv, message):
    def must_not_load(*args, **kwargs):
        raise AssertionError("data loaded before the options were checked")

    monkeypatch.setattr(protocol, "load_mnist", must_not_load)
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_mnist_options_reach_the_estimator(monkeypatch, tmp_path):
    rng = np.random.default_rng(0)
    fitted = {}

    def fake_load(subset, return_X_y, data_home):
        n = 60 if subset == "train" else 40
        return rng.random((n, 784), dtype=np.float32), rng.integers(0, 10, n)

    original_fit = GMVAEClustering.fit

    def spy_fit(self, X, y=None):
        fitted.update(self.get_params())
        return original_fit(self, X, y)

    monkeypatch.setattr(protocol, "load_mnist", fake_load)
    monkeypatch.setattr(GMVAEClustering, "fit", spy_fit)
    argv = ["mnist", "--epochs", "1", "--latent-dim", "2", "--n-clusters", "3"]
    argv += ["--hidden", "8", "4", "--batch-size", "20", "--learning-rate", "0.01"]
    assert cli.main([*argv, "--cuda-graph", "no"]) == 0
    assert fitted["hidden_layer_sizes"] == (8, 4) and fitted["batch_size"] == 20
    assert fitted["learning_rate"] == 0.01 and fitted["cuda_graph"] is False
    assert cli.main(argv) == 0
    assert fitted["cuda_graph"] == "auto"


def test_mnist_plots_option_writes_the_figures(monkeypatch, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    rng = np.random.default_rng(0)

    def fake_load(subset, return_X_y, data_home):
        n = 60 if subset == "train" else 40
        return rng.random((n, 784), dtype=np.float32), rng.integers(0, 10, n)

    monkeypatch.setattr(protocol, "load_mnist", fake_load)
    argv = ["mnist", "--epochs", "1", "--latent-dim", "3", "--n-clusters", "3", "--hidden", "8"]
    assert cli.main([*argv, "--plots", str(tmp_path / "figs")]) == 0
    names = {"prototypes.png", "examples.png", "confusion.png", "latent.png"}
    assert {p.name for p in (tmp_path / "figs").iterdir()} == names
    out = capsys.readouterr().out
    assert all(f"figs/{name}" in out for name in names)


def test_reproduce_options_reach_the_study(monkeypatch, tmp_path):
    _tiny_mnist(monkeypatch)
    seen = {}

    class Stop(Exception):
        pass

    def spy(*args, **kwargs):
        seen.update(kwargs)
        raise Stop

    monkeypatch.setattr(runner, "run_study", spy)
    argv = [*REPRODUCE, "--out", str(tmp_path), "--cuda-graph", "no", "--stack-seeds", "yes"]
    with pytest.raises(Stop):
        cli.main(argv)
    assert seen["cuda_graph"] is False and seen["stack_seeds"] is True
