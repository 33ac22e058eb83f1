"""``symnplm process FILESET -o OUTDIR``: run the e-mu processor and write columns + hists."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from symnplm.cli.errors import command
from symnplm.cli.help import DefaultsHelpFormatter
from symnplm.physics.selection import ETA_VETOES, ISOLATION_MAX, JET_CUTS, SELECTIONS

__all__ = ["add_parser", "run_command"]


def _range(text: str) -> tuple[float, float]:
    try:
        low, high = (float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected LOW,HIGH (e.g. 1.37,1.52), got {text!r}"
        ) from None
    if not 0 <= low < high:
        raise argparse.ArgumentTypeError(f"|eta| range {text!r} needs 0 <= LOW < HIGH")
    return low, high


def _id_cut(text: str) -> tuple[str | None, float]:
    """``BRANCH:MIN`` (e.g. ``cutBased:3``, ``mvaIso_WP90:1``), or ``none`` for no ID cut."""
    if text.lower() == "none":
        return None, 1.0
    name, _, low = text.partition(":")
    try:
        value = float(low) if low else 1.0
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected BRANCH[:MIN] (e.g. cutBased:3) or none, got {text!r}"
        ) from None
    if not name.isidentifier():
        raise argparse.ArgumentTypeError(f"{name!r} is not a branch name (e.g. cutBased:3)")
    return name, value


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``process``."""
    p = subparsers.add_parser(
        "process",
        help="select e-mu / mu-e events from NanoAOD with coffea; write parquet columns and hists",
        description=(
            "Run the e-mu processor over a coffea fileset JSON: exactly one electron and one "
            "muon (pT >= 15 GeV, |eta| <= 2.3, isolation, ID; by default the same fiducial "
            "region and isolation cut for both flavours), categories emu / mue and the charge "
            "split, m_coll and the two-body features, momentum-scale and normalisation "
            "variations, optional efficiency-ratio weights (with their uncertainty as "
            "variations). Writes OUTDIR/columns/<dataset>/<category>/<variation>.parquet, "
            "hists.json, cutflow.json and manifest.json."
        ),
        formatter_class=DefaultsHelpFormatter,
    )
    p.add_argument("fileset", metavar="FILESET", help="coffea fileset JSON")
    p.add_argument("-o", "--outdir", required=True, help="output directory")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the output of a different processing found in OUTDIR "
        "(rerunning the same processing always replaces its own output)",
    )
    run = p.add_argument_group("execution")
    run.add_argument(
        "--executor",
        choices=("iterative", "futures", "dask"),
        default="iterative",
        help="coffea executor: one process, a process pool, or dask",
    )
    run.add_argument("--workers", type=int, default=1, help="processes (futures, local dask)")
    run.add_argument(
        "--scheduler", help="address of a running dask scheduler (with --executor dask)"
    )
    run.add_argument("--chunksize", type=int, default=100_000, help="events per chunk")
    run.add_argument("--maxchunks", type=int, help="at most this many chunks per dataset")
    run.add_argument(
        "--skip-bad-files",
        action="store_true",
        help="leave out missing / unreadable / incomplete files and report them",
    )
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    phys = p.add_argument_group("selection and variations")
    phys.add_argument(
        "--charge",
        choices=("opposite", "same"),
        default="opposite",
        help="same-sign pairs form a control region",
    )
    phys.add_argument(
        "--collinear-form",
        choices=("atlas", "cms"),
        default="atlas",
        help="collinear-mass formula (symnplm.physics.kinematics)",
    )
    phys.add_argument(
        "--selection",
        choices=sorted(SELECTIONS),
        default="lfuv",
        help="lfuv: the same fiducial region (|eta| vetoes) and isolation cut for e and mu; "
        "paper: arXiv:2401.09530 (isolation e < 0.15, mu < 0.25, no vetoes)",
    )
    phys.add_argument(
        "--eta-vetoes",
        type=_range,
        nargs="*",
        metavar="LOW,HIGH",
        help="|eta| ranges vetoed for electrons and muons alike (none: no veto); default "
        f"for lfuv: {' '.join(f'{lo:g},{hi:g}' for lo, hi in ETA_VETOES)}",
    )
    phys.add_argument(
        "--isolation",
        type=float,
        metavar="X",
        help=f"relative isolation cut for both flavours (lfuv default {ISOLATION_MAX:g})",
    )
    phys.add_argument(
        "--triggers",
        nargs="+",
        default=[],
        metavar="PATH",
        help="HLT paths (e.g. IsoMu24 Ele32_WPTight_Gsf) of which an event must have fired "
        "one; a dataset's 'triggers' metadata replaces them",
    )
    phys.add_argument(
        "--lumi-mask",
        metavar="JSON",
        help="certified-luminosity JSON applied to data (run -> [[first, last]] sections)",
    )
    phys.add_argument(
        "--muon-isolation-branch",
        default=None,
        metavar="NAME",
        help="muon isolation branch (default pfRelIso03_all, the electrons' cone, for e<->mu "
        "symmetry; pfRelIso04_all is the CMS muon standard)",
    )
    phys.add_argument(
        "--electron-id",
        type=_id_cut,
        metavar="BRANCH[:MIN]",
        help="electron ID: Electron_<BRANCH> >= MIN (MIN 1 for a flag), or none; default "
        "cutBased:3 (medium); NanoAOD names differ by version, e.g. mvaFall17V2Iso_WP90 "
        "(Run 2 UL, v9) and mvaIso_WP90 (Run 3, v12)",
    )
    phys.add_argument(
        "--muon-id",
        type=_id_cut,
        metavar="BRANCH[:MIN]",
        help="muon ID: Muon_<BRANCH> >= MIN, or none; default tightId (mediumId, looseId...)",
    )
    phys.add_argument(
        "--met",
        default="MET",
        metavar="COLLECTION",
        help="missing-momentum collection (its _pt and _phi branches), e.g. PuppiMET",
    )
    phys.add_argument(
        "--btag-branch",
        default=JET_CUTS.btag_field,
        metavar="NAME",
        help="b-tag score of the jets counted in n_bjets (Jet_<NAME>), e.g. btagPNetB",
    )
    phys.add_argument(
        "--scale-factor",
        action="append",
        default=[],
        metavar="SPEC",
        help="lepton scale factor for simulation, FLAVOUR:FILE:CORRECTION[:KEY=VALUE...] "
        "(correctionlib; inputs pt, eta, abseta from the lepton, the others fixed by "
        "KEY=VALUE, e.g. muon:sf.json:NUM_TightID:scale_factors=nominal); repeatable",
    )
    phys.add_argument(
        "--btag-min",
        type=float,
        default=JET_CUTS.btag_min,
        metavar="SCORE",
        help="b-tag score above which a counted jet enters n_bjets (the generator's working "
        "point; CMS DeepJet medium 2018 UL: 0.2783)",
    )
    phys.add_argument(
        "--events",
        choices=("all", "even", "odd"),
        default="all",
        help="keep only events of this event-number parity (independent halves of a sample)",
    )
    phys.add_argument(
        "--scale-nu",
        type=float,
        nargs="*",
        default=[-2.0, -1.0, 1.0, 2.0],
        metavar="NU",
        help="momentum-scale variations, in sigma",
    )
    phys.add_argument(
        "--norm-nu",
        type=float,
        nargs="*",
        default=[-2.0, -1.0, 1.0, 2.0],
        metavar="NU",
        help="normalisation variations, in sigma (sigma_N = 2.5%%)",
    )
    phys.add_argument(
        "--luminosity",
        type=float,
        default=None,
        metavar="FB",
        help="integrated luminosity in fb^-1 to normalise simulation to (cross sections in pb); "
        "default: the luminosity_fb the fileset's background datasets record",
    )
    eff = p.add_argument_group("efficiency-ratio weights")
    eff.add_argument(
        "--efficiency-map",
        metavar="JSON",
        help="correctionlib file with eps_mu/eps_e(pt, abseta); weights w = R(electron)",
    )
    eff.add_argument("--efficiency-name", help="correction name inside --efficiency-map")
    eff.add_argument(
        "--allow-map-overlap",
        action="store_true",
        help="apply --efficiency-map even to the events it was measured on (biased: the map "
        "absorbs part of any asymmetry); refused by default",
    )
    eff.add_argument(
        "--measure-efficiency-map",
        metavar="JSON",
        help="after processing, measure eps_mu/eps_e = N_mu/N_e from the nominal "
        "emu+mue samples and write it here (to apply to *another* sample)",
    )
    eff.add_argument(
        "--efficiency-bootstrap",
        type=int,
        default=100,
        metavar="N",
        help="bootstrap replicas for the map's bin-by-bin statistical uncertainty",
    )
    eff.add_argument("--efficiency-seed", type=int, default=1, help="seed of the map's bootstrap")
    eff.add_argument(
        "--efficiency-pt-edges", type=float, nargs="+", metavar="GEV", help="pT edges of the map"
    )
    eff.add_argument(
        "--efficiency-eta-edges",
        type=float,
        nargs="+",
        metavar="ETA",
        help="|eta| edges of the map",
    )
    eff.add_argument(
        "--efficiency-min-per-bin",
        type=float,
        default=10.0,
        metavar="N",
        help="refuse a binning whose median bin holds fewer electrons or muons",
    )
    eff.add_argument(
        "--efficiency-datasets",
        nargs="+",
        metavar="DATASET",
        help="datasets used by --measure-efficiency-map (None: all datasets)",
    )
    p.set_defaults(func=run_command)
    return p


@command()
def run_command(args: argparse.Namespace) -> int:
    """Run ``symnplm process``; returns the exit code."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from symnplm.io.files import check_writable_directory, check_writable_file
    from symnplm.physics.efficiency import EfficiencyRatio
    from symnplm.physics.scale_factors import LeptonScaleFactor
    from symnplm.physics.selection import lepton_cuts
    from symnplm.processors.efficiency_map import measure_from_output
    from symnplm.processors.emu import EMuProcessor
    from symnplm.processors.runner import process_fileset

    console = Console(stderr=True, soft_wrap=True)  # messages with paths stay whole
    electron, muon = lepton_cuts(
        args.selection, eta_vetoes=args.eta_vetoes, isolation=args.isolation
    )
    if args.muon_isolation_branch:
        muon = replace(muon, iso_field=args.muon_isolation_branch)
    if args.electron_id is not None:  # else the selection's own ID
        electron = replace(electron, id_field=args.electron_id[0], id_min=args.electron_id[1])
    if args.muon_id is not None:
        muon = replace(muon, id_field=args.muon_id[0], id_min=args.muon_id[1])
    efficiency = (
        EfficiencyRatio.read(args.efficiency_map, args.efficiency_name)
        if args.efficiency_map
        else None
    )
    proc = EMuProcessor(
        electron=electron,
        muon=muon,
        charge=args.charge,
        scale_nus=args.scale_nu,
        norm_nus=args.norm_nu,
        collinear_form=args.collinear_form,
        efficiency=efficiency,
        luminosity_fb=args.luminosity,
        events=args.events,
        jets=replace(JET_CUTS, btag_min=args.btag_min, btag_field=args.btag_branch),
        met=args.met,
        triggers=args.triggers,
        lumi_mask=args.lumi_mask,
        scale_factors=[LeptonScaleFactor.parse(s) for s in args.scale_factor],
    )
    # before the processing: a destination that cannot be written fails now, not at the end
    check_writable_directory(args.outdir)
    if args.measure_efficiency_map:
        check_writable_file(args.measure_efficiency_map)
    report = process_fileset(
        args.fileset,
        args.outdir,
        proc,
        executor=args.executor,
        workers=args.workers,
        chunksize=args.chunksize,
        maxchunks=args.maxchunks,
        skip_bad_files=args.skip_bad_files,
        scheduler=args.scheduler,
        status=not args.quiet,
        allow_map_overlap=args.allow_map_overlap,
        overwrite=args.overwrite,
    )

    table = Table(title=f"selected events (nominal) — {report.outdir}")
    table.add_column("dataset")
    for category in proc.categories:
        table.add_column(category, justify="right")
    counts = report.counts()
    sums = {
        (s["dataset"], s["category"]): s["sum_weights"]
        for s in report.samples
        if s["variation"] == "nominal"
    }
    for dataset in sorted({d for d, _ in counts}):
        table.add_row(
            dataset,
            *(f"{counts[dataset, c]} ({sums[dataset, c]:.4g})" for c in proc.categories),
        )
    Console().print(table)
    console.print(f"processing took {report.wall_s:.1f} s with the {args.executor} executor")
    for bad in report.skipped:
        console.print(f"[yellow]skipped:[/yellow] {escape(str(bad))}")
    for note in report.notes:
        console.print(f"[yellow]note:[/yellow] {escape(note)}")

    if args.measure_efficiency_map:
        try:
            ratio = measure_from_output(
                args.outdir,
                args.efficiency_datasets,
                n_bootstrap=args.efficiency_bootstrap,
                seed=args.efficiency_seed,
                min_per_bin=args.efficiency_min_per_bin,
                pt_edges=args.efficiency_pt_edges,
                abseta_edges=args.efficiency_eta_edges,
            )
            ratio.write(Path(args.measure_efficiency_map))
        except (KeyError, ValueError, OSError) as err:
            console.print(
                f"[red]error:[/red] cannot measure the efficiency map: {escape(str(err))}"
            )
            return 2
        console.print(f"efficiency-ratio map written to {args.measure_efficiency_map}")
    return 0
