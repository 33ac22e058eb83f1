"""``symnplm plot``, ``demo``, ``sensitivity`` and ``closure`` (heavy modules imported on use)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from symnplm.cli.errors import command
from symnplm.cli.help import DefaultsHelpFormatter

__all__ = [
    "add_closure_parser",
    "add_demo_parser",
    "add_plot_parser",
    "add_sensitivity_parser",
    "run_closure",
    "run_demo",
    "run_plot",
    "run_sensitivity",
]


def add_plot_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``symnplm plot``."""
    p = subparsers.add_parser(
        "plot",
        help="figures of a result directory: null t vs chi2, fitted densities, t vs steps",
        description=(
            "Write the figures of a result directory of `symnplm test` (default into "
            "RESULT/figures): the null t distribution against chi2 with the observed t, p "
            "and Z; A and B with the fitted densities and the learned ratio (5D: one "
            "projection per feature); null t percentiles against training steps. "
            "--kinematics adds emu vs mue of a `symnplm process` output, per variation."
        ),
        formatter_class=DefaultsHelpFormatter,
    )
    p.add_argument("result", nargs="?", help="result directory written by `symnplm test`")
    p.add_argument("-o", "--outdir", help="where figures go (not given: RESULT/figures)")
    p.add_argument("--kinematics", metavar="PROCESSED", help="a `symnplm process` output")
    p.add_argument(
        "--variations", nargs="+", help="variations of --kinematics (not given: nominal)"
    )
    p.add_argument("--formats", nargs="+", default=["png"], help="figure formats, e.g. png pdf")
    p.set_defaults(func=run_plot)
    return p


@command()
def run_plot(args: argparse.Namespace) -> int:
    """``symnplm plot``; prints the written files, 2 on bad input."""
    from symnplm import plotting

    if args.result is None and args.kinematics is None:
        raise ValueError("give a RESULT directory and/or --kinematics PROCESSED")
    paths: list[Path] = []
    if args.result is not None:
        paths += plotting.plot_result(args.result, args.outdir, args.formats)
    if args.kinematics is not None:
        default = Path(args.result) / "figures" if args.result else Path("figures")
        paths += plotting.plot_kinematics(
            args.kinematics,
            Path(args.outdir) if args.outdir else default,
            variations=args.variations,
            formats=args.formats,
        )
    for path in paths:
        print(path)
    return 0


def add_demo_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``symnplm demo``."""
    from symnplm.workflow.demo import DemoSettings

    d = DemoSettings()
    p = subparsers.add_parser(
        "demo",
        help="process the demo dataset and test emu vs mue (m_coll and 5D), with figures",
        description=(
            "The chain on the embedded demo dataset: coffea processing with the symmetric "
            "e/mu selection and an efficiency-ratio map measured on an independent sample, "
            "symmetrized test of emu vs mue on m_coll and on the five two-body features, "
            "permutation calibration on a local dask cluster (with the map's uncertainty), "
            "binned diagnostics, result directories, figures and a summary table. "
            "Rerunning resumes."
        ),
        formatter_class=DefaultsHelpFormatter,
    )
    p.add_argument("-o", "--outdir", type=Path, default=d.outdir, help="output directory")
    p.add_argument(
        "--fileset",
        type=Path,
        help="coffea fileset JSON (not given: datasets/demo/fileset.json, here or in the checkout)",
    )
    p.add_argument(
        "--permutations", type=int, default=d.permutations, help="permutations of each test"
    )
    p.add_argument(
        "--batch-size", type=int, default=d.batch_size, help="permutations per batch (one file)"
    )
    p.add_argument("--max-iter", type=int, default=d.max_iter, help="Newton iterations cap")
    p.add_argument("--workers", type=int, default=d.workers, help="local dask workers")
    p.add_argument("--scheduler", help="address of a running dask scheduler")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of everything random")
    p.add_argument(
        "--inject-br",
        type=float,
        default=d.inject_br,
        help="add H->tau e signal with this branching ratio (e.g. 0.01)",
    )
    p.add_argument(
        "--efficiency-map",
        help="correctionlib map eps_mu/eps_e applied to the electrons, or 'none' (results in "
        "uncorrected/); not given: efficiency_map.json beside the fileset, else the demo "
        "dataset's",
    )
    p.add_argument(
        "--observables",
        nargs="+",
        choices=["m_coll", "5d"],
        default=list(d.observables),
        help="m_coll and/or the five two-body features",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run_demo)
    return p


@command(resumes="finished batches are kept; the same command resumes the demo")
def run_demo(args: argparse.Namespace) -> int:
    """``symnplm demo``."""
    from symnplm.workflow.demo import DemoSettings
    from symnplm.workflow.demo import run_demo as _run

    settings = DemoSettings(
        outdir=args.outdir,
        fileset=args.fileset,
        permutations=args.permutations,
        batch_size=args.batch_size,
        max_iter=args.max_iter,
        workers=args.workers,
        scheduler=args.scheduler,
        seed=args.seed,
        inject_br=args.inject_br,
        efficiency_map=None if args.efficiency_map in (None, "none") else Path(args.efficiency_map),
        use_efficiency_map=args.efficiency_map != "none",
        observables=tuple(args.observables),
        quiet=args.quiet,
    )
    _run(settings)
    return 0


def add_sensitivity_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``symnplm sensitivity``."""
    p = subparsers.add_parser(
        "sensitivity",
        help="Z vs injected LFV branching ratio from replicas of the experiment (Figs. 4, 5)",
        description=(
            "Signal-injection campaign: for each branching ratio, replicas of the experiment "
            "are tested; BR = 0 is the null. --protocol pseudo-data (default): Poisson "
            "pseudo-experiments thinned from the expected emu and mue (signal scaled to that "
            "BR in both). --protocol bootstrap (arXiv:2401.09530 Sec. V B): A and B "
            "bootstrapped from one pool of the background's emu and mue events, with "
            "Poisson sizes at each of --luminosities, the H->tau e template bootstrapped into "
            "A only. --protocol lfuv: the same pool, each sample expecting its own "
            "category's events (A emu, B mue) and getting the signal's events of its "
            "category. Writes OUTDIR/sensitivity.json, the "
            "reach table OUTDIR/reach.json and "
            "reach.md (BR at median Z = 2 and 3) and the figures z_vs_br, z_vs_zid. "
            "Samples, features and statistic as in `symnplm test` (--config or flags)."
        ),
        formatter_class=DefaultsHelpFormatter,
    )
    from symnplm.cli.test import add_arguments
    from symnplm.workflow.sensitivity import PROTOCOLS

    add_arguments(p)
    p.add_argument(
        "--brs", type=float, nargs="+", required=True, help="branching ratios, e.g. 0.005 0.01"
    )
    # explicit defaults: add_arguments suppresses the defaults of flags added after it
    p.add_argument("--toys", type=int, default=20, help="replicas per BR (and luminosity)")
    p.add_argument(
        "--null-toys",
        type=int,
        default=None,
        help="replicas at BR = 0, per luminosity (not given: --toys)",
    )
    p.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        default="pseudo-data",
        help="how replicas are drawn: pseudo-data (thinned simulation), bootstrap "
        "(the paper's pool bootstrap, signal in A only) or lfuv (the same pool, the signal's "
        "emu events in A and its mue events in B)",
    )
    p.add_argument(
        "--luminosities",
        type=float,
        nargs="+",
        default=None,
        metavar="FB",
        help="bootstrap, lfuv: luminosities in fb^-1, each with its own null (not given: "
        "--luminosity-fb, else the processed sample's)",
    )
    p.set_defaults(func=run_sensitivity)
    return p


def _sensitivity_resumes(args: argparse.Namespace) -> str | None:
    from symnplm.workflow.sensitivity import PROTOCOL_PAIRING

    if args.protocol not in PROTOCOL_PAIRING:
        return None  # pseudo-data replicas are not kept
    return "every finished (luminosity, BR) point is kept; the same command resumes the study"


@command(resumes=_sensitivity_resumes)
def run_sensitivity(args: argparse.Namespace) -> int:
    """``symnplm sensitivity``."""
    from rich.console import Console
    from rich.table import Table

    from symnplm import plotting
    from symnplm.cli.test import config_from_args
    from symnplm.io.files import read_json
    from symnplm.workflow import sensitivity as scan
    from symnplm.workflow.progress import progress_bar

    bootstrap = args.protocol in scan.PROTOCOL_PAIRING
    extra: dict[str, Any] = {"protocol": args.protocol}
    cfg = config_from_args(args)
    if cfg.output is None:
        raise ValueError("give --output DIR (or output in the config file)")
    output = Path(cfg.output)
    if args.luminosities and not bootstrap:
        raise ValueError("--luminosities needs --protocol bootstrap or lfuv (else --luminosity-fb)")
    with progress_bar("replicas", disable=getattr(args, "quiet", False)) as bar:
        if bootstrap:
            model = scan.bootstrap_model(cfg, scan.PROTOCOL_PAIRING[args.protocol])
            lumis = args.luminosities or [cfg.luminosity_fb or model.luminosity_fb]
            n_null = args.null_toys or args.toys
            _, points = scan.bootstrap_scan(
                cfg,
                args.brs,
                args.toys,
                luminosities=lumis,
                n_null=n_null,
                batch_size=cfg.calibration.batch_size,
                progress=bar,
                model=model,
                checkpoint=output / "replicas",
            )
            extra["luminosities"] = [float(v) for v in lumis]
            extra["bootstrap"] = scan.bootstrap_settings(model, lumis, args.brs, args.toys, n_null)
        else:
            _, points = scan.sensitivity_scan(
                cfg,
                args.brs,
                args.toys,
                n_null=args.null_toys,
                batch_size=cfg.calibration.batch_size,
                progress=bar,
            )
            extra["luminosities"] = [cfg.luminosity_fb]
    path = scan.write_scan(output, cfg, points, **extra)
    scan.write_reach(output, points)
    plotting.plot_sensitivity(read_json(path), output)
    table = Table(title=f"sensitivity ({output}, {args.protocol})")
    columns = ["L [fb^-1]"] if bootstrap else []
    for col in (*columns, "BR", "median t", "median Z", "median Z (chi2 fit)", "Z_id"):
        table.add_column(col, justify="right")
    for p in points:
        d = p.to_dict()
        table.add_row(
            *([f"{p.luminosity_fb:g}"] if bootstrap else []),
            f"{p.branching_ratio:g}",
            f"{d['median_t']:.2f}",
            f"{d['z_quantiles'][1]:.2f}",
            f"{d['z_chi2_quantiles'][1]:.2f}",
            f"{p.z_ideal:.2f}",
        )
    Console().print(table)
    print(output / "reach.md")
    return 0


def add_closure_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``symnplm closure``."""
    from symnplm.workflow.closure import ClosureSettings

    d = ClosureSettings(Path(), Path(), Path())
    p = subparsers.add_parser(
        "closure",
        help="SM closure of the emu-vs-mue test on a production and an independent one",
        description=(
            "Is the emu-vs-mue test null-compatible on Standard-Model data from this "
            "detector? Two independent productions with the same detector (--test, "
            "--calibration) are each corrected with the efficiency map measured on the "
            "other (and left uncorrected), tested whole and in --splits disjoint "
            "pseudo-experiments each, whose p-values must be uniform. LFV signal injected "
            "at --brs into the test production gives the median Z. Writes "
            "OUTDIR/closure.json and figures."
        ),
        formatter_class=DefaultsHelpFormatter,
    )
    p.add_argument("--test", type=Path, required=True, help="fileset of the SM production")
    p.add_argument(
        "--calibration", type=Path, required=True, help="fileset of an independent production"
    )
    p.add_argument("-o", "--outdir", type=Path, required=True, help="output directory")
    p.add_argument(
        "--observables",
        nargs="+",
        choices=["m_coll", "5d"],
        default=list(d.observables),
        help="m_coll and/or the five two-body features",
    )
    p.add_argument(
        "--splits", type=int, default=d.splits, help="disjoint pseudo-experiments per production"
    )
    p.add_argument(
        "--relabellings", type=int, default=d.relabellings, help="null relabellings of every PE"
    )
    p.add_argument(
        "--signal-luminosity-fb",
        type=float,
        default=d.signal_luminosity_fb,
        help="luminosity (fb^-1) of the pseudo-experiments with injected signal",
    )
    p.add_argument(
        "--signal-pseudo-experiments",
        type=int,
        default=d.signal_pseudo_experiments,
        help="pseudo-experiments per injected BR",
    )
    p.add_argument(
        "--brs",
        type=float,
        nargs="*",
        default=list(d.branching_ratios),
        help="H->tau e branching ratios injected (none given: no injection)",
    )
    p.add_argument(
        "--signal-datasets", nargs="+", default=list(d.signal_datasets), help="signal datasets"
    )
    p.add_argument("--permutations", type=int, default=d.full_permutations,
                   help="permutations of the full-sample test")  # fmt: skip
    p.add_argument("--max-iter", type=int, default=d.max_iter, help="Newton iterations cap")
    p.add_argument("--workers", type=int, default=d.workers, help="local dask workers")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="replicas per batched fit")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of everything random")
    p.add_argument("--no-uncorrected", action="store_true", help="skip the run without the map")
    p.add_argument("--map-pt-edges", type=float, nargs="+", help="pT edges of the map (GeV)")
    p.add_argument("--map-eta-edges", type=float, nargs="+", help="|eta| edges of the map")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run_closure)
    return p


@command(
    resumes="the processed outputs and finished batches are kept; the same command resumes "
    "the study"
)
def run_closure(args: argparse.Namespace) -> int:
    """``symnplm closure``."""
    from rich.console import Console
    from rich.markup import escape

    from symnplm.workflow.closure import ClosureSettings
    from symnplm.workflow.closure import run_closure as _run

    console = Console(stderr=True, soft_wrap=True)
    settings = ClosureSettings(
        test=args.test,
        calibration=args.calibration,
        outdir=args.outdir,
        observables=tuple(args.observables),
        splits=args.splits,
        relabellings=args.relabellings,
        signal_luminosity_fb=args.signal_luminosity_fb,
        signal_pseudo_experiments=args.signal_pseudo_experiments,
        branching_ratios=tuple(args.brs),
        signal_datasets=tuple(args.signal_datasets),
        full_permutations=args.permutations,
        max_iter=args.max_iter,
        workers=args.workers,
        batch_size=args.batch_size,
        seed=args.seed,
        uncorrected=not args.no_uncorrected,
        map_pt_edges=tuple(args.map_pt_edges) if args.map_pt_edges else None,
        map_eta_edges=tuple(args.map_eta_edges) if args.map_eta_edges else None,
        quiet=args.quiet,
    )
    _run(settings, log=lambda m: console.print(escape(m)))
    print(settings.outdir / "closure.json")
    return 0
