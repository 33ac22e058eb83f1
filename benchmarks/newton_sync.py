"""Newton's host synchronisations: the loop's sync interval against one sync per iteration.

One batch of ``--permutations`` symmetrized permutation fits (the set-up of
:mod:`benchmarks.calibration_time`: toy samples, 1-4-1 in 1D or ``--architecture``)
is fitted with a sync interval (``symnplm.engine.newton.SYNC_EVERY`` of the device)
of 1 (the host learns after every iteration which units stopped, and drops them) and
of each ``--intervals`` value,
side by side in the same process after a warm-up fit (compilation, native build).
For each interval it reports

* the wall time of the batch (``--repeats`` runs, interleaved; the median),
* the Newton iterations of the batch and the largest |Δt| against k = 1 (the
  results must not depend on the interval),
* in a separate run (counting slows the fit), the operations that make the host
  wait for the device and, on CUDA, the synchronisations that
  ``torch.cuda.set_sync_debug_mode`` reports (those inside libraries included), both
  counted by :class:`symnplm.engine.bookkeeping.HostSyncs` over the whole batch
  (its set-up too) and divided by its Newton iterations. On the CPU the native
  kernels (``backend="compiled"``, or ``"auto"`` for large jobs) read their row
  indices on the host, 8 per iteration that no GPU path has; ``--backend eager``
  counts the loop alone.

Usage::

    python -m benchmarks.newton_sync --events 2.2e4 --permutations 32      # CPU smoke
    python -m benchmarks.newton_sync --device cuda --events 2.2e5 --permutations 256
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Sequence
from typing import Any

import numpy as np

from benchmarks._common import (
    add_common_arguments,
    count,
    describe_machine,
    machine_info,
    new_parser,
    print_table,
    set_threads,
    timed,
    write_result,
)
from benchmarks.calibration_time import load_samples, make_test


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Warm-up, then the interleaved timed runs and one counted run per interval."""
    import torch

    from symnplm.engine import newton
    from symnplm.engine.bookkeeping import HostSyncs
    from symnplm.inference import calibrate

    threads = set_threads(args.threads)
    machine = machine_info()
    a, b = load_samples(args)
    test = make_test(args, a.dim)
    intervals = [1, *(k for k in args.intervals if k != 1)]
    kind = torch.device(args.device).type
    default = dict(newton.SYNC_EVERY)

    def batch() -> Any:
        return calibrate(
            test,
            a,
            b,
            method="permutations",
            n=args.permutations,
            seed=args.seed,
            batch_size=args.permutations,
            observed=observed,
        ).null

    observed, warm = timed(lambda: test.fit(a, b, seed=args.seed), args.device)
    rows: dict[int, dict[str, Any]] = {k: {"k": k, "seconds": []} for k in intervals}
    try:
        for _ in range(args.repeats):
            for k in intervals:
                newton.SYNC_EVERY[kind] = k
                null, seconds = timed(batch, args.device)
                rows[k]["seconds"].append(seconds)
                rows[k]["t"] = null.t
                rows[k]["iterations"] = int(null.history_steps[-1])
        if args.count:
            for k in intervals:
                newton.SYNC_EVERY[kind] = k
                with HostSyncs(args.device) as syncs:
                    batch()
                rows[k]["host_syncs"] = syncs.total
                rows[k]["host_sync_ops"] = dict(syncs.counts)
                rows[k]["cuda_syncs"] = syncs.cuda_syncs
    finally:
        newton.SYNC_EVERY.clear()
        newton.SYNC_EVERY.update(default)
    reference = rows[1]["t"]
    table = []
    for k in intervals:
        row = rows[k]
        t = row.pop("t")
        both = np.isfinite(t) & np.isfinite(reference)
        row["max_abs_dt"] = float(np.abs(t - reference)[both].max()) if both.any() else 0.0
        row["same_infinite"] = bool(np.array_equal(np.isinf(t), np.isinf(reference)))
        row["median_seconds"] = statistics.median(row["seconds"])
        row["speedup"] = rows[1]["median_seconds"] / row["median_seconds"]
        for key in ("host_syncs", "cuda_syncs"):
            if row.get(key) is not None:
                row[f"{key}_per_iteration"] = row[key] / max(1, row["iterations"])
        table.append(row)
    print_table(
        f"Newton sync interval: {args.permutations} symmetrized permutation fits of "
        f"{test.model.describe()}, {len(a)}+{len(b)} events, {args.device}\n"
        f"{describe_machine(machine)}",
        [
            ("k", "SYNC_EVERY", "d"),
            ("median_seconds", "seconds", ".3g"),
            ("speedup", "× k=1", ".2f"),
            ("iterations", "iterations", "d"),
            ("max_abs_dt", "max |Δt|", ".2g"),
            ("host_syncs_per_iteration", "host waits / it.", ".2f"),
            ("cuda_syncs_per_iteration", "CUDA syncs / it.", ".2f"),
        ],
        table,
    )
    payload = {
        "configuration": {
            "n_a": len(a),
            "n_b": len(b),
            "dim": a.dim,
            "test": test.config(),
            "permutations": args.permutations,
            "device": args.device,
            "seed": args.seed,
        },
        "threads": threads,
        "warm_up_seconds": warm,
        "intervals": table,
    }
    write_result(f"newton_sync_{a.dim}d", payload, args, machine)
    return payload


def parser() -> argparse.ArgumentParser:
    """Command-line options (the sample and network options of calibration_time)."""
    p = new_parser(__doc__)
    p.add_argument("--dim", type=int, default=1, help="toy dimension (1: exponential toy)")
    p.add_argument("--events", type=count, default=220_000, help="expected events in A ∪ B")
    p.add_argument("--architecture", type=int, nargs="+", default=None)
    p.add_argument("--max-iter", type=int, default=1000, help="Newton iterations")
    p.add_argument("--hessian", choices=("exact", "gauss-newton"), default=None)
    p.add_argument("--backend", choices=("auto", "eager", "compiled", "inductor"), default="auto")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--device", default="cpu")
    p.add_argument("--permutations", type=count, default=64, help="permutations in the batch")
    p.add_argument("--intervals", type=int, nargs="+", default=[10], help="SYNC_EVERY values")
    p.add_argument("--repeats", type=int, default=1, help="timed runs per interval")
    p.add_argument("--no-count", dest="count", action="store_false", help="skip the counted runs")
    add_common_arguments(p)
    p.set_defaults(optimizer="newton", init="glorot", epochs=0, sample_a=None, sample_b=None)
    p.set_defaults(features=None)
    return p


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Entry point."""
    return run(parser().parse_args(argv))


if __name__ == "__main__":
    main()
