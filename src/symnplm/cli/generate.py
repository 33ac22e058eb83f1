"""``symnplm generate``: Pythia 8 e-mu samples written as NanoAOD-schema files.

Examples
--------
Regenerate the committed demo dataset (bit for bit)::

    symnplm generate --preset demo

The paper-size sample (20 fb⁻¹) on 2 cores::

    nice -n 10 symnplm generate --preset paper --workers 2

A detector with a 2% muon efficiency deficit and a +0.5% electron scale offset::

    symnplm generate --preset demo --output datasets/demo_asym \\
        --detector muon_efficiency_scale=0.98 electron_scale_offset=0.005
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from symnplm.cli.errors import command
from symnplm.cli.help import RawDescriptionDefaultsHelpFormatter, format_default, plain
from symnplm.generation.detector_config import DetectorConfig, parse_assignments
from symnplm.generation.presets import ALL_PROCESSES, PRESET_OUTPUT, PRESETS, preset
from symnplm.generation.processes import BACKGROUNDS, SIGNAL_NAMES, all_processes

__all__ = ["FLAG_FIELDS", "add_parser", "build_config", "build_variants", "run"]

_GROUPS = {"all": ALL_PROCESSES, "background": tuple(BACKGROUNDS), "signal": SIGNAL_NAMES}


#: command-line destination -> the ``GenerationConfig`` field it sets over the preset's
FLAG_FIELDS: dict[str, str] = {
    "luminosity": "luminosity_fb",
    "signal_luminosity": "signal_luminosity_fb",
    "lfv_br": "lfv_branching_ratio",
    "seed": "seed",
    "events": "n_events",
    "event_scale": "event_scale",
    "events_per_file": "events_per_file",
    "skim_pt": "skim_pt_min",
    "gen_jets": "gen_jets",
}


def _preset_defaults(values: Mapping[str, Any]) -> str:
    """`` (default from --preset: X for demo, Y for paper)``, one value if the presets agree."""
    shown = {name: format_default(v) for name, v in values.items()}
    if len(set(shown.values())) == 1:
        text = next(iter(shown.values()))
    else:
        text = ", ".join(f"{v} for {name}" for name, v in shown.items())
    return f" (default from --preset: {text})".replace("%", "%%")


class _GenerateHelpFormatter(RawDescriptionDefaultsHelpFormatter):
    """Also what the presets give the options that override them.

    Worked out for the help only: ``GenerationConfig`` (the value of a field a preset
    leaves out) imports the generator, which is too slow for every start of the command.
    """

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = super()._get_help_string(action)
        if not text:
            return text
        if action.dest == "output":
            return text + _preset_defaults({n: PRESET_OUTPUT[n] for n in sorted(PRESETS)})
        if action.dest not in FLAG_FIELDS:
            return text
        from symnplm.generation.production import GenerationConfig

        field = FLAG_FIELDS[action.dest]
        fallback = {f.name: f.default for f in dataclasses.fields(GenerationConfig)}[field]
        if all(PRESETS[n].get(field, fallback) is None for n in PRESETS):
            return text  # what happens then is in the help text
        return text + _preset_defaults(
            {n: PRESETS[n].get(field, fallback) for n in sorted(PRESETS)}
        )


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``generate`` (see :mod:`symnplm.cli` for the contract)."""
    parser = subparsers.add_parser(
        "generate",
        help="generate e-mu samples with Pythia 8 and a parametric detector (NanoAOD files)",
        description=plain(__doc__),
        formatter_class=_GenerateHelpFormatter,
    )
    parser.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default="demo",
        help="starting configuration; options below override it",
    )
    parser.add_argument(
        "--output",
        type=Path,
        help="output directory",
    )
    parser.add_argument(
        "--processes",
        nargs="+",
        metavar="NAME",
        help="datasets to generate: names, or 'all', 'background', 'signal' (see --list-processes)",
    )
    parser.add_argument(
        "--luminosity",
        type=float,
        metavar="FB",
        help="background integrated luminosity in fb^-1",
    )
    parser.add_argument(
        "--signal-luminosity",
        type=float,
        metavar="FB",
        help="luminosity equivalent of the signal samples in fb^-1",
    )
    parser.add_argument(
        "--lfv-br", type=float, metavar="BR", help="B(H -> tau l) of the signal samples, in [0, 1]"
    )
    parser.add_argument("--seed", type=int, help="master random seed")
    parser.add_argument(
        "--events",
        type=int,
        metavar="N",
        help="generate exactly N events per dataset instead of sigma x L",
    )
    parser.add_argument(
        "--event-scale",
        type=float,
        metavar="X",
        help="generate X times sigma x L events (weights scale as 1/X)",
    )
    parser.add_argument(
        "--events-per-file",
        type=int,
        metavar="N",
        help="maximum generated events per output file",
    )
    skim = parser.add_mutually_exclusive_group()
    skim.add_argument(
        "--skim-pt",
        type=float,
        metavar="GEV",
        help="keep events with >= 1 electron and >= 1 muon above this pT",
    )
    skim.add_argument("--no-skim", action="store_true", help="write every generated event")
    parser.add_argument(
        "--truth-filter-pt",
        type=float,
        metavar="GEV",
        help="simulate only events with a generated e and mu above this pT (e.g. 0.8 x the "
        "skim): much faster for Z -> tautau; other random numbers than without it",
    )
    parser.add_argument(
        "--gen-jets",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="write the GenJet collection",
    )
    parser.add_argument(
        "--detector",
        nargs="+",
        default=[],
        metavar="NAME=VALUE",
        help="detector parameters, e.g. muon_scale_offset=-0.002 or "
        'electron_efficiency_scale=\'{"pt_edges": [0, 30, 1e9], '
        '"abs_eta_edges": [0, 2.5], "values": [[0.97], [1.0]]}\'',
    )
    parser.add_argument(
        "--detector-config",
        type=Path,
        metavar="JSON",
        help="file with detector parameters (applied before --detector)",
    )
    parser.add_argument(
        "--variants",
        nargs="+",
        metavar="NAME[=JSON]",
        help="detector variants from one generation: OUTPUT/NAME each; NAME alone is the "
        "detector given by --detector/--detector-config, NAME=JSON adds that file's "
        "parameters to it",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=min(2, os.cpu_count() or 1),
        help="worker processes (at most 2, one per core)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--list-processes",
        action="store_true",
        help="list the processes with cross sections and exit",
    )
    parser.set_defaults(func=run)
    return parser


def _expand(names: list[str]) -> tuple[str, ...]:
    out: list[str] = []
    for name in names:
        for n in _GROUPS.get(name, (name,)):
            if n not in out:
                out.append(n)
    return tuple(out)


def build_config(args: argparse.Namespace) -> Any:
    """The :class:`~symnplm.generation.production.GenerationConfig` described by ``args``."""
    from symnplm.generation.production import GenerationConfig

    kwargs = preset(args.preset)
    overrides = {field: getattr(args, dest) for dest, field in FLAG_FIELDS.items()}
    overrides["processes"] = _expand(args.processes) if args.processes else None
    kwargs.update({k: v for k, v in overrides.items() if v is not None})
    if args.no_skim:
        kwargs["skim_pt_min"] = None
    detector: dict[str, Any] = {}
    if args.detector_config is not None:
        try:
            detector.update(json.loads(args.detector_config.read_text()))
        except (OSError, json.JSONDecodeError) as err:
            raise ValueError(
                f"{args.detector_config}: cannot read detector parameters ({err})"
            ) from None
    detector.update(parse_assignments(args.detector))
    if args.truth_filter_pt is not None:
        kwargs["truth_filter_pt"] = args.truth_filter_pt
    kwargs["detector"] = DetectorConfig.from_dict(detector)
    return GenerationConfig(**kwargs)


def build_variants(args: argparse.Namespace, base: DetectorConfig) -> dict[str, Any] | None:
    """``--variants`` as ``{name: DetectorConfig}`` (``None`` without the option)."""
    if not args.variants:
        return None
    out: dict[str, Any] = {}
    for item in args.variants:
        name, _, path = item.partition("=")
        if name in out:
            raise ValueError(f"--variants: {name!r} given twice")
        changes: dict[str, Any] = {}
        if path:
            try:
                changes = json.loads(Path(path).read_text())
            except (OSError, json.JSONDecodeError) as err:
                raise ValueError(f"{path}: cannot read detector parameters ({err})") from None
            if not isinstance(changes, dict):
                raise ValueError(f"{path}: detector parameters must be a JSON object")
        out[name] = DetectorConfig.from_dict(base.to_dict() | changes)
    return out


def _list_processes(branching_ratio: float) -> None:
    print(f"{'name':14s} {'group':8s} {'sigma_ref [pb]':>15s} {'K':>6s}  notes")
    for name, spec in all_processes(branching_ratio).items():
        br = f"x B={spec.lfv_branching_ratio:g}" if spec.is_signal else ""
        print(
            f"{name:14s} {spec.group:8s} {spec.sigma_ref_pb:15.3f} {spec.k_factor:6.3f}  "
            f"{br} {spec.sigma_ref_source}"
        )


@command(resumes="finished files are kept; the same command generates the rest")
def run(args: argparse.Namespace) -> int:
    """Entry point of ``symnplm generate``."""
    from symnplm.generation.production import produce

    if args.list_processes:
        _list_processes(
            args.lfv_br if args.lfv_br is not None else preset(args.preset)["lfv_branching_ratio"]
        )
        return 0
    config = build_config(args)
    output = args.output or Path(PRESET_OUTPUT[args.preset])
    start = time.perf_counter()
    variants = build_variants(args, config.detector)
    report = produce(
        config, output, workers=args.workers, progress=not args.no_progress, variants=variants
    )
    elapsed = time.perf_counter() - start
    rates = report.events_per_second()
    print(
        f"{len(report.generated)} file(s) generated, {len(report.skipped)} already present; "
        f"{elapsed:.0f} s; fileset: {report.fileset_path}"
    )
    for name, rate in sorted(rates.items()):
        print(f"  {name:14s} {rate:8.0f} generated events/s per worker")
    return 0
