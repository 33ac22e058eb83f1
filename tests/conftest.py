"""Shared fixtures. ``../shared`` (real NanoAOD files, seeds) sits beside the checkout, as in CI."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``; a missing directory is an error, not a skip (CI always has it)."""
    path = SHARED / "data"
    if not path.is_dir():
        raise FileNotFoundError(f"{path} not found: clone the project next to ../shared")
    return path


@pytest.fixture(
    params=["cpu", pytest.param("cuda", marks=pytest.mark.cuda)],
)
def device(request) -> str:
    """The torch device of a test that takes one: the CPU always, CUDA where present.

    ``pytest -m cuda`` on a GPU machine runs exactly the CUDA half; elsewhere it is
    skipped, so the suite passes without a GPU.
    """
    if request.param == "cuda":
        import torch

        if not torch.cuda.is_available():
            pytest.skip("no CUDA device on this machine")
    return request.param
