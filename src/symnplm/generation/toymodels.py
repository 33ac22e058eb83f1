"""The analytic toy model of 2401.09530 Sec. III A (after D'Agnolo & Wulzer).

Background b0(x) = e^{-x} (Eq. 25) and three signals added to sample A only:
S1 a narrow resonance in the tail (x̄ = 6.4, σ = 0.16, Eq. 26), S2 a broad
non-resonant excess ½x²e^{-x} (Eq. 27), S3 a narrow resonance in the bulk
(x̄ = 1.6, σ = 0.16, Eq. 28). Eqs. (26) and (28) print the Gaussian normalisation
as 1/√(2πσ); we use the normalised density 1/(√(2π) σ), which is what a PDF means.

Sample sizes are Poisson-fluctuated around their expectations (Sec. III A),
every draw takes an explicit ``numpy.random.Generator``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from symnplm.io.samples import Sample

__all__ = [
    "SIGNALS",
    "ToyModel",
    "background_pdf",
    "sample_background",
    "sample_signal",
    "signal_pdf",
]

SIGNALS: dict[str, dict[str, float]] = {
    "S1": {"mean": 6.4, "sigma": 0.16},
    "S3": {"mean": 1.6, "sigma": 0.16},
}


def background_pdf(x: np.ndarray) -> np.ndarray:
    """b0(x) = e^{-x} for x ≥ 0 (Eq. 25)."""
    x = np.asarray(x, dtype=np.float64)
    return np.where(x >= 0, np.exp(-np.clip(x, 0, None)), 0.0)


def _gauss(mean: float, sigma: float) -> Callable[[np.ndarray], np.ndarray]:
    def pdf(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        return np.exp(-0.5 * ((x - mean) / sigma) ** 2) / (np.sqrt(2 * np.pi) * sigma)

    return pdf


def _s2(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return np.where(x >= 0, 0.5 * x**2 * np.exp(-np.clip(x, 0, None)), 0.0)


def signal_pdf(name: str) -> Callable[[np.ndarray], np.ndarray]:
    """Density of signal ``"S1"``, ``"S2"`` or ``"S3"`` (Eqs. 26–28)."""
    if name == "S2":
        return _s2
    if name in SIGNALS:
        return _gauss(**SIGNALS[name])
    raise ValueError(f"unknown signal {name!r}; choose S1, S2 or S3")


def sample_background(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` draws from b0."""
    return rng.exponential(1.0, size=int(n))


def sample_signal(rng: np.random.Generator, name: str, n: int) -> np.ndarray:
    """``n`` draws from signal ``name`` (S2 is a Gamma(3, 1) density)."""
    if name == "S2":
        return rng.gamma(3.0, 1.0, size=int(n))
    if name in SIGNALS:
        return rng.normal(SIGNALS[name]["mean"], SIGNALS[name]["sigma"], size=int(n))
    raise ValueError(f"unknown signal {name!r}; choose S1, S2 or S3")


@dataclass(frozen=True)
class ToyModel:
    """Two samples from b0, with an optional signal in A only.

    Parameters
    ----------
    n_a, n_b
        Expected background events in A and B.
    signal
        ``None``, ``"S1"``, ``"S2"`` or ``"S3"``.
    n_signal
        Expected signal events (in A).
    poisson
        Poisson-fluctuate the sample sizes (the paper's setup); otherwise exact sizes.
    """

    n_a: float
    n_b: float
    signal: str | None = None
    n_signal: float = 0.0
    poisson: bool = True

    def __post_init__(self) -> None:
        if not (self.n_a > 0 and self.n_b > 0):
            raise ValueError(
                f"expected sample sizes must be positive, got n_a={self.n_a}, n_b={self.n_b}"
            )
        if self.n_signal < 0:
            raise ValueError(f"n_signal must be >= 0, got {self.n_signal}")
        if self.signal is not None:
            signal_pdf(self.signal)  # validates the name

    def _size(self, rng: np.random.Generator, mean: float) -> int:
        return int(rng.poisson(mean)) if self.poisson else round(mean)

    def __call__(self, rng: np.random.Generator) -> tuple[Sample, Sample]:
        """Draw one (A, B) pair."""
        a = sample_background(rng, self._size(rng, self.n_a))
        if self.signal is not None and self.n_signal > 0:
            a = np.concatenate([a, sample_signal(rng, self.signal, self._size(rng, self.n_signal))])
        b = sample_background(rng, self._size(rng, self.n_b))
        prov = {"toy_model": self.describe()}
        return Sample(a, names=["x"], provenance=prov, name="A"), Sample(
            b, names=["x"], provenance=prov, name="B"
        )

    def describe(self) -> dict:
        """JSON-able description."""
        return dict(self.__dict__)
