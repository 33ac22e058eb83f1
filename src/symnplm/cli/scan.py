"""``symnplm scan RUN.yaml -o DIR``: a region scan with a global significance.

The scan file lists regions (cuts on processor columns), observables and statistics;
every combination is a cell, calibrated by permutations of the A/B labels that every
cell shares, so that the scan's global p-value (min-p method) accounts for the
correlations between overlapping regions. See :mod:`symnplm.workflow.scan` for the
file format. Rerunning the same command resumes a scan that was interrupted.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from symnplm.cli.errors import command
from symnplm.cli.help import RawDescriptionDefaultsHelpFormatter, plain, show_config_defaults

__all__ = ["FLAG_KEYS", "add_parser", "run"]

#: command-line destination -> dotted key of the scan file it overrides
FLAG_KEYS: dict[str, str] = {
    "permutations": "calibration.permutations",
    "workers": "calibration.workers",
    "scheduler": "calibration.scheduler",
    "seed": "seed",
}


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``symnplm scan`` (defaults shown: :class:`~symnplm.workflow.scan.ScanConfig`)."""
    from symnplm.workflow import scan

    p = subparsers.add_parser(
        "scan",
        help="scan regions × observables × statistics; local and global significance",
        description=plain(scan.__doc__),
        formatter_class=RawDescriptionDefaultsHelpFormatter,
    )
    p.add_argument("scan_file", type=Path, help="scan description (.yaml, .yml or .toml)")
    p.add_argument("-o", "--output", type=Path, required=True, help="result directory")
    # no argparse defaults: a flag not given leaves the file's value
    p.add_argument(
        "--permutations", type=int, help="joint permutations (overrides calibration.permutations)"
    )
    p.add_argument("--workers", type=int, help="dask workers (overrides calibration.workers)")
    p.add_argument("--scheduler", help="address of a running dask scheduler")
    p.add_argument("--seed", type=int, help="seed (overrides the file's)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    show_config_defaults(p, FLAG_KEYS, scan.ScanConfig())
    p.set_defaults(func=run)
    return p


@command(resumes="finished batches are kept; the same command resumes the scan")
def run(args: argparse.Namespace) -> int:
    """Run the scan; print the table and the global significance; 2 on bad input."""
    from rich.console import Console
    from rich.markup import escape

    from symnplm.workflow import config as C
    from symnplm.workflow import scan
    from symnplm.workflow.progress import progress_bar

    err = Console(stderr=True, soft_wrap=True)
    data = C.read_dict(args.scan_file)
    overrides = {key: getattr(args, dest) for dest, key in FLAG_KEYS.items()}
    data = C.merge(data, {k: v for k, v in overrides.items() if v is not None})
    try:
        cfg = C.from_mapping(scan.ScanConfig, data)
    except C.ConfigError as exc:
        raise C.ConfigError(f"{args.scan_file}: {exc}") from None
    with progress_bar("scan tasks", disable=args.quiet) as bar:
        result = scan.run_scan(cfg, args.output, progress=bar)
    for row in result.table():
        bound = "≤" if row["local_p_is_bound"] else "="
        print(
            f"{row['cell']:40s} A {row['n_a']:7d}  B {row['n_b']:7d}  t = {row['t']:9.3f}  "
            f"local p {bound} {row['local_p']:.3g}  Z = {row['local_z']:.2f}"
            + ("" if row["converged"] else "  (fit not converged)")
        )
    for note in result.skipped:
        err.print(f"[yellow]left out:[/yellow] {escape(note)}")
    g = result.significance
    bound = "≤" if g.global_bound else "="
    print(
        f"global p {bound} {g.global_p:.3g} (Z = {g.global_z:.2f}) over {g.n_cells} cells and "
        f"{g.n_replicas} joint permutations; smallest local p = {g.min_p:.3g}, "
        f"Bonferroni {g.bonferroni_p:.3g}, trial factor {g.trial_factor:.1f}"
    )
    print(f"scan written to {result.directory} ({result.seconds:.0f} s)")
    return 0
