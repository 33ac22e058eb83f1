"""Parameters of the parametric ATLAS-like detector, including the e/μ asymmetry knobs.

Default values follow the Delphes ATLAS card (``cards/delphes_card_ATLAS.tcl``,
Delphes 3.5) where it has them — muon momentum resolution, electromagnetic
energy resolution, acceptances — and ATLAS Run-2 performance papers where the
card is flat: electron identification efficiency rising with pT
(EGAM-2018-01, Medium working point), the muon-spectrometer gap at |η| < 0.1
(MUON-2018-03), jet energy resolution (JETM-2018-05), the DL1r 77% b-tagging
working point (FTAG-2019-07). They are round, documented numbers, not fits.

The asymmetry knobs — efficiency scale maps and momentum-scale offsets per
flavour, a muon sagitta bias, an electron charge-flip rate — default to "off"
(1, 0) so that files generated with non-default values carry a known truth for
reweighting studies; the values used are recorded in every file and fileset.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["DetectorConfig", "EfficiencyMap", "parse_assignments"]


@dataclass(frozen=True)
class EfficiencyMap:
    """A multiplicative efficiency factor binned in reconstructed pT (GeV) and |η|.

    Values outside the binning take the nearest edge bin.

    Parameters
    ----------
    pt_edges, abs_eta_edges
        Increasing bin edges.
    values
        ``values[i][j]`` for pT bin i and |η| bin j; must be ≥ 0.
    """

    pt_edges: tuple[float, ...] = (0.0, 1e9)
    abs_eta_edges: tuple[float, ...] = (0.0, 10.0)
    values: tuple[tuple[float, ...], ...] = ((1.0,),)

    def __post_init__(self) -> None:
        pt = tuple(float(x) for x in self.pt_edges)
        eta = tuple(float(x) for x in self.abs_eta_edges)
        vals = tuple(tuple(float(v) for v in row) for row in self.values)
        object.__setattr__(self, "pt_edges", pt)
        object.__setattr__(self, "abs_eta_edges", eta)
        object.__setattr__(self, "values", vals)
        for name, edges in (("pt_edges", pt), ("abs_eta_edges", eta)):
            if len(edges) < 2 or any(b <= a for a, b in itertools.pairwise(edges)):
                raise ValueError(
                    f"efficiency map {name} must be >= 2 increasing edges, got {edges}"
                )
        shape = (len(pt) - 1, len(eta) - 1)
        if len(vals) != shape[0] or any(len(row) != shape[1] for row in vals):
            raise ValueError(f"efficiency map values must have shape {shape} (pT bins × |η| bins)")
        if any(v < 0 or not math.isfinite(v) for row in vals for v in row):
            raise ValueError(f"efficiency map values must be finite and >= 0, got {vals}")

    @classmethod
    def constant(cls, value: float) -> EfficiencyMap:
        """A flat factor ``value``."""
        return cls(values=((float(value),),))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | float) -> EfficiencyMap:
        """From ``{"pt_edges": [...], "abs_eta_edges": [...], "values": [[...]]}`` or a number."""
        if isinstance(data, (int, float)):
            return cls.constant(float(data))
        unknown = set(data) - {"pt_edges", "abs_eta_edges", "values"}
        if unknown:
            raise ValueError(f"efficiency map: unknown field(s) {sorted(unknown)}")
        return cls(
            pt_edges=tuple(data.get("pt_edges", (0.0, 1e9))),
            abs_eta_edges=tuple(data.get("abs_eta_edges", (0.0, 10.0))),
            values=tuple(tuple(row) for row in data["values"]),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "pt_edges": list(self.pt_edges),
            "abs_eta_edges": list(self.abs_eta_edges),
            "values": [list(r) for r in self.values],
        }

    @property
    def is_identity(self) -> bool:
        return all(v == 1.0 for row in self.values for v in row)

    def __call__(self, pt: np.ndarray, abs_eta: np.ndarray) -> np.ndarray:
        table = np.asarray(self.values)
        i = np.clip(np.searchsorted(self.pt_edges, pt, side="right") - 1, 0, table.shape[0] - 1)
        j = np.clip(
            np.searchsorted(self.abs_eta_edges, abs_eta, side="right") - 1, 0, table.shape[1] - 1
        )
        return table[i, j]


@dataclass(frozen=True)
class DetectorConfig:
    """All detector parameters (GeV, radians). See the module docstring for sources."""

    # --- electrons -----------------------------------------------------------
    electron_eta_max: float = 2.47
    electron_crack: tuple[float, float] = (1.37, 1.52)
    electron_pt_min: float = 10.0
    #: Reconstruction × track-quality efficiency, barrel (|η| < crack) and end-cap.
    electron_reco_eff_barrel: float = 0.97
    electron_reco_eff_endcap: float = 0.92
    #: Medium identification: plateau − turn_on · exp(−(pT − 10 GeV)/scale).
    electron_id_plateau: float = 0.93
    electron_id_turn_on: float = 0.15
    electron_id_scale: float = 25.0
    #: Calorimeter resolution σ_E/E = sampling/√E ⊕ constant (Delphes ATLAS ECAL).
    electron_sampling_term: float = 0.101
    electron_constant_term: float = 0.0017
    # --- muons ---------------------------------------------------------------
    muon_eta_max: float = 2.5
    muon_pt_min: float = 10.0
    muon_eff_plateau: float = 0.96
    #: Efficiency in the spectrometer gap |η| < muon_gap_eta.
    muon_gap_eta: float = 0.1
    muon_gap_eff: float = 0.70
    muon_eff_turn_on: float = 0.03
    muon_eff_scale: float = 10.0
    #: σ_pT/pT = a ⊕ b·pT in |η| regions (Delphes ATLAS card).
    muon_resolution_eta_edges: tuple[float, ...] = (0.0, 0.5, 1.5, 2.5)
    muon_resolution_a: tuple[float, ...] = (0.010, 0.015, 0.025)
    muon_resolution_b: tuple[float, ...] = (1.0e-4, 1.5e-4, 3.5e-4)
    # --- isolation -----------------------------------------------------------
    isolation_cone: float = 0.3
    isolation_pt_min: float = 0.5
    #: Underlying-event (and residual pile-up) emulation for MPI-off generation:
    #: particles per unit η×φ above isolation_pt_min, and their mean pT.
    ue_density: float = 2.0
    ue_mean_pt: float = 1.0
    # --- jets ----------------------------------------------------------------
    jet_radius: float = 0.4
    jet_eta_max: float = 4.5
    jet_pt_min: float = 20.0
    gen_jet_pt_min: float = 10.0
    #: σ_pT/pT = N/pT ⊕ S/√pT ⊕ C.
    jet_noise_term: float = 3.0
    jet_stochastic_term: float = 0.75
    jet_constant_term: float = 0.03
    btag_eff_b: float = 0.77
    btag_eff_c: float = 0.20
    btag_eff_light: float = 0.01
    #: Probability that a reconstructed jet (|η| < electron_eta_max) is reconstructed as an
    #: electron instead (jet → e fake); 0 switches fakes off.
    jet_fake_electron_rate: float = 0.0
    # --- missing transverse momentum -----------------------------------------
    calo_eta_max: float = 4.9
    met_noise: float = 5.0
    met_resolution_sqrt_sumet: float = 0.5
    # --- deliberate e/μ asymmetries ------------------------------------------
    electron_efficiency_scale: EfficiencyMap = field(default_factory=EfficiencyMap)
    muon_efficiency_scale: EfficiencyMap = field(default_factory=EfficiencyMap)
    #: Relative momentum-scale offsets: pT → pT (1 + offset).
    electron_scale_offset: float = 0.0
    muon_scale_offset: float = 0.0
    #: Charge-dependent muon curvature bias δ in TeV⁻¹: q/pT → q/pT + δ.
    muon_sagitta_bias: float = 0.0
    #: Probability to assign the wrong charge to an electron.
    electron_charge_flip_rate: float = 0.0

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"detector parameter {f.name} must be finite, got {value!r}")
        for name in (
            "electron_reco_eff_barrel",
            "electron_reco_eff_endcap",
            "electron_id_plateau",
            "muon_eff_plateau",
            "muon_gap_eff",
            "btag_eff_b",
            "btag_eff_c",
            "btag_eff_light",
            "jet_fake_electron_rate",
            "electron_charge_flip_rate",
        ):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"detector parameter {name} must lie in [0, 1], got {value!r}")
        for name in (
            "isolation_cone",
            "jet_radius",
            "ue_mean_pt",
            "electron_id_scale",
            "muon_eff_scale",
        ):
            value = getattr(self, name)
            if value <= 0:
                raise ValueError(f"detector parameter {name} must be > 0, got {value!r}")
        if self.ue_density < 0:
            raise ValueError(f"detector parameter ue_density must be >= 0, got {self.ue_density!r}")
        n = len(self.muon_resolution_eta_edges) - 1
        if len(self.muon_resolution_a) != n or len(self.muon_resolution_b) != n:
            raise ValueError("muon_resolution_a/b need one entry per muon_resolution_eta_edges bin")
        for name in ("electron_scale_offset", "muon_scale_offset"):
            value = getattr(self, name)
            if value <= -1.0:
                raise ValueError(f"detector parameter {name} must be > -1, got {value!r}")

    # --- serialisation ---------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (efficiency maps as dicts)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = (
                value.to_dict()
                if isinstance(value, EfficiencyMap)
                else (list(value) if isinstance(value, tuple) else value)
            )
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DetectorConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error naming them."""
        names = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise ValueError(f"unknown detector parameter(s): {', '.join(unknown)}")
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            default = getattr(cls(), key)
            if isinstance(default, EfficiencyMap):
                kwargs[key] = EfficiencyMap.from_dict(value)
            elif isinstance(default, tuple):
                kwargs[key] = tuple(value)
            else:
                kwargs[key] = float(value) if isinstance(default, float) else value
        return cls(**kwargs)

    def replace(self, **changes: Any) -> DetectorConfig:
        """A copy with ``changes`` applied (validated)."""
        return dataclasses.replace(self, **changes)

    # --- response functions ----------------------------------------------------
    def electron_efficiency(self, pt: np.ndarray, eta: np.ndarray) -> np.ndarray:
        """Total reconstruction × identification efficiency, including the asymmetry map."""
        abs_eta = np.abs(eta)
        lo, hi = self.electron_crack
        reco = np.where(abs_eta < lo, self.electron_reco_eff_barrel, self.electron_reco_eff_endcap)
        ident = self.electron_id_plateau - self.electron_id_turn_on * np.exp(
            -np.maximum(pt - 10.0, 0.0) / self.electron_id_scale
        )
        inside = (abs_eta < self.electron_eta_max) & ~((abs_eta > lo) & (abs_eta < hi))
        eff = np.where(inside, reco * ident, 0.0) * self.electron_efficiency_scale(pt, abs_eta)
        return np.clip(eff, 0.0, 1.0)

    def muon_efficiency(self, pt: np.ndarray, eta: np.ndarray) -> np.ndarray:
        """Total muon reconstruction × identification efficiency, including the asymmetry map."""
        abs_eta = np.abs(eta)
        plateau = np.where(abs_eta < self.muon_gap_eta, self.muon_gap_eff, self.muon_eff_plateau)
        eff = plateau * (
            1.0 - self.muon_eff_turn_on * np.exp(-np.maximum(pt - 10.0, 0.0) / self.muon_eff_scale)
        )
        eff = np.where(abs_eta < self.muon_eta_max, eff, 0.0)
        return np.clip(eff * self.muon_efficiency_scale(pt, abs_eta), 0.0, 1.0)

    def electron_energy_resolution(self, energy: np.ndarray) -> np.ndarray:
        """Relative σ_E/E."""
        return np.hypot(self.electron_sampling_term / np.sqrt(energy), self.electron_constant_term)

    def muon_pt_resolution(self, pt: np.ndarray, eta: np.ndarray) -> np.ndarray:
        """Relative σ_pT/pT."""
        edges = np.asarray(self.muon_resolution_eta_edges)
        k = np.clip(np.searchsorted(edges, np.abs(eta), side="right") - 1, 0, len(edges) - 2)
        a = np.asarray(self.muon_resolution_a)[k]
        b = np.asarray(self.muon_resolution_b)[k]
        return np.hypot(a, b * pt)

    def jet_pt_resolution(self, pt: np.ndarray) -> np.ndarray:
        """Relative σ_pT/pT."""
        pt = np.maximum(pt, 1e-3)
        return np.sqrt(
            (self.jet_noise_term / pt) ** 2
            + self.jet_stochastic_term**2 / pt
            + self.jet_constant_term**2
        )


def parse_assignments(items: Sequence[str]) -> dict[str, Any]:
    """Parse ``name=value`` strings (CLI ``--detector``) into a dict; values are JSON or floats."""
    import json

    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"detector setting {item!r} is not of the form name=value")
        key, _, raw = item.partition("=")
        key = key.strip()
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            raise ValueError(f"detector setting {key}: cannot parse value {raw!r}") from None
    return out
