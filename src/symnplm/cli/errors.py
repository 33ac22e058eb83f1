"""How the sub-commands end on a user's mistake or an interrupt: one line, an exit code.

Every sub-command's ``run(args) -> int`` is wrapped by :func:`command`, so that they
all report the same way: ``error: <message>`` and exit code 2 for what a bad input,
file or cluster raises (:data:`USER_ERRORS`; a bug still gives a traceback), and one
``interrupted`` line with exit code 130 for Ctrl-C. A bug can raise one of
:data:`USER_ERRORS` too (a ``ValueError`` of a format string, say): with the
environment variable ``SYMNPLM_TRACEBACK=1`` the command raises it with its traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

from symnplm.exceptions import CampaignIncomplete

__all__ = [
    "TRACEBACK_VARIABLE",
    "USER_ERRORS",
    "Command",
    "command",
    "error_line",
    "interrupted",
    "quiet_distributed",
]

#: what a bad input, file or cluster raises (bugs still give a traceback)
USER_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    KeyError,
    ValueError,
    CampaignIncomplete,
)

#: set to 1: an error of :data:`USER_ERRORS` is raised with its traceback (debugging)
TRACEBACK_VARIABLE = "SYMNPLM_TRACEBACK"

#: a sub-command: parsed arguments in, exit code out
Command = Callable[[argparse.Namespace], int]


def _stderr_console() -> Any:
    """A rich Console on stderr (messages with paths stay whole), ``None`` without rich.

    ``symnplm generate`` needs only the ``generate`` extra, which has no rich.
    """
    try:
        from rich.console import Console
    except ModuleNotFoundError:
        return None
    return Console(stderr=True, soft_wrap=True)


def _raised_by_an_interrupt(exc: BaseException) -> bool:
    """Whether ``exc`` was raised while a KeyboardInterrupt unwound (its context chain)."""
    seen: set[int] = set()
    ctx: BaseException | None = exc
    while ctx is not None and id(ctx) not in seen:
        if isinstance(ctx, KeyboardInterrupt):
            return True
        seen.add(id(ctx))
        ctx = ctx.__cause__ or ctx.__context__
    return False


def error_line(console: Any, exc: BaseException) -> int:
    """Print ``error: <message>`` on ``console`` (a rich Console; ``None``: plain stderr).

    Returns exit code 2.
    """
    # a KeyError's str() is the repr of its argument: print the argument itself
    msg = str(exc.args[0] if isinstance(exc, KeyError) and exc.args else exc)
    if console is None:
        print(f"error: {msg}", file=sys.stderr)
    else:
        from rich.markup import escape

        console.print(f"[red]error:[/red] {escape(msg)}")
    return 2


def interrupted(console: Any, resumes: str | None = None) -> int:
    """Print ``interrupted`` and what a rerun resumes, if anything; return exit code 130."""
    text = f"interrupted: {resumes}" if resumes else "interrupted"
    if console is None:
        print(text, file=sys.stderr)
    else:
        from rich.markup import escape

        console.print(escape(text))
    return 130


def quiet_distributed() -> None:
    """Mute dask's ``distributed`` loggers and tornado's callback errors for good.

    A cluster torn down by an interrupt logs closed connections and cancelled tasks
    (some at level CRITICAL, with tracebacks), which say nothing to the user.
    """
    parent = logging.getLogger("distributed")
    parent.setLevel(logging.CRITICAL + 1)
    # the event loop under dask's comms logs "Exception in callback ..." with a traceback
    # when a connection it was serving is torn down mid-call
    logging.getLogger("tornado.application").setLevel(logging.CRITICAL + 1)
    # loggers that dask's configuration gave their own level do not inherit the parent's
    for name, logger in logging.Logger.manager.loggerDict.items():
        if name.startswith("distributed.") and isinstance(logger, logging.Logger):
            logger.disabled = True


def _on_sigint(signum: int, frame: FrameType | None) -> None:
    # muted before the KeyboardInterrupt unwinds through the cluster's context managers
    quiet_distributed()
    raise KeyboardInterrupt


@contextlib.contextmanager
def _interrupt_quietly() -> Iterator[None]:
    """Ctrl-C mutes ``distributed`` first, then raises KeyboardInterrupt as usual.

    Only where Python's own handler is in place (the main thread of a plain process).
    """
    if threading.current_thread() is not threading.main_thread() or (
        signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield
        return
    signal.signal(signal.SIGINT, _on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def command(
    resumes: str | Callable[[argparse.Namespace], str | None] | None = None,
) -> Callable[[Command], Command]:
    """Decorate a sub-command's ``run(args) -> int`` to end as every sub-command does.

    Parameters
    ----------
    resumes
        What the ``interrupted`` line says a rerun of the same command resumes (e.g.
        ``"finished batches are kept; the same command resumes the run"``), or a
        function of the arguments giving it; ``None``: nothing resumes.

    Returns
    -------
    A decorator: the wrapped command returns 2 after :func:`error_line` for
    :data:`USER_ERRORS` and 130 after :func:`interrupted` for Ctrl-C, whose cluster
    shutdown logs nothing (:func:`quiet_distributed`).
    """

    def decorate(func: Command) -> Command:
        @functools.wraps(func)
        def run(args: argparse.Namespace) -> int:
            def stopped() -> int:
                quiet_distributed()  # an interrupt raised without the signal handler
                text = resumes(args) if callable(resumes) else resumes
                return interrupted(_stderr_console(), text)

            try:
                with _interrupt_quietly():
                    return func(args)
            except USER_ERRORS as exc:  # OSError: files, and a --scheduler that does not answer
                if os.environ.get(TRACEBACK_VARIABLE, "") not in ("", "0"):
                    raise
                if _raised_by_an_interrupt(exc):  # e.g. a file closed half-written by Ctrl-C
                    return stopped()
                return error_line(_stderr_console(), exc)
            except KeyboardInterrupt:
                return stopped()

        return run

    return decorate
