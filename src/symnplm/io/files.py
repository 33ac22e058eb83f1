"""Atomic file output: nothing half-written is ever presented as complete.

Every writer in symnplm writes to a temporary name in the destination directory
and renames it into place (``os.replace`` is atomic on POSIX), so an interrupted
job leaves either the previous file or no file, never a truncated one.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "LOCK_NAME",
    "DirectoryBusy",
    "atomic_path",
    "check_writable_directory",
    "check_writable_file",
    "directory_lock",
    "interrupts_deferred",
    "read_json",
    "write_json",
    "write_npz",
]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it to ``path`` on success.

    On an exception the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp creates 0600; a finished file gets the usual permissions (0666 & ~umask)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def check_writable_directory(path: str | os.PathLike[str]) -> Path:
    """Check that ``path`` is, or can be created as, a directory this process can write in.

    Called before long work, so that an unwritable destination is one clear error at
    the start, not a traceback at the end. Nothing is created.

    Raises
    ------
    FileExistsError
        ``path`` or one of its parents is a file.
    PermissionError
        The directory (or the nearest existing parent) cannot be written in.
    """
    path = Path(path)
    existing = next(p for p in (path, *path.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise FileExistsError(f"{path}: {existing} is a file, not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PermissionError(f"{path}: {existing} is not writable")
    return path


def check_writable_file(path: str | os.PathLike[str]) -> Path:
    """Check that a file can be written at ``path`` (:func:`check_writable_directory` for
    its folder; ``path`` itself not a directory). Nothing is created.

    Raises
    ------
    IsADirectoryError
        ``path`` is a directory.
    FileExistsError, PermissionError
        Its folder cannot be written in (see :func:`check_writable_directory`).
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a directory, not a file name")
    check_writable_directory(path.absolute().parent)
    return path


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    raise TypeError(f"object of type {type(obj).__name__} is not JSON serialisable")


def _finite_json(obj: Any) -> Any:
    """Replace non-finite floats by strings: JSON has no inf/nan ("inf" is explicit)."""
    if isinstance(obj, float) and not np.isfinite(obj):
        return "nan" if np.isnan(obj) else ("inf" if obj > 0 else "-inf")
    if isinstance(obj, dict):
        return {k: _finite_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite_json(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _finite_json(obj.tolist())
    if isinstance(obj, np.generic):
        return _finite_json(obj.item())
    return obj


def write_json(path: str | os.PathLike[str], payload: dict[str, Any]) -> Path:
    """Write ``payload`` as indented JSON, atomically; non-finite floats become strings."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(_finite_json(payload), indent=2, default=_json_default) + "\n")
    return path


def read_json(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a JSON file written by :func:`write_json`, with a clear error if unreadable."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Hold Ctrl-C until the block has finished (main thread only), then raise it.

    An interrupt inside ``zipfile`` leaves a half-closed archive whose closing raises
    ``ValueError`` in place of the ``KeyboardInterrupt`` (and again at garbage
    collection): a short write is let finish, then the interrupt goes on as usual.
    """
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is signal.SIG_IGN  # e.g. a local dask worker
    ):
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        handler = previous if callable(previous) else signal.default_int_handler
        handler(signal.SIGINT, None)


def write_npz(path: str | os.PathLike[str], **arrays: np.ndarray) -> Path:
    """Write arrays to a compressed ``.npz``, atomically (Ctrl-C waits for the write)."""
    path = Path(path)
    with interrupts_deferred(), atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            # numpy's stubs read ** of a dict[str, ndarray] as its allow_pickle keyword
            np.savez_compressed(fh, **arrays)  # type: ignore[arg-type]
    return path


#: the lock file a run holds in the directory it writes
LOCK_NAME = ".symnplm.lock"


class DirectoryBusy(OSError):
    """Another run holds the lock of the directory this one would write."""


@contextlib.contextmanager
def directory_lock(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Hold an exclusive lock on the output directory ``path`` (created) while writing it.

    Two runs writing one directory would delete or overwrite each other's files; the
    second one fails at once, naming the directory. The lock is an ``flock`` on
    ``path/.symnplm.lock``, released by the operating system if the process dies.

    Raises
    ------
    DirectoryBusy
        Another process holds the lock.
    """
    import fcntl

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    fd = os.open(path / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DirectoryBusy(
                f"{path}: another symnplm run is writing this directory; wait for it to "
                "finish or write elsewhere"
            ) from None
        yield path
    finally:
        os.close(fd)  # releases the lock
