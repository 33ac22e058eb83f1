"""The g b → t W matrix element against an explicit Dirac trace."""

from __future__ import annotations

import math

import numpy as np
import pytest

from symnplm.generation.tw_process import dsigma_dt, trace_x

METRIC = np.diag([1.0, -1.0, -1.0, -1.0])
_I2, _Z2 = np.eye(2), np.zeros((2, 2))
_SIGMA = [
    np.array([[0, 1], [1, 0]], complex),
    np.array([[0, -1j], [1j, 0]]),
    np.array([[1, 0], [0, -1]], complex),
]
GAMMA = [np.block([[_Z2, _I2], [_I2, _Z2]]).astype(complex)] + [
    np.block([[_Z2, s], [-s, _Z2]]) for s in _SIGMA
]


def slash(p):
    return sum(METRIC[i, i] * p[i] * GAMMA[i] for i in range(4))


def dot(a, b):
    return a[0] * b[0] - a[1:] @ b[1:]


def kinematics(sqrt_s, cos_theta, m, mw):
    """b(p1) g(p2) → t(p3) W(p4) in the centre-of-mass frame."""
    s = sqrt_s**2
    p1 = np.array([sqrt_s / 2, 0, 0, sqrt_s / 2])
    p2 = np.array([sqrt_s / 2, 0, 0, -sqrt_s / 2])
    p = math.sqrt((s - (m + mw) ** 2) * (s - (m - mw) ** 2)) / (2 * sqrt_s)
    sin_theta = math.sqrt(1 - cos_theta**2)
    p3 = np.array([math.hypot(p, m), p * sin_theta, 0, p * cos_theta])
    return p1, p2, p3, p1 + p2 - p3


def trace_by_hand(p1, p2, p3, p4, m, mw):
    """Σ over polarisations of Tr[(p̸3 + m) Γ^{μν} p̸1 Γ̄^{μ'ν'}] with −g and −g + kk/M² sums.

    The V−A projector halves this (the γ5 part vanishes for a 2 → 2 process);
    trace_x is defined without that factor 1/2.
    """
    s, u = dot(p1 + p2, p1 + p2), dot(p3 - p2, p3 - p2)
    one = np.eye(4)
    k = METRIC @ p4
    total = 0.0
    for mu in range(4):
        for nu in range(4):
            gam = GAMMA[nu] @ slash(p1 + p2) @ GAMMA[mu] / s + GAMMA[mu] @ (
                slash(p3 - p2) + m * one
            ) @ GAMMA[nu] / (u - m**2)
            for nup in range(4):
                w_pol = -METRIC[nu, nup] + k[nu] * k[nup] / mw**2
                if w_pol == 0:
                    continue
                mup = mu  # the gluon sum −g is diagonal
                bar = GAMMA[mup] @ slash(p1 + p2) @ GAMMA[nup] / s + GAMMA[nup] @ (
                    slash(p3 - p2) + m * one
                ) @ GAMMA[mup] / (u - m**2)
                total += (
                    -METRIC[mu, mup]
                    * w_pol
                    * np.trace((slash(p3) + m * one) @ gam @ slash(p1) @ bar)
                )
    return total.real


@pytest.mark.parametrize(("sqrt_s", "cos_theta"), [(300.0, 0.3), (600.0, -0.8), (1500.0, 0.95)])
def test_analytic_matrix_element_equals_the_dirac_trace(sqrt_s, cos_theta):
    m, mw = 172.5, 80.4
    p1, p2, p3, p4 = kinematics(sqrt_s, cos_theta, m, mw)
    s, t = dot(p1 + p2, p1 + p2), dot(p1 - p3, p1 - p3)
    assert trace_x(s, t, m**2, mw**2) == pytest.approx(
        trace_by_hand(p1, p2, p3, p4, m, mw), rel=1e-9
    )


def test_massless_limit_is_the_compton_formula():
    s, t, mw2 = 500.0**2, -40000.0, 80.4**2
    u = mw2 - s - t
    compton = 8 * (-u / s - s / u - 2 * t * mw2 / (s * u))
    assert trace_x(s, t, 0.0, mw2) == pytest.approx(compton, rel=1e-12)


def test_partonic_cross_section_is_positive_and_falls_with_energy():
    m2, mw2 = 172.5**2, 80.4**2
    args = (0.1, 1 / 128.0, 0.2312, 1.0)

    def sigma(sqrt_s):
        s = sqrt_s**2
        lam = math.sqrt((s - (172.5 + 80.4) ** 2) * (s - (172.5 - 80.4) ** 2))
        t_lo = m2 - (s + m2 - mw2 + lam) / 2
        t_hi = m2 - (s + m2 - mw2 - lam) / 2
        ts = np.linspace(t_lo, t_hi, 2001)
        values = np.array([dsigma_dt(s, t, m2, mw2, *args) for t in ts])
        assert np.all(values > 0)
        return np.trapezoid(values, ts)

    assert sigma(600.0) > sigma(2000.0) > 0
