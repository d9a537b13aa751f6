"""Cluster MNIST digits with the GMVAE and score the clusters against the true digits.

    python examples/mnist_fit_predict.py --epochs 10

Each epoch is a pass over 50,000 training images (about 40 s on 2 CPU cores, far less on
a GPU). The clusters are scored on the 10,000 test images by majority-vote accuracy
(each cluster takes its most frequent digit), as in the reference study.
"""

import argparse

from sk_gmvae import GMVAEClustering
from sk_gmvae.datasets import load_mnist
from sk_gmvae.metrics import clustering_report

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--epochs", type=int, default=10)
parser.add_argument("--n-train", type=int, default=50_000)
parser.add_argument("--variant", default="gmvae", choices=["gmvae", "modified_m2", "m2"])
args = parser.parse_args()

X_train, _ = load_mnist("train", return_X_y=True)
X_test, y_test = load_mnist("test", return_X_y=True)

model = GMVAEClustering(
    n_clusters=10, variant=args.variant, max_epochs=args.epochs, random_state=0, verbose=1
)
train_labels = model.fit_predict(X_train[: args.n_train])  # clusters of the training images
test_proba = model.predict_proba(X_test)  # cluster probabilities of the unseen test images

report = clustering_report(y_test, test_proba.argmax(axis=1), test_proba)
for name, value in report.items():
    print(f"{name:>20s}: {value:.3f}")
print(f"{'test ELBO (nats)':>20s}: {model.score(X_test):.2f}")
