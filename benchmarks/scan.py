"""The LFUV region scan on the paper-preset sample: tables, figures, timings.

Runs ``benchmarks/scan/lfuv.yaml`` (7 regions × {m_coll: symmetrized + binned, the five
features: symmetrized} = 21 cells, 200 joint permutations) on the processed
paper-preset production corrected with the map of an independent one, as pseudo-data
of ``--luminosity`` fb⁻¹:

1. ``sm``: the Standard-Model sample (global p must not be significant);
2. ``signal``: H→τe injected at ``--br`` (ggH and VBF), which must stand out where the
   signal is (0 jets, m_ll < 100 GeV);
3. ``scaling``: the same scan with ``--scaling-permutations`` on 1 and 2 dask workers,
   and its cells one by one (a scan per cell: data loading, cluster start and the
   fits, as running the cells separately costs).

Writes ``benchmarks/output/scan/{sm,signal-<BR>pct}/`` (table.json, table.csv, summary.png) and
``benchmarks/output/scan/timing.json``; the scans' own directories are under
``results/scan-bench/``::

    python -m benchmarks.scan --input results/closure/default/test_corrected
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path
from typing import Any

import yaml

from symnplm.io.files import read_json, write_json
from symnplm.io.provenance import provenance
from symnplm.workflow.config import from_mapping
from symnplm.workflow.scan import ScanConfig, run_scan

HERE = Path(__file__).resolve().parent
DEFINITION = HERE / "scan" / "lfuv.yaml"
OUTPUT = HERE / "output" / "scan"


def _config(args: argparse.Namespace, **changes: Any) -> ScanConfig:
    data = yaml.safe_load(DEFINITION.read_text())
    data |= {"input": args.input, "luminosity_fb": args.luminosity, "unweight": "thin"}
    data |= changes
    return from_mapping(ScanConfig, data)


def _run(cfg: ScanConfig, directory: Path) -> dict[str, Any]:
    start = time.perf_counter()
    result = run_scan(cfg, directory)
    return {"seconds": time.perf_counter() - start, "result": result}


def _publish(name: str, directory: Path) -> None:
    target = OUTPUT / name
    target.mkdir(parents=True, exist_ok=True)
    for f in ("table.json", "table.csv", "summary.png"):
        shutil.copy2(directory / f, target / f)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--input", required=True, help="processed paper-preset output")
    p.add_argument("--work", type=Path, default=Path("results/scan-bench"))
    p.add_argument("--luminosity", type=float, default=10.0, help="pseudo-data fb⁻¹")
    p.add_argument("--br", type=float, default=0.01, help="injected B(H→τe)")
    p.add_argument("--scaling-permutations", type=int, default=20)
    p.add_argument("--only", nargs="*", default=["sm", "signal", "scaling"])
    args = p.parse_args(argv)
    timing_path = OUTPUT / "timing.json"
    timing: dict[str, Any] = {"provenance": provenance(), "luminosity_fb": args.luminosity}

    if "sm" in args.only:
        out = _run(_config(args), args.work / "sm")
        _publish("sm", args.work / "sm")
        timing["sm"] = {"seconds": out["seconds"], **out["result"].significance.to_dict()}
        print("sm", timing["sm"], flush=True)
    if "signal" in args.only:
        inject = {"branching_ratio": args.br, "datasets": ["ggh_htaue", "vbfh_htaue"]}
        name = f"signal-{100 * args.br:g}pct"
        out = _run(_config(args, inject=inject), args.work / name)
        _publish(name, args.work / name)
        timing[name] = {
            "seconds": out["seconds"],
            "br": args.br,
            **out["result"].significance.to_dict(),
        }
        print(name, timing[name], flush=True)
    if "scaling" in args.only:
        n = args.scaling_permutations
        rows = {}
        for workers in (1, 2):
            d = args.work / f"scaling-{workers}w"
            shutil.rmtree(d, ignore_errors=True)  # a timing, not a resumable result
            cfg = _config(args, calibration={"permutations": n, "workers": workers})
            rows[f"{workers}_workers"] = _run(cfg, d)["seconds"]
            print("scaling", workers, rows[f"{workers}_workers"], flush=True)
        # the cells one by one, each its own scan (2 workers), as running them separately
        base = yaml.safe_load(DEFINITION.read_text())
        one_by_one = 0.0
        for region, cuts in base["regions"].items():
            for observable, columns in base["observables"].items():
                for statistic, spec in base["statistics"].items():
                    if spec["method"] == "binned" and observable != "m_coll":
                        continue
                    d = args.work / "one-by-one" / f"{region}__{observable}__{statistic}"
                    shutil.rmtree(d, ignore_errors=True)
                    cfg = _config(
                        args,
                        regions={region: cuts},
                        observables={observable: columns},
                        statistics={statistic: spec},
                        calibration={"permutations": n, "workers": 2},
                    )
                    one_by_one += _run(cfg, d)["seconds"]
        rows["one_by_one_2_workers"] = one_by_one
        rows["permutations"] = n
        timing["scaling"] = rows
        print("scaling", rows, flush=True)
    if timing_path.exists():
        timing = {**read_json(timing_path), **timing}
    write_json(timing_path, timing)


if __name__ == "__main__":
    main()
