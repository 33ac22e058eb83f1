"""Help texts from docstrings: the reStructuredText markup made plain for a terminal.

>>> plain("``symnplm test``: see :mod:`symnplm.workflow.config` and :func:`~a.b.fit`")
'symnplm test: see symnplm.workflow.config and fit'
"""

from __future__ import annotations

import re

__all__ = ["plain"]

_ROLE = re.compile(r":[a-z]+:`(~?)([^`]+)`")


def plain(doc: str | None) -> str:
    """``doc`` without reST roles (``:mod:`x``` → x; ``~a.b`` → b) and literals (````x```` → x)."""
    if not doc:
        return ""
    text = _ROLE.sub(lambda m: m.group(2).rsplit(".", 1)[-1] if m.group(1) else m.group(2), doc)
    return text.replace("``", "")
