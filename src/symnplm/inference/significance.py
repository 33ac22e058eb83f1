"""p-values and significances, accurate far into the tails.

``Z = Φ⁻¹(1 - p)`` is computed from ``log p`` (``Z = -Φ⁻¹(p)`` via
:func:`scipy.special.ndtri_exp`), and chi2 tail probabilities from
:meth:`scipy.stats.chi2.logsf`, so that t = 500 at 12 dof gives a finite Z instead
of ``inf``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special, stats

__all__ = [
    "Chi2Fit",
    "asymptotic_pvalue",
    "asymptotic_z",
    "chi2_log_pvalue",
    "empirical_pvalue",
    "fit_chi2_dof",
    "p_to_z",
    "z_from_log_p",
    "z_to_p",
]


def z_from_log_p(log_p: np.ndarray | float) -> np.ndarray | float:
    """One-sided significance Z = Φ⁻¹(1 - p) from log p (stable for p ≪ 1e-300)."""
    log_p = np.minimum(np.asarray(log_p, dtype=np.float64), 0.0)
    z = -special.ndtri_exp(log_p)
    return z.item() if np.ndim(z) == 0 else z


def p_to_z(p: np.ndarray | float) -> np.ndarray | float:
    """Z = Φ⁻¹(1 - p).

    >>> round(float(p_to_z(0.0013498980316301)), 3)
    3.0
    """
    p = np.asarray(p, dtype=np.float64)
    if np.any((p < 0) | (p > 1)):
        raise ValueError(f"p-values must be in [0, 1], got {p}")
    with np.errstate(divide="ignore"):
        return z_from_log_p(np.log(p))


def z_to_p(z: np.ndarray | float) -> np.ndarray | float:
    """p = 1 - Φ(Z).

    >>> round(float(z_to_p(5.0)), 9)
    2.87e-07
    """
    p = stats.norm.sf(np.asarray(z, dtype=np.float64))
    return p.item() if np.ndim(p) == 0 else p


def _log_upper_gamma_cf(a: float, x: float) -> float:
    """log Q(a, x) from the continued fraction of Γ(a, x) (modified Lentz), for x > a + 1.

    Q(a, x) = e^{-x} x^a / Γ(a) · 1/(x + 1 - a - 1·(1-a)/(x + 3 - a - ...)); every term
    is O(1), so the logarithm stays accurate where Q itself underflows.
    """
    tiny = 1e-300
    b = x + 1.0 - a
    c = 1.0 / tiny
    d = 1.0 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-16:
            break
    return -x + a * np.log(x) - special.gammaln(a) + np.log(h)


def chi2_log_pvalue(t: np.ndarray | float, dof: float) -> np.ndarray | float:
    """log P(χ²_dof ≥ t); ``t = inf`` gives ``-inf``.

    SciPy's ``chi2.logsf`` underflows to ``-inf`` beyond p ~ 1e-308; there the log of
    the regularised upper incomplete gamma function is evaluated directly.
    """
    if not dof > 0:
        raise ValueError(f"degrees of freedom must be positive, got {dof}")
    t = np.asarray(t, dtype=np.float64)
    flat_t = t.reshape(-1)
    out = np.asarray(stats.chi2.logsf(flat_t, dof), dtype=np.float64).copy()
    deep = np.isfinite(flat_t) & ~(out > -700.0) & (flat_t > dof + 2)
    for i in np.flatnonzero(deep):
        out[i] = _log_upper_gamma_cf(dof / 2, flat_t[i] / 2)
    out = out.reshape(t.shape)
    return out.item() if np.ndim(out) == 0 else out


def asymptotic_pvalue(t: np.ndarray | float, dof: float) -> np.ndarray | float:
    """Wilks/Wald asymptotic p-value, P(χ²_dof ≥ t)."""
    return np.exp(chi2_log_pvalue(t, dof))


def asymptotic_z(t: np.ndarray | float, dof: float) -> np.ndarray | float:
    """Z of the asymptotic chi2 p-value, computed in log space."""
    return z_from_log_p(chi2_log_pvalue(t, dof))


def empirical_pvalue(t_obs: float, t_null: np.ndarray) -> float:
    """p = (1 + #{t_null ≥ t_obs}) / (n + 1) — never 0 (Sec. III E permutation test).

    Null values that are +inf (diverged fits) count as ≥ any observation; NaN is an error.

    >>> empirical_pvalue(2.0, [1.0, 3.0, 0.5])  # one of three null values reaches 2
    0.5
    """
    t_null = np.asarray(t_null, dtype=np.float64)
    if t_null.size == 0:
        raise ValueError("empirical p-value needs at least one null value")
    if np.isnan(t_null).any() or np.isnan(t_obs):
        raise ValueError("NaN in the test statistic; diverged fits must be +inf")
    return float((1 + np.count_nonzero(t_null >= t_obs)) / (t_null.size + 1))


@dataclass(frozen=True)
class Chi2Fit:
    """Maximum-likelihood fit of a χ²_k density to null t values.

    Attributes
    ----------
    dof, dof_error
        Fitted k and its standard error (from the observed Fisher information).
    ks_pvalue
        Kolmogorov–Smirnov p-value of the t values against χ²_{dof} (fitted k).
    ks_pvalue_nominal
        The same against the nominal k, when one was given.
    n, n_infinite
        Finite values used, infinite (diverged) values excluded.
    """

    dof: float
    dof_error: float
    ks_pvalue: float
    ks_pvalue_nominal: float | None
    n: int
    n_infinite: int

    def to_dict(self) -> dict:
        """JSON-able form."""
        return dict(self.__dict__)


def fit_chi2_dof(t_null: np.ndarray, nominal_dof: float | None = None) -> Chi2Fit:
    """Fit the number of degrees of freedom of a χ² to null t values.

    Non-positive values (optimiser tolerance) are clipped to a tiny positive number;
    infinite values are excluded and counted.
    """
    t = np.asarray(t_null, dtype=np.float64)
    if np.isnan(t).any():
        raise ValueError("NaN in null t values")
    finite = t[np.isfinite(t)]
    if finite.size < 2:
        raise ValueError(f"need at least 2 finite null t values to fit a chi2, got {finite.size}")
    x = np.clip(finite, 1e-12, None)
    # maximum likelihood in k with location 0 and scale 1 held (a χ²_k, not a gamma)
    k = float(stats.chi2.fit(x, floc=0.0, fscale=1.0)[0])
    # Fisher information per event: ¼ ψ'(k/2)
    err = float(1.0 / np.sqrt(finite.size * 0.25 * special.polygamma(1, k / 2)))
    ks = float(stats.kstest(x, stats.chi2(k).cdf).pvalue)
    ks_nom = float(stats.kstest(x, stats.chi2(nominal_dof).cdf).pvalue) if nominal_dof else None
    return Chi2Fit(k, err, ks, ks_nom, int(finite.size), int(t.size - finite.size))
