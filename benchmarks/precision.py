"""Cost and effect of the float precision policy (float32 evaluation + float64 sums vs float64).

Times fixed-epoch Adam and a Newton fit of the symmetrized statistic on the toy
model, side by side in one process, and reports the ratio of times and the
difference in t. Usage::

    python benchmarks/precision.py [--n 100000] [--replicas 16] [--epochs 200]

Two different things are reported: the error of evaluating t in float32 at fixed
parameters (the precision policy proper), and the difference between the t values
of whole fits run in each precision — fits of a non-convex likelihood can follow
different paths from last-bit differences, so that one measures path sensitivity.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from symnplm.engine import MLP, ExtendedLikelihoodObjective, FitConfig
from symnplm.generation.toymodels import ToyModel
from symnplm.inference import ReplicaBatch, SymmetrizedTest


def evaluation_error(a, b, seed: int) -> tuple[float, float]:
    """t of one float64 Newton fit, re-evaluated at the same parameters in float32."""
    res = SymmetrizedTest(
        init="null", fit=FitConfig(optimizer="newton", dtype="float64", max_iter=80)
    ).fit(a, b, seed=seed)
    batch = ReplicaBatch.from_samples(a, b)
    n = batch.sum_a[0] + batch.sum_b[0]
    x = torch.tensor(batch.x, dtype=torch.float32)
    obj = ExtendedLikelihoodObjective(
        MLP((1, 4, 1)),
        x,
        torch.tensor(batch.weight_a[0] + batch.weight_b[0], dtype=torch.float32),
        torch.tensor([batch.sum_a[0] / n, batch.sum_b[0] / n], dtype=torch.float32),
        torch.tensor(np.r_[batch.weight_a, batch.weight_b], dtype=torch.float32),
    )
    params = [
        torch.tensor(np.stack([f, g]), dtype=torch.float32)
        for f, g in zip(res.functions["f"], res.functions["g"])
    ]
    loss, _ = obj.loss(params, None, slice(None))
    return res.t, float(-2 * loss.sum())


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--n", type=float, default=1e5, help="expected events per sample")
    p.add_argument("--replicas", type=int, default=16)
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    a, b = ToyModel(args.n, args.n)(np.random.default_rng(args.seed))
    base = ReplicaBatch.from_samples(a, b)
    batch = ReplicaBatch(
        base.x,
        np.repeat(base.weight_a, args.replicas, 0),
        np.repeat(base.weight_b, args.replicas, 0),
    )
    ids = list(range(args.replicas))
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{len(base.x)} events, R = {args.replicas}"
    )
    t64, t32 = evaluation_error(a, b, args.seed)
    print(
        f"t at fixed parameters: float64 {t64:.6f}, float32 evaluation {t32:.6f}, "
        f"|Δt| = {abs(t64 - t32):.1e}"
    )
    for opt, extra in (("adam", {"epochs": args.epochs}), ("newton", {"max_iter": 60})):
        out = {}
        for dtype in ("float32", "float64"):
            test = SymmetrizedTest(init="null", fit=FitConfig(optimizer=opt, dtype=dtype, **extra))
            start = time.perf_counter()
            res = test.fit_batch(batch, args.seed, ids)
            out[dtype] = (time.perf_counter() - start, res.t)
        (t32, v32), (t64, v64) = out["float32"], out["float64"]
        rate = args.replicas * 2 * len(base.x) * (args.epochs if opt == "adam" else 1) / t32
        print(
            f"{opt:7s} float32 {t32:7.2f} s   float64 {t64:7.2f} s   ratio {t64 / t32:4.2f}   "
            f"fitted max |Δt| {np.max(np.abs(v64 - v32)):.2e} (median t {np.median(v64):.2f})"
            + (f"   float32 {rate:.3g} event-epochs/s" if opt == "adam" else "")
        )


if __name__ == "__main__":
    main()
