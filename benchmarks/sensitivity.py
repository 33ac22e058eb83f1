"""Sensitivity studies on the paper-preset sample: the paper's (arXiv:2401.09530
Sec. V B, Figs. 4–5) and the LFUV test's, with m_coll or the five two-body features.

``--preset paper`` (default): the bootstrap protocol of
:mod:`symnplm.workflow.sensitivity` — A and B bootstrapped (weighted, Poisson sizes)
from the pool of the background's emu (electron-leading) events, as in the paper, the
H→τe template (ggF and VBF) bootstrapped into A only; the symmetrized 1-4-1 test on
m_coll at 5, 10 and 20 fb⁻¹.

``--preset lfuv-m_coll`` and ``--preset lfuv-5d``: the LFUV protocol — emu (A) against
mue (B), both backgrounds from the pool of both categories, each with its category's
expected size, the signal's emu events in A and its mue events in B; m_coll with
1-4-1, or the five features with the network of ``--architecture``.

Per luminosity a null of BR = 0 replicas and replicas at every BR; median Z with its
16–84 % band, Z_id of Eq. 29 on the same templates, and the reach table (BR at median
Z = 2 and 3). Writes ``sensitivity.json`` (every t and Z, seed, configuration,
protocol, luminosities, expected counts, versions, timing), ``reach.json``,
``reach.md`` and the figures ``z_vs_br`` (Fig. 5) and ``z_vs_zid`` (Fig. 4) to
``--out``; every finished (luminosity, BR) is kept under ``--work``/replicas, so
rerunning the same command after an interruption fits only what is missing.

The studies (hours on 2 cores)::

    python -m benchmarks.sensitivity --input results/closure/default/test_corrected
    python -m benchmarks.sensitivity --preset lfuv-m_coll
    python -m benchmarks.sensitivity --preset lfuv-5d

A check that the chain works (tiny numbers, a few minutes; not a result)::

    python -m benchmarks.sensitivity --quick

The paper's study from the command line (without the timing record)::

    symnplm sensitivity --protocol bootstrap --input results/closure/default/test_corrected \\
        --a-category emu --b-category emu --max-iter 1000 \\
        --luminosities 5 10 20 --brs 0.005 0.01 0.02 0.03 0.05 --null-toys 1000 --toys 100 \\
        --seed 2401 --output benchmarks/output/sensitivity
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from symnplm.io.files import read_json
from symnplm.workflow import sensitivity as sens
from symnplm.workflow.config import InjectionSpec, RunConfig, SampleSpec, StatisticSpec

HERE = Path(__file__).resolve().parent
#: the processed paper-preset production, corrected with the independent production's map
INPUT = Path("results/closure/default/test_corrected")
PRESETS: dict[str, dict[str, Any]] = {
    "paper": {
        "protocol": "bootstrap",
        "features": "m_coll",
        "architecture": None,
        "luminosities": [5.0, 10.0, 20.0],
        "brs": [0.005, 0.01, 0.02, 0.03, 0.05],
        "null_toys": 1000,
        "toys": 100,
        # converged fits: at 10 fb⁻¹ Newton needs ~300 iterations (t = 3.1 after 50, 15.3
        # after 200, 16.6 converged, on one null replica); converged replicas stop early
        "max_iter": 1000,
        "out": HERE / "output" / "sensitivity",
        "work": Path("results/sensitivity-paper"),
    },
    "lfuv-m_coll": {
        "protocol": "lfuv",
        "features": "m_coll",
        "architecture": None,
        "luminosities": [10.0],
        "brs": [0.005, 0.01, 0.02, 0.03, 0.05, 0.08],
        "null_toys": 500,
        "toys": 60,
        "max_iter": 1000,
        "out": HERE / "output" / "sensitivity-lfuv" / "m_coll",
        "work": Path("results/sensitivity-lfuv/m_coll"),
    },
    "lfuv-5d": {
        "protocol": "lfuv",
        "features": "5d",
        # benchmarks.network_capacity: 5-8-1 sees no more of H→τe at 2 % than 5-4-1
        # (median Z -0.19 and -0.14 at 10 fb⁻¹) for twice the cost
        "architecture": [5, 4, 1],
        "luminosities": [10.0],
        "brs": [0.02, 0.05, 0.08, 0.12],
        "null_toys": 150,
        "toys": 30,
        "max_iter": 1000,
        "out": HERE / "output" / "sensitivity-lfuv" / "5d",
        "work": Path("results/sensitivity-lfuv/5d"),
    },
}
#: a few minutes: that the chain runs on the real sample, not a result (kept out of
#: benchmarks/output so that it never stands next to the study's numbers)
QUICK = {
    "luminosities": [0.5, 1.0],
    "brs": [0.01, 0.05],
    "null_toys": 8,
    "toys": 4,
    "max_iter": 20,
    "out": Path("results/sensitivity-quick"),
    "work": Path("results/sensitivity-quick"),
}


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; ``--quick`` changes the defaults, explicit flags still win."""
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--input", type=Path, default=INPUT, help="processed paper-preset output")
    p.add_argument("--preset", choices=sorted(PRESETS), default="paper", help="which study")
    p.add_argument("--quick", action="store_true", help="tiny numbers: check the chain runs")
    p.add_argument("--architecture", type=int, nargs="+", help="network (default per preset)")
    p.add_argument("--luminosities", type=float, nargs="+", help="fb^-1 (default 5 10 20)")
    p.add_argument("--brs", type=float, nargs="+", help="B(H->tau e) injected into A")
    p.add_argument("--null-toys", type=int, help="BR = 0 replicas per luminosity (1000)")
    p.add_argument("--toys", type=int, help="replicas per BR and luminosity (100)")
    p.add_argument("--max-iter", type=int, help="Newton iterations cap of every fit")
    p.add_argument("--batch-size", type=int, help="replicas per batched fit (default: memory)")
    p.add_argument(
        "--signal-datasets", nargs="+", default=list(InjectionSpec().datasets), help="H->tau e"
    )
    p.add_argument("--seed", type=int, default=2401)
    p.add_argument("--threads", type=int, help="torch threads (default torch's)")
    p.add_argument("--out", type=Path, help="results (default benchmarks/output/sensitivity)")
    p.add_argument("--work", type=Path, help="checkpoints of the replicas")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    # --quick keeps the preset's protocol, features and network, with tiny numbers
    for key, value in {**PRESETS[args.preset], **(QUICK if args.quick else {})}.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    return args


def config(args: argparse.Namespace) -> RunConfig:
    """The run description: the paper's electron-leading (emu) pool of all background
    datasets (``bootstrap``) or emu against mue (``lfuv``), the features and network of
    the preset."""
    return RunConfig(
        input=str(args.input),
        a=SampleSpec(category="emu"),
        b=SampleSpec(category="emu" if args.protocol == "bootstrap" else "mue"),
        features=args.features,
        inject=InjectionSpec(datasets=list(args.signal_datasets)),
        statistic=StatisticSpec(
            method="symmetrized",
            optimizer="newton",
            max_iter=args.max_iter,
            architecture=args.architecture,
        ),
        seed=args.seed,
        output=str(args.out),
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the study; returns what ``sensitivity.json`` holds."""
    from symnplm import plotting
    from symnplm.workflow.progress import progress_bar

    args = parse(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    cfg = config(args)
    timing: dict[str, float] = {}
    start = time.perf_counter()
    model = sens.bootstrap_model(cfg, sens.PROTOCOL_PAIRING[args.protocol])
    timing["load_s"] = time.perf_counter() - start
    print(
        f"pool: {model.description['pool']['events']} events, Σw = "
        f"{model.pool.sum_weights:.1f} at {model.luminosity_fb:g} fb^-1; signal template: "
        f"{len(model.signal)} events",
        flush=True,
    )
    t0 = time.perf_counter()
    with progress_bar("replicas", disable=args.quiet) as bar:
        _, points = sens.bootstrap_scan(
            cfg,
            args.brs,
            args.toys,
            luminosities=args.luminosities,
            n_null=args.null_toys,
            batch_size=args.batch_size,
            progress=bar,
            model=model,
            checkpoint=args.work / "replicas",
        )
    timing["replicas_s"] = time.perf_counter() - t0
    path = sens.write_scan(
        args.out,
        cfg,
        points,
        protocol=args.protocol,
        luminosities=[float(v) for v in args.luminosities],
        bootstrap=sens.bootstrap_settings(
            model, args.luminosities, args.brs, args.toys, args.null_toys
        ),
        quick=args.quick,
        command=[sys.executable, "-m", "benchmarks.sensitivity", *(argv or sys.argv[1:])],
        timing={**timing, "total_s": time.perf_counter() - start},
    )
    sens.write_reach(args.out, points)
    plotting.plot_sensitivity(read_json(path), args.out)
    timing["total_s"] = time.perf_counter() - start
    print((args.out / "reach.md").read_text())
    print(f"{path} ({timing['total_s']:.0f} s: {timing})", flush=True)
    return read_json(path)


if __name__ == "__main__":
    main()
