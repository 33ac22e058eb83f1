"""SM closure study of the emu-vs-mue test over several detector configurations.

For every detector in ``--detectors`` (default: the default detector and the two
variants of ``benchmarks/closure/detector_*.json``), run :func:`symnplm.closure.run_closure`
on the production ``<test>/<detector>`` with the map measured on the independent
production ``<calibration>/<detector>``, then write one table (JSON + Markdown) and
the figures of each detector under ``benchmarks/output/closure/``.

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
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from symnplm.closure import ClosureSettings, run_closure
from symnplm.fileio import atomic_path, write_json
from symnplm.provenance import provenance

OUTPUT = Path(__file__).resolve().parent / "output" / "closure"


def _row(det: str, variant: str, obs: str, entry: dict[str, Any]) -> dict[str, Any]:
    full, pe = entry["full"], entry["pseudo_experiments"]
    diag_full = full["diagnostics"]
    diag_pe = pe["diagnostics"]
    signal = {
        f"median_z_br_{p['branching_ratio']:g}": p["z_quantiles"][1]
        for p in entry.get("signal", {}).get("points", [])
    }
    return {
        "detector": det,
        "variant": variant,
        "observable": obs,
        "full_t": full["t"],
        "full_p": full["p_value"],
        "full_events": full["events"],
        "full_diag_min_p": min(d["p_value"] for d in diag_full),
        "full_diag_max_abs_pull": max(abs(d["pull"]) for d in diag_full),
        "pe_n": pe["test"]["n"],
        "pe_luminosity_fb": pe["luminosity_fb"],
        "pe_ks_p": pe["test"]["ks_uniform_p"],
        "pe_rate": pe["test"]["rate_p_below_0.05"],
        "pe_rate_sigma": pe["test"]["rate_sigma"],
        "pe_diag_ks_min": min(v["ks_uniform_p"] for v in diag_pe.values()),
        "pe_diag_rate_max": max(v["rate_p_below_0.05"] for v in diag_pe.values()),
        "signal_luminosity_fb": entry.get("signal", {}).get("luminosity_fb"),
        **signal,
    }


def _markdown(rows: list[dict[str, Any]]) -> str:
    def f(x: Any, fmt: str = ".3g") -> str:
        return "-" if x is None else format(x, fmt)

    brs = sorted({k for r in rows for k in r if k.startswith("median_z_br_")}, reverse=True)
    head = (
        "| detector | map | observable | full t | full p | full: min binned p "
        "(max pull) | PEs | PE KS p | PE rate(p<0.05) | PE binned: min KS p, max rate | "
        + " | ".join(f"median Z, BR {b.removeprefix('median_z_br_')}" for b in brs)
        + " |"
    )
    lines = [head, "|" + " --- |" * (10 + len(brs))]
    for r in rows:
        lines.append(
            f"| {r['detector']} | {'yes' if r['variant'] == 'corrected' else 'no'} | "
            f"{r['observable']} | {r['full_t']:.1f} | {f(r['full_p'])} | "
            f"{f(r['full_diag_min_p'])} ({r['full_diag_max_abs_pull']:.1f}) | "
            f"{r['pe_n']} × {r['pe_luminosity_fb']:g}/fb | {f(r['pe_ks_p'])} | "
            f"{r['pe_rate']:.3f} ± {r['pe_rate_sigma']:.3f} | "
            f"{f(r['pe_diag_ks_min'])}, {r['pe_diag_rate_max']:.3f} | "
            + " | ".join(f(r.get(b), ".2f") for b in brs)
            + " |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--test", type=Path, default=Path("datasets/closure/test"))
    parser.add_argument("--calibration", type=Path, default=Path("datasets/closure/calibration"))
    parser.add_argument("--detectors", nargs="+", default=["default", "efficiency", "response"])
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument("--work", type=Path, default=Path("results/closure"))
    parser.add_argument("--pseudo-experiments", type=int, default=200)
    parser.add_argument("--pe-luminosity-fb", type=float, default=2.0)
    parser.add_argument("--signal-luminosity-fb", type=float, default=10.0)
    parser.add_argument("--signal-pseudo-experiments", type=int, default=50)
    parser.add_argument("--permutations", type=int, default=100)
    parser.add_argument("--max-iter", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    rows, studies = [], {}
    start = time.perf_counter()
    for det in args.detectors:
        settings = ClosureSettings(
            test=args.test / det / "fileset.json",
            calibration=args.calibration / det / "fileset.json",
            outdir=args.work / det,
            pseudo_experiments=args.pseudo_experiments,
            pe_luminosity_fb=args.pe_luminosity_fb,
            signal_luminosity_fb=args.signal_luminosity_fb,
            signal_pseudo_experiments=args.signal_pseudo_experiments,
            full_permutations=args.permutations,
            max_iter=args.max_iter,
            workers=args.workers,
            seed=args.seed,
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
    write_json(
        args.output / "closure_table.json",
        {"rows": rows, "studies": studies, "args": {k: str(v) for k, v in vars(args).items()},
         "seconds": time.perf_counter() - start, "provenance": provenance()},
    )  # fmt: skip
    with atomic_path(args.output / "closure_table.md") as tmp:
        tmp.write_text(_markdown(rows))
    print(_markdown(rows))
    print(json.dumps(studies, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
