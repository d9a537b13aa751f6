"""Training throughput of the three variants at the study's settings, as ratios.

    python -m benchmarks.speed.bench_training                  # CPU, all variants
    python -m benchmarks.speed.bench_training --device cuda    # a GPU
    python -m benchmarks.speed.bench_training --trained runs/mnist/checkpoints  # + denormals

For each variant (K=10, widths 512-512, latent 64, batch 100, MNIST-sized input) it
prints samples/s and seconds per 50k-sample epoch of one optimizer step (forward,
backward, Adam), the FLOPs of that step counted analytically from the layer shapes, the
achieved GFLOP/s, the machine's attainable float32 GFLOP/s measured in the same run on
the same GEMM shapes, and their ratio; then speed ratios against a Python loop over y
(the reference ELBO), bf16 autocast, ``--restarts`` (6) restarts trained as one stacked
model against as many single steps (``n_init``), and (with ``--trained``) flushing
denormals on a trained model; on a GPU also TF32 matmuls (``net_params={"precision": "tf32"}``).
Everything is compared within one run, so the ratios hold on a noisy machine where
absolute times do not.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from sk_gmvae._model import VARIANTS, MixtureVAE
from sk_gmvae._objective import WeightedNegativeELBO
from sk_gmvae._stacked import StackedMixtureVAE
from sk_gmvae.callbacks._checkpoint import last_checkpoint
from tests.reference_elbo import reference_negative_elbo  # the tests' oracle: a loop over y

D, K, L, H, BATCH, EPOCH = 784, 10, 64, (512, 512), 100, 50_000


def layer_shapes(variant: str) -> list[tuple[int, int, int, bool]]:
    """The GEMMs of one forward pass: (rows, in, out, input_needs_grad) per Linear."""
    B, BK = BATCH, BATCH * K
    chain = list(zip(H[:-1], H[1:], strict=True))
    shapes = [(B, D, H[0], False)] + [(B, i, o, True) for i, o in chain] + [(B, H[-1], K, True)]
    shapes += [(B, D, H[0], False)]  # x-part of q(z|x,y)'s first layer, once per row
    shapes += [(BK, i, o, True) for i, o in chain] + [(BK, H[-1], L, True)] * 2
    if variant == "modified_m2":  # first layer is elementwise; the MLP starts from L
        dec = [(BK, L, H[1] if len(H) > 1 else D, True)]
        dec += [(BK, i, o, True) for i, o in chain[1:]]
        dec += [(BK, H[-1], D, True)] if len(H) > 1 else []
    else:  # z-part of the first layer (m2: [z, y]; gmvae: z)
        dec = [(BK, L, H[0], True)] + [(BK, i, o, True) for i, o in chain]
        dec += [(BK, H[-1], D, True)]
    return shapes + dec


def step_flops(variant: str) -> float:
    """FLOPs of a training step: forward GEMM, grad-weight GEMM, and grad-input GEMM
    where the layer's input needs a gradient (2 FLOPs per multiply-add)."""
    return sum(2 * r * i * o * (3 if needs else 2) for r, i, o, needs in layer_shapes(variant))


def gemm_limit(variant: str, device: torch.device, repeats: int) -> float:
    """Attainable float32 GFLOP/s on exactly the GEMMs of a step (torch.mm alone)."""
    ops = []
    for r, i, o, needs in layer_shapes(variant):
        a, w, g = (torch.randn(s, device=device) for s in ((r, i), (i, o), (r, o)))
        ops.append(lambda a=a, w=w: a @ w)  # forward
        ops.append(lambda a=a, g=g: a.T @ g)  # grad of the weight
        if needs:
            ops.append(lambda g=g, w=w: g @ w.T)  # grad of the input
    seconds = _time(lambda: [op() for op in ops], device, repeats)
    return step_flops(variant) / seconds / 1e9


def _time(fn, device: torch.device, repeats: int, warmup: int = 3) -> float:
    """Best (smallest) seconds of fn() over ``repeats`` runs: the least disturbed by other
    work on a shared machine, and the same statistic for every figure compared."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return float(np.min(times))


def make_step(
    variant, device, x, *, loop=False, bf16=False, state=None, compiled=False, restarts=0
):
    """One training step (noise drawn, forward, backward, Adam) as a closure; with
    ``restarts`` > 0, one step of that many stacked restarts (as ``n_init`` trains)."""
    torch.manual_seed(0)
    if restarts:
        kwargs = dict(n_features=D, n_clusters=K, latent_dim=L, hidden_layer_sizes=H)
        module = StackedMixtureVAE(restarts, **kwargs, variant=variant).to(device)
        x = x[:, None].expand(-1, restarts, -1).contiguous()
        generator = [torch.Generator(device).manual_seed(r) for r in range(restarts)]
    else:
        module = MixtureVAE(D, K, L, H, variant=variant).to(device)
        generator = torch.Generator(device).manual_seed(0)
    if state is not None:
        module.load_state_dict(state)
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-3, fused=True)  # as fit does
    criterion = WeightedNegativeELBO()
    forward = torch.compile(module) if compiled else module

    def step():
        optimizer.zero_grad()
        x_drawn, eps = module.draw_training_inputs(x, generator)  # binarization and noise of z
        with torch.autocast(device.type, torch.bfloat16, enabled=bf16):
            if loop:  # the straightforward reference: one cluster at a time
                loss = reference_negative_elbo(module, x_drawn, eps).mean()
            else:
                loss = criterion(forward(x_drawn, eps)).sum()  # restarts' losses add
        loss.backward()
        optimizer.step()

    return step


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    parser.add_argument("--trained", default=None, help="checkpoints/ of a reproduce run")
    parser.add_argument("--json", default=None, help="also write the figures here")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    parser.add_argument(
        "--restarts", type=int, default=6, help="n_init for stacked vs sequential (0: skip)"
    )
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    torch.set_float32_matmul_precision("highest")  # float32 means float32 (no TF32)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(BATCH, D, generator=gen).to(device)
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    big = [torch.randn(2048, 2048, device=device) for _ in range(2)]
    peak = 2 * 2048**3 / _time(lambda: big[0] @ big[1], device, 10) / 1e9
    print(f"float32 matmul 2048x2048x2048: {peak:.0f} GFLOP/s (for scale)")
    results = {}
    for variant in args.variants:
        flops = step_flops(variant)
        t32 = _time(make_step(variant, device, x), device, args.repeats)
        limit = gemm_limit(variant, device, args.repeats)
        t_loop = _time(make_step(variant, device, x, loop=True), device, max(3, args.repeats // 4))
        t_bf16 = _time(make_step(variant, device, x, bf16=True), device, args.repeats)
        row = {
            "samples_per_s": BATCH / t32,
            "s_per_epoch": EPOCH / BATCH * t32,
            "step_gflop": flops / 1e9,
            "achieved_gflops": flops / t32 / 1e9,
            "gemm_limit_gflops": limit,
            "fraction_of_limit": flops / t32 / 1e9 / limit,
            "speedup_vs_loop": t_loop / t32,
            "bf16_speedup": t32 / t_bf16,
        }
        if device.type == "cuda":  # the "tf32" precision: float32 matmuls on TF32 cores
            torch.set_float32_matmul_precision("high")
            row["tf32_speedup"] = t32 / _time(make_step(variant, device, x), device, args.repeats)
            torch.set_float32_matmul_precision("highest")
        if args.restarts:
            stacked = make_step(variant, device, x, restarts=args.restarts)
            t_stacked = _time(stacked, device, max(3, args.repeats // 3))
            row["stacked_restarts_speedup"] = args.restarts * t32 / t_stacked
        if args.compile:
            compiled = make_step(variant, device, x, compiled=True)
            row["compile_speedup"] = t32 / _time(compiled, device, args.repeats, warmup=5)
        if args.trained:
            checkpoint = last_checkpoint(Path(args.trained) / f"{variant}-seed0")
            state = {k: v.to(device) for k, v in checkpoint["module"].items()}
            trained = make_step(variant, device, x, state=state)
            slow = _time(trained, device, args.repeats)
            torch.set_flush_denormal(True)
            fast = _time(trained, device, args.repeats)
            torch.set_flush_denormal(False)
            row["flush_denormal_speedup_trained"] = slow / fast
        results[variant] = row
        print(
            f"{variant:>12}: {row['samples_per_s']:7.0f} samples/s, "
            f"{row['s_per_epoch']:5.1f} s/epoch, {row['step_gflop']:.2f} GFLOP/step, "
            f"{row['achieved_gflops']:6.1f} GFLOP/s of {limit:6.1f} attainable "
            f"({row['fraction_of_limit']:.0%}); vs per-y loop x{row['speedup_vs_loop']:.2f}; "
            f"bf16 x{row['bf16_speedup']:.2f}"
            + (
                f"; n_init={args.restarts} stacked vs sequential "
                f"x{row['stacked_restarts_speedup']:.2f}"
                if "stacked_restarts_speedup" in row
                else ""
            )
            + (f"; tf32 x{row['tf32_speedup']:.2f}" if "tf32_speedup" in row else "")
            + (f"; torch.compile x{row['compile_speedup']:.2f}" if "compile_speedup" in row else "")
            + (
                f"; flush denormals (trained) x{row['flush_denormal_speedup_trained']:.2f}"
                if "flush_denormal_speedup_trained" in row
                else ""
            ),
            flush=True,
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
