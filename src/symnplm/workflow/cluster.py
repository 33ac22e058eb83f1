"""Dask clusters for symnplm's parallel work: a local one made here, or a running scheduler.

Used by the null campaigns, scans, the closure study, the demo and the processor's dask
executor, so that every local cluster listens on this machine only, leaves Ctrl-C to
the process that made it, and a scheduler that does not answer is one clear error.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["SCHEDULER_TIMEOUT_S", "dask_client"]

#: seconds to wait for a ``--scheduler`` to answer
SCHEDULER_TIMEOUT_S = 10.0


@contextlib.contextmanager
def _workers_ignore_sigint() -> Iterator[None]:
    """SIGINT ignored while local worker processes start: they inherit the setting.

    Ctrl-C in a terminal goes to the whole process group; the workers then leave it to
    this process, which closes them, instead of each printing its own traceback. A
    Ctrl-C in the second the workers take to start is not seen.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers belong to the main thread
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        # None: a handler installed from outside Python; the default is the closest
        signal.signal(signal.SIGINT, signal.SIG_DFL if previous is None else previous)


@contextlib.contextmanager
def dask_client(workers: int = 1, scheduler: str | None = None) -> Iterator[Any]:
    """A ``distributed.Client``: to ``scheduler`` if given, else to a new local cluster.

    The local cluster has ``workers`` single-threaded workers; one worker runs in this
    process (threads), several run as processes so that their fits run in parallel
    (dask starts them with ``OMP_NUM_THREADS=1``: one torch thread each) and leave
    Ctrl-C to this process.
    """
    import dask
    from dask.utils import parse_timedelta
    from distributed import Client, LocalCluster

    if scheduler is not None:
        # at most SCHEDULER_TIMEOUT_S (or dask's connect timeout, if shorter): an address
        # that does not answer is one error naming it, not half a minute of retries
        configured = dask.config.get("distributed.comm.timeouts.connect")
        timeout = min(SCHEDULER_TIMEOUT_S, parse_timedelta(configured, default="s"))
        try:
            client = Client(scheduler, timeout=timeout)
        except (OSError, TimeoutError) as err:
            raise OSError(
                f"scheduler {scheduler}: no answer within {timeout:g} s ({type(err).__name__})"
            ) from None
        with client:
            yield client
        return
    with contextlib.ExitStack() as stack:
        # dask sets MALLOC_TRIM_THRESHOLD_=65536 in worker processes; glibc then returns
        # every freed tensor to the OS and Newton fits run 2.5x slower (measured). Unset it.
        stack.enter_context(
            dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None})
        )
        with _workers_ignore_sigint() if workers > 1 else contextlib.nullcontext():
            cluster = stack.enter_context(
                LocalCluster(
                    n_workers=workers,
                    threads_per_worker=1,
                    processes=workers > 1,
                    # this machine only (not every interface; one worker talks in-process);
                    # no fixed port: clusters may run side by side
                    host="127.0.0.1" if workers > 1 else None,
                    dashboard_address="127.0.0.1:0",
                    # not the nanny's "still alive, killing" at shutdown
                    silence_logs=logging.ERROR,
                )
            )
        yield stack.enter_context(Client(cluster))
