"""``python -m symnplm.generation ...`` is ``symnplm generate ...`` (same options)."""

from __future__ import annotations

import argparse
import sys

from symnplm.cli.generate import add_parser


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m symnplm.generation")
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["generate", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
