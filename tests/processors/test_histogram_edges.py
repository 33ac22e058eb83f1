"""Bin edges of figures: round numbers and detector boundaries, never the data's extremes."""

from __future__ import annotations

import numpy as np
import pytest

from symnplm.processors.histograms import ABS_ETA_EDGES, ETA_EDGES, feature_edges, nice_step


@pytest.mark.parametrize(
    ("width", "step"), [(0.3, 0.5), (0.1, 0.1), (5.9, 10.0), (2.1, 2.5), (1.0, 1.0), (47.0, 50.0)]
)
def test_nice_step(width, step):
    assert nice_step(width) == pytest.approx(step)


def test_eta_edges_split_at_the_crack_symmetrically():
    np.testing.assert_allclose(ETA_EDGES, -np.array(ETA_EDGES)[::-1])
    assert ETA_EDGES[0] == -2.5 and ETA_EDGES[-1] == 2.5
    for edge in (1.37, 1.52):
        assert edge in ETA_EDGES and -edge in ETA_EDGES
    # no bin straddles the crack: 1.37-1.52 is one bin
    k = ABS_ETA_EDGES.index(1.37)
    assert ABS_ETA_EDGES[k + 1] == 1.52


def test_momenta_start_from_a_round_number():
    rng = np.random.default_rng(0)
    pt = 15.06 + rng.exponential(30.0, 5000)
    edges = feature_edges("pt_lead", pt, bins=40)
    step = np.diff(edges)
    np.testing.assert_allclose(step, step[0])
    assert step[0] == nice_step(step[0])  # a round width
    assert edges[0] == 15.0  # not 15.06: the lowest multiple of the width below the data
    assert edges[-1] >= np.percentile(pt, 99.5) and edges[-1] % step[0] == pytest.approx(0.0)


def test_eta_of_the_data_ends_on_a_boundary():
    rng = np.random.default_rng(1)
    eta = rng.uniform(-2.2998, 2.255, 5000)  # an asymmetric sample
    edges = feature_edges("eta_sublead", eta)
    np.testing.assert_allclose(edges, -edges[::-1])
    assert edges[-1] == 2.3 and np.isclose(edges, 1.37).any() and np.isclose(edges, -1.52).any()
    assert feature_edges("eta_e", np.array([-2.45, 2.4]))[-1] == 2.5


def test_angles_span_their_full_range():
    dphi = feature_edges("dphi", np.array([0.01, 3.138]), bins=20)
    assert (dphi[0], dphi[-1], len(dphi)) == (0.0, pytest.approx(np.pi), 21)
    phi = feature_edges("phi_lead", np.array([-3.0, 3.0]), bins=20)
    assert (phi[0], phi[-1]) == (pytest.approx(-np.pi), pytest.approx(np.pi))
