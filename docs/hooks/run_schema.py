"""MkDocs hook: the run-file schema, generated from ``symnplm.workflow.config``.

A page holding the line ``<!-- symnplm-run-schema -->`` gets, in its place, one table
per pydantic dataclass of the run description (:class:`RunConfig` and the tables it
holds): every key with the type the validator accepts, its default, the ``symnplm test``
flag that overrides it and its description. Descriptions come from the ``Attributes``
section of ``RunConfig``'s docstring, from the field's ``description`` in the JSON schema
of the table (``Field(description=...)``) and, for the other keys of the sub-tables,
from the help of the flag that sets the key (``symnplm.cli.test.FLAG_KEYS``). A key that
has none is reported as a warning, which ``mkdocs build --strict`` turns into an error.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import logging
import re
import sys
import typing
from pathlib import Path
from typing import Any

from pydantic_core import PydanticUndefined

ROOT = Path(__file__).resolve().parents[2]
MARKER = "<!-- symnplm-run-schema -->"
log = logging.getLogger("mkdocs.hooks.run_schema")

#: keys set by one flag with a compound value (``--calibration METHOD:N``); their
#: descriptions are the fields' own
EXTRA = {"calibration.method": ("--calibration", ""), "calibration.n": ("--calibration", "")}


def _import_from_checkout() -> None:
    src = str(ROOT / "src")
    if sys.path[0] != src:
        sys.path.insert(0, src)


def _escape(text: str) -> str:
    """Markdown-safe table cell outside code spans."""
    parts = re.split(r"(`[^`]*`)", text)
    return "".join(
        p if p.startswith("`") else p.replace("<", "&lt;").replace(">", "&gt;").replace("|", r"\|")
        for p in parts
    )


def _rst_to_md(text: str) -> str:
    text = re.sub(r":(?:py:)?[a-z]+:`~?([^`]+)`", r"`\1`", text)
    return text.replace("``", "`")


def attributes(cls: type) -> dict[str, str]:
    """The numpy-style ``Attributes`` section of a docstring: name -> one-line text."""
    doc = inspect.getdoc(cls) or ""
    match = re.search(r"^Attributes\n-+\n(.*?)(?:\n\S[^\n]*\n-+\n|\Z)", doc, re.M | re.S)
    if not match:
        return {}
    out: dict[str, str] = {}
    names: list[str] = []
    for line in match.group(1).splitlines():
        if line and not line.startswith(" "):
            names = [n.strip() for n in line.split(",")]
            for n in names:
                out[n] = ""
        elif line.strip():
            for n in names:
                out[n] = (out[n] + " " + line.strip()).strip()
    return {k: _rst_to_md(v) for k, v in out.items()}


def summary(cls: type) -> str:
    """A dataclass docstring without its sections, as Markdown paragraphs."""
    doc = inspect.getdoc(cls) or ""
    doc = re.split(r"^\S[^\n]*\n-{3,}$", doc, maxsplit=1, flags=re.M)[0]
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", doc.strip()) if p.strip()]
    return "\n\n".join(_escape(_rst_to_md(p)) for p in paragraphs)


def flag_help() -> dict[str, tuple[str, str]]:
    """Dotted key -> (flag, help) of the ``symnplm test`` options."""
    from symnplm.cli.test import FLAG_KEYS, add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    by_dest = {a.dest: a for a in parser._actions if a.option_strings}
    out = {}
    for dest, key in FLAG_KEYS.items():
        action = by_dest[dest]
        flag = " / ".join(s for s in action.option_strings if s.startswith("--"))
        out[key] = (flag, " ".join((action.help or "").split()))
    out.update(EXTRA)
    return out


def _yaml(value: Any) -> str:
    import yaml

    text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    return text.removesuffix("...").strip()


def descriptions(cls: type) -> dict[str, str]:
    """Key -> ``description`` of the JSON schema of the table ``cls``."""
    from pydantic import TypeAdapter

    properties = TypeAdapter(cls).json_schema()["properties"]
    return {k: p["description"] for k, p in properties.items() if "description" in p}


def _default(cls: type, name: str) -> Any:
    default = cls.__pydantic_fields__[name].get_default(call_default_factory=True)
    return dataclasses.MISSING if default is PydanticUndefined else default


def _default_cell(value: Any) -> str:
    if value is dataclasses.MISSING:
        return "*required*"
    if dataclasses.is_dataclass(value):
        # only what differs from the table's own defaults
        fresh = dataclasses.asdict(type(value)())
        changed = {k: v for k, v in dataclasses.asdict(value).items() if fresh.get(k) != v}
        return f"`{_yaml(changed)}`" if changed else "the table's defaults"
    return f"`{_yaml(value)}`"


def _table_of(annotation: Any) -> type | None:
    """The dataclass an annotation holds (``StatisticSpec``, ``InjectionSpec | None``)."""
    for tp in (annotation, *typing.get_args(annotation)):
        if dataclasses.is_dataclass(tp):
            return tp
    return None


def table(cls: type, prefix: str, docs: dict[str, str], flags: dict[str, tuple[str, str]]) -> str:
    """The Markdown table of one dataclass's keys."""
    from symnplm.workflow import config

    hints = typing.get_type_hints(cls)
    described = descriptions(cls)
    rows = ["| key | type | default | flag | description |", "| --- | --- | --- | --- | --- |"]
    for f in dataclasses.fields(cls):
        key = prefix + f.name
        flag, text = flags.get(key, ("", ""))
        text = docs.get(f.name) or described.get(f.name) or text
        sub = _table_of(hints[f.name])
        if not text and sub is not None:
            text = summary(sub).split("\n\n")[0]
        if not text:
            log.warning("run-file schema: no description for %r (%s)", key, cls.__name__)
        if sub is not None:
            kind = f"[{sub.__name__}](#{sub.__name__.lower()})"
        else:
            kind = f"`{config.type_name(hints[f.name])}`"
        flag_cell = f"`{flag}`" if flag else ""
        default = _default_cell(_default(cls, f.name))
        rows.append(f"| `{key}` | {kind} | {default} | {flag_cell} | {_escape(text)} |")
    return "\n".join(rows)


def run_schema() -> str:
    """Every table of the run description as Markdown."""
    _import_from_checkout()
    from symnplm.workflow.config import RunConfig

    flags = flag_help()
    head = f"## RunConfig\n\n{summary(RunConfig)}\n\n"
    parts = [head + table(RunConfig, "", attributes(RunConfig), flags)]
    hints = typing.get_type_hints(RunConfig)
    holders: dict[type, list[str]] = {}
    for f in dataclasses.fields(RunConfig):
        if (sub := _table_of(hints[f.name])) is not None:
            holders.setdefault(sub, []).append(f.name)
    for sub, keys in holders.items():
        # SampleSpec serves a and b: its rows are written for the first, a
        title = " and ".join(f"`{k}`" for k in keys)
        if len(keys) > 1:
            others = ", ".join(f"`{k}`" for k in keys[1:])
            title += f" (listed for `{keys[0]}`; {others} the same, with their own flags)"
        head = f"## {sub.__name__}\n\nThe keys of {title}. {summary(sub)}\n\n"
        parts.append(head + table(sub, f"{keys[0]}.", attributes(sub), flags))
    return "\n\n".join(parts) + "\n"


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any, **kwargs: Any) -> str:
    """Replace the marker with the generated schema."""
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, run_schema())
