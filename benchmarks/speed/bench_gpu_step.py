"""The estimator's training speed on a GPU against a lean CUDA-graph step, as ratios.

    python -m benchmarks.speed.bench_gpu_step                      # needs a CUDA device
    python -m benchmarks.speed.bench_gpu_step --precision tf32 --epochs 4

Needs CUDA: without a CUDA device it says so and exits with status 2, measuring nothing.

In one process, at the study's settings (K = 10, 784-512-512, latent 64, batch 100) on
``--rows`` (50,000) MNIST-shaped rows in [0, 1], it times

- the reference: one training step of a ``MixtureVAE`` (binarization and noise drawn,
  forward, backward, fused ``Adam(capturable=True)``) captured by hand as one CUDA graph
  and replayed, with no skorch, no history and no host sync: the floor to aim at;
- ``GMVAEClustering.fit`` seconds per epoch (the history's ``dur``, the first epoch left
  out: it holds the warm-up and the capture) with ``net_params={"cuda_graph": True}`` and ``False``;
- ``n_init=6`` stacked restarts (``stack_restarts=True``) per epoch, against one restart.

and prints each figure and the ratios the GPU issue sets targets for: fit / reference
<= 1.5 and six stacked restarts / one <= 2 (float32, one H100).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch

from sk_gmvae import GMVAEClustering
from sk_gmvae._model import MixtureVAE
from sk_gmvae._objective import WeightedNegativeELBO

D, K, L, H, BATCH = 784, 10, 64, (512, 512), 100


def reference_epoch_seconds(X: torch.Tensor, variant: str, steps: int = 200) -> float:
    """Seconds per pass over X of a lean, hand-captured CUDA-graph training step."""
    model = MixtureVAE(D, K, L, H, variant=variant, likelihood="bernoulli").cuda().train()
    criterion = WeightedNegativeELBO()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True, capturable=True)
    generator = torch.Generator("cuda").manual_seed(0)
    static_x = X[:BATCH].clone()

    def step() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=False)
        loss = criterion(model(*model.draw_training_inputs(static_x, generator)))
        loss.backward()
        optimizer.step()
        return loss

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):  # warm-up: Adam's state, the libraries' workspaces
            step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    graph.register_generator_state(generator)
    with torch.cuda.graph(graph):
        step()
    order = torch.randperm(len(X), device=X.device)
    torch.cuda.synchronize()
    start = time.perf_counter()
    for i in range(steps):
        rows = order[(i * BATCH) % (len(X) - BATCH) :][:BATCH]
        static_x.copy_(X[rows])
        graph.replay()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps * (len(X) / BATCH)


def fit_epoch_seconds(X: np.ndarray, epochs: int, **params: object) -> float:
    """Median seconds per epoch of ``GMVAEClustering.fit`` (epochs after the first)."""
    est = GMVAEClustering(
        K,
        latent_dim=L,
        hidden_layer_sizes=H,
        batch_size=BATCH,
        max_epochs=epochs,
        device="cuda",
        random_state=0,
        **params,
    ).fit(X)
    return float(np.median(est.history_[1:, "dur"]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--epochs", type=int, default=3, help="per fit (the first is left out)")
    parser.add_argument("--variant", default="gmvae")
    parser.add_argument("--precision", default="float32", choices=["float32", "tf32"])
    parser.add_argument("--restarts", type=int, default=6)
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("bench_gpu_step needs a CUDA device; none is available here: nothing measured.")
        return 2
    torch.backends.cuda.matmul.allow_tf32 = args.precision == "tf32"
    rng = np.random.default_rng(0)
    X = rng.random((args.rows, D), dtype=np.float32)
    X_cuda = torch.tensor(X, device="cuda")
    common = dict(variant=args.variant)
    engine = {"precision": args.precision}
    figures = {
        "device": torch.cuda.get_device_name(),
        "precision": args.precision,
        "reference_graph_s_per_epoch": reference_epoch_seconds(X_cuda, args.variant),
        "fit_graph_s_per_epoch": fit_epoch_seconds(
            X, args.epochs, net_params={**engine, "cuda_graph": True}, **common
        ),
        "fit_eager_s_per_epoch": fit_epoch_seconds(
            X, args.epochs, net_params={**engine, "cuda_graph": False}, **common
        ),
        f"fit_stacked{args.restarts}_s_per_epoch": fit_epoch_seconds(
            X,
            args.epochs,
            n_init=args.restarts,
            trial_epochs=None,
            stack_restarts=True,
            net_params=engine,
            **common,
        ),
    }
    ref, graph = figures["reference_graph_s_per_epoch"], figures["fit_graph_s_per_epoch"]
    stacked = figures[f"fit_stacked{args.restarts}_s_per_epoch"]
    figures |= {
        "fit_graph_over_reference": graph / ref,
        "fit_eager_over_reference": figures["fit_eager_s_per_epoch"] / ref,
        "eager_over_graph": figures["fit_eager_s_per_epoch"] / graph,
        f"stacked{args.restarts}_over_one": stacked / graph,
    }
    print(json.dumps(figures, indent=2))
    print(
        f"targets: fit/reference {graph / ref:.2f} (<= 1.5), "
        f"{args.restarts} stacked/one {stacked / graph:.2f} (<= 2)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
