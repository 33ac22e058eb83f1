"""SM closure study of the emu-vs-mue test over several detector configurations.

For every detector in ``--detectors`` (default: the default detector and the two
variants of ``benchmarks/closure/detector_*.json``), run
:func:`symnplm.workflow.closure.run_closure` on the productions ``<test>/<detector>``
and ``<calibration>/<detector>`` (each corrected with the map of the other), then
write one table (JSON + Markdown), pooled over the detectors as well, and the
figures of each detector under ``benchmarks/output/closure/``.

The productions (one Pythia run per sample, every detector simulated on the same
events; about 1 h each on 2 cores)::

    V="default efficiency=benchmarks/closure/detector_efficiency.json \\
       response=benchmarks/closure/detector_response.json"
    symnplm generate --preset paper --no-gen-jets --output datasets/closure/test \\
        --seed 20261127 --luminosity 20 --signal-luminosity 200 \\
        --processes background ggh_htaue vbfh_htaue --truth-filter-pt 10.4 --variants $V
    symnplm generate --preset paper --no-gen-jets --output datasets/closure/calibration \\
        --seed 20261128 --luminosity 20 --processes background --truth-filter-pt 10.4 \\
        --variants $V

Then::

    python -m benchmarks.closure --workers 2

A third production (``--seed 20261129``, background only) tested against the
calibration one, without injection and without the uncorrected runs::

    python -m benchmarks.closure --test datasets/closure/replica --work results/closure-replica \
        --output benchmarks/output/closure-replica --brs --no-uncorrected
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from symnplm.io.files import atomic_path, write_json
from symnplm.io.provenance import provenance
from symnplm.workflow.closure import ClosureSettings, run_closure

OUTPUT = Path(__file__).resolve().parent / "output" / "closure"


def _row(det: str, variant: str, obs: str, entry: dict[str, Any]) -> dict[str, Any]:
    pe = entry["pseudo_experiments"]
    signal = {
        f"median_z_br_{p['branching_ratio']:g}": p["z_quantiles"][1]
        for p in entry.get("signal", {}).get("points", [])
    }
    full = entry["full"]
    return {
        "detector": det,
        "variant": variant,
        "observable": obs,
        "full_p": {s: f["p_value"] for s, f in full.items()},
        "full_diag_min_p": {
            s: min(d["p_value"] for d in f["diagnostics"]) for s, f in full.items()
        },
        "full_diag_max_pull": {
            s: max(d["pull"] for d in f["diagnostics"]) for s, f in full.items()
        },
        "pe_n": pe["test"]["n"],
        "pe_luminosity_fb": pe["luminosity_fb"],
        "pe_ks_p": pe["test"]["ks_uniform_p"],
        "pe_rate": pe["test"]["rate_p_below_0.05"],
        "pe_rate_sigma": pe["test"]["rate_sigma"],
        "pe_diag_ks_min": min(v["ks_uniform_p"] for v in pe["diagnostics"].values()),
        "pe_diag_rate_max": max(v["rate_p_below_0.05"] for v in pe["diagnostics"].values()),
        "p_values": pe["test"]["p_values"],
        "diag_p_values": {k: v["p_values"] for k, v in pe["diagnostics"].items()},
        "signal_luminosity_fb": entry.get("signal", {}).get("luminosity_fb"),
        **signal,
    }


def _pooled(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The PE p-values of every detector together, per variant and observable."""
    from scipy import stats

    out = []
    for variant in sorted({r["variant"] for r in rows}):
        for obs in sorted({r["observable"] for r in rows}):
            sel = [r for r in rows if r["variant"] == variant and r["observable"] == obs]
            p = np.concatenate([r["p_values"] for r in sel])
            diag = {
                k: np.concatenate([r["diag_p_values"][k] for r in sel])
                for k in sel[0]["diag_p_values"]
            }
            out.append(
                {
                    "variant": variant,
                    "observable": obs,
                    "detectors": [r["detector"] for r in sel],
                    "n": len(p),
                    "ks_p": float(stats.kstest(p, "uniform").pvalue),
                    "rate": float(np.mean(p < 0.05)),
                    "rate_sigma": float(np.sqrt(0.05 * 0.95 / len(p))),
                    "diag_ks_min": min(
                        float(stats.kstest(v, "uniform").pvalue) for v in diag.values()
                    ),
                    "diag_rate_max": max(float(np.mean(v < 0.05)) for v in diag.values()),
                }
            )
    return out


def _markdown(rows: list[dict[str, Any]], pooled: list[dict[str, Any]]) -> str:
    def f(x: Any, fmt: str = ".3g") -> str:
        return "-" if x is None else format(x, fmt)

    brs = sorted({k for r in rows for k in r if k.startswith("median_z_br_")}, reverse=True)
    head = (
        "| detector | map | observable | whole-sample p (test, calib.) | whole: min binned p "
        "(max pull) | PEs | PE KS p | PE rate(p<0.05) | PE binned: min KS p, max rate |"
        + "".join(f" median Z, BR {b.removeprefix('median_z_br_')} |" for b in brs)
    )
    lines = [head, "|" + " --- |" * (9 + len(brs))]
    for r in rows:
        lines.append(
            f"| {r['detector']} | {'yes' if r['variant'] == 'corrected' else 'no'} | "
            f"{r['observable']} | "
            + ", ".join(f(v) for v in r["full_p"].values())
            + " | "
            + ", ".join(
                f"{f(p)} ({r['full_diag_max_pull'][s]:.1f})"
                for s, p in r["full_diag_min_p"].items()
            )
            + f" | {r['pe_n']} × {r['pe_luminosity_fb']:.2g}/fb | {f(r['pe_ks_p'])} | "
            f"{r['pe_rate']:.3f} ± {r['pe_rate_sigma']:.3f} | "
            f"{f(r['pe_diag_ks_min'])}, {r['pe_diag_rate_max']:.3f} |"
            + "".join(f" {f(r.get(b), '.2f')} |" for b in brs)
        )
    lines += [
        "",
        "Pooled over the detectors:",
        "",
        "| map | observable | PEs | KS p | rate(p<0.05) | binned: min KS p, max rate |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in pooled:
        lines.append(
            f"| {'yes' if r['variant'] == 'corrected' else 'no'} | {r['observable']} | {r['n']} | "
            f"{f(r['ks_p'])} | {r['rate']:.3f} ± {r['rate_sigma']:.3f} | "
            f"{f(r['diag_ks_min'])}, {r['diag_rate_max']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--test", type=Path, default=Path("datasets/closure/test"))
    parser.add_argument("--calibration", type=Path, default=Path("datasets/closure/calibration"))
    parser.add_argument("--detectors", nargs="+", default=["default", "efficiency", "response"])
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument("--work", type=Path, default=Path("results/closure"))
    parser.add_argument("--splits", type=int, default=50)
    parser.add_argument("--relabellings", type=int, default=20)
    parser.add_argument("--signal-luminosity-fb", type=float, default=10.0)
    parser.add_argument("--signal-pseudo-experiments", type=int, default=50)
    parser.add_argument("--permutations", type=int, default=100)
    parser.add_argument("--max-iter", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--brs", type=float, nargs="*", default=[0.01, 0.005], help="none: no injection"
    )
    parser.add_argument("--no-uncorrected", action="store_true")
    args = parser.parse_args(argv)

    rows, studies = [], {}
    start = time.perf_counter()
    for det in args.detectors:
        settings = ClosureSettings(
            test=args.test / det / "fileset.json",
            calibration=args.calibration / det / "fileset.json",
            outdir=args.work / det,
            splits=args.splits,
            relabellings=args.relabellings,
            signal_luminosity_fb=args.signal_luminosity_fb,
            signal_pseudo_experiments=args.signal_pseudo_experiments,
            full_permutations=args.permutations,
            max_iter=args.max_iter,
            workers=args.workers,
            seed=args.seed,
            branching_ratios=tuple(args.brs),
            uncorrected=not args.no_uncorrected,
            quiet=True,
        )
        t0 = time.perf_counter()
        summary = run_closure(settings, log=lambda m, det=det: print(f"[{det}] {m}", flush=True))
        studies[det] = {"seconds": time.perf_counter() - t0, "directory": str(settings.outdir)}
        for variant, by_obs in summary["variants"].items():
            for obs, entry in by_obs.items():
                rows.append(_row(det, variant, obs, entry))
        # figures of this detector beside the table
        out = args.output / det
        out.mkdir(parents=True, exist_ok=True)
        for png in settings.outdir.glob("closure_*.png"):
            (out / png.name).write_bytes(png.read_bytes())
        write_json(out / "closure.json", summary)
    pooled = _pooled(rows)
    write_json(
        args.output / "closure_table.json",
        {"rows": rows, "pooled": pooled, "studies": studies,
         "args": {k: str(v) for k, v in vars(args).items()},
         "seconds": time.perf_counter() - start, "provenance": provenance()},
    )  # fmt: skip
    with atomic_path(args.output / "closure_table.md") as tmp:
        tmp.write_text(_markdown(rows, pooled))
    print(_markdown(rows, pooled))
    print(json.dumps(studies, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
