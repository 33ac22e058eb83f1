"""MkDocs hook: the command-line reference, generated from the argparse parsers.

A page holding the line ``<!-- symnplm-cli-reference -->`` gets, in its place, one
section per command of :func:`symnplm.cli.build_parser` (the top-level command first,
then every registered sub-command in order): its one-line help, the usage line, the
description and a table per argument group (option, argument, default, help). Nothing
is copied by hand, so the page always matches ``symnplm COMMAND --help``.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
MARKER = "<!-- symnplm-cli-reference -->"
#: columns of the usage lines (argparse wraps to the terminal otherwise)
WIDTH = 88


def _import_from_checkout() -> None:
    """Document this checkout's sources, whatever is installed."""
    src = str(ROOT / "src")
    if sys.path[0] != src:
        sys.path.insert(0, src)


@contextmanager
def _plain_terminal() -> Iterator[None]:
    """A fixed width and no colour, so the page does not depend on the terminal."""
    saved = {k: os.environ.get(k) for k in ("COLUMNS", "NO_COLOR", "FORCE_COLOR")}
    os.environ.update(COLUMNS=str(WIDTH), NO_COLOR="1")
    os.environ.pop("FORCE_COLOR", None)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


_CODE_SPAN = re.compile(r"(`+)(.+?)\1")


def escape_text(text: str) -> str:
    """Markdown-safe prose: ``<`` / ``>`` / ``|`` escaped outside code spans."""
    out, pos = [], 0
    for match in _CODE_SPAN.finditer(text):
        out.append(_escape_plain(text[pos : match.start()]))
        out.append(f"`{match.group(2).strip('`')}`")
        pos = match.end()
    out.append(_escape_plain(text[pos:]))
    return "".join(out)


def _escape_plain(text: str) -> str:
    return text.replace("<", "&lt;").replace(">", "&gt;").replace("|", r"\|")


_ROLE = re.compile(r":(?:py:)?[a-z]+:`~?([^`]+)`")
_UNDERLINE = re.compile(r"^(\S.*)\n-{3,}$", re.MULTILINE)


def description_markdown(text: str) -> str:
    """A parser description (plain text or a reST docstring) as Markdown."""
    text = _ROLE.sub(r"`\1`", text.strip())
    text = _UNDERLINE.sub(r"**\1**", text)
    blocks = re.split(r"\n\s*\n", text)
    out = []
    for block in blocks:
        lines = block.splitlines()
        if all(line.startswith("    ") or not line.strip() for line in lines):
            # an indented (literal) block: a code block, as in reST
            code = "\n".join(line[4:] for line in lines)
            out.append(f"```text\n{code}\n```")
        else:
            prose = " ".join(line.strip() for line in lines)
            out.append(escape_text(prose.replace("::", ":")))
    return "\n\n".join(out)


def _argument(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    if action.nargs == 0:
        return ""
    formatter = parser._get_formatter()
    default_metavar = (
        action.dest.upper() if action.option_strings else action.metavar or action.dest
    )
    return formatter._format_args(action, default_metavar)


def _default(action: argparse.Action) -> str:
    """The default as a Markdown cell: a code span, *required*, or empty."""
    if action.required and action.option_strings:
        return "*required*"
    if action.required:
        return ""
    from symnplm.cli.help import format_default, shown_default

    default = shown_default(action)  # as `--help` shows it (a run file's, for test)
    return "" if default is None else _cell(format_default(default))


def _help(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    if not action.help or action.help is argparse.SUPPRESS:
        text = ""
    else:
        from symnplm.cli.help import DefaultsHelpFormatter

        formatter = parser._get_formatter()
        if isinstance(formatter, DefaultsHelpFormatter):
            formatter.show_defaults = False  # the default has its own column
        text = formatter._expand_help(action)
    if action.choices is not None and not isinstance(action, argparse._SubParsersAction):
        choices = ", ".join(f"`{c}`" for c in action.choices)
        text = f"{text} (one of {choices})" if text else f"one of {choices}"
    return escape_text(" ".join(text.split()))


def _cell(text: str) -> str:
    return f"`{text}`" if text else ""


def _names(action: argparse.Action) -> str:
    if not action.option_strings:
        return f"`{action.metavar or action.dest}`"
    return ", ".join(f"`{s}`" for s in action.option_strings)


def command_markdown(
    parser: argparse.ArgumentParser, title: str, summary: str | None, level: int = 2
) -> str:
    """One command: heading, summary, usage, description, option tables."""
    hashes = "#" * level
    lines = [f"{hashes} `{title}`", ""]
    if summary:
        lines += [escape_text(summary[0].upper() + summary[1:]) + ".", ""]
    lines += ["```text", parser.format_usage().strip(), "```", ""]
    if parser.description:
        lines += [description_markdown(parser.description), ""]
    for group in parser._action_groups:
        actions = [
            a
            for a in group._group_actions
            if a.help is not argparse.SUPPRESS
            and not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction))
        ]
        if not actions:
            continue
        lines += [f"**{escape_text(group.title or 'options')}**", ""]
        if group.description:
            lines += [escape_text(group.description), ""]
        lines += ["| option | argument | default | description |", "| --- | --- | --- | --- |"]
        for a in actions:
            arg = _argument(parser, a)
            lines.append(f"| {_names(a)} | {_cell(arg)} | {_default(a)} | {_help(parser, a)} |")
        lines.append("")
    return "\n".join(lines)


def subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, Any, str | None]]:
    """(name, parser, one-line help) of every sub-command, in registration order."""
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {c.dest: c.help for c in action._choices_actions}
            out += [(name, sub, helps.get(name)) for name, sub in action.choices.items()]
    return out


def cli_reference() -> str:
    """The whole reference as Markdown."""
    _import_from_checkout()
    from symnplm.cli import build_parser

    with _plain_terminal():
        parser = build_parser()
        commands = subcommands(parser)
        lines = ["| command | does |", "| --- | --- |"]
        for name, _, text in commands:
            lines.append(f"| [`symnplm {name}`](#symnplm-{name}) | {escape_text(text or '')} |")
        parts = ["\n".join(lines), command_markdown(parser, "symnplm", None)]
        parts += [command_markdown(sub, f"symnplm {n}", h) for n, sub, h in commands]
    return "\n\n".join(parts) + "\n"


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any, **kwargs: Any) -> str:
    """Replace the marker with the generated reference."""
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, cli_reference())
