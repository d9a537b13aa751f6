"""What many test files share: the settings of a small, fast network."""

# Latent 2, one hidden layer of 16, batches of 32; each test file sets its epochs
# (max_epochs) and anything else it needs otherwise.
_SMALL = dict(latent_dim=2, hidden_layer_sizes=(16,), batch_size=32)


def small_params(**overrides: object) -> dict:
    """``GMVAEClustering`` parameters of a small network, with ``overrides`` applied."""
    return {**_SMALL, **overrides}
