"""The pp → e μ processes at 13 TeV: Pythia 8 settings, K-factors and reference cross sections.

Every process is generated at leading order by Pythia 8 with its decays forced
towards final states that can give one electron and one muon:

* W → e ν, μ ν, τ ν and Z → e e, μ μ, τ τ (ν ν for ZZ): the open fraction of
  these *resonance* decays is folded into Pythia's cross section
  (``Info::sigmaGen``) automatically;
* τ → e ν ν, μ ν ν: τ decays are ordinary particle decays, so the open
  branching fraction is carried as a per-event weight (see
  :mod:`symnplm.generation.truth`).

The normalisation is Pythia's LO cross section times a fixed K-factor, chosen so
that the *inclusive* LO cross section (all decays open) reproduces the
higher-order reference value quoted with each process. The LO values behind the
K-factors were measured once with 2×10⁵ process-level events (Wt: 10⁵; seed 7,
NNPDF2.3 QCD+QED LO, Monash defaults, ``6:m0 = 172.5``, ``25:m0 = 125``); the
tests check σ_LO × K against the references within Pythia's MC error.

Pythia 8 has no internal Wt process: ``tw`` uses the leading-order g b → t W
matrix element of :mod:`symnplm.generation.tw_process` as a semi-internal process.

The LFV signal (H → τ e with τ → μ ν ν, and H → τ μ with τ → e ν ν) is added as
two Higgs decay channels with ``meMode = 100``; its normalisation is the Higgs
production cross section times the requested branching ratio, independent of the
width bookkeeping inside Pythia (see :func:`signal_processes`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from symnplm.physics.lhc import SQRT_S_GEV as SQRT_S_GEV  # the generators' √s (re-exported)

__all__ = [
    "BACKGROUNDS",
    "HIGGS_MASS_GEV",
    "SIGNAL_NAMES",
    "TOP_MASS_GEV",
    "ProcessSpec",
    "all_processes",
    "check_branching_ratio",
    "get_process",
    "signal_processes",
]

#: Masses fixed explicitly because the reference cross sections assume them.
TOP_MASS_GEV = 172.5
HIGGS_MASS_GEV = 125.0

# Branching fractions used only to *plan* how many events to generate (so that
# per-event weights come out close to 1). The normalisation itself uses Pythia's
# own tables and cross sections. PDG 2022 and LHCHXSWG YR4 (mH = 125 GeV).
_BR_W_LNU = 0.1086  # per lepton flavour
_BR_Z_LL = 0.033658  # per charged-lepton flavour
_BR_Z_NUNU = 0.2000  # three neutrino flavours
_BR_TAU_E = 0.1782
_BR_TAU_MU = 0.1739
_BR_TAU_LEP = _BR_TAU_E + _BR_TAU_MU
_BR_H_WW = 0.2152
_BR_H_TAUTAU = 0.06256

#: Effective lepton yield of one W forced to (e, μ, τ→e/μ): e + μ + τ × B(τ→ℓνν).
_W_EFF = _BR_W_LNU * (2.0 + _BR_TAU_LEP)
#: Same for a Z forced to (ee, μμ, ττ→ℓℓ).
_Z_LL_EFF = _BR_Z_LL * (2.0 + _BR_TAU_LEP**2)

_W_TO_LEPTONS = ("24:onMode = off", "24:onIfAny = 11 13 15")
_Z_TO_CHARGED_LEPTONS = ("23:onMode = off", "23:onIfAny = 11 13 15")
_TAU_TO_E_OR_MU = (11, 13)


@dataclass(frozen=True)
class ProcessSpec:
    """One generated process (one dataset).

    Parameters
    ----------
    name
        Dataset name, also the CLI name (``ttbar``, ``ztautau``, ...).
    title
        Label for plots and tables.
    group
        Coarser grouping for plots (``ttbar``, ``DY``, ``diboson``, ``top``, ``Higgs``,
        ``signal``).
    settings
        Pythia 8 ``readString`` lines: the hard process and forced resonance decays.
    k_factor
        Multiplies Pythia's LO cross section.
    sigma_ref_pb, sigma_ref_source
        The inclusive higher-order cross section that ``k_factor`` reproduces, and
        where it comes from.
    plan_fraction
        Expected ratio (sample cross section) / ``sigma_ref_pb`` after forced decays
        and τ weights; used only to choose the number of events (weights ≈ 1).
    tau_decays
        Lepton flavours (11, 13) the τ is forced to decay into; the open branching
        fraction becomes the per-τ weight.
    is_signal
        True for the LFV Higgs samples.
    lfv_branching_ratio
        B(H → τ ℓ) of a signal sample, ``None`` otherwise.
    semi_internal
        Name of a process implemented in Python as a Pythia semi-internal process
        (``"gb2tW"``), ``None`` for Pythia's own processes.
    """

    name: str
    title: str
    group: str
    settings: tuple[str, ...]
    k_factor: float
    sigma_ref_pb: float
    sigma_ref_source: str
    plan_fraction: float
    tau_decays: tuple[int, ...] = _TAU_TO_E_OR_MU
    is_signal: bool = False
    lfv_branching_ratio: float | None = None
    semi_internal: str | None = None
    notes: str = field(default="", compare=False)

    @property
    def plan_sigma_pb(self) -> float:
        """Expected sample cross section in pb (after forced decays and τ weights)."""
        br = 1.0 if self.lfv_branching_ratio is None else self.lfv_branching_ratio
        return self.sigma_ref_pb * self.plan_fraction * br

    def planned_events(self, luminosity_fb: float) -> int:
        """Number of events to generate so that per-event weights are ≈ 1 at ``luminosity_fb``."""
        return math.ceil(self.plan_sigma_pb * luminosity_fb * 1000.0)

    def tau_settings(self) -> tuple[str, ...]:
        """Pythia lines forcing τ decays into ``tau_decays``."""
        flavours = " ".join(str(f) for f in self.tau_decays)
        return ("15:onMode = off", f"15:onIfAny = {flavours}")

    def to_metadata(self) -> dict[str, object]:
        """JSON-friendly description for filesets and provenance."""
        return {
            "process": self.name,
            "title": self.title,
            "group": self.group,
            "is_signal": self.is_signal,
            "k_factor": self.k_factor,
            "sigma_ref_pb": self.sigma_ref_pb,
            "sigma_ref_source": self.sigma_ref_source,
            "lfv_branching_ratio": self.lfv_branching_ratio,
            "pythia_settings": list(self.settings) + list(self.tau_settings()),
            "semi_internal": self.semi_internal,
            "notes": self.notes,
        }


_GGF = ("HiggsSM:gg2H = on",)
_VBF = ("HiggsSM:ff2Hff(t:ZZ) = on", "HiggsSM:ff2Hff(t:WW) = on")
_GGF_REF = (48.58, "LHCHXSWG YR4, N3LO QCD + NLO EW, mH = 125.09 GeV", 25.963)
_VBF_REF = (3.782, "LHCHXSWG YR4, NNLO QCD + NLO EW, mH = 125.09 GeV", 3.567)


def _k(sigma_ref_pb: float, sigma_lo_pb: float) -> float:
    """K-factor rounded to 3 decimals, so that the stated number is the used one."""
    return round(sigma_ref_pb / sigma_lo_pb, 3)


BACKGROUNDS: dict[str, ProcessSpec] = {
    spec.name: spec
    for spec in (
        ProcessSpec(
            name="ttbar",
            title=r"$t\bar{t}$",
            group="ttbar",
            settings=("Top:gg2ttbar = on", "Top:qqbar2ttbar = on", *_W_TO_LEPTONS),
            k_factor=_k(831.76, 516.97),
            sigma_ref_pb=831.76,
            sigma_ref_source="Top++ 2.0 NNLO+NNLL, mt = 172.5 GeV",
            plan_fraction=_W_EFF**2,
        ),
        ProcessSpec(
            name="ztautau",
            title=r"$Z/\gamma^*\to\tau\tau$",
            group="DY",
            settings=(
                "WeakSingleBoson:ffbar2gmZ = on",
                "PhaseSpace:mHatMin = 50.",
                "23:onMode = off",
                "23:onIfAny = 15",
            ),
            k_factor=_k(2025.74, 1514.66),
            sigma_ref_pb=2025.74,
            sigma_ref_source="FEWZ NNLO QCD + NLO EW, Z/γ*→ℓℓ per flavour, m(ℓℓ) > 50 GeV",
            plan_fraction=_BR_TAU_LEP**2,
            notes="m(ττ) > 50 GeV; Z/γ* interference included (WeakZ0:gmZmode = 0)",
        ),
        ProcessSpec(
            name="ww",
            title=r"$WW$",
            group="diboson",
            settings=("WeakDoubleBoson:ffbar2WW = on", *_W_TO_LEPTONS),
            k_factor=_k(118.7, 64.416),
            sigma_ref_pb=118.7,
            sigma_ref_source="Gehrmann et al. 2014, NNLO QCD (incl. gg → WW)",
            plan_fraction=_W_EFF**2,
        ),
        ProcessSpec(
            name="wz",
            title=r"$WZ$",
            group="diboson",
            settings=(
                "WeakDoubleBoson:ffbar2ZW = on",
                *_W_TO_LEPTONS,
                *_Z_TO_CHARGED_LEPTONS,
            ),
            k_factor=_k(49.98, 23.454),
            sigma_ref_pb=49.98,
            sigma_ref_source="MATRIX NNLO QCD (Grazzini et al. 2016), 60 < m(Z) < 120 GeV",
            plan_fraction=_W_EFF * _Z_LL_EFF,
            notes="pure Z (no γ*) as in Pythia's ffbar2ZW",
        ),
        ProcessSpec(
            name="zz",
            title=r"$ZZ$",
            group="diboson",
            settings=(
                "WeakDoubleBoson:ffbar2gmZgmZ = on",
                "WeakZ0:gmZmode = 2",
                "23:onMode = off",
                "23:onIfAny = 11 12 13 14 15 16",
            ),
            k_factor=_k(16.91, 9.150),
            sigma_ref_pb=16.91,
            sigma_ref_source="MATRIX NNLO QCD (Cascioli et al. 2014), 60 < m(Z) < 120 GeV",
            plan_fraction=(_Z_LL_EFF + _BR_Z_NUNU) ** 2,
            notes="pure Z (WeakZ0:gmZmode = 2); Z → ℓℓ, νν",
        ),
        ProcessSpec(
            name="tw",
            title=r"$Wt$",
            group="top",
            settings=_W_TO_LEPTONS,
            k_factor=_k(71.7, 53.330),
            sigma_ref_pb=71.7,
            sigma_ref_source="Kidonakis approx. NNLO, tW⁻ + t̄W⁺, mt = 172.5 GeV",
            plan_fraction=_W_EFF**2,
            semi_internal="gb2tW",
            notes="g b → t W⁻ and c.c.; Pythia has no internal Wt process, the LO matrix "
            "element is symnplm.generation.tw_process",
        ),
        ProcessSpec(
            name="ggh_hww",
            title=r"ggF $H\to WW$",
            group="Higgs",
            settings=(*_GGF, "25:onMode = off", "25:onIfMatch = 24 -24", *_W_TO_LEPTONS),
            k_factor=_k(_GGF_REF[0], _GGF_REF[2]),
            sigma_ref_pb=_GGF_REF[0],
            sigma_ref_source=_GGF_REF[1],
            plan_fraction=_BR_H_WW * _W_EFF**2,
        ),
        ProcessSpec(
            name="vbfh_hww",
            title=r"VBF $H\to WW$",
            group="Higgs",
            settings=(*_VBF, "25:onMode = off", "25:onIfMatch = 24 -24", *_W_TO_LEPTONS),
            k_factor=_k(_VBF_REF[0], _VBF_REF[2]),
            sigma_ref_pb=_VBF_REF[0],
            sigma_ref_source=_VBF_REF[1],
            plan_fraction=_BR_H_WW * _W_EFF**2,
        ),
        ProcessSpec(
            name="ggh_htautau",
            title=r"ggF $H\to\tau\tau$",
            group="Higgs",
            settings=(*_GGF, "25:onMode = off", "25:onIfMatch = 15 -15"),
            k_factor=_k(_GGF_REF[0], _GGF_REF[2]),
            sigma_ref_pb=_GGF_REF[0],
            sigma_ref_source=_GGF_REF[1],
            plan_fraction=_BR_H_TAUTAU * _BR_TAU_LEP**2,
        ),
        ProcessSpec(
            name="vbfh_htautau",
            title=r"VBF $H\to\tau\tau$",
            group="Higgs",
            settings=(*_VBF, "25:onMode = off", "25:onIfMatch = 15 -15"),
            k_factor=_k(_VBF_REF[0], _VBF_REF[2]),
            sigma_ref_pb=_VBF_REF[0],
            sigma_ref_source=_VBF_REF[1],
            plan_fraction=_BR_H_TAUTAU * _BR_TAU_LEP**2,
        ),
    )
}

#: Signal names: H → τ e (τ → μνν, fills e-mu) and H → τ μ (τ → eνν, fills mu-e).
SIGNAL_NAMES: tuple[str, ...] = ("ggh_htaue", "vbfh_htaue", "ggh_htaumu", "vbfh_htaumu")


def check_branching_ratio(branching_ratio: float) -> float:
    """Return ``branching_ratio`` as a float, or raise ValueError if not a probability."""
    try:
        value = float(branching_ratio)
    except (TypeError, ValueError):
        raise ValueError(f"LFV branching ratio must be a number, got {branching_ratio!r}") from None
    if not (0.0 <= value <= 1.0) or math.isnan(value):
        raise ValueError(f"LFV branching ratio must lie in [0, 1], got {branching_ratio!r}")
    return value


def signal_processes(branching_ratio: float) -> dict[str, ProcessSpec]:
    """The four LFV Higgs samples at B(H → τℓ) = ``branching_ratio``.

    The channel H → τ⁺ℓ⁻ + τ⁻ℓ⁺ is the only open Higgs decay; Pythia's cross
    section is divided by its open fraction (read back after initialisation) and
    multiplied by ``branching_ratio`` in :mod:`symnplm.generation.event_generator`,
    so the value Pythia uses internally for the channel (here 1%, it only changes
    the Higgs width by 1%) does not matter.
    """
    br = check_branching_ratio(branching_ratio)
    out: dict[str, ProcessSpec] = {}
    for production, prod_settings, ref in (("ggh", _GGF, _GGF_REF), ("vbfh", _VBF, _VBF_REF)):
        for lepton, lepton_id, tau_to, tau_br, label in (
            ("e", 11, 13, _BR_TAU_MU, r"\tau e"),
            ("mu", 13, 11, _BR_TAU_E, r"\tau\mu"),
        ):
            name = f"{production}_htau{lepton}"
            out[name] = ProcessSpec(
                name=name,
                title=("ggF" if production == "ggh" else "VBF") + rf" $H\to {label}$",
                group="signal",
                settings=(
                    *prod_settings,
                    "25:onMode = off",
                    f"25:addChannel = 1 0.005 100 15 -{lepton_id}",
                    f"25:addChannel = 1 0.005 100 -15 {lepton_id}",
                ),
                k_factor=_k(ref[0], ref[2]),
                sigma_ref_pb=ref[0],
                sigma_ref_source=ref[1],
                plan_fraction=tau_br,
                tau_decays=(tau_to,),
                is_signal=True,
                lfv_branching_ratio=br,
                notes=f"H → τ{lepton} with τ → {'μ' if tau_to == 13 else 'e'}νν",
            )
    return out


def all_processes(branching_ratio: float = 0.01) -> dict[str, ProcessSpec]:
    """Backgrounds and signals, by name."""
    return {**BACKGROUNDS, **signal_processes(branching_ratio)}


def get_process(name: str, branching_ratio: float = 0.01) -> ProcessSpec:
    """The process called ``name``; ValueError listing the known names otherwise."""
    processes = all_processes(branching_ratio)
    if name not in processes:
        raise ValueError(f"unknown process {name!r}; known processes: {', '.join(processes)}")
    return processes[name]
