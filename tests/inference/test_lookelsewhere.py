"""Global significance by the min-p method on a joint null ensemble."""

from __future__ import annotations

import numpy as np
import pytest

from symnplm.inference.lookelsewhere import global_significance, local_pvalues


def test_local_p_counts_the_observation_among_the_replicas():
    null = np.array([[0.0, 1.0, 2.0, 3.0], [5.0, 5.0, 5.0, 5.0]])
    # cell 0: two of four replicas >= 1.5 -> (1 + 2) / 5; cell 1: all >= 5 -> 5 / 5
    np.testing.assert_allclose(local_pvalues([1.5, 5.0], null), [3 / 5, 1.0])


def test_identical_cells_are_one_look_while_bonferroni_counts_them_all():
    rng = np.random.default_rng(1)
    null = rng.chisquare(3, size=999)
    t_obs = np.quantile(null, 0.99)
    g = global_significance([t_obs] * 4, np.stack([null] * 4))
    assert g.global_p == pytest.approx(g.min_p)
    assert g.trial_factor == pytest.approx(1.0)
    assert g.bonferroni_p == pytest.approx(4 * g.min_p)


def test_independent_cells_pay_the_sidak_trial_factor():
    """Five independent cells: global p ≈ 1 − (1 − p_min)^5 (binomial σ ≈ 0.003 at R = 4000)."""
    rng = np.random.default_rng(2)
    null = rng.normal(size=(5, 4000))
    t_obs = np.array([0.0, 0.0, np.quantile(null[2], 0.99), 0.0, 0.0])
    g = global_significance(t_obs, null)
    assert g.min_p == pytest.approx(0.01, abs=0.001)
    assert g.global_p == pytest.approx(g.sidak_p, abs=0.015)
    assert 4.0 < g.trial_factor < 6.0


def test_global_p_is_uniform_under_the_null():
    """Observation exchangeable with the replicas: P(global p ≤ 0.05) = 0.05.

    300 seeded scans of 6 correlated cells; bound: 0.05 ± 3σ (σ = 0.0126).
    """
    rng = np.random.default_rng(3)
    mix = rng.normal(size=(6, 6)) + 2 * np.eye(6)
    hits = 0
    for _ in range(300):
        members = mix @ rng.normal(size=(6, 200))  # correlated cells, 199 replicas + observation
        hits += global_significance(members[:, 0], members[:, 1:]).global_p <= 0.05
    assert abs(hits / 300 - 0.05) < 3 * np.sqrt(0.05 * 0.95 / 300)


def test_diverged_replicas_count_against_the_observation():
    null = np.array([[0.0, np.inf, np.nan, 1.0]])
    assert local_pvalues([2.0], null)[0] == pytest.approx(3 / 5)
    assert local_pvalues([np.nan], null)[0] == 1.0


def test_an_observation_beyond_every_replica_is_a_bound():
    null = np.stack([np.arange(99) / 99, np.zeros(99)])
    g = global_significance([10.0, 0.0], null)
    assert g.local_bound.tolist() == [True, False]
    assert g.global_bound and g.global_p == pytest.approx(0.01)


def test_mismatched_shapes_are_refused():
    with pytest.raises(ValueError, match="2 observed cells"):
        global_significance([1.0, 2.0], np.zeros((3, 10)))
