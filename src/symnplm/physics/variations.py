"""Nuisance variations: lepton momentum scale and normalisation (arXiv:2111.13633, two-body study).

A variation is a modified copy of the sample at a nuisance value ν, in units of the
nuisance's standard deviation σ:

- momentum scale of one lepton flavour: pT → exp(ν σ) pT with σ = σ_barrel for
  |η| < 1.2 and σ_endcap (default 3 σ_barrel) elsewhere; η, φ and the mass are kept.
  The change of the lepton momenta is propagated into MET, and the selection and
  categories are re-applied to the shifted leptons, so events migrate across cuts
  and between ``emu`` and ``mue``;
- normalisation: every event weight times exp(ν σ_N).

Regimes of arXiv:2111.13633: muon-like σ = 0.05 % / 0.15 % (barrel / endcap), electron-like
0.3 % / 0.9 %, τ-like 3 % / 3 %.

Names follow the project's convention: ``nominal``, ``<source>_up<k>`` / ``<source>_down<k>`` for
ν = ±k (``1.5`` is written ``1p5``; ν = 0 is ``<source>_up0``, identical to nominal).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import awkward as ak
import numpy as np

__all__ = [
    "ELECTRON_SCALE",
    "MUON_SCALE",
    "NOMINAL",
    "NORMALISATION",
    "Flavour",
    "MomentumScale",
    "Normalisation",
    "propagate_to_met",
    "scale_momenta",
    "variation_name",
]

NOMINAL = "nominal"

Flavour = Literal["electron", "muon"]


def variation_name(source: str, nu: float) -> str:
    """Name of the variation ``source`` at ``nu`` standard deviations."""
    k = abs(float(nu))
    magnitude = str(int(k)) if k.is_integer() else repr(k).replace(".", "p")
    return f"{source}_{'down' if nu < 0 else 'up'}{magnitude}"


@dataclass(frozen=True)
class MomentumScale:
    """Momentum-scale nuisance of one lepton flavour.

    Parameters
    ----------
    flavour
        ``"electron"`` or ``"muon"``: which leptons are shifted.
    sigma_barrel
        Relative scale uncertainty σ for |η| < ``eta_boundary``.
    sigma_endcap
        σ for |η| ≥ ``eta_boundary``; default ``3 * sigma_barrel``.
    eta_boundary
        Barrel / endcap boundary in |η|.
    """

    flavour: Flavour
    sigma_barrel: float
    sigma_endcap: float | None = None
    eta_boundary: float = 1.2

    def __post_init__(self) -> None:
        if self.flavour not in ("electron", "muon"):
            raise ValueError(
                f"momentum scale flavour must be 'electron' or 'muon', got {self.flavour!r}"
            )
        if self.sigma_endcap is None:
            object.__setattr__(self, "sigma_endcap", 3.0 * self.sigma_barrel)

    @property
    def source(self) -> str:
        """Variation source name, e.g. ``muon_scale``."""
        return f"{self.flavour}_scale"

    def factor(self, eta: Any, nu: float) -> Any:
        """Multiplicative pT factor exp(ν σ(η)) for leptons at pseudorapidity ``eta``."""
        endcap = self.sigma_endcap if self.sigma_endcap is not None else 3.0 * self.sigma_barrel
        sigma = np.where(abs(eta) < self.eta_boundary, self.sigma_barrel, endcap)
        return np.exp(nu * sigma)


#: Electron-like regime of arXiv:2111.13633: 0.3 % barrel, 0.9 % endcaps.
ELECTRON_SCALE = MomentumScale("electron", 0.003)
#: Muon-like regime of arXiv:2111.13633: 0.05 % barrel, 0.15 % endcaps.
MUON_SCALE = MomentumScale("muon", 0.0005)


@dataclass(frozen=True)
class Normalisation:
    """Global normalisation nuisance: weights × exp(ν σ); σ_N = 2.5 % by default."""

    sigma: float = 0.025
    source: str = "norm"

    def factor(self, nu: float) -> float:
        """The weight factor exp(ν σ)."""
        return float(np.exp(nu * self.sigma))


#: σ_N = 2.5 % (arXiv:2111.13633).
NORMALISATION = Normalisation()


def scale_momenta(leptons: ak.Array, scale: MomentumScale, nu: float) -> ak.Array:
    """Copy of ``leptons`` (records with pt, eta, …) with pT multiplied by ``scale.factor``."""
    factor = scale.factor(leptons.eta, nu)
    return ak.with_field(leptons, leptons.pt * factor, "pt")


def propagate_to_met(
    met_pt: Any, met_phi: Any, before: ak.Array, after: ak.Array
) -> tuple[np.ndarray, np.ndarray]:
    """MET after the leptons changed from ``before`` to ``after`` (jagged, same φ).

    MET is minus the vector sum of the visible momenta, so a lepton gaining Δp_T
    changes MET by −Δp_T along the lepton direction.
    """
    met_pt, met_phi = np.asarray(met_pt, dtype=np.float64), np.asarray(met_phi, dtype=np.float64)
    dpt = after.pt - before.pt
    mex = met_pt * np.cos(met_phi) - ak.to_numpy(ak.sum(dpt * np.cos(before.phi), axis=1))
    mey = met_pt * np.sin(met_phi) - ak.to_numpy(ak.sum(dpt * np.sin(before.phi), axis=1))
    # events whose leptons did not move keep their MET bit for bit (ν = 0 is the identity)
    moved = ak.to_numpy(ak.any(dpt != 0, axis=1))
    return (
        np.where(moved, np.hypot(mex, mey), met_pt),
        np.where(moved, np.arctan2(mey, mex), met_phi),
    )
