"""Time to a calibrated answer: observed t + N permutations, symmetrized statistic.

The paper's LFUV configuration: one feature, a 1-4-1 network, about 2.2×10^5 events
(A and B of 1.1×10^5 each; the toy model of Sec. III A stands in for the e-mu / mu-e
samples unless ``--sample-a/--sample-b`` parquet files are given), t_{A+B}(A+B) with
its p-value from ``--permutations`` relabellings, run through
``symnplm.inference.calibrate(..., method="permutations")`` in batches. ``--dim 5``
runs the same on a 5-dimensional Gaussian null with a (5, 5, 5, 5, 1) network (Newton
then uses the Gauss–Newton curvature: the exact Hessian is for one hidden layer).

Reported: the observed fit's time, each permutation batch's time, the total, peak
memory (VmHWM of this process during the observed fit and during the permutations,
minus the RSS before each; see ``benchmarks._common.PeakRSS``), and — when run with
fewer permutations than ``--extrapolate-to`` — the total extrapolated from the
measured batches: ``observed + null seconds × target / permutations`` (and a variant
that uses only the batches after the first, which can carry compilation and warm-up).

Usage::

    # smoke: a few permutations on a small sample, extrapolated to 1000
    python -m benchmarks.calibration_time --threads 1 --events 2.2e4 --permutations 8 \\
        --batch-size 4 --optimizer newton --max-iter 50
    # the issue-6 measurement (1D LFUV, 1000 permutations)
    python -m benchmarks.calibration_time --optimizer newton --max-iter 200
    python -m benchmarks.calibration_time --optimizer adam --epochs 500000 --permutations 20
    python -m benchmarks.calibration_time --dim 5 --optimizer newton
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from benchmarks._common import (
    PeakRSS,
    add_common_arguments,
    count,
    default_architecture,
    describe_machine,
    machine_info,
    new_parser,
    print_table,
    set_threads,
    timed,
    toy_samples,
    write_result,
)


def load_samples(args: argparse.Namespace):
    """(A, B): parquet files if given, else the toy null of ``--dim`` dimensions."""
    from symnplm.io.samples import Sample

    if args.sample_a or args.sample_b:
        if not (args.sample_a and args.sample_b):
            raise SystemExit("give both --sample-a and --sample-b")
        a = Sample.from_parquet(args.sample_a, features=args.features, name="A")
        b = Sample.from_parquet(args.sample_b, features=args.features, name="B")
        return a, b
    return toy_samples(args.dim, args.events, args.seed)


def make_test(args: argparse.Namespace, dim: int):
    """The symmetrized statistic with the optimiser and budget of the command line."""
    from symnplm.engine import FitConfig
    from symnplm.inference import SymmetrizedTest

    arch = tuple(args.architecture) if args.architecture else default_architecture(dim)
    hessian = args.hessian or ("exact" if len(arch) == 3 else "gauss-newton")
    budget = {"epochs": args.epochs} if args.optimizer == "adam" else {"max_iter": args.max_iter}
    cfg = FitConfig(
        optimizer=args.optimizer,
        backend=args.backend,
        hessian=hessian,
        device=args.device,
        dtype=args.dtype,
        **budget,
    )
    return SymmetrizedTest(arch, fit=cfg, init=args.init)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Observed fit, then the permutations batch by batch; timings and memory."""
    from symnplm.inference import calibrate

    threads = set_threads(args.threads)
    machine = machine_info()
    a, b = load_samples(args)
    test = make_test(args, a.dim)
    with PeakRSS() as mem_obs:
        observed, obs_seconds = timed(lambda: test.fit(a, b, seed=args.seed), args.device)
    stamps: list[tuple[int, float]] = []

    def progress(done: int, total: int) -> None:
        stamps.append((done, time.perf_counter()))
        if args.verbose:
            print(f"  {done}/{total} permutations, {stamps[-1][1] - start:.1f} s", flush=True)

    start = time.perf_counter()
    with PeakRSS() as mem_null:
        result, null_seconds = timed(
            lambda: calibrate(
                test,
                a,
                b,
                method="permutations",
                n=args.permutations,
                seed=args.seed,
                batch_size=args.batch_size,
                observed=observed,
                progress=progress,
            ),
            args.device,
        )
    batches, previous = [], (0, start)
    for done, stamp in stamps:
        batches.append({"permutations": done - previous[0], "seconds": stamp - previous[1]})
        previous = (done, stamp)
    n = args.permutations
    target = args.extrapolate_to or n
    later = batches[1:]
    later_n = sum(x["permutations"] for x in later)
    steady = (
        obs_seconds
        + batches[0]["seconds"]
        + sum(x["seconds"] for x in later) / later_n * (target - batches[0]["permutations"])
        if later_n and target > batches[0]["permutations"]
        else None
    )
    summary = {k: v for k, v in result.to_dict().items() if k not in ("observed", "null")}
    payload = {
        "configuration": {
            "statistic": "symmetrized",
            "n_a": len(a),
            "n_b": len(b),
            "dim": a.dim,
            "features": list(a.names),
            "test": test.config(),
            "permutations": n,
            "batch_size": args.batch_size,
            "seed": args.seed,
            "data": "parquet" if args.sample_a else f"toy null, dim {a.dim}",
        },
        "threads": threads,
        "observed": {
            "t": observed.t,
            "converged": observed.converged,
            "seconds": obs_seconds,
            "memory": mem_obs.as_dict(),
        },
        "null": {
            "seconds": null_seconds,
            "batches": batches,
            "memory": mem_null.as_dict(),
            "summary": result.null.summary(),
            "converged_fraction": float(np.mean(result.null.converged)),
            "t": result.null.t,
        },
        "calibration": summary,
        "total_seconds": obs_seconds + null_seconds,
        "extrapolated_to": target,
        "extrapolated_total_seconds": obs_seconds + null_seconds * target / n,
        "extrapolated_total_seconds_steady": steady,
    }
    rows = [
        {"what": "observed fit", "n": 1, "seconds": obs_seconds, "mem": mem_obs.as_dict()},
        *(
            {"what": f"batch {i}", "n": x["permutations"], "seconds": x["seconds"]}
            for i, x in enumerate(batches)
        ),
        {"what": "total", "n": n, "seconds": obs_seconds + null_seconds, "mem": mem_null.as_dict()},
    ]
    if target != n:
        extrapolated = payload["extrapolated_total_seconds"]
        rows.append({"what": "extrapolated", "n": target, "seconds": extrapolated})
        rows.append({"what": "extrap. (steady)", "n": target, "seconds": steady})
    for row in rows:
        mem = row.pop("mem", None)
        if mem:
            row["peak"], row["delta"] = mem["peak_rss_mib"], mem["delta_mib"]
    cfg = test.fit_config
    budget = f"{cfg.epochs} epochs" if cfg.optimizer == "adam" else f"≤{cfg.max_iter} iterations"
    title = (
        f"Time to a calibrated answer: symmetrized {test.model.describe()}, "
        f"{len(a)}+{len(b)} events, {cfg.optimizer} ({budget}), t_obs = {observed.t:.2f}, "
        f"p = {result.p_value:.3g}\n{describe_machine(machine)}"
    )
    print_table(
        title,
        [
            ("what", "", ""),
            ("n", "permutations", "d"),
            ("seconds", "seconds", ".3g"),
            ("peak", "peak RSS MiB", ".0f"),
            ("delta", "Δ RSS MiB", ".0f"),
        ],
        rows,
    )
    name = f"calibration_{a.dim}d_{cfg.optimizer}"
    write_result(name, payload, args, machine)
    return payload


def parser() -> argparse.ArgumentParser:
    """Command-line options (defaults: the issue-6 1D LFUV configuration with Newton)."""
    p = new_parser(__doc__)
    p.add_argument("--dim", type=int, default=1, help="toy dimension (1: exponential toy)")
    p.add_argument("--events", type=count, default=220_000, help="expected events in A ∪ B")
    p.add_argument("--sample-a", default=None, help="parquet file of sample A (e-mu)")
    p.add_argument("--sample-b", default=None, help="parquet file of sample B (mu-e)")
    p.add_argument("--features", nargs="+", default=None, help="columns of the parquet files")
    p.add_argument("--architecture", type=int, nargs="+", default=None)
    p.add_argument("--optimizer", choices=("newton", "adam"), default="newton")
    p.add_argument("--epochs", type=count, default=500_000, help="Adam epochs")
    p.add_argument("--max-iter", type=int, default=200, help="Newton iterations")
    p.add_argument("--hessian", choices=("exact", "gauss-newton"), default=None)
    p.add_argument("--backend", choices=("auto", "eager", "compiled", "inductor"), default="auto")
    p.add_argument("--init", choices=("glorot", "null"), default="glorot")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--device", default="cpu")
    p.add_argument("--permutations", type=count, default=1000)
    p.add_argument("--batch-size", type=count, default=None, help="permutations per batch")
    p.add_argument(
        "--extrapolate-to",
        type=count,
        default=1000,
        help="report the total extrapolated to this many permutations",
    )
    p.add_argument("--verbose", action="store_true")
    add_common_arguments(p)
    return p


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Entry point."""
    return run(parser().parse_args(argv))


if __name__ == "__main__":
    main()
