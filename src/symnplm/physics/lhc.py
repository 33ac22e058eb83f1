"""The collider: LHC Run 2 conditions shared by generation and figures."""

from __future__ import annotations

__all__ = ["SQRT_S_GEV"]

#: proton-proton centre-of-mass energy
SQRT_S_GEV = 13000.0
