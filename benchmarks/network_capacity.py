"""Which network for the five features? Capacity against a narrow η asymmetry and H→τe.

The LFUV bootstrap (:mod:`symnplm.workflow.sensitivity`, ``--protocol lfuv``) on the
corrected paper-preset sample at ``--luminosity`` fb⁻¹: A and B from the pool of the
emu and mue events, each with its category's expected size. For every architecture of
``--architectures`` (the symmetrized test on the five two-body features, Newton to
convergence) it fits

* the null (``--null`` replicas),
* a **narrow η asymmetry**: B loses a fraction ``--eta-loss`` of its events whose
  leading lepton has signed η in ``--eta-window`` (a detector inefficiency that the
  map does not know), no H→τe,
* **H→τe** at ``--br``, no η asymmetry,

and reports the median Z (16–84 %) of each against its own null, the fraction of
converged fits, and the cost. A binned G-test on η_lead (``--bins`` quantile bins) on
the same η replicas is the reference that a network must not fall far behind.

    python -m benchmarks.network_capacity --input results/closure/default/test_corrected

Writes ``benchmarks/output/network_capacity/capacity.json`` and ``capacity.md``.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from symnplm.inference.calculators import toy_null
from symnplm.inference.significance import empirical_pvalue, p_to_z
from symnplm.io.files import atomic_path, write_json
from symnplm.io.provenance import provenance
from symnplm.io.samples import Sample
from symnplm.workflow import sensitivity as sens
from symnplm.workflow.config import InjectionSpec, RunConfig, SampleSpec, StatisticSpec
from symnplm.workflow.runs import build_test

OUT = Path(__file__).resolve().parent / "output" / "network_capacity"


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--input", type=Path, default=Path("results/closure/default/test_corrected"))
    p.add_argument("--luminosity", type=float, default=10.0, help="fb^-1 of each sample")
    p.add_argument(
        "--architectures", nargs="+", default=["5,4,1", "5,8,1"], help="e.g. 5,4,1 5,8,1"
    )
    p.add_argument("--null", type=int, default=60, help="null replicas per architecture")
    p.add_argument("--toys", type=int, default=20, help="replicas per alternative")
    p.add_argument("--eta-window", type=float, nargs=2, default=[0.5, 0.8])
    p.add_argument("--eta-loss", type=float, default=0.1, help="B's loss in the window")
    p.add_argument("--br", type=float, default=0.02, help="B(H->tau e) of the signal test")
    p.add_argument("--bins", type=int, default=20, help="bins of the binned eta_lead test")
    p.add_argument("--max-iter", type=int, default=1000)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--out", type=Path, default=OUT)
    return p.parse_args(argv)


def config(args: argparse.Namespace, features: Any, statistic: StatisticSpec) -> RunConfig:
    return RunConfig(
        input=str(args.input),
        a=SampleSpec(category="emu"),
        b=SampleSpec(category="mue"),
        features=features,
        inject=InjectionSpec(),
        statistic=statistic,
        seed=args.seed,
    )


def eta_loss_experiments(
    model: sens.BootstrapModel, lumi: float, window: list[float], loss: float
) -> tuple[Any, float]:
    """Replicas without signal in which B loses ``loss`` of its events with η_lead in
    ``window``, and the expected number of events B loses."""
    eta = model.pool.column("eta_lead")
    hit = (eta >= window[0]) & (eta < window[1])
    weights = np.where(hit, model.pool.weights * (1.0 - loss), model.pool.weights)
    pool_b = Sample(model.pool.features, weights, model.pool.names, name="B pool")
    n_b = model.expected_background(lumi, "b")
    kept = pool_b.sum_weights / model.pool.sum_weights
    generator = sens.bootstrap_experiments(
        model.pool,
        model.expected_background(lumi, "a"),
        pool_b=pool_b,
        n_background_b=n_b * kept,
    )
    return generator, n_b * (1.0 - kept)


def fit(test: Any, generator: Any, n: int, seed: int) -> tuple[np.ndarray, float, float]:
    """t of ``n`` replicas, the fraction converged, and seconds."""
    start = time.perf_counter()
    result = toy_null(test, n, generator=generator, seed=seed)
    return result.t, float(np.mean(result.converged)), time.perf_counter() - start


def z_summary(t: np.ndarray, null: np.ndarray) -> dict[str, Any]:
    z = np.array([p_to_z(empirical_pvalue(v, null)) for v in t])
    q = np.percentile(z, [16, 50, 84], method="inverted_cdf")
    return {"z_16_50_84": q.tolist(), "median_t": float(np.median(t))}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse(argv)
    lumi = args.luminosity
    rows: list[dict[str, Any]] = []
    start = time.perf_counter()
    # the binned reference on η_lead: same replicas (same seeds) as the networks' η test
    candidates: list[tuple[str, Any, StatisticSpec]] = [
        (
            f"binned eta_lead ({args.bins} bins)",
            ["eta_lead"],
            StatisticSpec(method="binned", bins=args.bins),
        )
    ]
    for arch in args.architectures:
        layers = [int(v) for v in arch.split(",")]
        candidates.append(
            (
                "-".join(map(str, layers)),
                "5d",
                StatisticSpec(
                    method="symmetrized",
                    optimizer="newton",
                    architecture=layers,
                    max_iter=args.max_iter,
                ),
            )
        )
    lost = None
    for name, features, statistic in candidates:
        cfg = config(args, features, statistic)
        model = sens.bootstrap_model(cfg, "by-category")
        eta_generator, lost = eta_loss_experiments(model, lumi, args.eta_window, args.eta_loss)
        test = build_test(cfg.statistic, model.pool, model.pool)
        layers = statistic.architecture
        row: dict[str, Any] = {
            "network": name,
            "parameters": (
                sum(m * n + n for m, n in itertools.pairwise(layers)) if layers else None
            ),
        }
        seconds = []
        null, row["null_converged"], s = fit(
            test, model.experiments(lumi, 0.0), args.null, args.seed
        )
        seconds.append(s)
        row["null_median_t"] = float(np.median(null))
        eta, row["eta_converged"], s = fit(test, eta_generator, args.toys, args.seed + 2)
        seconds.append(s)
        row["eta_window"] = z_summary(eta, null)
        if name.startswith("binned"):
            row["htaue"] = None  # m_coll carries the signal, not η_lead
        else:
            sig, row["signal_converged"], s = fit(
                test, model.experiments(lumi, args.br), args.toys, args.seed + 3
            )
            seconds.append(s)
            row["htaue"] = z_summary(sig, null)
        row["seconds"] = float(sum(seconds))
        rows.append(row)
        print(row, flush=True)
    result = {
        "kind": "symnplm-network-capacity",
        "luminosity_fb": lumi,
        "eta_window": args.eta_window,
        "eta_loss": args.eta_loss,
        "expected_events_lost_by_b": lost,
        "branching_ratio": args.br,
        "null_replicas": args.null,
        "replicas": args.toys,
        "seed": args.seed,
        "rows": rows,
        "command": [sys.executable, "-m", "benchmarks.network_capacity", *(argv or sys.argv[1:])],
        "total_s": time.perf_counter() - start,
        "provenance": provenance(),
    }
    write_json(args.out / "capacity.json", result)

    def cell(entry: dict[str, Any] | None) -> str:
        if not entry:
            return "—"
        lo, mid, hi = entry["z_16_50_84"]
        return f"{mid:.2f} [{lo:.2f}, {hi:.2f}]"

    lines = [
        f"| network | null median t | η-window Z | H→τe Z (B = {args.br:g}) | converged "
        "| cost [s] |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        conv = [r.get(k) for k in ("null_converged", "eta_converged", "signal_converged")]
        conv_text = "/".join("—" if v is None else f"{v:.2f}" for v in conv)
        lines.append(
            f"| {r['network']} | {r['null_median_t']:.1f} | "
            f"{cell(r.get('eta_window'))} | {cell(r['htaue'])} | {conv_text} | {r['seconds']:.0f} |"
        )
    with atomic_path(args.out / "capacity.md") as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return result


if __name__ == "__main__":
    main()
