"""The ``symnplm`` command line.

Each sub-command registers itself through an ``add_parser(subparsers)`` function
(in this package: ``test``, ``generate``, ``plot``/``demo``/``sensitivity``/``closure``;
``symnplm process`` comes with the coffea processors) that returns the parser and sets
``func=callable(args) -> int`` as its default. Add a line to ``SUBCOMMANDS`` to
register a new one; modules are imported only when the CLI starts.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from symnplm import __version__

__all__ = ["OPTIONAL_MODULES", "SUBCOMMANDS", "build_parser", "main"]

#: name -> "module:function" providing ``add_parser(subparsers)``.
SUBCOMMANDS: dict[str, str] = {
    "test": "symnplm.cli.test:add_parser",
    "generate": "symnplm.cli.generate:add_parser",
    "process": "symnplm.processors.cli:add_parser",
    "plot": "symnplm.cli.commands:add_plot_parser",
    "demo": "symnplm.cli.commands:add_demo_parser",
    "sensitivity": "symnplm.cli.commands:add_sensitivity_parser",
    "closure": "symnplm.cli.commands:add_closure_parser",
    "scan": "symnplm.cli.scan:add_parser",
}


def build_parser() -> argparse.ArgumentParser:
    """The top-level argument parser with every registered sub-command."""
    parser = argparse.ArgumentParser(
        prog="symnplm",
        description="Symmetrized NPLM two-sample tests for LHC data (arXiv:2401.09530).",
    )
    parser.add_argument("--version", action="version", version=f"symnplm {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for target in SUBCOMMANDS.values():
        module, func = target.split(":")
        getattr(importlib.import_module(module), func)(sub)
    return parser


#: optional top-level module -> the extra that installs it (pyproject.toml)
OPTIONAL_MODULES: dict[str, str] = {
    **dict.fromkeys(
        ("awkward", "uproot", "vector", "coffea", "correctionlib", "pyarrow", "hist", "uhi"),
        "all",
    ),
    **dict.fromkeys(("matplotlib", "mplhep", "dask", "distributed", "yaml", "rich"), "all"),
    **dict.fromkeys(("pydantic", "pydantic_core", "tomli"), "all"),
    **dict.fromkeys(("pythia8mc", "numba"), "generate"),
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``symnplm`` script."""
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return 2
        return int(args.func(args) or 0)
    except ModuleNotFoundError as err:
        # a core-only install (numpy, scipy, torch) runs the statistics from Python;
        # the command needs an extra: say which, not a traceback
        top = (err.name or "").split(".")[0]
        if top not in OPTIONAL_MODULES:
            raise
        print(
            f"symnplm: this needs the optional package {top!r}: "
            f"pip install 'symnplm[{OPTIONAL_MODULES[top]}]'",
            file=sys.stderr,
        )
        return 2


if __name__ == "__main__":
    sys.exit(main())
