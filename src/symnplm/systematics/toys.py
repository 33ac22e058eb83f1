"""One-dimensional toys with known nuisance effects (tests and validation studies).

The background is b0(x) = e^{-x} (2401.09530 Eq. 25). Nuisances, ν in standard
deviations:

* momentum scale: x → x e^{σ_s ν} (the observable is a mass, linear in the lepton
  momenta). For b0 this gives an exponential whose slope depends on ν,
  log r(x; ν) = -σ_s ν - x (e^{-σ_s ν} - 1), i.e. δ_1 = σ_s (x - 1),
  δ_2 = -σ_s² x / 2 at second order;
* normalisation: yield × e^{σ_N ν} (log r = σ_N ν);
* efficiency-ratio shape: each event kept with probability
  ε_0 exp(σ_ε ν tanh(x - 1)) (log r = σ_ε ν tanh(x - 1) exactly, while ε ≤ 1).

Varied samples are made like the processors make them: the *same* generated
events, shifted or re-selected, so that nominal and varied samples are correlated
(:func:`scale_variations`, :func:`efficiency_variations`).
Every draw takes an explicit ``numpy.random.Generator``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from symnplm.io.samples import Sample
from symnplm.systematics.delta_learning import VariationSet

__all__ = [
    "AsymmetryToy",
    "ExponentialNuisanceToy",
    "efficiency_shape",
    "efficiency_variations",
    "scale_log_ratio",
    "scale_variations",
]


def scale_log_ratio(x: np.ndarray, nu: float, sigma: float) -> np.ndarray:
    """Exact log r(x; ν) of the momentum scale on b0: -σν - x (e^{-σν} - 1), x ≥ 0."""
    return -sigma * nu - np.asarray(x, dtype=np.float64) * np.expm1(-sigma * nu)


def efficiency_shape(x: np.ndarray) -> np.ndarray:
    """g(x) = tanh(x - 1): the x-dependence of the efficiency-ratio nuisance (bounded)."""
    return np.tanh(np.asarray(x, dtype=np.float64) - 1.0)


def _named(x: np.ndarray, name: str, **prov: object) -> Sample:
    return Sample(x, names=["x"], provenance={"toy": prov}, name=name)


def scale_variations(
    rng: np.random.Generator,
    n: int,
    sigma: float,
    nus: Sequence[float] = (-2.0, -1.0, 1.0, 2.0),
    source: str = "scale",
) -> VariationSet:
    """Nominal b0 sample of ``n`` events and the same events scaled by e^{σν} for each ν."""
    x = rng.exponential(1.0, size=int(n))
    varied = {
        float(nu): _named(x * np.exp(sigma * nu), f"{source}@{nu:+g}", nu=nu, sigma=sigma)
        for nu in nus
    }
    return VariationSet(source, _named(x, f"{source}@nominal", sigma=sigma), varied)


def efficiency_variations(
    rng: np.random.Generator,
    n_truth: int,
    sigma: float,
    eff0: float = 0.5,
    nus: Sequence[float] = (-2.0, -1.0, 1.0, 2.0),
    source: str = "eff_shape",
) -> VariationSet:
    """Nominal and re-selected samples of the efficiency-shape nuisance (shared events).

    Each truth event has one uniform number u; it is selected at ν if
    u < ε_0 exp(σ ν g(x)), so the varied samples differ from the nominal one only by
    the events that migrate across the efficiency.
    """
    x = rng.exponential(1.0, size=int(n_truth))
    u = rng.random(int(n_truth))

    def select(nu: float) -> np.ndarray:
        return x[u < eff0 * np.exp(sigma * nu * efficiency_shape(x))]

    varied = {float(nu): _named(select(nu), f"{source}@{nu:+g}", nu=nu) for nu in nus}
    return VariationSet(source, _named(select(0.0), f"{source}@nominal"), varied)


@dataclass(frozen=True)
class ExponentialNuisanceToy:
    """Data from b0 at true nuisance values (scale and normalisation), for NPLM studies.

    Parameters
    ----------
    n_expected
        Expected events at ν = 0.
    scale_sigma
        σ_s of the momentum scale (relative).
    norm_sigma
        σ_N of the normalisation (relative).
    """

    n_expected: float
    scale_sigma: float = 0.05
    norm_sigma: float = 0.05

    def __post_init__(self) -> None:
        if not self.n_expected > 0:
            raise ValueError(f"n_expected must be positive, got {self.n_expected}")

    def draw(self, rng: np.random.Generator, nu_scale: float, nu_norm: float) -> np.ndarray:
        """One Poisson-fluctuated data set at (ν_scale, ν_norm)."""
        n = rng.poisson(self.n_expected * np.exp(self.norm_sigma * nu_norm))
        return rng.exponential(1.0, size=n) * np.exp(self.scale_sigma * nu_scale)

    def describe(self) -> dict:
        """JSON-able description."""
        return asdict(self)


@dataclass(frozen=True)
class AsymmetryToy:
    """``emu``-like sample A and ``mue``-like sample B with a detector asymmetry.

    Both come from b0 at truth level. B (the muon-leading category) carries the
    detector effects relative to A: a momentum-scale difference
    x → x e^{σ_s ν_s}, an efficiency-ratio shape ε_0 exp(σ_ε ν_ε g(x)) and an
    efficiency-ratio normalisation e^{σ_N ν_N} (both applied as selection
    probabilities, so the events stay unweighted). A is selected with the constant
    efficiency ε_0. An LFV-like signal, a Gaussian in the collinear mass, can be
    added to A.

    Parameters
    ----------
    n_a, n_b
        Expected background events of A and B at ν = 0.
    scale_sigma, eff_sigma, norm_sigma
        One standard deviation of each detector nuisance.
    eff0
        Nominal efficiency ε_0 (leaves room for upward variations below 1).
    signal_events, signal_mean, signal_width
        Expected LFV-like signal events in A, and their Gaussian shape
        (m_coll / 100 GeV: 1.25 for a 125 GeV Higgs).
    """

    n_a: float
    n_b: float
    scale_sigma: float = 0.03
    eff_sigma: float = 0.08
    norm_sigma: float = 0.02
    eff0: float = 0.5
    signal_events: float = 0.0
    signal_mean: float = 1.25
    signal_width: float = 0.1

    def __post_init__(self) -> None:
        if not (self.n_a > 0 and self.n_b > 0):
            raise ValueError(f"n_a and n_b must be positive, got {self.n_a}, {self.n_b}")
        if not 0 < self.eff0 <= 1:
            raise ValueError(f"eff0 must be in (0, 1], got {self.eff0}")

    def b_efficiency(self, x: np.ndarray, nu_eff: float, nu_norm: float) -> np.ndarray:
        """Selection probability of B events at reconstructed x (clipped at 1)."""
        log_eff = self.eff_sigma * nu_eff * efficiency_shape(x) + self.norm_sigma * nu_norm
        return np.minimum(1.0, self.eff0 * np.exp(log_eff))

    def draw(
        self,
        rng: np.random.Generator,
        nu_scale: float = 0.0,
        nu_eff: float = 0.0,
        nu_norm: float = 0.0,
        with_signal: bool = True,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(A, B) events at true detector nuisances ν*."""
        a = rng.exponential(1.0, size=rng.poisson(self.n_a))
        if with_signal and self.signal_events > 0:
            sig = rng.normal(self.signal_mean, self.signal_width, rng.poisson(self.signal_events))
            a = np.concatenate([a, sig])
        truth = rng.exponential(1.0, size=rng.poisson(self.n_b / self.eff0))
        reco = truth * np.exp(self.scale_sigma * nu_scale)
        b = reco[rng.random(reco.size) < self.b_efficiency(reco, nu_eff, nu_norm)]
        return a, b

    def describe(self) -> dict:
        """JSON-able description."""
        return asdict(self)
