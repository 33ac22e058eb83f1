"""Help texts: docstrings made plain for a terminal, and every option's default shown once.

>>> plain("``symnplm test``: see :mod:`symnplm.workflow.config` and :func:`~a.b.fit`")
'symnplm test: see symnplm.workflow.config and fit'
>>> from pathlib import Path
>>> format_default([0.005, 0.01]), format_default(20000.0), format_default(Path("results/demo"))
('0.005 0.01', '20000', 'results/demo')
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import typing
import weakref
from collections.abc import Mapping
from typing import Any

__all__ = [
    "DefaultsHelpFormatter",
    "RawDescriptionDefaultsHelpFormatter",
    "config_default",
    "default_text",
    "format_default",
    "plain",
    "show_config_defaults",
    "shown_default",
]

_ROLE = re.compile(r":[a-z]+:`(~?)([^`]+)`")


def plain(doc: str | None) -> str:
    """``doc`` without reST roles (``:mod:`x``` → x; ``~a.b`` → b) and literals (````x```` → x)."""
    if not doc:
        return ""
    text = _ROLE.sub(lambda m: m.group(2).rsplit(".", 1)[-1] if m.group(1) else m.group(2), doc)
    return text.replace("``", "")


def format_default(value: Any) -> str:
    """``value`` as it would be typed on the command line (a list: space-separated)."""
    if isinstance(value, (list, tuple)):
        return " ".join(format_default(v) for v in value)
    if isinstance(value, float) and float(f"{value:g}") == value:
        return f"{value:g}"  # 20000 and 0.01, not 20000.0; never a rounded value
    return str(value)


def default_text(value: Any) -> str:
    """`` (default: VALUE)`` for a help string (``%`` doubled: argparse formats the help)."""
    return f" (default: {format_default(value)})".replace("%", "%%")


#: the defaults of options that override a run file (their argparse default is SUPPRESS)
_FILE_DEFAULTS: weakref.WeakKeyDictionary[argparse.Action, Any] = weakref.WeakKeyDictionary()


def shown_default(action: argparse.Action) -> Any:
    """The default ``--help`` shows for ``action``, ``None`` for none.

    The argparse default, or for an option that overrides a run file the file's default
    (:func:`show_config_defaults`). Options without a value (``--quiet``: off unless
    given) show none, nor does a default that is ``None`` or empty (the help text says
    what happens then).
    """
    if action.nargs == 0 and not isinstance(action, argparse.BooleanOptionalAction):
        return None
    default = _FILE_DEFAULTS.get(action, action.default)
    if default is argparse.SUPPRESS or default is None or default == []:
        return None
    return default


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """Each option's default once, after its help: ``(default: VALUE)`` (:func:`shown_default`).

    Like :class:`argparse.ArgumentDefaultsHelpFormatter`, but values are written as
    they are typed (``png pdf``, not ``['png', 'pdf']``) and ``None`` is left out.
    """

    #: off where the default is shown apart (the documentation's table has a column)
    show_defaults = True

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help
        default = shown_default(action)
        if not self.show_defaults or not text or "%(default)" in text or default is None:
            return text
        return text + default_text(default)


class RawDescriptionDefaultsHelpFormatter(
    DefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter
):
    """:class:`DefaultsHelpFormatter` keeping the description's layout (a docstring)."""


def config_default(root: Any, key: str) -> Any:
    """The default of the dotted ``key`` in the dataclass instance ``root``.

    A section that defaults to ``None`` (``inject``) answers with its own class's
    defaults: they apply once the section is given.
    """
    value = root
    for name in key.split("."):
        parent, value = value, getattr(value, name)
        if value is None and dataclasses.is_dataclass(parent):
            hint = typing.get_type_hints(type(parent))[name]
            sections = [
                t
                for t in typing.get_args(hint)
                if isinstance(t, type) and dataclasses.is_dataclass(t)
            ]
            if sections:
                value = sections[0]()
    return value


def show_config_defaults(
    parser: argparse.ArgumentParser, keys: Mapping[str, str], root: Any
) -> None:
    """Let each option of ``parser`` named in ``keys`` show its default in ``root``.

    ``keys`` maps an option's destination to a dotted key of ``root`` (a dataclass
    instance: a run description with its defaults). For options without an argparse
    default, so that a run file's value is kept when the flag is not given: what they
    show (:func:`shown_default`) is the run description's default.
    """
    for action in parser._actions:
        if action.dest in keys:
            _FILE_DEFAULTS[action] = config_default(root, keys[action.dest])
