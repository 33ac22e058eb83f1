"""Helpers shared by the benchmark scripts: machine info, timing, memory, tables, output.

Top-level imports are the standard library and numpy only, so that the NPLM
reference worker (:mod:`benchmarks.nplm_reference`), which runs in a separate
TensorFlow environment without torch or symnplm, can use the same helpers; torch
and symnplm are imported inside the functions that need them.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
OUTPUT_DIR = Path(__file__).resolve().parent / "output" / "bench"
#: marks the one stdout line of a worker subprocess that carries its JSON result
WORKER_MARK = "@@BENCH-RESULT@@ "


# --------------------------------------------------------------------------------------
# threads and machine
# --------------------------------------------------------------------------------------
def set_threads(n: int | None) -> dict[str, int]:
    """Set torch's intra-op threads (``None`` keeps the default); return the thread counts."""
    import torch

    if n:
        torch.set_num_threads(int(n))
    return {"intra_op": torch.get_num_threads(), "inter_op": torch.get_num_interop_threads()}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return None


def machine_info() -> dict[str, Any]:
    """CPU, cores, memory, torch threads and build, GPU, load, package versions.

    The load average is recorded because these benchmarks often run on a shared
    machine: a load above the core count means the timings were taken under contention.
    """
    import torch

    from symnplm.io.provenance import provenance

    info: dict[str, Any] = {
        "cpu_model": _cpu_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_gib": _mem_total_gib(),
        "torch_threads": set_threads(None),
        "torch_version": torch.__version__,
        "load_average": list(os.getloadavg()),
        "cuda": None,
        "provenance": provenance(),
    }
    if torch.cuda.is_available():
        info["cuda"] = {
            "device": torch.cuda.get_device_name(0),
            "count": torch.cuda.device_count(),
            "cuda_version": torch.version.cuda,
        }
    return info


def describe_machine(info: dict[str, Any]) -> str:
    """One line for the table header."""
    th = info["torch_threads"]
    gpu = f", GPU {info['cuda']['device']}" if info.get("cuda") else ""
    load = ", ".join(f"{x:.2f}" for x in info["load_average"])
    return (
        f"{info['cpu_model']}, {info['usable_cores']}/{info['logical_cores']} cores, "
        f"torch {info['torch_version']} with {th['intra_op']} thread(s){gpu}; load {load}"
    )


# --------------------------------------------------------------------------------------
# timing
# --------------------------------------------------------------------------------------
def synchronize(device: str) -> None:
    """Wait for queued GPU work (a no-op on the CPU), so wall-clock times are complete."""
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def timed(fn: Callable[[], Any], device: str = "cpu") -> tuple[Any, float]:
    """``(fn(), wall-clock seconds)`` measured with ``time.perf_counter``."""
    synchronize(device)
    start = time.perf_counter()
    out = fn()
    synchronize(device)
    return out, time.perf_counter() - start


def epochs_for(
    seconds_per_epoch: float, target_seconds: float, min_epochs: int, max_epochs: int
) -> int:
    """Epochs so that one timing lasts about ``target_seconds``, clamped to the bounds."""
    if not seconds_per_epoch > 0:
        return max_epochs
    return int(min(max_epochs, max(min_epochs, math.ceil(target_seconds / seconds_per_epoch))))


def median(values: Sequence[float]) -> float:
    """Median of a non-empty sequence."""
    return float(np.median(np.asarray(values, dtype=np.float64)))


# --------------------------------------------------------------------------------------
# memory
# --------------------------------------------------------------------------------------
def _status_kib(key: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    """Reset this process's peak RSS (VmHWM); Linux ≥ 4.0, writing 5 to clear_refs."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return False
    return True


class PeakRSS:
    """Peak resident memory of this process while the ``with`` block runs.

    On Linux the high-water mark VmHWM is reset on entry (``/proc/self/clear_refs``),
    so ``peak_mib`` is the peak *during the block*; ``delta_mib`` = peak − RSS on entry
    is the working memory the block added. Elsewhere ``ru_maxrss`` (the lifetime
    peak) is used and the delta is only a lower bound. Resident memory counts every
    allocation (torch's CPU allocator included, which ``tracemalloc`` does not see),
    but freed memory the allocator keeps can hide a block's own use: measure in a
    fresh process (see :func:`run_worker`) to compare configurations.
    """

    def __enter__(self) -> PeakRSS:
        self.method = "VmHWM reset via /proc/self/clear_refs" if _reset_peak() else "ru_maxrss"
        self.before_kib = _status_kib("VmRSS") or 0
        return self

    def __exit__(self, *exc: object) -> None:
        if self.method == "ru_maxrss":
            self.peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        else:
            self.peak_kib = _status_kib("VmHWM") or 0

    def as_dict(self) -> dict[str, Any]:
        """Peak and delta in MiB, and how they were measured."""
        return {
            "rss_before_mib": self.before_kib / 1024,
            "peak_rss_mib": self.peak_kib / 1024,
            "delta_mib": max(0, self.peak_kib - self.before_kib) / 1024,
            "method": self.method,
        }


# --------------------------------------------------------------------------------------
# worker subprocesses (fresh process per memory measurement, other environments)
# --------------------------------------------------------------------------------------
def emit_worker_result(payload: dict[str, Any]) -> None:
    """Print a worker's result as one marked JSON line on stdout."""
    print(WORKER_MARK + json.dumps(payload), flush=True)


def run_worker(
    module: str,
    payload: dict[str, Any],
    *,
    python: str | os.PathLike[str] = sys.executable,
    env: dict[str, str] | None = None,
    timeout: float | None = None,
) -> dict[str, Any]:
    """Run ``python -m module --worker JSON`` from the repository root; return its result.

    Raises
    ------
    RuntimeError
        If the worker fails or prints no result (with the tail of its stderr).
    """
    cmd = [str(python), "-m", module, "--worker", json.dumps(payload)]
    proc = subprocess.run(
        cmd,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(WORKER_MARK):
            return json.loads(line[len(WORKER_MARK) :])
    tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
    raise RuntimeError(f"worker {module} exited {proc.returncode} without a result:\n{tail}")


# --------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------
def toy_samples(dim: int, n_events: float, seed: int, poisson: bool = True):
    """Two null samples A and B with about ``n_events`` events in all.

    ``dim == 1``: the exponential toy model of 2401.09530 Sec. III A
    (``ToyModel(n/2, n/2)``), the stand-in for the e-mu / mu-e samples.
    Otherwise: standard normal features in ``dim`` dimensions.
    """
    from symnplm.generation.toymodels import ToyModel
    from symnplm.io.samples import Sample

    rng = np.random.default_rng(seed)
    half = n_events / 2
    if dim == 1:
        return ToyModel(half, half, poisson=poisson)(rng)
    names = [f"x{i}" for i in range(dim)]
    sizes = [int(rng.poisson(half)) if poisson else round(half) for _ in range(2)]
    a = Sample(rng.normal(size=(sizes[0], dim)), names=names, name="A")
    b = Sample(rng.normal(size=(sizes[1], dim)), names=names, name="B")
    return a, b


def default_architecture(dim: int) -> tuple[int, ...]:
    """The paper's 1-4-1 in 1D; 5-5-5-5-1 style (d, 5, 5, 5, 1) otherwise."""
    return (1, 4, 1) if dim == 1 else (dim, 5, 5, 5, 1)


# --------------------------------------------------------------------------------------
# command line, tables and output
# --------------------------------------------------------------------------------------
def count(text: str) -> int:
    """argparse type accepting ``2.2e5`` for an integer count."""
    value = float(text)
    if value < 1 or value != int(value):
        raise argparse.ArgumentTypeError(f"expected a positive integer count, got {text!r}")
    return int(value)


def new_parser(doc: str | None) -> argparse.ArgumentParser:
    """An argument parser whose help is the script's docstring, as written."""
    return argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Options every script shares: threads, seed, output tag and directory."""
    parser.add_argument(
        "--threads", type=int, default=None, help="torch intra-op threads (default: torch's)"
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of data and initialisations")
    parser.add_argument("--tag", default="", help="suffix of the output file names")
    parser.add_argument(
        "--output-dir", type=Path, default=OUTPUT_DIR, help="where the JSON results go"
    )
    parser.add_argument("--no-write", action="store_true", help="print only, write no JSON")


def fmt(value: Any, spec: str = ".3g") -> str:
    """Format a number for a table; ``-`` for missing values."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, (int, float, np.floating, np.integer)):
        return format(value, spec)
    return str(value)


def print_table(
    title: str, columns: Sequence[tuple[str, str, str]], rows: Sequence[dict[str, Any]]
) -> None:
    """Print ``rows`` (dicts) as a table; ``columns`` are (key, header, format spec)."""
    cells = [[fmt(row.get(key), spec) for key, _, spec in columns] for row in rows]
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # plain text where rich is not installed (e.g. the TF venv)
        headers = [h for _, h, _ in columns]
        widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
        print(title)
        print("  ".join(h.rjust(w) for h, w in zip(headers, widths)))
        for c in cells:
            print("  ".join(v.rjust(w) for v, w in zip(c, widths)))
        return
    table = Table(title=title, title_justify="left")
    for _, header, _ in columns:
        table.add_column(header, justify="right")
    for c in cells:
        table.add_row(*c)
    Console(width=max(100, sum(len(h) + 3 for _, h, _ in columns))).print(table)


def write_result(
    name: str, payload: dict[str, Any], args: argparse.Namespace, machine: dict[str, Any]
) -> Path | None:
    """Write ``payload``, machine info and command line to ``<output-dir>/<name>[-tag].json``."""
    if getattr(args, "no_write", False):
        return None
    from symnplm.io.files import write_json

    stem = f"{name}-{args.tag}" if args.tag else name
    path = Path(args.output_dir) / f"{stem}.json"
    options = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    body = {
        "benchmark": name,
        "command": [sys.executable, *sys.argv],
        "options": options,
        "machine": {**machine, "load_average_end": list(os.getloadavg())},
        **payload,
    }
    write_json(path, body)
    print(f"wrote {path}")
    return path
