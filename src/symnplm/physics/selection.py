"""The e-mu event selection and its categories.

Two named selections (:data:`SELECTIONS`):

``lfuv`` (the default)
    The same fiducial region for both flavours, so that e ↔ μ is a symmetry of the
    selection: pT ≥ 15 GeV, |η| ≤ 2.3, the calorimeter crack 1.37 ≤ |η| ≤ 1.52 and
    the muon-spectrometer gap |η| ≤ 0.1 vetoed for electrons *and* muons
    (:data:`ETA_VETOES`), one relative-isolation cut (< 0.15) for both. Where one
    flavour is not reconstructed at all, no weight can restore the symmetry; vetoing
    the region for both flavours can.
``paper``
    arXiv:2401.09530 Sec. III A: isolation < 0.15 (electrons) and < 0.25 (muons) of
    the same isolation variable, no η vetoes.

Both add an identification flag where the input has one (``cutBased ≥ 3`` for
electrons, ``tightId`` for muons). Events have exactly one selected electron and
one selected muon of opposite charge (same charge for the control region).
Categories: ``emu`` (pT_e > pT_μ) and ``mue`` (pT_μ > pT_e) — an exact tie belongs
to neither —, and the charge split ``ep_mum`` / ``em_mup`` (``ep_mup`` / ``em_mum``
for same-sign pairs).

FSR: electrons are calorimeter clusters and include collinear photons, muons are
tracks and do not; the selection does not dress muons. The resulting difference in
the pT response is, to first order, a per-lepton function of (pT, η) and is absorbed
by the efficiency-ratio map (:mod:`symnplm.physics.efficiency`) measured on a sample
with the same detector.

The functions take awkward record arrays with the fields named in the cuts
(``pt``, ``eta``, ``charge`` and the isolation / ID fields), jagged per event.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import awkward as ak
import numpy as np

from symnplm.physics.kinematics import momenta

__all__ = [
    "ELECTRON_CUTS",
    "ETA_VETOES",
    "ISOLATION_MAX",
    "JET_CUTS",
    "MUON_CUTS",
    "PAPER_ELECTRON_CUTS",
    "PAPER_MUON_CUTS",
    "SELECTIONS",
    "ChargeMode",
    "EMuSelection",
    "JetCuts",
    "LeptonCuts",
    "category_filters",
    "category_names",
    "charge_category",
    "count_jets",
    "emu_categories",
    "jet_multiplicities",
    "lepton_cuts",
    "lepton_mask",
    "select_emu",
]

ChargeMode = Literal["opposite", "same"]


@dataclass(frozen=True)
class LeptonCuts:
    """Selection of one lepton flavour.

    Parameters
    ----------
    pt_min
        Minimum transverse momentum in GeV (inclusive).
    abseta_max
        Maximum |η| (inclusive).
    iso_max
        Relative isolation must be below this value.
    iso_field
        Name of the isolation field (NanoAOD ``<Flavour>_<iso_field>``).
    id_field
        Name of the identification field, or ``None`` for no ID requirement.
    id_min
        The ID field must be ≥ this value (booleans count as 0/1; NanoAOD
        ``Electron_cutBased``: 1 veto, 2 loose, 3 medium, 4 tight).
    eta_vetoes
        ``((low, high), ...)``: veto leptons with low ≤ |η| ≤ high (cracks, gaps).
    """

    pt_min: float = 15.0
    abseta_max: float = 2.3
    iso_max: float = 0.15
    iso_field: str = "pfRelIso03_all"
    id_field: str | None = None
    id_min: float = 1
    eta_vetoes: tuple[tuple[float, float], ...] = ()

    def __post_init__(self) -> None:
        vetoes = tuple((float(lo), float(hi)) for lo, hi in self.eta_vetoes)
        for lo, hi in vetoes:
            if not (0.0 <= lo < hi):
                raise ValueError(f"|eta| veto ({lo}, {hi}) must have 0 <= low < high")
        object.__setattr__(self, "eta_vetoes", vetoes)

    @property
    def fields(self) -> tuple[str, ...]:
        """Record fields these cuts read, besides the kinematics."""
        return (self.iso_field,) + ((self.id_field,) if self.id_field else ())


#: |η| regions vetoed for both flavours by the ``lfuv`` selection: the muon-spectrometer
#: gap and the electromagnetic-calorimeter barrel/end-cap crack (ATLAS-like values).
ETA_VETOES: tuple[tuple[float, float], ...] = ((0.0, 0.1), (1.37, 1.52))
#: One isolation cut for both flavours in the ``lfuv`` selection.
ISOLATION_MAX = 0.15

#: Electron cuts of the ``lfuv`` selection: isolation < 0.15, cut-based ID medium or tighter.
ELECTRON_CUTS = LeptonCuts(
    iso_max=ISOLATION_MAX, id_field="cutBased", id_min=3, eta_vetoes=ETA_VETOES
)
#: Muon cuts of the ``lfuv`` selection: isolation < 0.15, tight ID, the same vetoes.
MUON_CUTS = LeptonCuts(iso_max=ISOLATION_MAX, id_field="tightId", id_min=1, eta_vetoes=ETA_VETOES)
#: Electron cuts of arXiv:2401.09530 (isolation < 0.15, no vetoes).
PAPER_ELECTRON_CUTS = LeptonCuts(iso_max=0.15, id_field="cutBased", id_min=3)
#: Muon cuts of arXiv:2401.09530 (isolation < 0.25, no vetoes).
PAPER_MUON_CUTS = LeptonCuts(iso_max=0.25, id_field="tightId", id_min=1)
#: Named selections: (electron cuts, muon cuts).
SELECTIONS: dict[str, tuple[LeptonCuts, LeptonCuts]] = {
    "lfuv": (ELECTRON_CUTS, MUON_CUTS),
    "paper": (PAPER_ELECTRON_CUTS, PAPER_MUON_CUTS),
}


def lepton_cuts(
    selection: str = "lfuv",
    *,
    eta_vetoes: Sequence[tuple[float, float]] | None = None,
    isolation: float | None = None,
) -> tuple[LeptonCuts, LeptonCuts]:
    """(electron, muon) cuts of a named selection, with the vetoes or isolation replaced.

    ``eta_vetoes`` and ``isolation`` apply to both flavours alike, so the e ↔ μ symmetry
    of the ``lfuv`` selection is kept.
    """
    if selection not in SELECTIONS:
        raise ValueError(f"unknown selection {selection!r}; choose from {sorted(SELECTIONS)}")
    changes: dict[str, Any] = {}
    if eta_vetoes is not None:
        changes["eta_vetoes"] = tuple(tuple(v) for v in eta_vetoes)
    if isolation is not None:
        if not isolation > 0:
            raise ValueError(f"isolation cut must be positive, got {isolation}")
        changes["iso_max"] = float(isolation)
    electron, muon = SELECTIONS[selection]
    return replace(electron, **changes), replace(muon, **changes)


@dataclass(frozen=True)
class JetCuts:
    """Jets counted in ``n_jets``: pT, |η| and separation ΔR from the selected leptons;
    those of them counted in ``n_bjets``: b-tag score above ``btag_min`` within the
    tracker (|η| < ``btag_abseta_max``).

    The default ``btag_min = 0.5`` is the working point at which the parametric
    detector of :mod:`symnplm.generation` defines its tagging efficiencies; on CMS
    NanoAOD use the era's DeepJet working point (medium: 0.2783 for 2018 UL).
    """

    pt_min: float = 30.0
    abseta_max: float = 4.7
    lepton_dr_min: float = 0.4
    btag_field: str = "btagDeepFlavB"
    btag_min: float = 0.5
    btag_abseta_max: float = 2.5


#: Jet defaults for ``n_jets``.
JET_CUTS = JetCuts()


def lepton_mask(leptons: ak.Array, cuts: LeptonCuts) -> ak.Array:
    """Per-lepton boolean mask (jagged like ``leptons``) of the leptons passing ``cuts``."""
    abseta = abs(leptons.eta)
    mask = (
        (leptons.pt >= cuts.pt_min)
        & (abseta <= cuts.abseta_max)
        & (leptons[cuts.iso_field] < cuts.iso_max)
    )
    if cuts.id_field is not None:
        mask = mask & (leptons[cuts.id_field] >= cuts.id_min)
    for low, high in cuts.eta_vetoes:
        mask = mask & ~((abseta >= low) & (abseta <= high))
    return mask


@dataclass(frozen=True)
class EMuSelection:
    """Result of :func:`select_emu`.

    Attributes
    ----------
    steps
        Cumulative event masks, in order, for the cutflow (``one_electron``,
        ``one_muon``, ``opposite_charge`` or ``same_charge``).
    mask
        Events passing everything (numpy bool, one per input event).
    electron, muon
        The selected lepton of each *passing* event (length ``mask.sum()``).
    cuts
        Each cut alone, in order (what a coffea ``PackedSelection`` holds: N-1 studies).
    """

    steps: Mapping[str, np.ndarray]
    mask: np.ndarray
    electron: ak.Array
    muon: ak.Array
    cuts: Mapping[str, np.ndarray]


def select_emu(
    electrons: ak.Array,
    muons: ak.Array,
    electron_cuts: LeptonCuts = ELECTRON_CUTS,
    muon_cuts: LeptonCuts = MUON_CUTS,
    charge: ChargeMode = "opposite",
) -> EMuSelection:
    """Events with exactly one selected electron and one selected muon of the required charges."""
    if charge not in ("opposite", "same"):
        raise ValueError(f"charge must be 'opposite' or 'same', got {charge!r}")
    good_e = electrons[lepton_mask(electrons, electron_cuts)]
    good_mu = muons[lepton_mask(muons, muon_cuts)]
    # firsts() is None for events without leptons (product 0: fails either charge cut);
    # events with several leptons fail one_electron / one_muon anyway
    product = ak.to_numpy(ak.fill_none(ak.firsts(good_e.charge) * ak.firsts(good_mu.charge), 0))
    cuts = {
        "one_electron": ak.to_numpy(ak.num(good_e, axis=1) == 1),
        "one_muon": ak.to_numpy(ak.num(good_mu, axis=1) == 1),
        f"{charge}_charge": (product < 0) if charge == "opposite" else (product > 0),
    }
    steps = dict(zip(cuts, np.logical_and.accumulate(list(cuts.values())), strict=True))
    passed = steps[f"{charge}_charge"]
    return EMuSelection(
        steps=steps,
        mask=passed,
        electron=good_e[passed][:, 0],
        muon=good_mu[passed][:, 0],
        cuts=cuts,
    )


def charge_category(electron_charge: int, muon_charge: int) -> str:
    """Name of a charge category, e.g. ``ep_mum`` for e⁺μ⁻."""
    sign = {1: "p", -1: "m"}
    return f"e{sign[int(np.sign(electron_charge))]}_mu{sign[int(np.sign(muon_charge))]}"


def category_names(charge: ChargeMode = "opposite") -> tuple[str, ...]:
    """All category names for a charge mode: ``emu``, ``mue`` and the two charge categories."""
    if charge == "opposite":
        return ("emu", "mue", charge_category(1, -1), charge_category(-1, 1))
    if charge == "same":
        return ("emu", "mue", charge_category(1, 1), charge_category(-1, -1))
    raise ValueError(f"charge must be 'opposite' or 'same', got {charge!r}")


def category_filters(charge: ChargeMode = "opposite") -> dict[str, dict[str, float]]:
    """Every category of :func:`category_names` as the column values its events have
    (``lead_flavour`` for emu / mue, the charges for the charge categories): the same
    events as :func:`emu_categories` selects, as a filter on stored columns."""
    filters: dict[str, dict[str, float]] = {
        "emu": {"lead_flavour": 1.0},
        "mue": {"lead_flavour": -1.0},
    }
    for name in category_names(charge)[2:]:
        filters[name] = {
            "charge_e": 1.0 if name.startswith("ep") else -1.0,
            "charge_mu": 1.0 if name.endswith("mup") else -1.0,
        }
    return filters


def emu_categories(
    pt_e: Any, pt_mu: Any, charge_e: Any, charge_mu: Any, charge: ChargeMode = "opposite"
) -> dict[str, np.ndarray]:
    """Boolean masks of every category in :func:`category_names`, from per-event columns."""
    pt_e, pt_mu = np.asarray(pt_e), np.asarray(pt_mu)
    qe, qmu = np.sign(np.asarray(charge_e)), np.sign(np.asarray(charge_mu))
    masks = {"emu": pt_e > pt_mu, "mue": pt_mu > pt_e}
    for name in category_names(charge)[2:]:
        want_e = 1 if name.startswith("ep") else -1
        want_mu = 1 if name.endswith("mup") else -1
        masks[name] = (qe == want_e) & (qmu == want_mu)
    return masks


def jet_multiplicities(
    jets: ak.Array, leptons: list[Any], cuts: JetCuts = JET_CUTS
) -> dict[str, np.ndarray]:
    """``n_jets`` and ``n_bjets`` per event (:class:`JetCuts`), jets separated from every
    lepton in ``leptons``.

    ``jets`` is jagged (pt, eta, phi and, for ``n_bjets``, ``cuts.btag_field``); each
    entry of ``leptons`` has one lepton (pt, eta, phi) per event; ΔR is ``vector``'s
    ``deltaR``. Without the b-tag field ``n_bjets`` is -1 (unknown), as ``n_jets`` is for
    inputs without jets.
    """
    # on the flat jet content: one numpy pass instead of jagged broadcasting per cut
    counts = ak.to_numpy(ak.num(jets, axis=1))
    coords = ("pt", "eta", "phi")
    pt, eta, phi = (ak.to_numpy(ak.flatten(jets[f], axis=1)) for f in coords)
    keep = (pt > cuts.pt_min) & (np.abs(eta) < cuts.abseta_max)
    jet_p = momenta(pt, eta, phi)
    for lep in leptons:
        # the lepton of each jet's event, repeated along that event's jets
        lep_p = momenta(*(np.repeat(ak.to_numpy(getattr(lep, f)), counts) for f in coords))
        keep &= jet_p.deltaR(lep_p) > cuts.lepton_dr_min
    event = np.repeat(np.arange(len(counts)), counts)

    def per_event(jet_mask: np.ndarray) -> np.ndarray:
        return np.bincount(event, weights=jet_mask, minlength=len(counts)).astype(np.float64)

    out = {"n_jets": per_event(keep)}
    if cuts.btag_field in ak.fields(jets):
        score = ak.to_numpy(ak.flatten(jets[cuts.btag_field], axis=1))
        tagged = keep & (score > cuts.btag_min) & (np.abs(eta) < cuts.btag_abseta_max)
        out["n_bjets"] = per_event(tagged)
    else:
        out["n_bjets"] = np.full(len(counts), -1.0)
    return out


def count_jets(jets: ak.Array, leptons: list[Any], cuts: JetCuts = JET_CUTS) -> np.ndarray:
    """Number of jets per event passing ``cuts`` and separated from every lepton in
    ``leptons`` (``n_jets`` of :func:`jet_multiplicities`)."""
    return jet_multiplicities(jets, leptons, cuts)["n_jets"]
