"""scikit-learn's own estimator checks, for every variant."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from sk_gmvae import GMVAEClustering

# Small networks trained for a few hundred steps, so that the checks' fits take about a
# second each; the checks set n_clusters and random_state themselves.
CHECKED = [
    GMVAEClustering(
        variant=variant,
        latent_dim=1,
        hidden_layer_sizes=(16,),
        max_epochs=100,
        batch_size=25,
        learning_rate=1e-2,
    )
    for variant in ("gmvae", "modified_m2", "m2", "vade")
]


@parametrize_with_checks(CHECKED)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
