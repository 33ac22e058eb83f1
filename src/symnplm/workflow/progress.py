"""Rich progress bars for long jobs, as ``progress(done, total)`` callbacks."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

__all__ = ["Progress", "progress_bar"]

Progress = Callable[[int, int], None]


@contextlib.contextmanager
def progress_bar(description: str, *, disable: bool = False) -> Iterator[Progress | None]:
    """A callback ``progress(done, total)`` drawing a rich bar on stderr (``None`` if disabled).

    The bar appears at the first call, so jobs that never report (an asymptotic
    calibration) print nothing.
    """
    if disable:
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskID,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    bar = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),  # the ETA
        console=Console(stderr=True),
        transient=False,
    )
    task: list[TaskID] = []

    def update(done: int, total: int) -> None:
        if not task:
            bar.start()
            task.append(bar.add_task(description, total=total))
        bar.update(task[0], completed=done, total=total)

    try:
        yield update
    finally:
        if task:
            bar.stop()
