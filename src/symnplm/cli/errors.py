"""How the sub-commands report a user's mistake: one line and a non-zero exit code."""

from __future__ import annotations

from typing import Any

from symnplm.exceptions import CampaignIncomplete

__all__ = ["USER_ERRORS", "error_line", "interrupted"]

#: what a bad input, file or cluster raises (bugs still give a traceback)
USER_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    KeyError,
    ValueError,
    CampaignIncomplete,
)


def error_line(console: Any, exc: BaseException) -> int:
    """Print ``error: <message>`` on ``console`` (a rich Console); return exit code 2."""
    from rich.markup import escape

    # a KeyError's str() is the repr of its argument: print the argument itself
    msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
    console.print(f"[red]error:[/red] {escape(str(msg))}")
    return 2


def interrupted(console: Any, what: str) -> int:
    """Say that the work resumes (finished batches are on disk); return exit code 130."""
    console.print(f"interrupted: finished batches are kept; the same command resumes the {what}")
    return 130
