"""Atomic writes: Ctrl-C during an ``.npz`` write waits for the file, then interrupts."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest

from symnplm.io import files


def test_ctrl_c_during_an_npz_write_comes_after_the_complete_file(tmp_path, monkeypatch):
    """SIGINT in the middle of numpy's zip writing: the file is whole and readable, and
    the KeyboardInterrupt is raised after it (not a ValueError from a half-closed zip)."""
    real = np.savez_compressed

    def interrupted_savez(fh, **arrays):
        os.kill(os.getpid(), signal.SIGINT)  # delivered between two bytecodes of the write
        real(fh, **arrays)

    monkeypatch.setattr(np, "savez_compressed", interrupted_savez)
    path = tmp_path / "batch.npz"
    with pytest.raises(KeyboardInterrupt):
        files.write_npz(path, t=np.arange(10_000.0))
    with np.load(path) as done:
        np.testing.assert_array_equal(done["t"], np.arange(10_000.0))
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert not list(tmp_path.glob(".*tmp*")) and [p.name for p in tmp_path.iterdir()] == [
        "batch.npz"
    ]


def test_a_process_that_ignores_ctrl_c_still_ignores_it_during_a_write(tmp_path, monkeypatch):
    """Local dask workers run with SIGINT ignored: a write must not turn it into an
    interrupt afterwards."""
    real = np.savez_compressed

    def interrupted_savez(fh, **arrays):
        os.kill(os.getpid(), signal.SIGINT)
        real(fh, **arrays)

    monkeypatch.setattr(np, "savez_compressed", interrupted_savez)
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        files.write_npz(tmp_path / "batch.npz", t=np.arange(5.0))
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
    with np.load(tmp_path / "batch.npz") as done:
        np.testing.assert_array_equal(done["t"], np.arange(5.0))
