"""Δφ, Δη and ΔR from ``vector`` against their analytic formulae (seeded random inputs,
wrap-around at ±π, values by hand)."""

from __future__ import annotations

import math

import awkward as ak
import numpy as np
import pytest

from symnplm.physics import JetCuts, collinear_mass, delta_phi, emu_features, jet_multiplicities


def wrapped(dphi):
    """The analytic Δφ: into [−π, π) by the modulo."""
    return (dphi + np.pi) % (2 * np.pi) - np.pi


def angles(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Uniform azimuths in [−π, π), with pairs on either side of the ±π boundary."""
    phi1, phi2 = rng.uniform(-np.pi, np.pi, (2, n))
    near = rng.uniform(0.0, 0.05, (2, n // 4))  # one just below π, the other just above −π
    phi1[: n // 4], phi2[: n // 4] = np.pi - near[0], -np.pi + near[1]
    return phi1, phi2


def leptons(pt, eta, phi, mass):
    return ak.zip(
        {"pt": pt, "eta": eta, "phi": phi, "mass": np.full(len(pt), mass),
         "charge": np.ones(len(pt))}
    )  # fmt: skip


def test_delta_phi_by_hand():
    got = delta_phi(
        np.array([3.0, -3.0, 0.5, np.pi - 0.1]), np.array([-3.0, 3.0, 0.2, 0.1 - np.pi])
    )
    np.testing.assert_allclose(got, [6.0 - 2 * np.pi, 2 * np.pi - 6.0, 0.3, -0.2], atol=1e-12)
    assert delta_phi(3.0, -3.0) == pytest.approx(6.0 - 2 * math.pi, abs=1e-15)  # scalars
    # awkward arrays (the processor's) give the same
    on_ak = delta_phi(ak.Array([3.0, -3.0]), ak.Array([-3.0, 3.0]))
    np.testing.assert_allclose(ak.to_numpy(on_ak), [6.0 - 2 * np.pi, 2 * np.pi - 6.0], atol=1e-12)


def test_delta_phi_is_the_wrapped_difference():
    phi1, phi2 = angles(np.random.default_rng(11), 4000)
    got = delta_phi(phi1, phi2)
    assert np.all((got >= -np.pi) & (got < np.pi))
    np.testing.assert_allclose(got, wrapped(phi1 - phi2), rtol=0, atol=1e-15)
    # independently of the modulo: the same direction as φ1 − φ2, and, across ±π, small
    np.testing.assert_allclose(np.cos(got), np.cos(phi1 - phi2), atol=1e-14)
    np.testing.assert_allclose(np.sin(got), np.sin(phi1 - phi2), atol=1e-14)
    np.testing.assert_allclose(got[:1000], -(2 * np.pi - (phi1 - phi2)[:1000]), atol=1e-14)
    assert np.all(np.abs(got[:1000]) < 0.1)


def test_features_match_the_analytic_formulae():
    """dphi and m_coll (both forms) of emu_features from the hand-written Δφ, Δη."""
    rng = np.random.default_rng(12)
    n = 2000
    phi_e, phi_mu = angles(rng, n)
    pt_e, pt_mu = rng.uniform(15.0, 300.0, (2, n))
    eta_e, eta_mu = rng.uniform(-2.5, 2.5, (2, n))
    met, met_phi = rng.exponential(40.0, n), rng.uniform(-np.pi, np.pi, n)
    e, mu = leptons(pt_e, eta_e, phi_e, 0.000511), leptons(pt_mu, eta_mu, phi_mu, 0.105658)
    f = emu_features(e, mu, met, met_phi)
    e_leads = pt_e >= pt_mu
    dphi = wrapped(phi_e - phi_mu)  # |Δφ| does not care which lepton leads
    np.testing.assert_allclose(f["dphi"], np.abs(dphi), rtol=0, atol=1e-15)
    deta = eta_e - eta_mu
    pt_lead, pt_sub = np.where(e_leads, pt_e, pt_mu), np.where(e_leads, pt_mu, pt_e)
    atlas = np.sqrt(2 * pt_lead * (pt_sub + met) * (np.cosh(deta) - np.cos(dphi)))
    np.testing.assert_allclose(f["m_coll"], atlas, rtol=1e-12)
    # CMS: MET projected on the subleading lepton (zero where it points away)
    phi_sub = np.where(e_leads, phi_mu, phi_e)
    along = np.maximum(met * np.cos(wrapped(met_phi - phi_sub)), 0.0)
    cms = emu_features(e, mu, met, met_phi, form="cms")
    np.testing.assert_allclose(cms["m_coll"], cms["m_ll"] * np.sqrt(1 + along / pt_sub), rtol=1e-9)
    # the records' own fields, without vector momenta, give the same m_coll
    lead = leptons(pt_lead, np.where(e_leads, eta_e, eta_mu), np.where(e_leads, phi_e, phi_mu), 0)
    sub = leptons(pt_sub, np.where(e_leads, eta_mu, eta_e), phi_sub, 0)
    np.testing.assert_allclose(
        ak.to_numpy(collinear_mass(lead, sub, met, met_phi)), atlas, rtol=1e-12
    )


def test_jet_lepton_separation_is_delta_r_across_the_boundary():
    """ΔR by hand: a jet at Δη = 0.3 and φ on the other side of ±π is 0.31 from the lepton
    (removed), 6.2 in the unwrapped φ difference."""
    lep = leptons(np.array([40.0]), np.array([0.0]), np.array([3.1]), 0.0)
    far = leptons(np.array([40.0]), np.array([0.0]), np.array([0.0]), 0.0)
    jets = ak.zip({
        "pt": ak.Array([[50.0, 50.0, 50.0]]),
        "eta": ak.Array([[0.3, 0.0, -0.41]]),
        "phi": ak.Array([[-3.1, 3.1 - 0.39, 3.1]]),
    })  # fmt: skip
    # ΔR: hypot(0.3, 2π − 6.2) = 0.311 (removed), 0.39 (removed), 0.41 (kept)
    assert math.hypot(0.3, 2 * math.pi - 6.2) < 0.4
    n = jet_multiplicities(jets, [lep], JetCuts())
    np.testing.assert_array_equal(n["n_jets"], [1])
    np.testing.assert_array_equal(jet_multiplicities(jets, [far], JetCuts())["n_jets"], [3])


def test_jet_counts_match_the_analytic_delta_r():
    """Seeded events: the count with vector's ΔR equals one with hypot(Δη, Δφ)."""
    rng = np.random.default_rng(13)
    n = 3000
    counts = rng.poisson(4, n)
    total = int(counts.sum())
    jet_eta, jet_phi = rng.uniform(-2.0, 2.0, total), rng.uniform(-np.pi, np.pi, total)
    jets = ak.unflatten(
        ak.zip({"pt": np.full(total, 50.0), "eta": jet_eta, "phi": jet_phi}), counts
    )
    lep_phi, _ = angles(rng, n)
    lep = leptons(np.full(n, 40.0), rng.uniform(-2.0, 2.0, n), lep_phi, 0.0)
    event = np.repeat(np.arange(n), counts)
    dr = np.hypot(jet_eta - lep.eta.to_numpy()[event], wrapped(jet_phi - lep_phi[event]))
    expected = np.bincount(event, weights=dr > 0.4, minlength=n)
    assert 0 < np.count_nonzero(dr <= 0.4) < total  # the cut does remove some, not all
    np.testing.assert_array_equal(jet_multiplicities(jets, [lep], JetCuts())["n_jets"], expected)
