"""Weights-only save/load and pickle."""

import pickle
import re
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.datasets import make_blobs

from sk_gmvae import GMVAEClustering
from sk_gmvae.persistence import FORMAT, load_weights, save_weights


@pytest.fixture(scope="module")
def fitted():
    X, _ = make_blobs(n_samples=80, centers=3, n_features=4, random_state=0)
    est = GMVAEClustering(
        3,
        latent_dim=2,
        hidden_layer_sizes=(16, 8),
        max_epochs=3,
        random_state=0,
        min_variance=1e-4,
        posterior_samples=8,  # the importance draws survive the round trip
    ).fit(X)
    return est, X


def test_weights_round_trip(fitted, tmp_path):
    est, X = fitted
    save_weights(est, tmp_path / "m.pt")
    loaded = load_weights(tmp_path / "m.pt", device="cpu")
    # Exact on the CPU; a CUDA model's float64 inference differs from the CPU's in the
    # last bits (different kernels).
    tol = 0.0 if torch.device(est.device_).type == "cpu" else 1e-12
    np.testing.assert_allclose(loaded.predict_proba(X), est.predict_proba(X), rtol=tol, atol=tol)
    assert loaded.score(X) == pytest.approx(est.score(X), rel=tol, abs=tol)
    np.testing.assert_array_equal(loaded.labels_, est.labels_)
    assert loaded.get_params() == {**est.get_params(), "device": "cpu"}  # where it was loaded
    assert loaded.n_iter_ == 3 and loaded.history_[-1, "train_elbo"] == est.lower_bound_
    assert (loaded.n_init_, loaded.trial_epochs_) == (est.n_init_, est.trial_epochs_) == (4, 1)
    assert loaded.posterior_samples == est.posterior_samples == 8
    # It can go on training.
    loaded.set_params(warm_start=True, max_epochs=1).fit(X)
    assert loaded.n_iter_ == 4


def test_weights_file_holds_no_code(fitted, tmp_path):
    est, _ = fitted
    path = tmp_path / "evil.pt"
    # Any object beyond tensors and plain values (here a Fraction) is refused on load.
    torch.save({"format": "sk_gmvae.weights/1", "params": {}, "x": Fraction(1, 3)}, path)
    with pytest.raises(pickle.UnpicklingError):
        load_weights(path)
    torch.save({"format": "other"}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="weights file"):
        load_weights(tmp_path / "other.pt")


def test_feature_names_survive(tmp_path):
    X, _ = make_blobs(n_samples=40, centers=2, n_features=3, random_state=0)
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    est = GMVAEClustering(
        2, latent_dim=1, hidden_layer_sizes=(8,), max_epochs=2, random_state=0
    ).fit(frame)
    save_weights(est, tmp_path / "m.pt")
    loaded = load_weights(tmp_path / "m.pt")
    assert list(loaded.feature_names_in_) == ["a", "b", "c"]
    np.testing.assert_array_equal(loaded.predict(frame), est.predict(frame))


def test_pickle_round_trip(fitted):
    est, X = fitted
    restored = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(restored.predict_proba(X), est.predict_proba(X))


@pytest.mark.skipif(torch.cuda.is_available(), reason="simulates a CPU-only machine")
def test_model_pickled_on_a_gpu_machine_loads_on_cpu(fitted):
    est, X = fitted
    clone = pickle.loads(pickle.dumps(est))
    # As if trained on a GPU: skorch records the device and maps it at load time.
    clone.net_.device, clone.device_ = "cuda", "cuda"
    with pytest.warns(UserWarning, match="CUDA"):
        restored = pickle.loads(pickle.dumps(clone))
    assert restored.device_ == "cpu"
    np.testing.assert_array_equal(restored.predict_proba(X), est.predict_proba(X))
    restored.set_params(warm_start=True, max_epochs=1).fit(X)  # and trains on, on the CPU
    assert restored.n_iter_ == est.n_iter_ + 1


def test_numpy_valued_parameters_round_trip(tmp_path):
    X, _ = make_blobs(n_samples=40, centers=2, n_features=3, random_state=0)
    params = dict(
        hidden_layer_sizes=np.array([16]),
        max_grad_norm=np.float32(5),
        latent_dim=np.int64(2),
        learning_rate=np.float64(1e-3),
        max_epochs=2,
        random_state=0,
    )
    est = GMVAEClustering(2, **params).fit(X)
    save_weights(est, tmp_path / "m.pt")
    loaded = load_weights(tmp_path / "m.pt", device="cpu")
    assert loaded.hidden_layer_sizes == (16,) and loaded.max_grad_norm == 5.0
    assert loaded.latent_dim == 2 and loaded.learning_rate == 1e-3
    np.testing.assert_array_equal(loaded.predict_proba(X), est.predict_proba(X))


def test_truncated_or_foreign_files_give_clear_errors(fitted, tmp_path):
    est, _ = fitted
    save_weights(est, tmp_path / "m.pt")
    data = (tmp_path / "m.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated or not a torch file"):
        load_weights(tmp_path / "cut.pt")
    (tmp_path / "text.pt").write_text("not a model")
    with pytest.raises(ValueError, match="truncated or not a torch file"):
        load_weights(tmp_path / "text.pt")
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(ValueError, match="not an sk_gmvae weights file"):
        load_weights(tmp_path / "list.pt")
    torch.save({"format": FORMAT, "params": {}}, tmp_path / "part.pt")
    with pytest.raises(ValueError, match="incomplete"):
        load_weights(tmp_path / "part.pt")


def test_a_damaged_file_is_refused(fitted, tmp_path):
    est, _ = fitted
    path = tmp_path / "m.pt"
    save_weights(est, path)
    data = bytearray(path.read_bytes())
    # torch.save stores tensors uncompressed: find the largest weight's bytes and zero
    # 64 of them in its middle, as a damaged disk or transfer would.
    weight = max(est.net_.module_.state_dict().values(), key=torch.Tensor.numel)
    start = data.find(weight.detach().cpu().numpy().tobytes())
    assert start > 0 and weight.numel() * 4 >= 256
    middle = start + weight.numel() * 2
    data[middle : middle + 64] = bytes(64)
    path.write_bytes(bytes(data))
    # torch's zip reader does not check CRCs: the file still loads, with other weights...
    damaged = torch.load(path, weights_only=True)["state_dict"]
    assert any(
        not torch.equal(damaged[k], v.cpu()) for k, v in est.net_.module_.state_dict().items()
    )
    # ...which the digest catches.
    with pytest.raises(ValueError, match="corrupted.*SHA-256"):
        load_weights(path)


def _resaved(path, edit):
    """The weights file at ``path`` with ``edit`` applied to its payload and its digest
    written anew, as a consistent-looking file."""
    from sk_gmvae.persistence import _digest

    payload = torch.load(path, weights_only=True)
    edit(payload)
    payload["digest"] = _digest(payload)
    torch.save(payload, path)


@pytest.mark.parametrize(
    "edit",
    [
        lambda p: p["fitted"].update(hidden_layer_sizes_=[2**40, 2**40]),
        lambda p: p["fitted"].update(hidden_layer_sizes_=[2**40]),
        lambda p: p["fitted"].update(hidden_layer_sizes_=[1] * 10**5),
        lambda p: p["fitted"].update(latent_dim_=3),
        lambda p: p["fitted"].update(n_features_in_=10**12),
        lambda p: p["params"].update(n_clusters=10**9),
        lambda p: p["fitted"].update(latent_dim_="2"),
        lambda p: p["fitted"].update(weights_=torch.ones(7)),
        lambda p: p["state_dict"].pop("qz_mean.bias"),
    ],
)
def test_sizes_that_do_not_fit_the_weights_are_refused_before_building(
    fitted, tmp_path, monkeypatch, edit
):
    est, _ = fitted
    path = tmp_path / "m.pt"
    save_weights(est, path)
    _resaved(path, edit)

    def build(*args, **kwargs):
        raise AssertionError("a net was built")

    monkeypatch.setattr(GMVAEClustering, "_restore", build)
    with pytest.raises(ValueError, match=re.escape(str(path)) + ": .*(sizes|weights|integer)"):
        load_weights(path, device="cpu")


def test_a_missing_file_and_an_unusable_device(fitted, tmp_path):
    with pytest.raises(FileNotFoundError):
        load_weights(tmp_path / "none.pt")
    save_weights(fitted[0], tmp_path / "m.pt")
    with pytest.raises(ValueError, match="'meta' is not a device"):
        load_weights(tmp_path / "m.pt", device="meta")


def test_output_configuration_survives(fitted, tmp_path):
    est, X = fitted
    clone = pickle.loads(pickle.dumps(est)).set_output(transform="pandas")
    save_weights(clone, tmp_path / "m.pt")
    loaded = load_weights(tmp_path / "m.pt", device="cpu")
    Z = loaded.transform(X)
    assert isinstance(Z, pd.DataFrame) and list(Z.columns) == [
        "gmvaeclustering0",
        "gmvaeclustering1",
    ]
    pd.testing.assert_frame_equal(Z, clone.transform(X))
    save_weights(est, tmp_path / "plain.pt")  # and the default stays the default
    assert isinstance(load_weights(tmp_path / "plain.pt").transform(X), np.ndarray)


def test_a_loaded_model_trains_on_from_its_learning_rate(tmp_path):
    X, _ = make_blobs(n_samples=40, centers=2, n_features=3, random_state=0)
    params = dict(latent_dim=1, hidden_layer_sizes=(4,), max_epochs=4, n_init=1)
    params.update(learning_rate=1e-3, learning_rate_decay=0.5)
    est = GMVAEClustering(2, random_state=0, **params).fit(X)
    save_weights(est, tmp_path / "m.pt")
    loaded = load_weights(tmp_path / "m.pt", device=est.device_)
    for model in (est, loaded):
        model.set_params(warm_start=True, max_epochs=2).fit(X)
    # The decay goes on where it was (the rate of epoch e: 1e-3 * 0.5 ** (e / 4)).
    rates = [row["event_lr"] for row in loaded.history_]
    np.testing.assert_allclose(rates, [row["event_lr"] for row in est.history_])
    np.testing.assert_allclose(rates, 1e-3 * 0.5 ** (np.arange(6) / 4))


def test_plain_net_params_round_trip(tmp_path):
    # A user's optimizer groups (and engine switches) are part of the model: without
    # them the loaded optimizer's groups would not fit the saved learning rates.
    X, _ = make_blobs(n_samples=40, centers=2, n_features=3, random_state=0)
    groups = [("dec_out.*", {"lr": 1e-5})]
    net_params = {"optimizer__param_groups": groups, "precision": "float32"}
    est = GMVAEClustering(
        2, latent_dim=1, hidden_layer_sizes=(4,), max_epochs=2, n_init=1, net_params=net_params
    ).fit(X)
    save_weights(est, tmp_path / "m.pt")
    loaded = load_weights(tmp_path / "m.pt", device="cpu")
    assert loaded.net_params["precision"] == "float32"
    assert [list(g) for g in loaded.net_params["optimizer__param_groups"]] == [
        ["dec_out.*", {"lr": 1e-5}]
    ]
    assert [g["lr"] for g in loaded.net_.optimizer_.param_groups] == [
        g["lr"] for g in est.net_.optimizer_.param_groups
    ]
    np.testing.assert_array_equal(loaded.predict(X), est.predict(X))
    loaded.set_params(warm_start=True, max_epochs=1).fit(X)  # and trains on


def test_net_params_that_are_not_plain_are_left_out(tmp_path):
    X, _ = make_blobs(n_samples=40, centers=2, n_features=3, random_state=0)
    net_params = {"iterator_train__collate_fn": torch.utils.data.default_collate}
    est = GMVAEClustering(
        2, latent_dim=1, hidden_layer_sizes=(4,), max_epochs=1, n_init=1, net_params=net_params
    ).fit(X)
    save_weights(est, tmp_path / "m.pt")
    assert load_weights(tmp_path / "m.pt", device="cpu").net_params is None
