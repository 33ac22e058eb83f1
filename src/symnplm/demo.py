"""``symnplm demo`` (``make demo``): the whole chain on the embedded demo dataset.

1. Process ``datasets/demo/fileset.json`` with coffea (at the fileset's luminosity,
   5 fb⁻¹, so that simulated events carry weights ≈ 1).
2. Turn emu and mue into pseudo-data (Poisson unweighting with the demo seed).
3. Run the symmetrized test t_{A+B}(A+B) (Eq. 22 of arXiv:2401.09530) of emu against
   mue on m_coll (1-4-1 network) and on the five two-body features (5-4-1),
   calibrated with permutations (Sec. III E) on a local dask cluster.
4. Write result directories, figures and a summary table (observable, t, dof, p, Z).

Everything is resumable: the processed output is reused when complete, and a
calibration campaign that was interrupted continues from its finished batches.
``--inject-br`` adds H→τe signal with that branching ratio to both categories
(results under ``br_<value>/``), to show that the test sees it.
``--efficiency-correction`` measures the efficiency-ratio map R^ε = ε_μ/ε_e on the
background (:mod:`symnplm.physics.efficiency`), reprocesses with the weights
w = R^ε(electron) that restore the e ↔ μ symmetry, and tests that (results under
``effcorr/``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from symnplm.config import CalibrationSpec, InjectionSpec, RunConfig, StatisticSpec
from symnplm.fileio import atomic_path, read_json, write_json
from symnplm.inference.significance import asymptotic_z

#: observable name -> features
OBSERVABLES: dict[str, str] = {"m_coll": "m_coll", "5d": "5d"}


def default_fileset() -> Path:
    """``datasets/demo/fileset.json`` of the source tree (editable install or checkout)."""
    import symnplm

    return Path(symnplm.__file__).resolve().parents[2] / "datasets" / "demo" / "fileset.json"


@dataclass
class DemoSettings:
    """Options of :func:`run_demo` (defaults: ``make demo``, < 15 min on 2 cores)."""

    outdir: Path = Path("results/demo")
    fileset: Path | None = None
    permutations: int = 100
    batch_size: int = 10
    max_iter: int = 50
    workers: int = 2
    scheduler: str | None = None
    seed: int = 1
    inject_br: float = 0.0
    efficiency_correction: bool = False
    observables: tuple[str, ...] = ("m_coll", "5d")
    quiet: bool = False


def _process(
    settings: DemoSettings,
    client: Any,
    log: Any,
    *,
    name: str = "processed",
    efficiency: Path | None = None,
) -> Path:
    """Processor output under ``outdir/<name>`` (reused if complete for this fileset and map)."""
    from symnplm.processors.emu import EMuProcessor
    from symnplm.processors.inputs import background_luminosity_fb, load_fileset
    from symnplm.processors.runner import process_fileset

    fileset = Path(settings.fileset or default_fileset())
    if not fileset.exists():
        raise FileNotFoundError(f"{fileset}: demo fileset not found (give --fileset)")
    out = settings.outdir / name
    # written after a complete processing: says which fileset (and map) the output is of
    marker = out / "demo.json"
    what = {"fileset": str(fileset.resolve()), "efficiency_map": efficiency and str(efficiency)}
    if (out / "manifest.json").exists() and marker.exists():
        if {k: read_json(marker).get(k) for k in what} == what:
            log(f"reusing processed demo dataset in {out}")
            return out
    lumi_fb = background_luminosity_fb(load_fileset(fileset)) or 5.0
    start = time.perf_counter()
    report = process_fileset(
        fileset,
        out,
        EMuProcessor(luminosity=1000.0 * lumi_fb, efficiency=efficiency),
        executor="dask",
        client=client,
        status=not settings.quiet,
    )
    write_json(marker, {**what, "luminosity_fb": lumi_fb})
    log(f"processed {fileset} at {lumi_fb:g} fb^-1 in {time.perf_counter() - start:.0f} s")
    return report.outdir


def _efficiency_map(settings: DemoSettings, processed: Path, log: Any) -> Path:
    """R^ε = ε_μ/ε_e measured on the background of the uncorrected output (written as JSON).

    The background only: an injected LFV signal would be partly absorbed into the map.
    """
    from symnplm.processors.efficiency_map import measure_from_output
    from symnplm.processors.inputs import is_signal
    from symnplm.samples import read_manifest

    fileset = read_manifest(processed)["fileset"]
    background = sorted(d for d, e in fileset.items() if not is_signal(e["metadata"]))
    path = settings.outdir / "efficiency_map.json"
    measure_from_output(processed, background).write(path)
    log(f"efficiency-ratio map measured on {len(background)} background datasets: {path}")
    return path.resolve()


def run_config(settings: DemoSettings, processed: Path, observable: str) -> RunConfig:
    """The run description of one demo test."""
    sub = Path("effcorr" if settings.efficiency_correction else ".")
    if settings.inject_br > 0:
        sub = sub / f"br_{settings.inject_br:g}"
    return RunConfig(
        input=str(processed),
        features=OBSERVABLES[observable],
        unweight="poisson",
        inject=InjectionSpec(branching_ratio=settings.inject_br) if settings.inject_br else None,
        statistic=StatisticSpec(
            method="symmetrized", optimizer="newton", max_iter=settings.max_iter, record_every=5
        ),
        calibration=CalibrationSpec(
            method="permutations",
            n=settings.permutations,
            batch_size=settings.batch_size,
            workers=settings.workers,
            scheduler=settings.scheduler,
        ),
        seed=settings.seed,
        output=str(settings.outdir / sub / observable),
    )


def summary_rows(outdir: Path) -> list[dict[str, Any]]:
    """One row per result directory under ``outdir`` (observable, BR, t, dof, p, Z)."""
    rows = []
    for run_json in sorted(outdir.glob("**/run.json")):
        meta = read_json(run_json)
        inject = meta["config"].get("inject") or {}
        rows.append(
            {
                "run": str(run_json.parent.relative_to(outdir)),
                "observable": run_json.parent.name,
                "efficiency_corrected": Path(meta["config"]["input"] or "").name
                == "processed_effcorr",
                "injected_br": inject.get("branching_ratio", 0.0),
                "t": meta["t"],
                "dof": meta["dof"],
                "p": meta["p_value"],
                "Z": meta["z"],
                "Z_asymptotic": meta["z_asymptotic"],
                # beyond the reach of n permutations (p = 1/(n+1)): χ² with the null's fitted dof
                "Z_chi2_fit": (
                    float(asymptotic_z(meta["t"], meta["chi2_fit"]["dof"]))
                    if meta.get("chi2_fit")
                    else None
                ),
                "n_permutations": meta["n_null"],
                "seconds": meta["timing"]["total_s"],
                "directory": str(run_json.parent),
            }
        )
    return rows


def _fmt(z: float | None) -> str:
    return "-" if z is None else f"{z:.2f}"


def write_summary(outdir: Path, rows: list[dict[str, Any]]) -> None:
    """``summary.json`` and ``summary.md`` (a Markdown table) in ``outdir``."""
    write_json(outdir / "summary.json", {"rows": rows})
    lines = [
        "| run | observable | eff. corr. | injected BR | t | dof | p | Z | Z (χ² fit) | perm. |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        corrected = "yes" if r["efficiency_corrected"] else "no"
        lines.append(
            f"| {r['run']} | {r['observable']} | {corrected} | {r['injected_br']:g} | "
            f"{r['t']:.2f} | {r['dof']} | "
            f"{r['p']:.3g} | {r['Z']:.2f} | {_fmt(r['Z_chi2_fit'])} | {r['n_permutations']} |"
        )
    with atomic_path(outdir / "summary.md") as tmp:
        tmp.write_text("\n".join(lines) + "\n")


def run_demo(settings: DemoSettings) -> list[dict[str, Any]]:
    """Run the demo; returns the summary rows (also written to ``outdir``)."""
    from rich.console import Console
    from rich.table import Table

    from symnplm import plotting, workflow
    from symnplm.campaign import dask_client
    from symnplm.progress import progress_bar

    console = Console(stderr=True)
    settings.outdir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with dask_client(settings.workers, settings.scheduler) as client:
        processed = _process(settings, client, console.print)
        if settings.efficiency_correction:
            emap = _efficiency_map(settings, processed, console.print)
            processed = _process(
                settings, client, console.print, name="processed_effcorr", efficiency=emap
            )
        for observable in settings.observables:
            cfg = run_config(settings, processed, observable)
            with progress_bar(f"{observable}: permutations", disable=settings.quiet) as bar:
                outcome = workflow.run(cfg, client=client, progress=bar)
            r = outcome.result
            console.print(
                f"{observable}: t = {r.t:.2f}, dof = {r.dof}, p = {r.p_value:.3g}, Z = {r.z:.2f} "
                f"({outcome.timing['total_s']:.0f} s)"
            )
            plotting.plot_result(cfg.output)
    plotting.plot_kinematics(
        processed,
        settings.outdir / "figures" / ("effcorr" if settings.efficiency_correction else ""),
        variations=["nominal", "electron_scale_up1", "muon_scale_up1", "norm_up1"],
    )
    rows = summary_rows(settings.outdir)
    write_summary(settings.outdir, rows)
    table = Table(title=f"symnplm demo: emu vs mue ({settings.outdir})")
    # the run directory names the observable, the signal and the correction
    for col in ("run", "injected BR", "t", "dof", "p", "Z", "Z (χ² fit)"):
        table.add_column(col, justify="right")
    for row in rows:
        table.add_row(
            row["run"],
            f"{row['injected_br']:g}",
            f"{row['t']:.2f}",
            str(row["dof"]),
            f"{row['p']:.3g}",
            f"{row['Z']:.2f}",
            _fmt(row["Z_chi2_fit"]),
        )
    Console().print(table)
    console.print(f"demo finished in {time.perf_counter() - start:.0f} s")
    return rows
