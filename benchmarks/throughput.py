"""Fixed-epoch Adam throughput: symnplm side by side with the plain PyTorch baseline.

Throughput is in *event-epochs per second* = fits × events × epochs / wall-clock
seconds. The workload of every cell is the f-term of the symmetrized statistic
(Eq. 23) on permuted labels, the unit of work of a permutation calibration: events
x = A ∪ B (N in all, shared by the fits), reference coefficient c = Ñ_A/N on every
event, data weight 1 on the events labelled A by that fit's permutation. A cell with
R fits runs

* ``baseline`` — :mod:`benchmarks.baseline`, one fit at a time (``--baseline-fits``
  of the R fits are run sequentially and the time is scaled by R / fits: sequential
  fits of the same size take the same time each);
* ``eager`` / ``compiled`` / ``inductor`` — ``symnplm.engine.fit`` of an
  ``ExtendedLikelihoodObjective`` with R units, ``FitConfig(optimizer="adam",
  backend=...)``, all R fits batched: autograd; the fastest fused kernel (native C,
  :mod:`symnplm.engine.native`, for one-hidden-layer networks, ``torch.compile``
  otherwise); always ``torch.compile`` of :mod:`symnplm.engine.kernels`.

All of them start from the same initial parameters (symnplm's Glorot initialisation),
in the same process, one after the other, after a warm-up; ratios are to the
baseline. Epochs are chosen per implementation so that each timing lasts about
``--target-seconds``. ``compile_s`` is the first call minus a second identical call
of the compiled / inductor backends (compilation, excluded from the throughput), by
default with the on-disk caches off (``--compile-cache`` to allow them): a cold
compile. For R = 1 all implementations run the same epochs and the final t of the three are compared
(``t_*``: they do the same computation, so they agree up to float32 rounding).

Peak memory (``--memory``, default on) is measured in a fresh subprocess per
implementation and cell: after a warm-up call, the peak resident set size (VmHWM,
reset through /proc/self/clear_refs) of a short fit minus the RSS before it — the
working memory of the fit on top of the data (see ``benchmarks._common.PeakRSS``).

Usage::

    python -m benchmarks.throughput --threads 1 --dims 1 --events 1e4 --replicas 1 16  # smoke
    python -m benchmarks.throughput                                # the full grid
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from benchmarks import baseline
from benchmarks._common import (
    PeakRSS,
    add_common_arguments,
    count,
    default_architecture,
    describe_machine,
    emit_worker_result,
    epochs_for,
    fmt,
    machine_info,
    median,
    new_parser,
    print_table,
    run_worker,
    set_threads,
    timed,
    toy_samples,
    write_result,
)

IMPLEMENTATIONS = ("baseline", "eager", "compiled", "inductor")
#: recompilations allowed per compiled function: every (R, N, chunk) shape of the grid
#: is a new specialisation, and past the default of 8 dynamo silently runs eagerly.
RECOMPILE_LIMIT = 256


@dataclass
class Problem:
    """The fits of one cell: shared events, per-fit data labels, initial parameters."""

    architecture: tuple[int, ...]
    x: torch.Tensor
    ref_coefficient: float
    data: torch.Tensor
    params0: list[torch.Tensor]
    device: str

    @property
    def n_events(self) -> int:
        """N (events of A ∪ B)."""
        return int(self.x.shape[0])

    @property
    def n_fits(self) -> int:
        """R."""
        return int(self.data.shape[0])


def make_problem(dim: int, n_events: int, replicas: int, seed: int, device: str) -> Problem:
    """R permutations of a null A ∪ B of ``n_events`` events, with initial parameters.

    Each fit's labels and initialisation depend on (seed, fit index) only, so a cell's
    first fits are the same problems whatever R is.
    """
    from symnplm.engine import MLP

    a, b = toy_samples(dim, n_events, seed, poisson=False)
    x = np.concatenate([a.features, b.features])
    n, n_a = len(x), len(a)
    data = np.zeros((replicas, n), dtype=np.float32)
    for r in range(replicas):
        data[r, np.random.default_rng([seed, r]).permutation(n)[:n_a]] = 1.0
    arch = default_architecture(dim)
    params0 = MLP(arch).init([seed * 100_003 + r for r in range(replicas)], device=device)
    return Problem(
        architecture=arch,
        x=torch.as_tensor(x, dtype=torch.float32, device=device),
        ref_coefficient=n_a / n,
        data=torch.as_tensor(data, device=device),
        params0=params0,
        device=device,
    )


# --------------------------------------------------------------------------------------
# the implementations: epochs -> (final loss of fit 0, seconds for `fits` fits)
# --------------------------------------------------------------------------------------
Runner = Callable[[int], tuple[float, float]]


def baseline_runner(problem: Problem, fits: int) -> Runner:
    """``fits`` sequential baseline fits (fits 0..fits-1 of the cell)."""
    ref = torch.full((problem.n_events,), problem.ref_coefficient, device=problem.device)

    def run(epochs: int) -> tuple[float, float]:
        def go() -> list[baseline.BaselineFit]:
            return [
                baseline.train(
                    problem.x,
                    ref,
                    problem.data[r],
                    problem.architecture,
                    epochs,
                    params=[p[r] for p in problem.params0],
                )
                for r in range(fits)
            ]

        out, seconds = timed(go, problem.device)
        return out[0].loss, seconds

    return run


def symnplm_runner(problem: Problem, backend: str) -> Runner:
    """One batched ``symnplm.engine.fit`` of all R fits."""
    from symnplm.engine import MLP, ExtendedLikelihoodObjective, FitConfig, fit

    objective = ExtendedLikelihoodObjective(
        MLP(problem.architecture),
        problem.x,
        torch.ones(problem.n_events, device=problem.device),
        torch.full((problem.n_fits,), problem.ref_coefficient, device=problem.device),
        problem.data,
    )

    def run(epochs: int) -> tuple[float, float]:
        cfg = FitConfig(optimizer="adam", epochs=epochs, backend=backend, device=problem.device)
        res, seconds = timed(lambda: fit(objective, problem.params0, cfg), problem.device)
        return float(res.loss[0]), seconds

    return run


def runner(impl: str, problem: Problem, baseline_fits: int) -> Runner:
    """The runner of implementation ``impl`` for ``problem``."""
    if impl == "baseline":
        return baseline_runner(problem, min(baseline_fits, problem.n_fits))
    return symnplm_runner(problem, impl)


def reset_compiler(cold: bool = False) -> None:
    """Forget compiled code, so that each cell's compile time is measured from scratch.

    ``cold`` also turns off inductor's FX-graph cache (on disk, shared between
    processes), which would otherwise turn a recompilation of a graph compiled
    before, in any process, into a cache hit.
    """
    import tempfile

    import torch._dynamo
    import torch._inductor.config

    from symnplm.engine import native

    torch._dynamo.reset()
    native._library.cache_clear()
    if cold:
        torch._inductor.config.fx_graph_cache = False
        # and a fresh directory for the native libraries (built again, not loaded)
        os.environ["SYMNPLM_CACHE_DIR"] = tempfile.mkdtemp(prefix="symnplm-native-")
    config = torch._dynamo.config
    for name in ("recompile_limit", "cache_size_limit"):  # renamed across torch versions
        if hasattr(config, name):
            setattr(config, name, max(getattr(config, name), RECOMPILE_LIMIT))


def calibrate_epochs(run: Runner, seconds_per_epoch: float, args: argparse.Namespace) -> int:
    """Epochs for which one timing of ``run`` lasts about ``--target-seconds``.

    The warm-up's estimate is dominated by fixed costs when it ran few epochs, so the
    guess is re-timed and rescaled until a run lasts at least 70 % of the target. These
    runs are warm-ups too: none of them is reported.
    """
    epochs = epochs_for(seconds_per_epoch, args.target_seconds, args.min_epochs, args.max_epochs)
    for _ in range(4):
        _, seconds = run(epochs)
        if seconds >= 0.7 * args.target_seconds or epochs >= args.max_epochs:
            break
        epochs = epochs_for(
            seconds / epochs, 1.1 * args.target_seconds, args.min_epochs, args.max_epochs
        )
    return epochs


# --------------------------------------------------------------------------------------
# one cell
# --------------------------------------------------------------------------------------
def measure_cell(
    dim: int, n_events: int, replicas: int, args: argparse.Namespace
) -> dict[str, Any]:
    """Time every implementation on one (d, N, R) cell; ratios to the baseline."""
    problem = make_problem(dim, n_events, replicas, args.seed, args.device)
    impls = ["baseline", *args.backends]
    runs = {impl: runner(impl, problem, args.baseline_fits) for impl in impls}
    fits = {
        impl: min(args.baseline_fits, replicas) if impl == "baseline" else replicas
        for impl in impls
    }
    cell: dict[str, Any] = {
        "dim": dim,
        "architecture": list(problem.architecture),
        "n_events": problem.n_events,
        "replicas": replicas,
        "seed": args.seed,
        "device": args.device,
    }
    # warm-up: per-epoch cost estimate (and, for the compiled backend, compilation)
    plan: dict[str, dict[str, Any]] = {}
    for impl in impls:
        info: dict[str, Any] = {"fits_run": fits[impl]}
        try:
            if impl in ("compiled", "inductor"):
                reset_compiler(cold=not args.compile_cache)
                _, first = runs[impl](args.warmup_epochs)
            _, warm = runs[impl](args.warmup_epochs)
        except Exception as err:  # e.g. no C++ compiler for torch.compile: report, go on
            info["error"] = f"{type(err).__name__}: {err}"
            plan[impl] = info
            continue
        if impl in ("compiled", "inductor"):
            info["compile_seconds"] = max(0.0, first - warm)
        # fit() runs one evaluation more than its epochs
        info["epochs"] = calibrate_epochs(runs[impl], warm / (args.warmup_epochs + 1), args)
        plan[impl] = info
    ok = [impl for impl in impls if "error" not in plan[impl]]
    if replicas == 1 and ok:  # same epochs everywhere, so the final t values compare
        common = max(plan[impl]["epochs"] for impl in ok)
        for impl in ok:
            plan[impl]["epochs"] = common
    # timings, interleaved over repeats so that a change of machine load hits all alike
    seconds: dict[str, list[float]] = {impl: [] for impl in ok}
    for _ in range(args.repeats):
        for impl in ok:
            loss, s = runs[impl](plan[impl]["epochs"])
            seconds[impl].append(s)
            plan[impl]["t_fit0"] = -2 * loss
    for impl in ok:
        info = plan[impl]
        s = median(seconds[impl])
        info["seconds"] = seconds[impl]
        info["throughput"] = info["fits_run"] * problem.n_events * info["epochs"] / s
        # time for all R fits (extrapolated from the fits run for the baseline)
        info["seconds_all_fits"] = s * replicas / info["fits_run"]
        info["extrapolated"] = info["fits_run"] < replicas
    base = plan["baseline"].get("throughput")
    for impl in args.backends:
        rate = plan[impl].get("throughput")
        plan[impl]["ratio_to_baseline"] = rate / base if rate and base else None
    if args.memory:
        for impl in impls:
            if "error" not in plan[impl]:
                plan[impl]["memory"] = memory_in_subprocess(impl, dim, n_events, replicas, args)
    cell["implementations"] = plan
    return cell


# --------------------------------------------------------------------------------------
# memory: a fresh process per implementation and cell
# --------------------------------------------------------------------------------------
def memory_in_subprocess(
    impl: str, dim: int, n_events: int, replicas: int, args: argparse.Namespace
) -> dict[str, Any]:
    """Peak RSS of a short fit of ``impl`` in a fresh process (error text on failure)."""
    payload = {
        "impl": impl,
        "dim": dim,
        "n_events": n_events,
        # the baseline holds one fit at a time: its memory does not depend on R
        "replicas": 1 if impl == "baseline" else replicas,
        "seed": args.seed,
        "device": args.device,
        "threads": args.threads,
        "epochs": args.memory_epochs,
    }
    try:
        return run_worker("benchmarks.throughput", payload, timeout=args.memory_timeout)
    except Exception as err:  # a failed measurement must not lose the timings
        return {"error": f"{type(err).__name__}: {err}"}


def memory_worker(payload: dict[str, Any]) -> dict[str, Any]:
    """Inside the fresh process: warm up, then measure the peak RSS of a short fit."""
    set_threads(payload["threads"])
    reset_compiler()
    problem = make_problem(
        payload["dim"], payload["n_events"], payload["replicas"], payload["seed"], payload["device"]
    )
    run = runner(payload["impl"], problem, 1)
    run(1)  # compiles (compiled backend) and warms the allocator
    with PeakRSS() as peak:
        run(payload["epochs"])
    out = peak.as_dict()
    out["fits"] = problem.n_fits if payload["impl"] != "baseline" else 1
    out["epochs"] = payload["epochs"]
    return out


# --------------------------------------------------------------------------------------
# grid, table, command line
# --------------------------------------------------------------------------------------
COLUMNS = [
    ("dim", "d", "d"),
    ("n_events", "N", ".3g"),
    ("replicas", "R", "d"),
    ("baseline", "baseline", ".3g"),
    ("eager", "eager", ".3g"),
    ("eager_ratio", "eager ×", ".2f"),
    ("compiled", "compiled", ".3g"),
    ("compiled_ratio", "compiled ×", ".2f"),
    ("inductor", "inductor", ".3g"),
    ("inductor_ratio", "inductor ×", ".2f"),
    ("compile_s", "compile s c/i", ""),
    ("memory", "Δmem MiB b/e/c", ""),
    ("t_spread", "R=1 max|Δt|", ".1e"),
]


def table_row(cell: dict[str, Any]) -> dict[str, Any]:
    """Flatten a cell for the table."""
    plan = cell["implementations"]
    row: dict[str, Any] = {k: cell[k] for k in ("dim", "n_events", "replicas")}
    mem = []
    for impl, info in plan.items():
        row[impl] = info.get("throughput")
        mem.append(fmt(info.get("memory", {}).get("delta_mib"), ".0f"))
        if impl != "baseline":
            row[f"{impl}_ratio"] = info.get("ratio_to_baseline")
    row["memory"] = "/".join(mem)
    row["compile_s"] = "/".join(
        fmt(plan.get(impl, {}).get("compile_seconds"), ".1f") for impl in ("compiled", "inductor")
    )
    ts = [info["t_fit0"] for info in plan.values() if "t_fit0" in info]
    if cell["replicas"] == 1 and len(ts) > 1:
        row["t_spread"] = max(ts) - min(ts)
    return row


def run_grid(args: argparse.Namespace) -> dict[str, Any]:
    """Measure every cell of the grid; print the table; return the JSON payload."""
    threads = set_threads(args.threads)
    machine = machine_info()
    cells = []
    for dim in args.dims:
        for n_events in args.events:
            for replicas in args.replicas:
                cell = measure_cell(dim, n_events, replicas, args)
                cells.append(cell)
                if args.verbose:
                    row = table_row(cell)
                    print("  ".join(f"{h}={fmt(row.get(k), f)}" for k, h, f in COLUMNS), flush=True)
    title = (
        f"Fixed-epoch Adam throughput (event-epochs/s; × = ratio to the plain-torch "
        f"baseline, same process)\n{describe_machine(machine)}"
    )
    print_table(title, COLUMNS, [table_row(c) for c in cells])
    payload = {
        "unit": "event-epochs per second = fits x events x epochs / wall-clock seconds",
        "threads": threads,
        "cells": cells,
    }
    write_result("throughput", payload, args, machine)
    return payload


def parser() -> argparse.ArgumentParser:
    """Command-line options (defaults: the full grid)."""
    p = new_parser(__doc__)
    p.add_argument("--dims", type=int, nargs="+", default=[1, 5], help="1: 1-4-1, 5: 5-5-5-5-1")
    p.add_argument("--events", type=count, nargs="+", default=[10_000, 50_000, 220_000])
    p.add_argument("--replicas", type=count, nargs="+", default=[1, 16, 64, 256])
    p.add_argument(
        "--backends",
        nargs="+",
        choices=("eager", "compiled", "inductor"),
        default=["eager", "compiled", "inductor"],
        help="symnplm backends to time next to the baseline",
    )
    p.add_argument("--device", default="cpu", help="torch device of all implementations")
    p.add_argument("--target-seconds", type=float, default=2.0, help="duration of one timing")
    p.add_argument("--warmup-epochs", type=int, default=1)
    p.add_argument("--min-epochs", type=int, default=2)
    p.add_argument("--max-epochs", type=int, default=100_000)
    p.add_argument("--repeats", type=int, default=1, help="timings per implementation (median)")
    p.add_argument(
        "--baseline-fits",
        type=int,
        default=1,
        help="baseline fits run per cell (the time for R fits is scaled from these)",
    )
    p.add_argument(
        "--compile-cache",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="let inductor's on-disk graph cache serve compilations (default: cold compiles)",
    )
    p.add_argument("--memory", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--memory-epochs", type=int, default=2)
    p.add_argument("--memory-timeout", type=float, default=900.0)
    p.add_argument("--verbose", action="store_true", help="print each cell as it finishes")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    add_common_arguments(p)
    return p


def main(argv: Sequence[str] | None = None) -> dict[str, Any] | None:
    """Entry point (also the memory worker, with ``--worker JSON``)."""
    args = parser().parse_args(argv)
    if args.worker is not None:
        import json

        emit_worker_result(memory_worker(json.loads(args.worker)))
        return None
    if not (math.isfinite(args.target_seconds) and args.target_seconds > 0):
        raise SystemExit("--target-seconds must be positive")
    return run_grid(args)


if __name__ == "__main__":
    main()
