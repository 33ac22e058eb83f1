"""Peak memory of ``symnplm process`` as the input grows: columns written by the workers.

The input is the demo's ttbar file repeated ×k as k datasets (the same events, other
names), processed with the iterative executor in chunks of ``--chunksize`` events, in
a fresh subprocess per cell, so that the peak resident memory (VmHWM) is that of one
processing. Two ways side by side at every k:

* ``streaming`` — :func:`symnplm.processors.runner.process_fileset`: every chunk writes
  its columns where it runs; the accumulator carries histograms, cutflows and one
  summary per chunk file;
* ``in-memory`` — :func:`~symnplm.processors.runner.run_processor` with a processor
  that keeps its columns in the accumulator (what ``process`` did before), joined at
  the end: the baseline.

The columns' memory grows with k in-memory and stays flat streaming; the histograms
(one set per dataset) grow with k in both.

    python -m benchmarks.processing_memory --copies 1 4 8

Writes ``benchmarks/output/bench/processing_memory.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._common import OUTPUT_DIR, WORKER_MARK, PeakRSS, machine_info

DEMO = Path("datasets/demo/fileset.json")


def _fileset(copies: int) -> dict[str, Any]:
    demo = json.loads(DEMO.read_text())
    entry = demo["ttbar"]
    files = [str((DEMO.parent / f).resolve()) for f in entry["files"]]
    return {
        f"ttbar_{k}": {"files": files, "metadata": dict(entry["metadata"])} for k in range(copies)
    }


def worker(mode: str, copies: int, chunksize: int) -> dict[str, Any]:
    """One processing in this process: peak RSS, events, wall time."""
    from symnplm.processors.emu import EMuProcessor
    from symnplm.processors.inputs import load_fileset
    from symnplm.processors.runner import process_fileset, run_processor

    fileset = _fileset(copies)
    with tempfile.TemporaryDirectory() as tmp, PeakRSS() as rss:
        start = time.perf_counter()
        if mode == "streaming":
            report = process_fileset(
                fileset, Path(tmp) / "out", EMuProcessor(), chunksize=chunksize
            )
            events = sum(flow["all"] for flow in report.cutflow.values())
        else:
            files = load_fileset(fileset)
            for entry in files.values():  # normalisation is not what is measured here
                entry["metadata"].pop("xsec", None)
            output, _ = run_processor(files, EMuProcessor(luminosity_fb=5.0), chunksize=chunksize)
            events = sum(flow["all"] for flow in output["cutflow"].values())
        wall = time.perf_counter() - start
    return {"mode": mode, "copies": copies, "events": events, "wall_s": wall, **rss.as_dict()}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--copies", type=int, nargs="+", default=[1, 4, 8])
    p.add_argument("--chunksize", type=int, default=20_000)
    p.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        mode, copies, chunksize = args.worker
        print(WORKER_MARK + json.dumps(worker(mode, int(copies), int(chunksize))), flush=True)
        return {}
    rows = []
    for copies in args.copies:
        for mode in ("streaming", "in-memory"):
            cmd = [sys.executable, "-m", "benchmarks.processing_memory", "--worker", mode,
                   str(copies), str(args.chunksize)]  # fmt: skip
            done = subprocess.run(cmd, capture_output=True, text=True, check=True)
            line = next(x for x in done.stdout.splitlines() if x.startswith(WORKER_MARK))
            row = json.loads(line[len(WORKER_MARK) :])
            row["events_per_s"] = row["events"] / row["wall_s"]
            rows.append(row)
            print(
                f"{mode:9s} ×{copies}: {row['events']} events, peak RSS "
                f"{row['peak_rss_mib']:.0f} MiB (+{row['delta_mib']:.0f}), "
                f"{row['events_per_s']:.0f} events/s",
                flush=True,
            )
    result = {
        "kind": "symnplm-processing-memory",
        "input": "datasets/demo ttbar, repeated as datasets",
        "chunksize": args.chunksize,
        "executor": "iterative (one core)",
        "rows": rows,
        "machine": machine_info(),
        "command": [sys.executable, "-m", "benchmarks.processing_memory", *(argv or sys.argv[1:])],
    }
    path = OUTPUT_DIR / "processing_memory.json"
    path.write_text(json.dumps(result, indent=1, default=str))
    print(f"wrote {path}")
    return result


if __name__ == "__main__":
    main()
