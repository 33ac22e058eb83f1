"""Griffe extension of the API reference (registered in mkdocs.yml under mkdocstrings).

Two things the docstrings need to render on the site:

* ``symnplm.processors`` lives in the repository's top-level ``processors/`` folder (a
  wheel ships it inside the package; a checkout serves it through an import hook), so
  static analysis of ``src/symnplm`` does not see it: it is loaded from ``processors/``
  and attached to the package as its ``processors`` sub-package.
* Module constants are documented with ``#:`` comments (the Sphinx convention), which
  are not docstrings to Python: they become the attributes' docstrings.
* The docstrings use Sphinx roles (``:class:`~symnplm.io.samples.Sample```,
  ``:func:`calibrate```). Each becomes a code span that links to the object's entry in
  the API reference when the target resolves (relative names are looked up from the
  documented object outwards, as Sphinx does), and plain code otherwise. The links are
  *optional* references: a target that is not rendered anywhere is not an error.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import griffe

ROOT = Path(__file__).resolve().parents[2]

ROLE = re.compile(r":(?:py:)?(?:mod|class|func|meth|data|attr|obj|exc|const):`(~?)([^`]+)`")
# "Example::" (reST literal-block marker) -> "Example:"; the indented block that follows
# is a Markdown code block already
LITERAL_MARKER = re.compile(r"(\S)::(\n\s*\n)")


def _lookup(scope: Any, dotted: str) -> Any:
    """``scope[dotted]`` or None (griffe raises KeyError / alias errors on a miss)."""
    try:
        return scope[dotted]
    except (KeyError, ValueError, griffe.AliasResolutionError, griffe.CyclicAliasError):
        return None


def _scopes(obj: Any) -> Iterator[Any]:
    """The object, then its parents up to the top-level package."""
    while obj is not None:
        yield obj
        obj = obj.parent


def resolve(target: str, obj: Any, collection: Any) -> str | None:
    """Identifier (canonical Python path) of the object a role names, or None."""
    name = target.strip().removesuffix("()")
    found = None
    if name.startswith("."):
        name = name.lstrip(".")
        module = obj if obj.is_module else obj.module
        found = next((f for s in _scopes(module) if (f := _lookup(s, name)) is not None), None)
    else:
        found = _lookup(collection, name) if "." in name else None
        if found is None:
            found = next((f for s in _scopes(obj) if (f := _lookup(s, name)) is not None), None)
    if found is None:
        return None
    try:
        return found.final_target.path if found.is_alias else found.path
    except (griffe.AliasResolutionError, griffe.CyclicAliasError):
        return None


def fence_doctests(text: str) -> str:
    """Doctest paragraphs (``>>>`` lines and their output) as fenced ``pycon`` blocks.

    Outside a fence their output lines would be read as Markdown (``['x']`` as a link).
    A numpy ``Examples`` section is left alone: the docstring parser renders it.
    """
    lines = text.splitlines()
    out: list[str] = []
    indent: str | None = None
    in_examples = False
    for i, line in enumerate(lines):
        stripped = line.lstrip()
        underline = i + 1 < len(lines) and re.fullmatch(r"\s*-{3,}\s*", lines[i + 1])
        if underline and stripped:
            in_examples = stripped.rstrip() == "Examples"
        if (
            indent is None
            and not in_examples
            and stripped.startswith(">>>")
            and (not out or not out[-1].strip())
        ):
            indent = line[: len(line) - len(stripped)]
            out.append(f"{indent}```pycon")
        elif indent is not None and not stripped:
            out.append(f"{indent}```")
            indent = None
        out.append(line)
    if indent is not None:
        out.append(f"{indent}```")
    return "\n".join(out)


#: numpy sections whose "name / indented description" entries the docstring parser reads
STRUCTURED = {
    "Parameters",
    "Other Parameters",
    "Returns",
    "Yields",
    "Receives",
    "Raises",
    "Warns",
    "Attributes",
    "Methods",
    "Functions",
    "Classes",
    "Modules",
}


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def definition_lists(text: str) -> str:
    """reST definition lists (a term, its description indented below) -> Markdown ones.

    ``term`` followed by lines indented four more spaces becomes ``term`` / ``:   text``
    (the ``def_list`` extension). Entries of the numpy sections the parser reads
    (Parameters, Attributes, ...) and code are left alone.
    """
    lines = text.splitlines()
    out: list[str] = []
    section = ""
    in_fence = False
    for i, line in enumerate(lines):
        stripped = line.strip()
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if stripped.startswith("```"):
            in_fence = not in_fence
        if stripped and re.fullmatch(r"\s*-{3,}\s*", nxt):
            section = stripped
        indent = _indent(line)
        if (
            out
            and not in_fence
            and section not in STRUCTURED
            and out[-1].strip()
            and not out[-1].lstrip().startswith(":   ")
            and _indent(lines[i - 1]) + 4 == indent
            and (i < 2 or not lines[i - 2].strip() or _indent(lines[i - 2]) >= indent)
            and not lines[i - 1].rstrip().endswith(":")
            and not lines[i - 1].lstrip().startswith((">>>", "- ", "* ", "```"))
        ):
            if i >= 2 and lines[i - 2].strip():
                out.insert(len(out) - 1, "")  # entries are separate paragraphs
            out.append(" " * (indent - 4) + ":   " + line.lstrip())
            continue
        out.append(line)
    return "\n".join(out)


def convert(text: str, obj: Any, collection: Any) -> str:
    """Sphinx roles -> optional cross-references; reST ``::`` markers -> ``:``; doctests
    fenced."""

    def link(match: re.Match[str]) -> str:
        tilde, target = match.groups()
        shown = target.strip().removesuffix("()")
        shown = shown.rsplit(".", 1)[-1] if tilde else shown.lstrip(".")
        if target.strip().endswith("()"):
            shown += "()"
        identifier = resolve(target, obj, collection)
        if identifier is None:
            return f"`{shown}`"
        return f'<autoref identifier="{identifier}" optional><code>{shown}</code></autoref>'

    text = fence_doctests(LITERAL_MARKER.sub(r"\1:\2", ROLE.sub(link, text)))
    return definition_lists(text)


def comment_docstring(obj: Any) -> str | None:
    """The ``#:`` comment lines just above an attribute (or after it on its line)."""
    try:
        lines = obj.lines_collection[obj.filepath]
    except (KeyError, TypeError):
        return None
    if not lines or not obj.lineno:
        return None
    first = lines[obj.lineno - 1]
    if "#:" in first:
        return first.split("#:", 1)[1].strip() or None
    found: list[str] = []
    i = obj.lineno - 2
    while i >= 0 and lines[i].lstrip().startswith("#:"):
        found.insert(0, lines[i].lstrip()[2:].strip())
        i -= 1
    return "\n".join(found) or None


def _walk(obj: Any) -> Iterator[Any]:
    yield obj
    for member in obj.members.values():
        if member.is_alias:
            continue
        # a sub-package attached from another folder is still part of the walk
        yield from _walk(member)


class SymnplmDocs(griffe.Extension):
    """Attach ``symnplm.processors`` and convert Sphinx roles in every docstring."""

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        if pkg.name != "symnplm":
            return
        if "processors" not in pkg.members:
            processors = griffe.load(
                "processors",
                search_paths=[ROOT],
                docstring_parser=loader.docstring_parser,
                docstring_options=loader.docstring_options,
                lines_collection=loader.lines_collection,
            )
            pkg.set_member("processors", processors)
            # resolve its imports (symnplm.physics, ...) through the package's collection
            processors._modules_collection = None
        for obj in _walk(pkg):
            if obj.is_attribute and obj.docstring is None:
                text = comment_docstring(obj)
                if text:
                    obj.docstring = griffe.Docstring(
                        text,
                        lineno=obj.lineno,
                        parent=obj,
                        parser=loader.docstring_parser,
                        parser_options=loader.docstring_options,
                    )
            if obj.docstring is not None:
                obj.docstring.value = convert(obj.docstring.value, obj, loader.modules_collection)
