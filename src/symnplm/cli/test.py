"""``symnplm test`` / ``python -m symnplm.inference``: run one calibrated two-sample test.

Samples come from the output of ``symnplm process`` (``--input DIR``, categories
``emu`` and ``mue`` of all background datasets by default), from two parquet files
(``--a FILE --b FILE``) or from the toy model of 2401.09530 (neither). A run can be
described in a YAML or TOML file (``--config run.yaml``, see :mod:`symnplm.workflow.config`);
flags given on the command line override the file's keys.

Every result on processor output reports binned diagnostics: G-tests of A against B
per feature and in the (η_lead, η_sub) plane, calibrated like the test.

With ``--output DIR`` the result directory holds ``run.json`` (t, p, Z, dof,
diagnostics, configuration, seed, versions, timing), ``config.yaml``, ``result.json`` +
``arrays.npz`` (fitted functions, null distribution), ``hists.json`` (hist objects)
and, for permutations/toys, ``campaign/`` (one file per finished batch: rerunning
the same command resumes an interrupted campaign).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from symnplm.cli.errors import command
from symnplm.cli.help import RawDescriptionDefaultsHelpFormatter, plain, show_config_defaults
from symnplm.inference.calculators import METHODS
from symnplm.inference.results import CalibrationResult

__all__ = [
    "FLAG_KEYS",
    "add_arguments",
    "add_parser",
    "config_from_args",
    "main",
    "run",
    "summary_line",
]


def _architecture(text: str) -> list[int]:
    try:
        arch = [int(v) for v in text.replace("-", ",").split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"architecture must look like 1,4,1, got {text!r}"
        ) from None
    return arch


def _calibration(text: str) -> tuple[str, int | None]:
    name, _, count = text.partition(":")
    if name not in METHODS:
        raise argparse.ArgumentTypeError(
            f"calibration must be one of {METHODS} (e.g. permutations:200), got {text!r}"
        )
    if name == "asymptotic":
        return name, None
    try:
        n = int(count)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{name} needs a count, e.g. {name}:200") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"{name} count must be >= 1, got {n}")
    return name, n


#: command-line destination -> dotted key of the run description (symnplm.workflow.config)
FLAG_KEYS: dict[str, str] = {
    "input": "input",
    "a": "a.path",
    "b": "b.path",
    "a_category": "a.category",
    "b_category": "b.category",
    "a_datasets": "a.datasets",
    "b_datasets": "b.datasets",
    "a_variation": "a.variation",
    "b_variation": "b.variation",
    "features": "features",
    "unweight": "unweight",
    "diagnostics": "diagnostics",
    "map_uncertainty": "map_uncertainty",
    "nuisances": "nuisances",
    "luminosity_fb": "luminosity_fb",
    "inject_br": "inject.branching_ratio",
    "inject_datasets": "inject.datasets",
    "n_a": "toy.n_a",
    "n_b": "toy.n_b",
    "signal": "toy.signal",
    "n_signal": "toy.n_signal",
    "statistic": "statistic.method",
    "architecture": "statistic.architecture",
    "bins": "statistic.bins",
    "optimizer": "statistic.optimizer",
    "epochs": "statistic.epochs",
    "max_iter": "statistic.max_iter",
    "n_starts": "statistic.n_starts",
    "clip": "statistic.clip",
    "record_every": "statistic.record_every",
    "dtype": "statistic.dtype",
    "device": "statistic.device",
    "batch_size": "calibration.batch_size",
    "workers": "calibration.workers",
    "scheduler": "calibration.scheduler",
    "seed": "seed",
    "output": "output",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``symnplm test``.

    Every default lives in :class:`symnplm.workflow.config.RunConfig`; the help shows it.
    """
    from symnplm.workflow.campaign import DEFAULT_BATCH
    from symnplm.workflow.config import RunConfig

    # flags not given stay absent, so that a --config file's value is not overridden
    p.argument_default = argparse.SUPPRESS
    p.add_argument("--config", type=Path, help="run description (.yaml/.yml/.toml)")
    src = p.add_argument_group("samples")
    src.add_argument("--input", help="output directory of `symnplm process`")
    for s in ("a", "b"):
        S = s.upper()
        src.add_argument(f"--{s}-category", help=f"category of sample {S}")
        src.add_argument(
            f"--{s}-datasets",
            nargs="+",
            help=f"datasets summed into {S} (not given: all background)",
        )
        src.add_argument(f"--{s}-variation", help=f"variation of {S}")
    src.add_argument("--a", help="parquet file of sample A (instead of --input)")
    src.add_argument("--b", help="parquet file of sample B")
    src.add_argument(
        "--features",
        nargs="+",
        help="feature columns, or m_coll / 5d (pt_lead eta_lead pt_sublead eta_sublead dphi); "
        "not given: m_coll (every column of parquet samples)",
    )
    src.add_argument(
        "--unweight",
        choices=["none", "thin"],
        help="none: use the weights; thin: unit-weight pseudo-data, event i kept "
        "with probability w_i (needs w <= 1; seeded by --seed)",
    )
    src.add_argument(
        "--luminosity-fb",
        type=float,
        help="rescale simulation (not given: the fileset's luminosity)",
    )
    src.add_argument(
        "--diagnostics",
        nargs="*",
        help="binned G-tests to report (feature or feature1:feature2; none given: no "
        "diagnostics); without the flag: m_coll, the five two-body features and "
        "eta_lead:eta_sublead",
    )
    src.add_argument(
        "--map-uncertainty",
        action=argparse.BooleanOptionalAction,
        help="redraw the efficiency map's uncertainty in every null replica",
    )
    src.add_argument(
        "--nuisances",
        nargs="+",
        help="detector nuisances profiled by the symmetrized test, learned from the processor's "
        "variation samples: electron_scale muon_scale efficiency",
    )
    src.add_argument("--inject-br", type=float, help="add LFV signal with this branching ratio")
    src.add_argument("--inject-datasets", nargs="+", help="signal datasets")
    toy = p.add_argument_group("toy model (no --input, --a, --b): b0 = e^-x, Eq. 25")
    toy.add_argument("--n-a", type=float, help="expected events in A")
    toy.add_argument("--n-b", type=float, help="expected events in B")
    toy.add_argument("--signal", choices=["S1", "S2", "S3"], help="signal added to A (Eqs. 26-28)")
    toy.add_argument("--n-signal", type=float, help="expected signal events in A")
    st = p.add_argument_group("statistic")
    st.add_argument(
        "--statistic",
        choices=["symmetrized", "nplm", "crossentropy", "binned"],
        help="the test statistic",
    )
    st.add_argument(
        "--architecture", type=_architecture, help="e.g. 1,4,1 (not given: d,4,1 for d features)"
    )
    st.add_argument("--bins", type=int, help="binned: number of quantile bins")
    st.add_argument("--optimizer", choices=["adam", "newton"], help="how the network is fitted")
    st.add_argument("--epochs", type=int, help="Adam epochs (paper: 500000)")
    st.add_argument("--max-iter", type=int, help="Newton iterations cap")
    st.add_argument(
        "--n-starts", type=int, help="initialisations of every network fit, the best kept"
    )
    st.add_argument(
        "--clip", type=float, help="weight clipping bound (not given: no clipping; NPLM: 9)"
    )
    st.add_argument("--record-every", type=int, help="record t every N epochs/iterations")
    st.add_argument("--dtype", choices=["float32", "float64"], help="floating-point precision")
    st.add_argument("--device", help="torch device")
    cal = p.add_argument_group("calibration")
    cal.add_argument(
        "--calibration",
        type=_calibration,
        default=argparse.SUPPRESS,
        help="asymptotic | permutations:N | toys:N (default: permutations:100 for processed "
        "or parquet samples, asymptotic for the toy model)",
    )
    cal.add_argument(
        "--batch-size",
        type=int,
        help=f"replicas per batch, one file each (not given: {DEFAULT_BATCH}, fewer if memory "
        "needs)",
    )
    cal.add_argument("--workers", type=int, help="local dask workers")
    cal.add_argument("--scheduler", help="address of a running dask scheduler")
    cal.add_argument("--seed", type=int, help="seed of everything random")
    cal.add_argument("--output", help="result directory")
    cal.add_argument("--quiet", action="store_true", help="no progress bar")
    show_config_defaults(p, FLAG_KEYS, RunConfig())


def config_from_args(args: argparse.Namespace) -> Any:
    """The :class:`~symnplm.workflow.config.RunConfig` of ``--config``, overridden by flags."""
    from symnplm.workflow import config as C

    base = C.read_dict(args.config) if getattr(args, "config", None) else {}
    flags = {key: getattr(args, dest) for dest, key in FLAG_KEYS.items() if hasattr(args, dest)}
    if "features" in flags and len(flags["features"]) == 1:
        flags["features"] = flags["features"][0]  # an alias such as "5d"
    if hasattr(args, "calibration"):
        flags["calibration.method"], flags["calibration.n"] = args.calibration
    try:
        return C.from_dict(C.merge(base, flags))
    except C.ConfigError as err:
        where = f"{args.config} (with command-line flags)" if getattr(args, "config", None) else ""
        raise C.ConfigError(f"{where + ': ' if where else ''}{err}") from None


def summary_line(result: CalibrationResult) -> str:
    """One line: statistic, t, dof, p, Z.

    When no null replica reached t, p and Z are bounds (``p < 1/(n+1)``, ``Z > ...``);
    an observed fit that did not converge is flagged.
    """
    from symnplm.io.booking import convergence_note, format_p_z, result_p_is_bound

    obs = result.observed
    bound = result_p_is_bound(result)
    line = (
        f"{obs.statistic}: t = {result.t:.3f}  dof = {result.dof}  "
        f"{format_p_z(result.p_value, result.z, bound, sep='  ')}  ({result.method}"
        + (f", {len(result.null)} replicas" if result.null is not None else "")
        + (", none reaching t" if bound else "")
        + f"; asymptotic Z = {obs.z_asymptotic:.2f})"
    )
    note = convergence_note(obs.converged, (obs.config.get("fit") or {}).get("optimizer"))
    return line + (f"  [{note}]" if note else "")


@command(resumes="finished batches are kept; the same command resumes the run")
def run(args: argparse.Namespace) -> int:
    """Run the test described by ``args``, print the summary; 2 on bad input."""
    from rich.console import Console
    from rich.markup import escape

    from symnplm.workflow import runs as workflow
    from symnplm.workflow.progress import progress_bar

    err = Console(stderr=True, soft_wrap=True)
    cfg = config_from_args(args)
    with progress_bar("null replicas", disable=getattr(args, "quiet", False)) as bar:
        outcome = workflow.run(cfg, progress=bar)
    a, b, result = outcome.a, outcome.b, outcome.result
    print(
        f"A: {len(a)} events (Σw = {a.sum_weights:.6g}), "
        f"B: {len(b)} events (Σw = {b.sum_weights:.6g})"
    )
    print(summary_line(result))
    for d in outcome.diagnostics:
        print(
            f"  binned {d.name:22s} t = {d.t:9.2f}  dof = {d.dof:3d}  null {d.null_mean:7.2f} ± "
            f"{d.null_std:6.2f}  p = {d.p_value:.3g}"
        )
    for note in outcome.notes:
        err.print(f"[yellow]note:[/yellow] {escape(note)}")
    if outcome.directory is not None:
        print(f"result written to {outcome.directory}")
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``symnplm test``."""
    p = subparsers.add_parser(
        "test",
        help="run a calibrated two-sample test (symmetrized NPLM by default)",
        description=plain(__doc__),
        formatter_class=RawDescriptionDefaultsHelpFormatter,
    )
    add_arguments(p)
    p.set_defaults(func=run)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m symnplm.inference``."""
    parser = argparse.ArgumentParser(
        prog="python -m symnplm.inference",
        description=plain(__doc__),
        formatter_class=RawDescriptionDefaultsHelpFormatter,
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
