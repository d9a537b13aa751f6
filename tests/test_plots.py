"""Figures: axes and reference lines from the run's settings, and the per-cluster plots."""

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from sk_gmvae import GMVAEClustering  # noqa: E402
from sk_gmvae.study import plots  # noqa: E402


def _histories(n_epochs=3, variants=("m2", "gmvae"), seeds=(0, 1)):
    rng = np.random.default_rng(0)
    keys = ("test_entropy", "test_loss", "test_accuracy")
    return {
        (v, s): [{k: float(rng.random()) for k in keys} for _ in range(n_epochs)]
        for v in variants
        for s in seeds
    }


def test_study_figure_takes_its_axes_from_the_run():
    import matplotlib.pyplot as plt

    fig = plots.study_figure(_histories(), n_clusters=4, n_train=1234, title="sk-gmvae test")
    axes = fig.axes
    assert all(ax.get_xlabel() == "epoch (1,234 images each)" for ax in axes)
    ln_k = [line for line in axes[0].lines if line.get_label().startswith("ln K")]
    assert len(ln_k) == 1 and ln_k[0].get_ydata()[0] == pytest.approx(np.log(4))
    assert ln_k[0].get_label() == "ln K (K = 4)"
    assert not any("study" in line.get_label() for ax in axes for line in ax.lines)
    fig.canvas.draw()
    for ax in axes:
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert np.allclose(ticks, np.round(ticks))  # whole epochs
        assert ax.get_legend() is None
    assert len(fig.legends) == 1 and fig._suptitle.get_text() == "sk-gmvae test"
    plt.close(fig)


def test_study_figure_shows_the_study_only_for_its_settings():
    import matplotlib.pyplot as plt

    fig = plots.study_figure(_histories(), n_clusters=10, n_train=50_000)
    labels = [line.get_label() for line in fig.axes[2].lines]
    assert "gmvae, study" in labels
    plt.close(fig)


def test_plot_study_writes_both_formats(tmp_path):
    paths = plots.plot_study(_histories(), tmp_path / "fig", n_clusters=3, n_train=10)
    assert [p.suffix for p in paths] == [".png", ".svg"] and all(p.stat().st_size for p in paths)
    assert "ln K (K = 3)" in paths[1].read_text()


def test_cluster_summary_and_confusion(tmp_path):
    labels = np.array([0, 0, 0, 1, 1, 2])
    y = np.array([7, 7, 3, 3, 3, 5])
    sizes, majority = plots.cluster_summary(labels, y, 4)
    np.testing.assert_array_equal(sizes, [3, 2, 1, 0])
    assert majority == [7, 3, 5, "-"]
    path = plots.plot_confusion(y, labels, tmp_path / "c.png", 4, title="t")
    assert path.stat().st_size > 0


@pytest.fixture(scope="module")
def fitted_digits():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = X[:300] / 16.0
    est = GMVAEClustering(4, latent_dim=3, hidden_layer_sizes=(16,), max_epochs=3, random_state=0)
    return est.fit(X), X, y[:300]


def test_prototypes_are_labelled_with_size_and_majority(fitted_digits, tmp_path):
    import matplotlib.pyplot as plt

    est, X, y = fitted_digits
    sizes, majority = plots.cluster_summary(est.labels_, y, 4)
    row_labels = plots._cluster_row_labels(4, sizes, majority)
    assert row_labels[0] == f"0: n={sizes[0]}, {majority[0]}"
    path = plots.plot_prototypes(
        est.cluster_prototypes(3), tmp_path / "p.png", (8, 8), sizes=sizes, majority=majority
    )
    assert plt.imread(path).shape[0] > 0


def test_cluster_examples_are_the_most_confident_rows(fitted_digits, tmp_path, monkeypatch):
    est, X, _ = fitted_digits
    proba = est.predict_proba(X)
    shown = {}
    monkeypatch.setattr(
        plots, "_save_grid", lambda images, path, *a: shown.setdefault("images", images)
    )
    plots.plot_cluster_examples(X, proba, tmp_path / "e.png", (8, 8), n_per_cluster=2)
    images = shown["images"]
    assert images.shape == (4, 2, 64)
    for k in range(4):
        best = np.argsort(-proba[:, k], kind="stable")[:2]
        np.testing.assert_array_equal(images[k], X[best])


def test_latent_view_is_the_pca_of_transform(fitted_digits, tmp_path):
    from sklearn.decomposition import PCA

    est, X, _ = fitted_digits
    Z = est.transform(X)
    view = plots.latent_pca(Z)
    np.testing.assert_allclose(np.abs(view), np.abs(PCA(2).fit_transform(Z)), atol=1e-10)
    one_column = plots.latent_pca(Z[:, :1])
    assert one_column.shape == (300, 2) and (one_column[:, 1] == 0).all()
    assert plots.plot_latent(Z, est.labels_, tmp_path / "l.png").stat().st_size > 0
