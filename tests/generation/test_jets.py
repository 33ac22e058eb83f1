"""anti-kT clustering against a literal, slow implementation of the algorithm's definition."""

from __future__ import annotations

import math

import numpy as np
import pytest

from symnplm.generation.jets import anti_kt


def _rap_phi(p):
    px, py, pz, e = p
    return 0.5 * math.log((e + pz) / (e - pz)), math.atan2(py, px)


def reference_anti_kt(particles: list[np.ndarray], radius: float) -> list[np.ndarray]:
    """Textbook anti-kT: repeatedly take the smallest of all d_ij and d_iB."""
    objs = [np.array(p, dtype=float) for p in particles]
    jets = []
    while objs:
        best, pair = math.inf, None
        for i, a in enumerate(objs):
            kt2_a = a[0] ** 2 + a[1] ** 2
            if 1 / kt2_a < best:
                best, pair = 1 / kt2_a, (i, None)
            ya, pa = _rap_phi(a)
            for j in range(i + 1, len(objs)):
                b = objs[j]
                yb, pb = _rap_phi(b)
                dphi = abs(pa - pb)
                dphi = min(dphi, 2 * math.pi - dphi)
                d = min(1 / kt2_a, 1 / (b[0] ** 2 + b[1] ** 2)) * ((ya - yb) ** 2 + dphi**2)
                d /= radius**2
                if d < best:
                    best, pair = d, (i, j)
        i, j = pair
        if j is None:
            jets.append(objs.pop(i))
        else:
            objs[i] = objs[i] + objs[j]
            objs.pop(j)
    return sorted(jets, key=lambda p: -math.hypot(p[0], p[1]))


def _random_event(rng: np.random.Generator, n: int) -> np.ndarray:
    # A few hard "partons" with collinear fragments plus soft noise, massless particles.
    pts, etas, phis = [], [], []
    for _ in range(3):
        eta0, phi0 = rng.uniform(-2, 2), rng.uniform(-np.pi, np.pi)
        k = n // 4
        pts += list(rng.exponential(8.0, k) + 0.5)
        etas += list(eta0 + rng.normal(0, 0.2, k))
        phis += list(phi0 + rng.normal(0, 0.2, k))
    k = n - len(pts)
    pts += list(rng.exponential(1.0, k) + 0.2)
    etas += list(rng.uniform(-4, 4, k))
    phis += list(rng.uniform(-np.pi, np.pi, k))
    pts, etas, phis = map(np.array, (pts, etas, phis))
    px, py, pz = pts * np.cos(phis), pts * np.sin(phis), pts * np.sinh(etas)
    return np.stack([px, py, pz, np.sqrt(px**2 + py**2 + pz**2)], axis=1)


@pytest.mark.parametrize("seed", range(4))
def test_matches_the_definition_on_random_events(seed):
    rng = np.random.default_rng(seed)
    events = [_random_event(rng, int(rng.integers(10, 45))) for _ in range(3)]
    flat = np.concatenate(events)
    offsets = np.concatenate([[0], np.cumsum([len(e) for e in events])])
    jets, counts, labels = anti_kt(offsets, *flat.T, radius=0.4, pt_min=0.0)
    start = 0
    for ev, event in zip(range(len(events)), events, strict=False):
        expected = reference_anti_kt(list(event), 0.4)
        got = jets[start : start + counts[ev]]
        start += counts[ev]
        assert len(got) == len(expected)
        np.testing.assert_allclose(got, np.array(expected), rtol=1e-9, atol=1e-9)
        # Labels assign every particle to exactly the jet whose momentum it sums to.
        lab = labels[offsets[ev] : offsets[ev + 1]]
        for k in range(counts[ev]):
            np.testing.assert_allclose(event[lab == k].sum(axis=0), got[k], rtol=1e-9)


def test_pt_threshold_and_input_order_invariance():
    rng = np.random.default_rng(7)
    event = _random_event(rng, 40)
    offsets = np.array([0, len(event)])
    jets, counts, labels = anti_kt(offsets, *event.T, radius=0.4, pt_min=5.0)
    assert np.all(np.hypot(jets[:, 0], jets[:, 1]) >= 5.0)
    assert np.all(np.diff(np.hypot(jets[:, 0], jets[:, 1])) <= 0)  # pT-ordered
    assert np.all(labels[labels >= 0] < counts[0])
    perm = rng.permutation(len(event))
    jets2, _, _ = anti_kt(offsets, *event[perm].T, radius=0.4, pt_min=5.0)
    np.testing.assert_allclose(jets2, jets, rtol=1e-9)


def test_two_particles_merge_only_within_r():
    def two(dphi):
        p = np.array([[50.0, 0, 0, 50.0], [20 * math.cos(dphi), 20 * math.sin(dphi), 0, 20.0]])
        return anti_kt(np.array([0, 2]), *p.T, radius=0.4)[1][0]

    assert two(0.35) == 1
    assert two(0.45) == 2


def test_invalid_radius():
    with pytest.raises(ValueError, match="jet radius must be positive, got 0"):
        anti_kt(np.array([0, 0]), *np.zeros((4, 0)), radius=0)
