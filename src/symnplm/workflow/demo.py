"""``symnplm demo`` (``make demo``): the whole chain on the embedded demo dataset.

1. Process ``datasets/demo/fileset.json`` with coffea at the fileset's luminosity
   (5 fb⁻¹, so that simulated events carry weights ≈ 1, as data would), with the
   symmetric ``lfuv`` selection (the same fiducial region and isolation cut for both
   flavours) and the efficiency-ratio map ``datasets/demo/efficiency_map.json``:
   R^ε = ε_μ/ε_e measured on an *independent* simulated sample with the same
   detector (the 20 fb⁻¹ paper-preset production of the closure study, seed 20261127;
   its command is in docs/closure.md), so that every event is weighted by R^ε at its
   electron.
2. Keep the weights (no pseudo-data duplicates a simulated event).
3. Run the symmetrized test t_{A+B}(A+B) (Eq. 22 of arXiv:2401.09530) of emu against
   mue on m_coll (1-4-1 network) and on the five two-body features (5-4-1),
   calibrated with permutations (Sec. III E) on a local dask cluster, the map's
   bin-by-bin uncertainty redrawn in every permutation; beside it, binned G-tests
   of every feature and of (η_lead, η_sub), calibrated the same way.
4. Write result directories, figures and a summary table (observable, t, dof, p, Z,
   the smallest diagnostic p-value).

Everything is resumable: the processed output is reused when complete, and a
calibration campaign that was interrupted continues from its finished batches.
``--inject-br`` adds H→τe signal with that branching ratio to both categories
(results under ``br_<value>/``), to show that the test sees it.
``--efficiency-map none`` tests without the map (results under ``uncorrected/``).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from symnplm.inference.significance import asymptotic_z
from symnplm.io.files import atomic_path, read_json, write_json
from symnplm.workflow.config import RunConfig, StatisticSpec

__all__ = [
    "DemoSettings",
    "default_efficiency_map",
    "default_fileset",
    "run_config",
    "run_demo",
    "summary_notes",
    "summary_rows",
    "write_summary",
]


def default_fileset() -> Path:
    """The embedded demo dataset, ``datasets/demo/fileset.json``.

    Looked for in the working directory, then in the source checkout an editable
    install points at; a wheel installed elsewhere needs ``--fileset``.
    """
    import symnplm

    for root in (Path.cwd(), Path(symnplm.__file__).resolve().parents[2]):
        candidate = root / "datasets" / "demo" / "fileset.json"
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        "datasets/demo/fileset.json is neither here nor in a source checkout; give "
        "--fileset <checkout>/datasets/demo/fileset.json"
    )


def default_efficiency_map(fileset: str | os.PathLike[str] | None = None) -> Path:
    """R^ε measured on an independent simulation: ``efficiency_map.json`` beside
    ``fileset`` if there is one, else the embedded demo dataset's."""
    candidates = [] if fileset is None else [Path(fileset).parent / "efficiency_map.json"]
    try:
        candidates.append(default_fileset().parent / "efficiency_map.json")
    except FileNotFoundError:
        pass  # a wheel run elsewhere: only the fileset's folder
    return next((c for c in candidates if c.is_file()), candidates[0])


@dataclass
class DemoSettings:
    """Options of :func:`run_demo` (defaults: ``make demo``, < 15 min on 2 cores)."""

    outdir: Path = Path("results/demo")
    fileset: Path | None = None
    permutations: int = 100
    batch_size: int = 10
    max_iter: int = StatisticSpec.max_iter
    workers: int = 2
    scheduler: str | None = None
    seed: int = 1
    inject_br: float = 0.0
    #: the efficiency-ratio map applied by the processor; default
    #: :func:`default_efficiency_map` (beside the fileset)
    efficiency_map: Path | None = None
    use_efficiency_map: bool = True
    observables: tuple[str, ...] = ("m_coll", "5d")
    quiet: bool = False


def _efficiency_map(settings: DemoSettings) -> Path | None:
    if not settings.use_efficiency_map:
        return None
    path = Path(settings.efficiency_map or default_efficiency_map(settings.fileset))
    if not path.exists():
        raise FileNotFoundError(f"{path}: efficiency map not found (give --efficiency-map)")
    return path.resolve()


def _process(settings: DemoSettings, client: Any, log: Any) -> Path:
    """Processor output under ``outdir/processed[_uncorrected]`` (reused when complete for
    this fileset and processor configuration)."""
    from symnplm.io.filesets import background_luminosity_fb, load_fileset
    from symnplm.processors.emu import EMuProcessor
    from symnplm.processors.runner import process_once

    fileset = Path(settings.fileset or default_fileset())
    if not fileset.exists():
        raise FileNotFoundError(f"{fileset}: demo fileset not found (give --fileset)")
    emap = _efficiency_map(settings)
    out = settings.outdir / ("processed" if emap is not None else "processed_uncorrected")
    lumi_fb = background_luminosity_fb(load_fileset(fileset)) or 5.0
    proc = EMuProcessor(luminosity_fb=lumi_fb, efficiency=emap)
    start = time.perf_counter()
    if process_once(fileset, out, proc, executor="dask", client=client, status=not settings.quiet):
        log(f"reusing processed demo dataset in {out}")
    else:
        log(f"processed {fileset} at {lumi_fb:g} fb^-1 in {time.perf_counter() - start:.0f} s")
    return out


def run_config(settings: DemoSettings, processed: Path, observable: str) -> RunConfig:
    """The run description of one demo test."""
    from symnplm.workflow.runs import emu_vs_mue

    sub = Path("." if settings.use_efficiency_map else "uncorrected")
    if settings.inject_br > 0:
        sub = sub / f"br_{settings.inject_br:g}"
    return emu_vs_mue(
        processed,
        observable,
        permutations=settings.permutations,
        max_iter=settings.max_iter,
        seed=settings.seed,
        output=settings.outdir / sub / observable,
        batch_size=settings.batch_size,
        workers=settings.workers,
        scheduler=settings.scheduler,
        inject_br=settings.inject_br,
    )


def summary_rows(outdir: Path) -> list[dict[str, Any]]:
    """One row per result directory under ``outdir`` (observable, BR, t, dof, p, Z)."""
    from symnplm.io.booking import convergence_note, p_value_is_bound

    rows = []
    for run_json in sorted(outdir.glob("**/run.json")):
        meta = read_json(run_json)
        # write_json stores ±inf and nan as strings ("-inf": p = 1): float() reads them
        t = float(meta["t"])
        inject = meta["config"].get("inject") or {}
        diagnostics = meta.get("diagnostics") or []
        worst = min(diagnostics, key=lambda d: d["p_value"], default=None)
        rows.append(
            {
                "run": str(run_json.parent.relative_to(outdir)),
                "observable": run_json.parent.name,
                "efficiency_corrected": Path(meta["config"]["input"] or "").name == "processed",
                "injected_br": inject.get("branching_ratio", 0.0),
                "t": t,
                "dof": meta["dof"],
                "p": float(meta["p_value"]),
                "Z": float(meta["z"]),
                # no null replica reached t: p < 1/(n+1), Z > Z(1/(n+1)); older run.json
                # files lack the flag, and p·(n+1) = 1 says the same
                "p_is_bound": bool(
                    meta.get("p_is_bound", p_value_is_bound(meta["p_value"], meta["n_null"]))
                ),
                "converged": bool(meta.get("converged", True)),
                "fit_note": convergence_note(
                    bool(meta.get("converged", True)), meta["config"]["statistic"]["optimizer"]
                ),
                "Z_asymptotic": float(meta["z_asymptotic"]),
                # beyond the reach of n permutations (p = 1/(n+1)): χ² with the null's fitted dof
                "Z_chi2_fit": (
                    float(asymptotic_z(t, meta["chi2_fit"]["dof"]))
                    if meta.get("chi2_fit")
                    else None
                ),
                "n_permutations": meta["n_null"],
                "diagnostics_min_p": None if worst is None else worst["p_value"],
                "diagnostics_min_p_is_bound": worst is not None
                and p_value_is_bound(worst["p_value"], worst.get("n_null", 0)),
                "diagnostics_worst": None if worst is None else worst["name"],
                "seconds": meta["timing"]["total_s"],
                "directory": str(run_json.parent),
            }
        )
    return rows


def _fmt(z: float | None) -> str:
    return "-" if z is None else f"{z:.2f}"


def _diag(row: dict[str, Any]) -> str:
    p = row.get("diagnostics_min_p")
    if p is None:
        return "-"
    text = f"< {p:.2g}" if row.get("diagnostics_min_p_is_bound") else f"{p:.3g}"
    return f"{text} ({row['diagnostics_worst']})"


def _p(row: dict[str, Any]) -> str:
    """p, as a bound ``< 1/(n+1)`` when no null replica reached t."""
    return f"< {row['p']:.2g}" if row.get("p_is_bound") else f"{row['p']:.3g}"


def _z(row: dict[str, Any]) -> str:
    """Z, as a bound ``> Z(1/(n+1))`` with the p-value; ``(!)`` marks a fit that did not
    converge (the note under the table says how)."""
    text = f"> {row['Z']:.2f}" if row.get("p_is_bound") else f"{row['Z']:.2f}"
    return text + (" (!)" if row.get("fit_note") else "")


def summary_notes(rows: list[dict[str, Any]]) -> list[str]:
    """What the marks of the table mean: bounds, and fits that did not converge."""
    notes = []
    if any(r.get("p_is_bound") or r.get("diagnostics_min_p_is_bound") for r in rows):
        notes.append("p < 1/(n+1), Z > ...: no permutation reached the observed t.")
    notes += [f"(!) {r['run']}: {r['fit_note']}." for r in rows if r.get("fit_note")]
    return notes


def _worst(d: Any) -> str:
    """``p = 0.12 (name)`` of a binned diagnostic, ``p < 0.0099 (name)`` at the floor."""
    from symnplm.io.booking import p_value_is_bound

    if p_value_is_bound(d.p_value, d.n_null):
        return f"p < {d.p_value:.2g} ({d.name})"
    return f"p = {d.p_value:.3g} ({d.name})"


def write_summary(outdir: Path, rows: list[dict[str, Any]]) -> None:
    """``summary.json`` and ``summary.md`` (a Markdown table) in ``outdir``."""
    write_json(outdir / "summary.json", {"rows": rows})
    lines = [
        "| run | observable | eff. map | injected BR | t | dof | p | Z | Z (χ² fit) | perm. "
        "| smallest diagnostic p |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        corrected = "yes" if r["efficiency_corrected"] else "no"
        lines.append(
            f"| {r['run']} | {r['observable']} | {corrected} | {r['injected_br']:g} | "
            f"{r['t']:.2f} | {r['dof']} | "
            f"{_p(r)} | {_z(r)} | {_fmt(r['Z_chi2_fit'])} | {r['n_permutations']} | "
            f"{_diag(r)} |"
        )
    notes = summary_notes(rows)
    with atomic_path(outdir / "summary.md") as tmp:
        tmp.write_text("\n".join(lines + (["", *notes] if notes else [])) + "\n")


def run_demo(settings: DemoSettings) -> list[dict[str, Any]]:
    """Run the demo; returns the summary rows (also written to ``outdir``)."""
    from rich.console import Console
    from rich.table import Table

    from symnplm import plotting
    from symnplm.io.booking import convergence_note, format_p_z, result_p_is_bound
    from symnplm.workflow import runs as workflow
    from symnplm.workflow.cluster import dask_client
    from symnplm.workflow.progress import progress_bar

    console = Console(stderr=True)
    settings.outdir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with dask_client(settings.workers, settings.scheduler) as client:
        processed = _process(settings, client, console.print)
        for observable in settings.observables:
            cfg = run_config(settings, processed, observable)
            with progress_bar(f"{observable}: permutations", disable=settings.quiet) as bar:
                outcome = workflow.run(cfg, client=client, progress=bar)
            r = outcome.result
            worst = min(outcome.diagnostics, key=lambda d: d.p_value, default=None)
            note = convergence_note(r.observed.converged, cfg.statistic.optimizer)
            console.print(
                f"{observable}: t = {r.t:.2f}, dof = {r.dof}, "
                f"{format_p_z(r.p_value, r.z, result_p_is_bound(r))} "
                f"({outcome.timing['total_s']:.0f} s)"
                + (f"; smallest binned {_worst(worst)}" if worst else "")
                + (f" [{note}]" if note else "")
            )
            if outcome.directory is not None:  # run_config always gives an output
                plotting.plot_result(outcome.directory)
    plotting.plot_kinematics(
        processed,
        settings.outdir / "figures" / ("" if settings.use_efficiency_map else "uncorrected"),
        variations=["nominal", "electron_scale_up1", "muon_scale_up1", "norm_up1"],
    )
    rows = summary_rows(settings.outdir)
    write_summary(settings.outdir, rows)
    table = Table(title=f"symnplm demo: emu vs mue ({settings.outdir})")
    # the run directory names the observable, the signal and the correction
    for col in ("run", "injected BR", "t", "dof", "p", "Z", "smallest binned p"):
        table.add_column(col, justify="right")
    for row in rows:
        table.add_row(
            row["run"],
            f"{row['injected_br']:g}",
            f"{row['t']:.2f}",
            str(row["dof"]),
            _p(row),
            _z(row),
            _diag(row),
        )
    Console().print(table)
    for note in summary_notes(rows):
        console.print(note)
    console.print(f"demo finished in {time.perf_counter() - start:.0f} s")
    return rows
