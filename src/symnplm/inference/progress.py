"""A progress line with an ETA for long calibrations in the Python API (standard library only).

``calibrate(..., progress=True)`` draws one on standard error; the command line draws
its own, richer bar (:mod:`symnplm.workflow.progress`).

>>> import io
>>> out = io.StringIO()
>>> line = ProgressLine("permutations", stream=out, clock=iter([0.0, 2.0, 4.0]).__next__)
>>> line(25, 100)
>>> line(100, 100)
>>> print(out.getvalue().replace("\\r", "|"))
|permutations: 25/100 (25 %), 2 s elapsed, ETA 6 s|permutations: 100/100 (100 %), 4 s elapsed
<BLANKLINE>
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

__all__ = ["ProgressLine"]


def _seconds(s: float) -> str:
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min"


class ProgressLine:
    """``progress(done, total)``: rewrites one line ``what: done/total, elapsed, ETA``.

    The ETA assumes the remaining replicas take as long as the finished ones did; the
    line ends when ``done == total``.

    Parameters
    ----------
    what
        What is counted (e.g. ``"permutations"``).
    stream
        Where to write (default standard error).
    clock
        Seconds since any origin (default :func:`time.perf_counter`); read once on
        creation and at every call.
    """

    def __init__(
        self,
        what: str,
        *,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.what = what
        self.stream = stream if stream is not None else sys.stderr
        self.clock = clock
        self.start = clock()

    def __call__(self, done: int, total: int) -> None:
        elapsed = self.clock() - self.start
        text = f"\r{self.what}: {done}/{total} ({100 * done / max(total, 1):.0f} %), "
        text += f"{_seconds(elapsed)} elapsed"
        if 0 < done < total:
            text += f", ETA {_seconds(elapsed * (total - done) / done)}"
        self.stream.write(text + ("\n" if done >= total else ""))
        self.stream.flush()
