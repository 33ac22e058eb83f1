"""g b → t W⁻ (and c.c.) as a Pythia 8 semi-internal process.

Pythia 8 has no internal Wt process, so the leading-order matrix element is
implemented here and handed to Pythia with ``Pythia.setSigmaPtr``; showering,
hadronisation and the t, W decays are Pythia's as for any internal process.

Matrix element. For b(p1) g(p2) → t(p3) W⁻(p4) with s = (p1+p2)²,
t = (p1−p3)², u = (p2−p3)², m = m_t, M = m_W, the two diagrams (s-channel b,
u-channel t) give, summed over all spins and colours,

    Σ|M|² = g_s² g² |V_tb|² X(s, t; m², M²),
    X = 4 N / (M² s (s + t − M²)²)   with  s + t − M² = m² − u,

where N is the homogeneous quintic in (s, t, m², M²) of :func:`numerator`,
including the longitudinal W polarisation (the −k_μ k_ν/M² term of the W
polarisation sum, proportional to m²). N was obtained by evaluating the Dirac
trace with explicit γ matrices and solving for the 56 coefficients of a quintic;
the test suite re-derives X from the trace at random phase-space points
(``tests/generation/test_tw_process.py``). In the massless limit X reduces to
the QCD Compton form 8 (−u/s − s/u − 2 t M²/(s u)).

With g_s² = 4π α_s and g² = 4π α_em / sin²θ_W, and averaging over 2·2·3·8
initial spins and colours,

    dσ/dt = π α_s α_em |V_tb|² X / (96 sin²θ_W s²).

The open fraction of the forced t and W decays is *not* included in σ̂ (a Python
process cannot reach Pythia's particle data); it is a constant that
:mod:`symnplm.generation.event_generator` multiplies in after initialisation.
"""

from __future__ import annotations

import math

import pythia8mc

__all__ = ["PROCESS_CODE", "SigmaGB2TW", "dsigma_dt", "numerator", "trace_x"]

#: Pythia process code for the Python process (user range).
PROCESS_CODE = 9901
_B = 5
_GLUON = 21


def numerator(s: float, t: float, m2: float, mw2: float) -> float:
    """The quintic N(s, t, m², M²) of the spin/colour-summed |M|² (see module docstring)."""
    return (
        -2 * mw2**4
        + 3 * mw2**3 * m2
        + 6 * mw2**3 * s
        + 2 * mw2**3 * t
        - 2 * mw2**2 * m2**2
        + mw2**2 * m2 * s
        + mw2**2 * m2 * t
        - 8 * mw2**2 * s**2
        - 8 * mw2**2 * s * t
        - 2 * mw2**2 * t**2
        - 2 * mw2 * m2**3
        + 4 * mw2 * m2**2 * t
        - 4 * mw2 * m2 * s * t
        - 5 * mw2 * m2 * t**2
        + 4 * mw2 * s**3
        + 8 * mw2 * s**2 * t
        + 6 * mw2 * s * t**2
        + 2 * mw2 * t**3
        + 2 * m2**3 * t
        - 2 * m2**2 * s * t
        - 2 * m2**2 * t**2
        + m2 * s * t**2
        + m2 * t**3
    )


def trace_x(s: float, t: float, m2: float, mw2: float) -> float:
    """X = Σ|M|² / (g_s² g² |V_tb|²) for b g → t W⁻; t is measured between b and t."""
    return 4.0 * numerator(s, t, m2, mw2) / (mw2 * s * (s + t - mw2) ** 2)


def dsigma_dt(
    s: float,
    t: float,
    m2: float,
    mw2: float,
    alpha_s: float,
    alpha_em: float,
    sin2w: float,
    vtb2: float,
) -> float:
    """dσ̂/dt̂ in GeV⁻⁴ (Pythia's unit convention for 2 → 2 processes)."""
    return math.pi * alpha_s * alpha_em * vtb2 * trace_x(s, t, m2, mw2) / (96.0 * sin2w * s * s)


class SigmaGB2TW(pythia8mc.Sigma2Process):
    """Pythia semi-internal process g b → t W⁻ + c.c. (code 9901)."""

    def __init__(self) -> None:
        super().__init__()
        self._sigma_bg = 0.0
        self._sigma_gb = 0.0

    def name(self) -> str:
        return "g b -> t W- (symnplm)"

    def code(self) -> int:
        return PROCESS_CODE

    def inFlux(self) -> str:
        return "qg"

    def id3Mass(self) -> int:
        return 6

    def id4Mass(self) -> int:
        return 24

    def initProc(self) -> None:
        self._sin2w = self.parm("StandardModel:sin2thetaW")
        self._vtb2 = self.parm("StandardModel:Vtb") ** 2

    def sigmaKin(self) -> None:
        # Pythia's tH is measured from incoming parton 1: it is the b–t transfer when the
        # b comes from beam A, and uH is when it comes from beam B.
        args = (self.s3, self.s4, self.alpS, self.alpEM, self._sin2w, self._vtb2)
        self._sigma_bg = dsigma_dt(self.sH, self.tH, *args)
        self._sigma_gb = dsigma_dt(self.sH, self.uH, *args)

    def sigmaHat(self) -> float:
        if abs(self.id1) == _B and self.id2 == _GLUON:
            return self._sigma_bg
        if self.id1 == _GLUON and abs(self.id2) == _B:
            return self._sigma_gb
        return 0.0

    def setIdColAcol(self) -> None:
        quark = self.id1 if self.id2 == _GLUON else self.id2
        top, w = (6, -24) if quark > 0 else (-6, 24)
        self.setId(self.id1, self.id2, top, w)
        # Colour flows b(1) g(2,1) -> t(2); mirrored when the gluon comes from beam A.
        if self.id2 == _GLUON:
            self.setColAcol(1, 0, 2, 1, 2, 0, 0, 0)
        else:
            self.setColAcol(2, 1, 1, 0, 2, 0, 0, 0)
        if quark < 0:
            self.swapColAcol()

    def weightDecay(self, process, i_res_beg: int, i_res_end: int) -> float:
        # Top decay angles as for Pythia's own top processes (t → W b → ℓ ν b correlations).
        if process[process[i_res_beg].mother1()].idAbs() == 6:
            return self.weightTopDecay(process, i_res_beg, i_res_end)
        return 1.0
