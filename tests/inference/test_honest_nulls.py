"""What makes an emu-vs-mue null honest: thinned pseudo-data, non-negative weights, the
efficiency map's noise in every null replica, binned diagnostics.

Statistical checks are seeded; each states its bound.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from symnplm.inference import BinnedTest, SymmetrizedTest
from symnplm.inference.calculators import permutation_null, permutation_weights
from symnplm.inference.diagnostics import binned_diagnostics
from symnplm.inference.reweighting import ReweightingUncertainty
from symnplm.io.samples import Sample
from symnplm.workflow.runs import unweight


# -- pseudo-data -----------------------------------------------------------------------------
def test_thinned_pseudo_data_have_poisson_variance():
    """Counts of pseudo-data drawn from independent simulated samples have variance Σw
    (Poisson, as data), not Σw + Σw² (duplicated events, k ~ Poisson(w)).

    Simulation: Poisson(λ = 400) events with weights U(0.2, 1); over 4000 samples the
    variance / mean of the thinned count is 1 within 0.1 (the estimate's σ is 0.022);
    duplication would give 1 + E[w²]/E[w] = 1.69.
    """
    rng = np.random.default_rng(2024)
    counts, duplicated = [], []
    for _ in range(4000):
        w = rng.uniform(0.2, 1.0, size=rng.poisson(400))
        thinned = unweight(Sample(np.zeros(len(w)), w), rng, "thin")
        assert np.all(thinned.weights == 1.0)
        counts.append(len(thinned))
        duplicated.append(rng.poisson(w).sum())
    counts, duplicated = np.array(counts), np.array(duplicated)
    assert counts.mean() == pytest.approx(400 * 0.6, rel=0.01)
    assert counts.var(ddof=1) / counts.mean() == pytest.approx(1.0, abs=0.1)
    assert duplicated.var(ddof=1) / duplicated.mean() == pytest.approx(1.69, abs=0.1)


def test_thinning_refuses_weights_it_cannot_honour():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"'mc': weights up to 1\.5 exceed 1"):
        unweight(Sample(np.zeros(3), [0.5, 1.5, 1.0], name="mc"), rng, "thin")
    with pytest.raises(ValueError, match=r"'nlo': cannot thin a negative weight \(-0\.3"):
        unweight(Sample(np.zeros(3), [0.5, -0.3, 1.0], name="nlo"), rng, "thin")
    with pytest.raises(ValueError, match="not honest pseudo-data"):
        unweight(Sample(np.zeros(3), [0.5, 0.3, 1.0]), rng, "poisson")
    same = Sample(np.zeros(3), [0.5, 0.3, 1.0])
    assert unweight(same, rng, "none") is same


def test_network_tests_refuse_negative_weights():
    """With ±1 weights the unbounded likelihood would give t ~ 1e8 without diverging."""
    rng = np.random.default_rng(1)
    a = Sample(rng.exponential(size=500), np.where(rng.random(500) < 0.3, -1.0, 1.0), name="A")
    b = Sample(rng.exponential(size=500), name="B")
    with pytest.raises(ValueError, match=r"sample A has \d+ event\(s\) with a negative weight"):
        SymmetrizedTest((1, 4, 1)).fit(a, b)
    with pytest.raises(ValueError, match=r"sample B has \d+ event\(s\) with a negative weight"):
        SymmetrizedTest((1, 4, 1)).fit(b, a)


# -- the efficiency map's noise in the null ----------------------------------------------------
K_BINS, SIGMA, N_EVENTS = 10, 0.3, 20_000


def _observed(rng, lead, sub):
    """One experiment: labels at random (no asymmetry) and a map error ε ~ N(0, σ²) per bin,
    applied at the electron (lead in A = emu, sub in B = mue).

    Returns A, B and the map bins of the pooled events (A's, then B's) as A and as B.
    """
    in_a = rng.random(N_EVENTS) < 0.5
    eps = rng.normal(0.0, SIGMA, K_BINS)
    w = np.exp(np.where(in_a, eps[lead], eps[sub]))
    x = lead.astype(float)
    a = Sample(x[in_a], w[in_a], ("x",), name="A")
    b = Sample(x[~in_a], w[~in_a], ("x",), name="B")
    return a, b, np.r_[lead[in_a], lead[~in_a]], np.r_[sub[in_a], sub[~in_a]]


def test_map_noise_in_the_null_matches_experiments_with_noisy_maps():
    """Observed t over experiments (each with its own map error) follows the permutation
    null only when the map's uncertainty is redrawn in every permutation.

    200 experiments against 200 permutations of one of them: two-sample KS p > 0.01 with
    the reweighting; without it the null is far too narrow (KS p < 1e-10; the noise adds
    ~N σ²/2 ≈ 900 to t, dof 9).
    """
    rng = np.random.default_rng(7)
    lead, sub = rng.integers(0, K_BINS, size=(2, N_EVENTS))
    test = BinnedTest(np.arange(K_BINS + 1) - 0.5)
    t_obs = np.array([test.fit(*_observed(rng, lead, sub)[:2]).t for _ in range(200)])
    a, b, bin_if_a, bin_if_b = _observed(rng, lead, sub)
    noise = ReweightingUncertainty(bin_if_a, bin_if_b, np.full(K_BINS, SIGMA))
    with_noise = permutation_null(test, a, b, 200, seed=3, reweighting=noise).t
    plain = permutation_null(test, a, b, 200, seed=3).t
    assert stats.ks_2samp(t_obs, with_noise).pvalue > 0.01
    assert stats.ks_2samp(t_obs, plain).pvalue < 1e-10
    assert np.median(plain) < 3 * (K_BINS - 1) < np.median(t_obs)


def test_reweighting_keeps_the_labels_of_the_plain_permutations():
    rng = np.random.default_rng(5)
    w = rng.uniform(0.5, 1.5, size=300)
    plain_a, plain_b = permutation_weights(w, 120, 9, range(4))
    zero = ReweightingUncertainty(np.zeros(300, int), np.zeros(300, int), np.zeros(1))
    same_a, same_b = permutation_weights(w, 120, 9, range(4), zero)
    np.testing.assert_array_equal(same_a, plain_a)  # σ = 0: factors of exactly 1
    np.testing.assert_array_equal(same_b, plain_b)
    noisy = ReweightingUncertainty(np.zeros(300, int), np.ones(300, int), np.full(2, 0.2))
    noisy_a, noisy_b = permutation_weights(w, 120, 9, range(4), noisy)
    np.testing.assert_array_equal(noisy_a > 0, plain_a > 0)  # the same relabellings
    np.testing.assert_array_equal(noisy_b > 0, plain_b > 0)
    # one factor per bin and replica: every A event of a replica shares bin 0's draw
    ratio_a = noisy_a[plain_a > 0] / plain_a[plain_a > 0]
    ratio_b = noisy_b[plain_b > 0] / plain_b[plain_b > 0]
    for row in range(4):
        assert np.ptp(noisy_a[row][plain_a[row] > 0] / plain_a[row][plain_a[row] > 0]) < 1e-12
    assert not np.allclose(ratio_a, 1.0) and not np.allclose(ratio_b, 1.0)
    with pytest.raises(ValueError, match="covers 300 events, the pooled sample has 5"):
        permutation_weights(w[:5], 2, 9, range(1), noisy)


# -- binned diagnostics ---------------------------------------------------------------------
def test_binned_diagnostics_see_a_narrow_window_and_pass_without_it():
    """A 30 % excess of A in a window of 4 % of the events is at the permutation floor;
    the same samples without it are null-compatible (p > 0.01, seeded)."""
    rng = np.random.default_rng(12)
    x_a, x_b = rng.uniform(-2.3, 2.3, size=(2, 40_000))
    y_a, y_b = rng.normal(size=(2, 40_000))
    a = Sample(np.c_[x_a, y_a], names=("eta", "y"))
    b = Sample(np.c_[x_b, y_b], names=("eta", "y"))
    specs = {"eta": ("eta",), "y": ("y",), "eta:y": ("eta", "y")}
    null = {d.name: d for d in binned_diagnostics(a, b, specs, n=99, seed=1)}
    assert all(d.p_value > 0.01 for d in null.values())
    window = np.abs(x_a - 1.0) < 0.1
    boosted = Sample(np.c_[x_a, y_a], np.where(window, 1.3, 1.0), ("eta", "y"))
    seen = {d.name: d for d in binned_diagnostics(boosted, b, specs, n=99, seed=1)}
    assert seen["eta"].p_value == pytest.approx(1 / 100)
    assert seen["eta"].pull > 5
    assert seen["y"].p_value > 0.01  # y is not asymmetric
    assert seen["eta"].dof == 19 and seen["eta:y"].dof == 63
