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
