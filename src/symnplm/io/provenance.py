"""Provenance recorded in every result file: package versions, platform, time."""

from __future__ import annotations

import datetime as _dt
import importlib.metadata as _md
import platform
import sys
from typing import Any

__all__ = ["RECORDED_PACKAGES", "package_versions", "provenance"]

#: Distributions whose versions are recorded (those that can change a number).
RECORDED_PACKAGES: tuple[str, ...] = (
    "symnplm",
    "torch",
    "numpy",
    "scipy",
    "awkward",
    "uproot",
    "vector",
    "coffea",
    "hist",
    "correctionlib",
    "pyarrow",
    "distributed",
    "pythia8mc",
)


def package_versions(packages: tuple[str, ...] = RECORDED_PACKAGES) -> dict[str, str | None]:
    """Installed versions of ``packages`` (``None`` where not installed)."""
    out: dict[str, str | None] = {}
    for name in packages:
        try:
            out[name] = _md.version(name)
        except _md.PackageNotFoundError:
            out[name] = None
    return out


def provenance() -> dict[str, Any]:
    """Versions, interpreter, platform and a UTC timestamp, for result files."""
    return {
        "versions": package_versions(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
