"""Choose the variant and latent size by cross-validated ELBO, in a scikit-learn Pipeline.

    python examples/pipeline_grid_search.py

``GMVAEClustering.score`` is the mean ELBO per row (higher is better), so ``GridSearchCV``
can compare variants and latent sizes on held-out folds without any labels. The data here
are the 8x8 digits shipped with scikit-learn, standardized, so the Gaussian likelihood
is used.
"""

import argparse

from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from sk_gmvae import GMVAEClustering
from sk_gmvae.metrics import clustering_report

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--epochs", type=int, default=30)
args = parser.parse_args()

X, y = load_digits(return_X_y=True)
pipe = Pipeline(
    [
        ("scale", StandardScaler()),
        (
            "cluster",
            GMVAEClustering(
                n_clusters=10, hidden_layer_sizes=(128,), max_epochs=args.epochs, random_state=0
            ),
        ),
    ]
)
grid = {"cluster__variant": ["m2", "modified_m2", "gmvae"], "cluster__latent_dim": [4, 16]}
search = GridSearchCV(pipe, grid, cv=3).fit(X)

res = search.cv_results_
print(f"{'rank':>4}  {'variant':<12} {'latent_dim':>10}  {'held-out ELBO (nats)':>20}")
for i in res["rank_test_score"].argsort():
    params = res["params"][i]
    print(
        f"{res['rank_test_score'][i]:>4}  {params['cluster__variant']:<12} "
        f"{params['cluster__latent_dim']:>10}  {res['mean_test_score'][i]:>20.2f}"
    )
print("best:", search.best_params_)
labels = search.best_estimator_.predict(X)
print({k: round(v, 3) for k, v in clustering_report(y, labels).items()})
