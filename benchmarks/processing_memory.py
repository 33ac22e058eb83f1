"""Peak memory of ``symnplm process`` as the input grows: columns written by the workers.

The input is the demo's tt̄ file repeated ×k — as k *files* of one dataset (links to
the same file under k names), so that only the event count grows, or with
``--as-datasets`` as k datasets, which also multiplies the histograms (one set per
dataset). Each cell runs in a fresh subprocess, so its peak resident memory (VmHWM) is
that of one processing:

* ``streaming`` — :func:`symnplm.processors.runner.process_fileset` with the iterative
  executor: every chunk writes its columns where it runs; the accumulator carries
  histograms, cutflows and one summary per chunk file;
* ``in-memory`` — :func:`~symnplm.processors.runner.run_processor` with a processor
  that keeps its columns in the accumulator, joined at the end: the baseline (up to
  ``--baseline-max`` copies; it grows with the input);
* ``streaming-futures`` — ``process_fileset`` with the futures executor and
  ``--workers`` processes: the peak of the largest worker (``ru_maxrss`` of the
  children) and of the main process, and events/s per core.

    python -m benchmarks.processing_memory --copies 1 10 50

Writes ``benchmarks/output/bench/processing_memory.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._common import OUTPUT_DIR, WORKER_MARK, PeakRSS, machine_info

DEMO = Path("datasets/demo/fileset.json")
MODES = ("streaming", "in-memory", "streaming-futures")


def _fileset(copies: int, folder: Path, as_datasets: bool) -> dict[str, Any]:
    demo = json.loads(DEMO.read_text())
    entry = demo["ttbar"]
    files = [(DEMO.parent / f).resolve() for f in entry["files"]]
    meta = dict(entry["metadata"])
    if as_datasets:
        return {
            f"ttbar_{k}": {"files": [str(f) for f in files], "metadata": meta}
            for k in range(copies)
        }
    linked = []
    for k in range(copies):  # a fileset names each file once: k names for one file
        for f in files:
            link = folder / f"{f.stem}_{k}{f.suffix}"
            link.symlink_to(f)
            linked.append(str(link))
    # the Runs trees are read once per name: the sum of weights grows with the copies too
    return {"ttbar": {"files": linked, "metadata": meta}}


def worker(
    mode: str, copies: int, chunksize: int, workers: int, as_datasets: bool
) -> dict[str, Any]:
    """One processing in this process: peak RSS (own and workers'), events, wall time."""
    from symnplm.processors.emu import EMuProcessor
    from symnplm.processors.inputs import load_fileset
    from symnplm.processors.runner import process_fileset, run_processor

    with tempfile.TemporaryDirectory() as tmp, PeakRSS() as rss:
        fileset = _fileset(copies, Path(tmp), as_datasets)
        start = time.perf_counter()
        if mode == "in-memory":
            files = load_fileset(fileset)
            for entry in files.values():  # normalisation is not what is measured here
                entry["metadata"].pop("xsec", None)
            output, _ = run_processor(files, EMuProcessor(luminosity_fb=5.0), chunksize=chunksize)
            events = sum(flow["all"] for flow in output["cutflow"].values())
        else:
            parallel = mode == "streaming-futures"
            report = process_fileset(
                fileset,
                Path(tmp) / "out",
                EMuProcessor(),
                chunksize=chunksize,
                executor="futures" if parallel else "iterative",
                workers=workers if parallel else 1,
            )
            events = sum(flow["all"] for flow in report.cutflow.values())
        wall = time.perf_counter() - start
    cores = workers if mode == "streaming-futures" else 1
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {
        "mode": mode,
        "copies": copies,
        "events": events,
        "wall_s": wall,
        "cores": cores,
        "events_per_s_per_core": events / wall / cores,
        "worker_peak_rss_mib": children if mode == "streaming-futures" else None,
        **rss.as_dict(),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--copies", type=int, nargs="+", default=[1, 10, 50])
    p.add_argument("--chunksize", type=int, default=20_000)
    p.add_argument("--workers", type=int, default=2, help="processes of the futures executor")
    p.add_argument("--baseline-max", type=int, default=10, help="largest ×k of the in-memory run")
    p.add_argument("--as-datasets", action="store_true", help="copies as datasets, not files")
    p.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    p.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        mode, copies, chunksize, workers, as_datasets = args.worker
        payload = worker(mode, int(copies), int(chunksize), int(workers), as_datasets == "1")
        print(WORKER_MARK + json.dumps(payload), flush=True)
        return {}
    rows = []
    for copies in args.copies:
        for mode in args.modes:
            if mode == "in-memory" and copies > args.baseline_max:
                continue
            cmd = [sys.executable, "-m", "benchmarks.processing_memory", "--worker", mode,
                   str(copies), str(args.chunksize), str(args.workers),
                   "1" if args.as_datasets else "0"]  # fmt: skip
            done = subprocess.run(cmd, capture_output=True, text=True, check=True, env=os.environ)
            line = next(x for x in done.stdout.splitlines() if x.startswith(WORKER_MARK))
            row = json.loads(line[len(WORKER_MARK) :])
            rows.append(row)
            workers = (
                f", largest worker {row['worker_peak_rss_mib']:.0f} MiB"
                if row["worker_peak_rss_mib"]
                else ""
            )
            print(
                f"{mode:17s} ×{copies}: {row['events']} events, peak RSS "
                f"{row['peak_rss_mib']:.0f} MiB (+{row['delta_mib']:.0f}){workers}, "
                f"{row['events_per_s_per_core']:.0f} events/s per core",
                flush=True,
            )
    result = {
        "kind": "symnplm-processing-memory",
        "input": "datasets/demo ttbar, repeated as "
        + ("datasets" if args.as_datasets else "files of one dataset"),
        "chunksize": args.chunksize,
        "workers": args.workers,
        "rows": rows,
        "machine": machine_info(),
        "command": [sys.executable, "-m", "benchmarks.processing_memory", *(argv or sys.argv[1:])],
    }
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    path = OUTPUT_DIR / "processing_memory.json"
    path.write_text(json.dumps(result, indent=1, default=str))
    print(f"wrote {path}")
    return result


if __name__ == "__main__":
    main()
