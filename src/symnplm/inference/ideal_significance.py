"""Ideal significances: what an analysis knowing the true shapes would achieve.

* :func:`ideal_significance` — Z_id = √q0 of Eq. (30) for analytic densities.
* :func:`binned_ideal_significance` — Eq. (29) on binned templates.
* :func:`ideal_symmetrized_score` — the ideal symmetrized t of App. C, Eq. (C2),
  on binned templates; :func:`asimov_symmetrized_score` is the same quantity for
  arbitrary expected A and B histograms (the Asimov value of the binned
  symmetrized likelihood ratio), which reduces to Eq. (C2) when B's background has
  the shape of A's.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np
from scipy import integrate

__all__ = [
    "asimov_symmetrized_score",
    "binned_ideal_significance",
    "ideal_significance",
    "ideal_symmetrized_score",
]


def _xlogy_ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a·log(a/b) with 0·log 0 = 0 (and +inf where a > 0 = b)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(a > 0, a * np.log(a / b), 0.0)
    return out


def _check_counts(name: str, arr: np.ndarray) -> np.ndarray:
    arr = np.asarray(arr, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(
            f"{name} must be a non-empty 1D array of expected counts, got shape {arr.shape}"
        )
    if np.any(arr < 0) or not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite and non-negative")
    return arr


def binned_ideal_significance(n_b: np.ndarray, n_s: np.ndarray) -> float:
    """Z_id of Eq. (29): √(2(-N_s + Σ (N_b + N_s) log((N_s + N_b)/N_b))) on bins."""
    n_b = _check_counts("n_b", n_b)
    n_s = _check_counts("n_s", n_s)
    if n_b.shape != n_s.shape:
        raise ValueError(f"n_b and n_s have different shapes {n_b.shape} and {n_s.shape}")
    if np.any((n_b == 0) & (n_s > 0)):
        return float("inf")
    q0 = 2 * (-n_s.sum() + _xlogy_ratio(n_b + n_s, n_b).sum())
    return float(np.sqrt(max(q0, 0.0)))


def ideal_significance(
    n_b: float,
    n_s: float,
    background_pdf: Callable[[np.ndarray], np.ndarray],
    signal_pdf: Callable[[np.ndarray], np.ndarray],
    support: tuple[float, float] = (0.0, np.inf),
    points: tuple[float, ...] = (),
) -> float:
    """Z_id of Eq. (30) for analytic densities (integrated with adaptive quadrature).

    Parameters
    ----------
    n_b, n_s
        Expected background and signal events in A.
    background_pdf, signal_pdf
        Normalised densities on ``support``.
    support
        Integration range.
    points
        Break points where the integrand is sharp (e.g. a narrow signal's mean).
    """
    if n_b <= 0 or n_s < 0:
        raise ValueError(f"need n_b > 0 and n_s >= 0, got n_b={n_b}, n_s={n_s}")

    def integrand(x: float) -> float:
        b = n_b * float(background_pdf(np.asarray(x)))
        s = n_s * float(signal_pdf(np.asarray(x)))
        if s == 0.0:
            return 0.0
        return (b + s) * np.log1p(s / b) if b > 0 else np.inf

    lo, hi = support
    # Split at the break points: quad cannot see a narrow peak on an infinite range.
    edges = [lo, *sorted(p for p in points if lo < p < hi), hi]
    total = 0.0
    for a, b in itertools.pairwise(edges):
        val, _ = integrate.quad(integrand, a, b, limit=500, epsabs=1e-12, epsrel=1e-10)
        total += val
    q0 = 2 * (-n_s + total)
    return float(np.sqrt(max(q0, 0.0)))


def ideal_symmetrized_score(n_s: np.ndarray, n_b_a: np.ndarray, n_b_b: np.ndarray) -> float:
    """Ideal t_{A+B}(A+B) of Eq. (C2) on binned templates (unknown background yields).

    Parameters
    ----------
    n_s
        Expected signal per bin (in A).
    n_b_a, n_b_b
        Expected background per bin in A and in B.
    """
    n_s = _check_counts("n_s", n_s)
    n_b_a = _check_counts("n_b_a", n_b_a)
    n_b_b = _check_counts("n_b_b", n_b_b)
    if not (n_s.shape == n_b_a.shape == n_b_b.shape):
        raise ValueError("n_s, n_b_a and n_b_b must have the same shape")
    ns_tot, nba_tot, nbb_tot = n_s.sum(), n_b_a.sum(), n_b_b.sum()
    n_a = ns_tot + nba_tot
    n_b = nbb_tot
    nax = n_s + n_b_a
    tot = nax + n_b_b
    term1 = n_a * np.log1p(-ns_tot / n_a)
    term2 = _xlogy_ratio(nax, n_b_a).sum()
    term3 = _xlogy_ratio(tot, (n_a + n_b) * n_b_a / nba_tot).sum()
    return float(2 * (term1 + term2 - term3))


def asimov_symmetrized_score(n_a: np.ndarray, n_b: np.ndarray) -> float:
    """Asimov binned symmetrized t for expected histograms of A and B.

    t = 2 Σ_x [n_A log(n_A Ñ / (Ñ_A (n_A + n_B))) + n_B log(n_B Ñ / (Ñ_B (n_A + n_B)))],
    the likelihood ratio of independent shapes against a common shape with free
    normalisations (the binned limit of Eq. 22).
    """
    n_a = _check_counts("n_a", n_a)
    n_b = _check_counts("n_b", n_b)
    if n_a.shape != n_b.shape:
        raise ValueError("n_a and n_b must have the same shape")
    na, nb = n_a.sum(), n_b.sum()
    tot = n_a + n_b
    n = na + nb
    return float(
        2 * (_xlogy_ratio(n_a, na * tot / n).sum() + _xlogy_ratio(n_b, nb * tot / n).sum())
    )
