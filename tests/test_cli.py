"""The ``sk-gmvae`` command: ``cluster`` and ``predict`` on files the tests write, ``mnist``
and ``reproduce`` on small stand-in data; tiny networks, so each test takes seconds."""

import contextlib
import io
import json
import sys

import numpy as np
import pytest
from sklearn.datasets import make_blobs

import sk_gmvae
from sk_gmvae import GMVAEClustering, cli
from sk_gmvae._cli.cluster import size_summary
from sk_gmvae._cli.files import read_table
from sk_gmvae._cli.options import UsageError, estimator_params
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
    assert all(c in top for c in ("cluster", "predict", "mnist", "reproduce"))
    assert "``" not in top
    for command in ("cluster", "mnist", "reproduce"):
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
        (["mnist", "--device", "tpu:9"], "not a device the networks run on"),
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
    assert fitted["learning_rate"] == 0.01 and fitted["net_params"] == {"cuda_graph": False}
    assert cli.main(argv) == 0
    assert fitted["net_params"] is None  # the engine's defaults


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
    assert seen["net_params"] == {"cuda_graph": False} and seen["stack_seeds"] is True
    assert seen["variant_settings"]["dilokthanakul"]["variant_params"]["mc_samples"] == 1
    with pytest.raises(Stop):
        cli.main([*argv, "--variants", "gmvae", "dilokthanakul", "--mc-samples", "10"])
    assert seen["variants"] == ["gmvae", "dilokthanakul"]
    assert seen["variant_settings"]["dilokthanakul"]["variant_params"]["mc_samples"] == 10


# ---------------------------------------------------------------- cluster and predict

# Whole numbers, so that every reader and writer round trips them exactly.
X_BLOBS = np.round(make_blobs(n_samples=60, n_features=4, centers=3, random_state=0)[0] * 10)
TINY = ["--n-clusters", "3", "--max-epochs", "2", "--hidden", "8", "--latent-dim", "2"]
TINY += ["--n-init", "1", "--seed", "0"]


def _write_csv(path, X, header=True, delimiter=","):
    names = delimiter.join(f"feature {j}" for j in range(X.shape[1]))
    np.savetxt(path, X, fmt="%d", delimiter=delimiter, header=names if header else "", comments="")
    if not header:  # savetxt writes an empty first line for an empty header
        path.write_text(path.read_text().lstrip("\n"))
    return path


def _main(*argv):
    """``cli.main(argv)``, its status, standard output and standard error."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def _labels(path):
    """The labels file: its header and its rows as numbers."""
    lines = path.read_text().splitlines()
    return lines[0], np.loadtxt(lines[1:], delimiter=",", ndmin=2)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """``sk-gmvae cluster`` on a CSV file with a header, writing labels and the model."""
    folder = tmp_path_factory.mktemp("cluster")
    data = _write_csv(folder / "data.csv", X_BLOBS)
    labels, model = folder / "labels.csv", folder / "model.skgmvae"
    code, out, err = _main("cluster", data, *TINY, "--out", labels, "--save", model)
    assert code == 0, err
    return {"folder": folder, "labels": labels, "model": model, "out": out}


def test_cluster_writes_labels_probabilities_model_and_summary(trained):
    header, rows = _labels(trained["labels"])
    assert header == "label,proba_0,proba_1,proba_2"
    assert rows.shape == (60, 4)  # one line per input row
    proba = rows[:, 1:]
    np.testing.assert_allclose(proba.sum(axis=1), 1, atol=1e-5)
    np.testing.assert_array_equal(rows[:, 0], proba.argmax(axis=1))
    assert trained["model"].stat().st_size > 0
    out = trained["out"]
    assert out.startswith("Training gmvae (K=3) on 60 rows x 4 columns")
    summary = out[out.index("60 rows in") :]
    counts = np.bincount(rows[:, 0].astype(int), minlength=3)
    for k, count in enumerate(counts):  # one row per cluster: its size and percent
        assert f"{k}  {count:>4}  {100 * count / 60:5.1f} %" in summary


@pytest.mark.parametrize(
    "name, write",
    [
        ("plain.csv", lambda p: _write_csv(p, X_BLOBS, header=False)),
        ("data.npy", lambda p: np.save(p, X_BLOBS)),
        ("data.npz", lambda p: np.savez(p, X=X_BLOBS)),
    ],
)
def test_predict_with_the_saved_model_gives_the_same_file(trained, tmp_path, name, write):
    data = tmp_path / name
    write(data)
    labels = tmp_path / "labels.csv"
    code, out, err = _main("predict", "--model", trained["model"], data, "--out", labels)
    assert code == 0, err
    assert labels.read_text() == trained["labels"].read_text()
    assert "60 rows in" in out
    # --quiet: nothing but errors.
    quiet = _main("predict", "--model", trained["model"], data, "--out", labels, "--quiet")
    assert quiet == (0, "", "")


def test_predict_refuses_other_columns_and_other_files_in_one_line(trained, tmp_path):
    model, labels = trained["model"], tmp_path / "labels.csv"
    narrow = _write_csv(tmp_path / "narrow.csv", X_BLOBS[:, :3])
    code, _, err = _main("predict", "--model", model, narrow, "--out", labels)
    assert code == 2 and "3 features" in err and len(err.splitlines()) == 1
    not_a_model = _write_csv(tmp_path / "data.csv", X_BLOBS)
    code, _, err = _main("predict", "--model", not_a_model, not_a_model, "--out", labels)
    assert code == 2 and "weights file" in err and len(err.splitlines()) == 1
    code, _, err = _main("predict", "--model", tmp_path / "none", not_a_model, "--out", labels)
    assert code == 2 and "no such file" in err


@pytest.mark.parametrize("pandas", [True, False], ids=["pandas", "numpy"])
def test_text_files_with_and_without_header(tmp_path, monkeypatch, pandas):
    if not pandas:
        monkeypatch.setitem(sys.modules, "pandas", None)  # the numpy reader
    for header in (True, False):
        for delimiter, suffix in ((",", "csv"), ("\t", "tsv")):
            path = _write_csv(tmp_path / f"x.{suffix}", X_BLOBS, header, delimiter)
            np.testing.assert_array_equal(read_table(path), X_BLOBS)
    one_column = _write_csv(tmp_path / "one.csv", X_BLOBS[:, :1])
    assert read_table(one_column).shape == (60, 1)
    (tmp_path / "words.csv").write_text("a,b\n1,2\n3,x\n")
    with pytest.raises(UsageError, match="words.csv"):
        read_table(tmp_path / "words.csv")
    (tmp_path / "gap.csv").write_text("a,b\n1,2\n3,\n")
    with pytest.raises(UsageError, match="row 2, column 2"):
        read_table(tmp_path / "gap.csv")


def test_array_files(tmp_path):
    images = np.zeros((5, 2, 3), dtype=np.float32)
    np.save(tmp_path / "images.npy", images)
    assert read_table(tmp_path / "images.npy").shape == (5, 6)  # one row per image
    np.savez(tmp_path / "two.npz", X=X_BLOBS, y=np.arange(60))
    np.testing.assert_array_equal(read_table(tmp_path / "two.npz", key="X"), X_BLOBS)
    with pytest.raises(UsageError, match="several arrays; choose one of X, y with --key"):
        read_table(tmp_path / "two.npz")
    with pytest.raises(UsageError, match="no array 'z'"):
        read_table(tmp_path / "two.npz", key="z")
    np.save(tmp_path / "text.npy", np.array(["a", "b"]))
    with pytest.raises(UsageError, match="not numbers"):
        read_table(tmp_path / "text.npy")
    with pytest.raises(UsageError, match="unknown file type .txt"):
        read_table(tmp_path / "x.txt")


def test_parquet_needs_pandas_and_says_so(tmp_path, monkeypatch):
    pd = pytest.importorskip("pandas")
    path = tmp_path / "x.parquet"
    try:
        pd.DataFrame(X_BLOBS, columns=list("abcd")).to_parquet(path)
    except ImportError:  # no Parquet engine: the error names what to install
        path.write_bytes(b"not parquet")
        with pytest.raises(UsageError, match="pandas with pyarrow"):
            read_table(path)
    else:
        np.testing.assert_array_equal(read_table(path), X_BLOBS)
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(UsageError, match="pandas with pyarrow"):
        read_table(path)


def _no_fit(monkeypatch):
    def no_fit(*args, **kwargs):
        raise AssertionError("nothing is trained when an output path is bad")

    monkeypatch.setattr(GMVAEClustering, "fit", no_fit)


@pytest.mark.parametrize("option", ["--out", "--save"])
def test_bad_output_path_exits_2_before_training(tmp_path, monkeypatch, option):
    _no_fit(monkeypatch)
    data = _write_csv(tmp_path / "data.csv", X_BLOBS)
    (tmp_path / "a-file").write_text("")
    for bad in (tmp_path / "missing" / "out", tmp_path / "a-file" / "out", tmp_path):
        code, out, err = _main("cluster", data, option, bad)
        assert code == 2 and out == ""
        assert err.startswith(f"error: cannot write {bad}") and len(err.splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "data.csv"]
    code, _, err = _main("cluster", data, "--out", tmp_path / "x", "--save", tmp_path / "x")
    assert code == 2 and "the same file" in err
    code, _, err = _main("predict", "--model", data, data, "--out", tmp_path / "missing" / "l")
    assert code == 2 and err.startswith("error: cannot write")


def test_ctrl_c_stops_the_command_with_status_130_and_writes_nothing(tmp_path, monkeypatch):
    def interrupted(self, X, y=None):
        raise KeyboardInterrupt("GMVAEClustering.fit stopped by Ctrl-C")

    monkeypatch.setattr(GMVAEClustering, "fit", interrupted)
    data = _write_csv(tmp_path / "data.csv", X_BLOBS)
    labels, model = tmp_path / "labels.csv", tmp_path / "model.skgmvae"
    code, _, err = _main("cluster", data, *TINY, "--out", labels, "--save", model)
    assert code == 130 and err.strip() == "sk-gmvae: stopped by Ctrl-C"
    assert not labels.exists() and not model.exists()


def test_cluster_options_reach_the_estimator(tmp_path, monkeypatch):
    seen = {}

    class Stop(Exception):
        pass

    def spy(self, X, y=None):
        seen.update(self.get_params(), rows=X.shape)
        raise Stop

    monkeypatch.setattr(GMVAEClustering, "fit", spy)
    data = _write_csv(tmp_path / "data.csv", X_BLOBS)
    argv = ["cluster", data, "--binarize", "no", "--cuda-graph", "yes", "--hidden", "8", "4"]
    with pytest.raises(Stop):
        _main(*argv, "--epochs", "7", "--seed", "3", "--quiet")
    assert seen["rows"] == (60, 4) and seen["verbose"] == 0
    assert seen["binarize"] is False and seen["net_params"] == {"cuda_graph": True}
    assert seen["hidden_layer_sizes"] == (8, 4) and seen["max_epochs"] == 7
    assert seen["random_state"] == 3


def test_cluster_defaults_are_the_estimators():
    args = cli.build_parser().parse_args(["cluster", "data.csv"])
    params = estimator_params(args)
    defaults = GMVAEClustering().get_params()
    assert len(params) > 15 and params == {name: defaults[name] for name in params}


@pytest.mark.parametrize(
    "argv",
    [
        ["mnist", "--data", "x.csv"],  # not --data-home
        ["mnist", "--epoch", "2"],
        ["cluster", "x.csv", "--n-cl", "3"],
        ["predict", "x.csv", "--mod", "m", "--out", "l.csv"],
    ],
)
def test_options_are_never_abbreviated(monkeypatch, capsys, argv):
    def must_not_load(*args, **kwargs):
        raise AssertionError("data loaded with an unknown option")

    monkeypatch.setattr(protocol, "load_mnist", must_not_load)
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "unrecognized arguments" in err or "required" in err


def test_mnist_output_paths_are_checked_before_loading(monkeypatch, tmp_path):
    def no_load(*args, **kwargs):
        raise AssertionError("nothing is loaded or trained when an output path is bad")

    monkeypatch.setattr(protocol, "load_mnist", no_load)
    code, _, err = _main("mnist", "--json", tmp_path / "missing" / "r.json")
    assert code == 2 and err.startswith("error: cannot write") and "Traceback" not in err
    (tmp_path / "a-file").write_text("")
    code, _, err = _main("mnist", "--plots", tmp_path / "a-file" / "figs")
    assert code == 2 and "not writable" in err


def test_size_summary():
    text = size_summary(np.array([0] * 6 + [1] * 3 + [3]), 4, bar="#", width=12)
    lines = text.splitlines()
    assert lines[0] == "10 rows in 3 of 4 clusters:"
    assert lines[2:] == [
        "        0     6   60.0 %  ############",
        "        1     3   30.0 %  ######",
        "        2     0    0.0 %",
        "        3     1   10.0 %  ##",
    ]
