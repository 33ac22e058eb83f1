"""p-values, Z, and the chi2 dof fit."""

import mpmath
import numpy as np
import pytest
from scipy import stats

from symnplm.inference import asymptotic_z, empirical_pvalue, fit_chi2_dof, p_to_z, z_to_p


def test_p_z_roundtrip_and_reference_values():
    assert p_to_z(0.5) == pytest.approx(0.0, abs=1e-12)
    assert z_to_p(3.0) == pytest.approx(1.349898e-3, rel=1e-6)
    np.testing.assert_allclose(
        p_to_z(z_to_p(np.array([0.5, 2.0, 5.0, 8.0]))), [0.5, 2.0, 5.0, 8.0], rtol=1e-9
    )
    assert p_to_z(0.0) == np.inf


def test_asymptotic_z_is_accurate_far_in_the_tail():
    """t = 3000 at 12 dof: p ~ 1e-640 underflows a double; Z must still be exact."""
    t, dof = 3000.0, 12
    mpmath.mp.dps = 50
    p = mpmath.gammainc(dof / 2, t / 2, mpmath.inf, regularized=True)
    z_ref = mpmath.findroot(
        lambda z: mpmath.log(mpmath.erfc(z / mpmath.sqrt(2)) / 2) - mpmath.log(p), 50
    )
    assert float(p) == 0.0  # beyond double precision
    assert asymptotic_z(t, dof) == pytest.approx(float(z_ref), rel=1e-8)


def test_empirical_pvalue_counts_ties_and_infinities():
    assert empirical_pvalue(2.0, np.array([1.0, 2.0, 3.0])) == pytest.approx(3 / 4)
    assert empirical_pvalue(10.0, np.array([1.0, np.inf])) == pytest.approx(2 / 3)
    assert empirical_pvalue(99.0, np.zeros(999)) == pytest.approx(1e-3)
    with pytest.raises(ValueError, match="NaN"):
        empirical_pvalue(1.0, np.array([np.nan]))


@pytest.mark.parametrize("dof", [5, 12])
def test_chi2_dof_fit_recovers_the_truth(dof):
    t = stats.chi2(dof).rvs(size=3000, random_state=np.random.default_rng(dof))
    res = fit_chi2_dof(np.r_[t, np.inf], nominal_dof=dof)
    assert abs(res.dof - dof) < 4 * res.dof_error
    assert res.dof_error == pytest.approx(np.sqrt(2 * dof / 3000), rel=0.3)  # ~ sqrt(2k/n)
    assert res.ks_pvalue_nominal > 1e-3 and res.n_infinite == 1
    wrong = fit_chi2_dof(t, nominal_dof=dof + 4)
    assert wrong.ks_pvalue_nominal < 1e-6
