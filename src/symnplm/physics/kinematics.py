"""Kinematics of an e-mu pair: roles (leading / subleading), the two-body features, m_ll, m_coll.

All momenta and masses are in GeV. The functions take flat (one entry per event)
numpy or awkward arrays, so they serve the processor (awkward) and the tests
(numpy) alike. Angles and masses come from ``vector`` momenta of the leptons
(``deltaphi``, ``deltaeta``, ``mass``; Δφ wrapped into [−π, π)).

Collinear mass
--------------
In H → ℓτ with a leptonic τ (τ → ℓ' ν ν̄) the neutrinos are boosted along the
visible τ product, so the missing transverse momentum is attributed to it
("collinear approximation"). With the **leading** lepton taken as the prompt
lepton ℓ_H and the **subleading** one as the τ product ℓ_τ (the convention of the
LFV H → ℓτ searches and of arXiv:2401.09530), the ATLAS form is

    m_coll = sqrt( 2 pT(ℓ_H) (pT(ℓ_τ) + MET) (cosh Δη − cos Δφ) ),

with Δη, Δφ between the two leptons. For massless leptons this equals
m_vis / sqrt(x), x = pT(ℓ_τ) / (pT(ℓ_τ) + MET): the visible mass divided by the
square root of the momentum fraction carried by the visible τ product.

The CMS form (``form="cms"``) uses only the component of MET along ℓ_τ,
MET_∥ = MET cos(φ_MET − φ(ℓ_τ)), in x, and the visible mass computed from the
lepton four-vectors (with masses). Negative projections (MET pointing away from
ℓ_τ, which the collinear picture cannot produce) are set to zero, so that
m_coll ≥ m_vis.
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

import awkward as ak
import numpy as np
import vector

__all__ = [
    "EMU_COLUMNS",
    "TWO_BODY_FEATURES",
    "CollinearForm",
    "Kinematics",
    "by_role",
    "collinear_mass",
    "delta_phi",
    "emu_features",
    "invariant_mass",
    "momenta",
]

#: The five two-body features of the NPLM multivariate studies, ordered by role.
TWO_BODY_FEATURES: tuple[str, ...] = ("pt_lead", "eta_lead", "pt_sublead", "eta_sublead", "dphi")

#: Every per-event column the e-mu selection produces (GeV for momenta and masses).
EMU_COLUMNS: tuple[str, ...] = (
    "m_coll",
    "pt_lead",
    "eta_lead",
    "phi_lead",
    "pt_sublead",
    "eta_sublead",
    "phi_sublead",
    "dphi",
    "m_ll",
    "met",
    "met_phi",
    "n_jets",
    "n_bjets",
    "pt_e",
    "eta_e",
    "phi_e",
    "charge_e",
    "pt_mu",
    "eta_mu",
    "phi_mu",
    "charge_mu",
    "lead_flavour",
)

CollinearForm = Literal["atlas", "cms"]


def _directions(phi: Any) -> Any:
    """Unit transverse vectors at azimuths ``phi`` (scalar, numpy or awkward)."""
    if isinstance(phi, ak.Array):
        return vector.zip({"rho": ak.ones_like(phi), "phi": phi})
    phi = np.asarray(phi, dtype=np.float64)
    if phi.ndim == 0:
        return vector.obj(rho=1.0, phi=float(phi))
    return vector.array({"rho": np.ones_like(phi), "phi": phi})


def delta_phi(phi1: Any, phi2: Any) -> Any:
    """φ1 − φ2 wrapped into [−π, π) (``vector``'s ``deltaphi`` of the two directions).

    >>> round(float(delta_phi(3.0, -3.0)), 6)  # 6 − 2π: across the ±π boundary
    -0.283185
    """
    return _directions(phi1).deltaphi(_directions(phi2))


class Kinematics(NamedTuple):
    """Flat (one per event) float64 arrays of one lepton per event."""

    pt: np.ndarray
    eta: np.ndarray
    phi: np.ndarray
    mass: np.ndarray

    @classmethod
    def of(cls, obj: Any) -> Kinematics:
        """From anything with pt, eta, phi, mass fields (awkward records, a namespace)."""
        return cls(
            *(np.asarray(ak.to_numpy(getattr(obj, f)), dtype=np.float64) for f in cls._fields)
        )


def momenta(pt: Any, eta: Any, phi: Any, mass: Any | None = None) -> Any:
    """``vector`` momenta from pt, eta, phi and mass (awkward or numpy arrays): four-vectors,
    or three-vectors without ``mass`` (enough for Δη, Δφ and ΔR)."""
    coords = {"pt": pt, "eta": eta, "phi": phi}
    if mass is not None:
        coords["mass"] = mass
    if any(isinstance(x, ak.Array) for x in coords.values()):
        return vector.zip(coords)
    return vector.array({k: np.asarray(v, dtype=np.float64) for k, v in coords.items()})


def _momenta_of(obj: Any) -> Any:
    """``obj`` as ``vector`` momenta: as it is if it already is one, else from its pt, eta,
    phi (and mass, where it has one) fields."""
    if isinstance(obj, vector.Vector):
        return obj
    return momenta(obj.pt, obj.eta, obj.phi, getattr(obj, "mass", None))


def invariant_mass(a: Any, b: Any) -> Any:
    """Invariant mass of two objects with pt, eta, phi, mass fields (or ``vector`` momenta)."""
    return (_momenta_of(a) + _momenta_of(b)).mass


def by_role(electron: Any, muon: Any) -> tuple[Kinematics, Kinematics]:
    """(leading, subleading) lepton of each event, by pT; ties count the electron as leading."""
    e, mu = Kinematics.of(electron), Kinematics.of(muon)
    e_leads = e.pt >= mu.pt
    lead = Kinematics(*(np.where(e_leads, x, y) for x, y in zip(e, mu, strict=True)))
    sublead = Kinematics(*(np.where(e_leads, y, x) for x, y in zip(e, mu, strict=True)))
    return lead, sublead


def collinear_mass(
    lead: Any, sublead: Any, met_pt: Any, met_phi: Any, form: CollinearForm = "atlas"
) -> Any:
    """Collinear mass of a lepton pair with the subleading lepton as the τ product.

    Parameters
    ----------
    lead, sublead
        Records with ``pt``, ``eta``, ``phi`` (and ``mass`` for ``form="cms"``), one per event;
        ``lead`` is ℓ_H, ``sublead`` is ℓ_τ.
    met_pt, met_phi
        Missing transverse momentum magnitude and direction.
    form
        ``"atlas"``: sqrt(2 pT(ℓ_H) (pT(ℓ_τ) + MET) (cosh Δη − cos Δφ)) (module docstring);
        ``"cms"``: m_vis / sqrt(x) with MET projected on ℓ_τ.
    """
    if form not in ("atlas", "cms"):
        raise ValueError(f"collinear mass form must be 'atlas' or 'cms', got {form!r}")
    lead, sublead = _momenta_of(lead), _momenta_of(sublead)
    if form == "atlas":
        deta, dphi = lead.deltaeta(sublead), lead.deltaphi(sublead)
        return np.sqrt(2 * lead.pt * (sublead.pt + met_pt) * (np.cosh(deta) - np.cos(dphi)))
    met_along = np.maximum(met_pt * np.cos(delta_phi(met_phi, sublead.phi)), 0.0)
    x = sublead.pt / (sublead.pt + met_along)
    return invariant_mass(lead, sublead) / np.sqrt(x)


def emu_features(
    electron: ak.Array,
    muon: ak.Array,
    met_pt: Any,
    met_phi: Any,
    form: CollinearForm = "atlas",
) -> dict[str, np.ndarray]:
    """All per-event columns of :data:`EMU_COLUMNS` except ``n_jets`` and ``n_bjets``, as
    float64 numpy arrays.

    ``electron`` and ``muon`` hold one lepton per event (pt, eta, phi, mass, charge).
    The two-body features are ordered by role, so that ``emu`` and ``mue`` events
    are described in the same coordinates; ``dphi`` is |φ_lead − φ_sublead| in [0, π]
    (the e-mu system is symmetric under φ → −φ, so the sign carries no information).
    """
    lead, sublead = by_role(electron, muon)
    e, mu = Kinematics.of(electron), Kinematics.of(muon)
    # m_coll and Δφ from the leptons by role, m_ll from them by flavour: vector adds two
    # momenta in polar coordinates, not symmetrically in the terms, and e + μ is the same
    # bit for bit whichever of them leads
    p_lead, p_sublead = momenta(*lead), momenta(*sublead)
    met_pt = np.asarray(ak.to_numpy(met_pt), dtype=np.float64)
    met_phi = np.asarray(ak.to_numpy(met_phi), dtype=np.float64)
    cols = {
        "m_coll": collinear_mass(p_lead, p_sublead, met_pt, met_phi, form),
        "pt_lead": lead.pt,
        "eta_lead": lead.eta,
        "phi_lead": lead.phi,
        "pt_sublead": sublead.pt,
        "eta_sublead": sublead.eta,
        "phi_sublead": sublead.phi,
        "dphi": np.abs(p_lead.deltaphi(p_sublead)),
        "m_ll": invariant_mass(e, mu),
        "met": met_pt,
        "met_phi": met_phi,
        "pt_e": e.pt,
        "eta_e": e.eta,
        "phi_e": e.phi,
        "charge_e": ak.to_numpy(electron.charge),
        "pt_mu": mu.pt,
        "eta_mu": mu.eta,
        "phi_mu": mu.phi,
        "charge_mu": ak.to_numpy(muon.charge),
        # +1 the electron leads (emu), -1 the muon leads (mue), 0 a tie (neither)
        "lead_flavour": np.sign(e.pt - mu.pt),
    }
    return {k: np.asarray(ak.to_numpy(v), dtype=np.float64) for k, v in cols.items()}
