"""Physics layer: selection, roles, m_coll and the features, variations (hand-computed values)."""

from __future__ import annotations

import math

import awkward as ak
import numpy as np
import pytest

from symnplm.physics import (
    ELECTRON_CUTS,
    ELECTRON_SCALE,
    MUON_CUTS,
    MUON_SCALE,
    SELECTIONS,
    JetCuts,
    LeptonCuts,
    MomentumScale,
    Normalisation,
    category_names,
    collinear_mass,
    count_jets,
    delta_phi,
    emu_categories,
    emu_features,
    jet_multiplicities,
    lepton_cuts,
    lepton_mask,
    propagate_to_met,
    scale_momenta,
    select_emu,
    variation_name,
)
from symnplm.processors.emu import cutflow


def leptons(rows, id_field="cutBased"):
    """Jagged records from [[(pt, eta, phi, charge, iso, id), ...], ...]."""
    names = ("pt", "eta", "phi", "charge", "pfRelIso03_all", id_field)
    return ak.zip({n: ak.Array([[r[i] for r in ev] for ev in rows]) for i, n in enumerate(names)})


def one_per_event(pt, eta, phi, mass, charge):
    return ak.zip(
        {"pt": np.array(pt, float), "eta": np.array(eta, float), "phi": np.array(phi, float),
         "mass": np.array(mass, float), "charge": np.array(charge, float)}
    )  # fmt: skip


def four_vector(pt, eta, phi, m):
    px, py, pz = pt * math.cos(phi), pt * math.sin(phi), pt * math.sinh(eta)
    return math.sqrt(px**2 + py**2 + pz**2 + m**2), px, py, pz


def pair_mass(a, b):
    e, px, py, pz = (x + y for x, y in zip(four_vector(*a), four_vector(*b), strict=True))
    return math.sqrt(e**2 - px**2 - py**2 - pz**2)


# -- collinear mass ------------------------------------------------------------------------
def test_collinear_mass_atlas_form_by_hand():
    lead = one_per_event([50.0], [0.5], [0.0], [0.0], [1])
    sub = one_per_event([30.0], [-0.3], [2.0], [0.0], [-1])
    expected = math.sqrt(2 * 50 * (30 + 20) * (math.cosh(0.8) - math.cos(2.0)))
    got = collinear_mass(lead, sub, np.array([20.0]), np.array([1.0]))
    assert got[0] == pytest.approx(expected, rel=1e-12)
    # equivalently m_vis / sqrt(x), x = pT(tau product) / (pT + MET), for massless leptons
    m_vis = pair_mass((50, 0.5, 0.0, 0.0), (30, -0.3, 2.0, 0.0))
    assert got[0] == pytest.approx(m_vis / math.sqrt(30 / (30 + 20)), rel=1e-9)


def test_collinear_mass_uses_leading_lepton_as_prompt():
    # exchanging the roles changes which pT the MET is added to
    a = one_per_event([50.0], [0.5], [0.0], [0.0], [1])
    b = one_per_event([30.0], [-0.3], [2.0], [0.0], [-1])
    met, phi = np.array([20.0]), np.array([1.0])
    swapped = math.sqrt(2 * 30 * (50 + 20) * (math.cosh(0.8) - math.cos(2.0)))
    assert collinear_mass(b, a, met, phi)[0] == pytest.approx(swapped, rel=1e-12)
    assert collinear_mass(a, b, met, phi)[0] != pytest.approx(swapped, rel=1e-3)


def test_collinear_mass_cms_form_projects_met_on_tau_product():
    lead = one_per_event([50.0], [0.5], [0.0], [0.000511], [1])
    sub = one_per_event([30.0], [-0.3], [2.0], [0.10566], [-1])
    m_vis = pair_mass((50, 0.5, 0.0, 0.000511), (30, -0.3, 2.0, 0.10566))
    along = 20 * math.cos(1.0 - 2.0)
    got = collinear_mass(lead, sub, np.array([20.0]), np.array([1.0]), form="cms")
    assert got[0] == pytest.approx(m_vis / math.sqrt(30 / (30 + along)), rel=1e-9)
    # MET opposite to the tau product: projection clipped at 0, so m_coll = m_vis
    back = collinear_mass(lead, sub, np.array([20.0]), np.array([2.0 - math.pi]), form="cms")
    assert back[0] == pytest.approx(m_vis, rel=1e-9)
    with pytest.raises(ValueError, match="'atlas' or 'cms'"):
        collinear_mass(lead, sub, np.array([20.0]), np.array([1.0]), form="lhcb")


def test_delta_phi_wraps_into_minus_pi_pi():
    got = delta_phi(np.array([3.0, -3.0, 0.5]), np.array([-3.0, 3.0, 0.2]))
    np.testing.assert_allclose(got, [6.0 - 2 * np.pi, 2 * np.pi - 6.0, 0.3], atol=1e-12)


# -- features by role ------------------------------------------------------------------------
def test_features_are_ordered_by_role_and_flavour_columns_by_flavour():
    e = one_per_event([50.0, 25.0], [0.5, 1.5], [0.0, -1.0], [0.000511] * 2, [1, -1])
    mu = one_per_event([30.0, 40.0], [-0.3, -1.8], [2.0, 2.5], [0.10566] * 2, [-1, 1])
    f = emu_features(e, mu, np.array([20.0, 35.0]), np.array([1.0, -2.0]))
    np.testing.assert_array_equal(f["pt_lead"], [50.0, 40.0])
    np.testing.assert_array_equal(f["eta_lead"], [0.5, -1.8])
    np.testing.assert_array_equal(f["pt_sublead"], [30.0, 25.0])
    np.testing.assert_array_equal(f["eta_sublead"], [-0.3, 1.5])
    np.testing.assert_allclose(f["dphi"], [2.0, 2 * np.pi - 3.5], rtol=1e-12)
    np.testing.assert_array_equal(f["pt_e"], [50.0, 25.0])
    np.testing.assert_array_equal(f["pt_mu"], [30.0, 40.0])
    m_coll_2 = math.sqrt(2 * 40 * (25 + 35) * (math.cosh(3.3) - math.cos(3.5)))
    assert f["m_coll"][1] == pytest.approx(m_coll_2, rel=1e-12)
    m_ll_2 = pair_mass((25, 1.5, -1.0, 0.000511), (40, -1.8, 2.5, 0.10566))
    assert f["m_ll"][1] == pytest.approx(m_ll_2, rel=1e-9)


def test_swapping_flavours_keeps_role_features():
    e = one_per_event([50.0], [0.5], [0.0], [0.0], [1])
    mu = one_per_event([30.0], [-0.3], [2.0], [0.0], [-1])
    met = (np.array([20.0]), np.array([1.0]))
    f, g = emu_features(e, mu, *met), emu_features(mu, e, *met)
    for name in ("m_coll", "pt_lead", "eta_lead", "pt_sublead", "eta_sublead", "dphi", "m_ll"):
        np.testing.assert_allclose(f[name], g[name], rtol=1e-12)
    assert f["pt_e"][0] == g["pt_mu"][0] == 50.0


# -- selection and categories ------------------------------------------------------------------
def test_lepton_cuts_boundaries():
    rows = [[
        (15.0, 0.5, 0.0, 1, 0.1, 4),   # pT exactly at the cut: kept
        (14.99, 0.5, 0.0, 1, 0.1, 4),  # below
        (20.0, 2.3, 0.0, 1, 0.1, 4),   # |eta| exactly 2.3: kept
        (20.0, -2.31, 0.0, 1, 0.1, 4),
        (20.0, 0.5, 0.0, 1, 0.15, 4),  # isolation must be strictly below 0.15
        (20.0, 0.5, 0.0, 1, 0.1, 2),   # loose ID only
    ]]  # fmt: skip
    got = ak.to_list(lepton_mask(leptons(rows), ELECTRON_CUTS))[0]
    assert got == [True, False, True, False, False, False]


# (|eta| of a lepton, kept by the lfuv selection): the gap and the crack, edges included
GEOMETRY = [
    (0.0, False), (0.05, False), (-0.1, False), (0.11, True), (1.36, True),
    (1.37, False), (-1.45, False), (1.52, False), (1.53, True),
]  # fmt: skip


def test_lfuv_vetoes_are_the_same_for_electrons_and_muons():
    rows = [[(20.0, eta, 0.0, 1, 0.1, 4) for eta, _ in GEOMETRY]]
    expected = [kept for _, kept in GEOMETRY]
    assert ak.to_list(lepton_mask(leptons(rows), ELECTRON_CUTS))[0] == expected
    mu_rows = [[(20.0, eta, 0.0, 1, 0.1, True) for eta, _ in GEOMETRY]]
    assert ak.to_list(lepton_mask(leptons(mu_rows, id_field="tightId"), MUON_CUTS))[0] == expected
    # the paper's selection vetoes nothing, and cuts the isolation at 0.15 (e) / 0.25 (mu)
    paper_e, paper_mu = SELECTIONS["paper"]
    assert all(ak.to_list(lepton_mask(leptons(rows), paper_e))[0])
    assert (paper_e.iso_max, paper_mu.iso_max) == (0.15, 0.25)
    assert ELECTRON_CUTS.iso_max == MUON_CUTS.iso_max


def test_lepton_cuts_change_both_flavours_alike():
    e, mu = lepton_cuts("lfuv", eta_vetoes=[(1.0, 1.2)], isolation=0.2)
    assert e.eta_vetoes == mu.eta_vetoes == ((1.0, 1.2),)
    assert e.iso_max == mu.iso_max == 0.2
    assert e.id_field == "cutBased" and mu.id_field == "tightId"
    none_e, none_mu = lepton_cuts("lfuv", eta_vetoes=[])
    assert none_e.eta_vetoes == none_mu.eta_vetoes == ()
    with pytest.raises(ValueError, match="unknown selection 'atlas'"):
        lepton_cuts("atlas")
    with pytest.raises(ValueError, match=r"\(1.5, 1.2\) must have 0 <= low < high"):
        LeptonCuts(eta_vetoes=((1.5, 1.2),))


def test_select_emu_counts_and_charge_modes():
    e = leptons([
        [(30, 0.5, 0, 1, 0.1, 4)],                       # 0: e+ mu-  -> selected
        [(30, 0.5, 0, -1, 0.1, 4)],                      # 1: e- mu-  same sign
        [(30, 0.5, 0, 1, 0.1, 4), (20, 1, 1, -1, 0.1, 4)],  # 2: two electrons
        [],                                              # 3: no electron
        [(30, 0.5, 0, -1, 0.1, 4), (10, 1, 1, 1, 0.1, 4)],  # 4: second e fails pT -> selected
    ])  # fmt: skip
    mu = leptons(
        [[(25, 0.5, 2, -1, 0.1, True)]] * 2
        + [[(25, 0.5, 2, -1, 0.1, True)]] * 2
        + [[(25, 0.5, 2, 1, 0.1, True), (25, 0.5, 2, -1, 0.3, True)]],
        id_field="tightId",
    )
    sel = select_emu(e, mu, ELECTRON_CUTS, MUON_CUTS)
    np.testing.assert_array_equal(sel.mask, [True, False, False, False, True])
    np.testing.assert_array_equal(sel.steps["one_electron"], [True, True, False, False, True])
    np.testing.assert_array_equal(sel.steps["one_muon"], [True, True, False, False, True])
    # each cut alone (N-1 studies): events 2 and 3 have their muon, event 1 fails the charge
    np.testing.assert_array_equal(sel.cuts["one_muon"], [True, True, True, True, True])
    np.testing.assert_array_equal(sel.cuts["opposite_charge"], [True, False, True, False, True])
    assert cutflow(sel.cuts) == {"one_electron": 3, "one_muon": 3, "opposite_charge": 2}
    assert ak.to_list(sel.electron.charge) == [1, -1]
    assert ak.to_list(sel.muon.charge) == [-1, 1]
    same = select_emu(e, mu, ELECTRON_CUTS, MUON_CUTS, charge="same")
    np.testing.assert_array_equal(same.mask, [False, True, False, False, False])
    with pytest.raises(ValueError, match="'opposite' or 'same'"):
        select_emu(e, mu, charge="any")


def test_categories_by_leading_flavour_and_charge():
    masks = emu_categories([50, 20, 30, 30], [30, 40, 30, 20], [1, -1, 1, -1], [-1, 1, -1, 1])
    assert list(masks) == list(category_names("opposite")) == ["emu", "mue", "ep_mum", "em_mup"]
    np.testing.assert_array_equal(masks["emu"], [True, False, False, True])
    np.testing.assert_array_equal(masks["mue"], [False, True, False, False])  # tie: neither
    np.testing.assert_array_equal(masks["ep_mum"], [True, False, True, False])
    np.testing.assert_array_equal(masks["em_mup"], [False, True, False, True])
    same = emu_categories([50], [30], [1], [1], charge="same")
    assert list(same) == ["emu", "mue", "ep_mup", "em_mum"] and same["ep_mup"][0]


def test_count_jets_applies_pt_eta_and_lepton_overlap():
    jets = ak.zip({
        "pt": ak.Array([[50.0, 60.0, 20.0, 40.0], []]),
        "eta": ak.Array([[0.0, -1.8, 0.0, 4.8], []]),
        "phi": ak.Array([[1.0, 2.6, 1.0, 0.0], []]),
    })  # fmt: skip
    e = one_per_event([25.0, 30.0], [1.5, 0.0], [-1.0, 0.0], [0.0, 0.0], [-1, 1])
    mu = one_per_event([40.0, 30.0], [-1.8, 0.0], [2.5, 0.0], [0.0, 0.0], [1, -1])
    # jet 1 is within dR 0.1 of the muon, jet 2 below 30 GeV, jet 3 beyond |eta| 4.7
    np.testing.assert_array_equal(count_jets(jets, [e, mu], JetCuts()), [1, 0])
    np.testing.assert_array_equal(count_jets(jets, [], JetCuts()), [2, 0])


def test_bjets_are_counted_jets_with_a_tag_inside_the_tracker():
    jets = ak.zip({
        "pt": ak.Array([[50.0, 60.0, 45.0, 35.0, 25.0], [40.0]]),
        "eta": ak.Array([[0.0, -1.8, 2.6, 1.0, 0.0], [0.5]]),
        "phi": ak.Array([[1.0, 2.6, 0.0, -2.0, 1.0], [0.0]]),
        "btagDeepFlavB": ak.Array([[0.9, 0.9, 0.9, 0.5, 0.9], [0.51]]),
    })  # fmt: skip
    e = one_per_event([25.0, 30.0], [1.5, 0.0], [-1.0, 3.0], [0.0, 0.0], [-1, 1])
    mu = one_per_event([40.0, 30.0], [-1.8, 0.0], [2.5, -3.0], [0.0, 0.0], [1, -1])
    # event 0: jet 0 tagged; jet 1 on the muon; jet 2 beyond |eta| 2.5 (counted, untagged);
    # jet 3 at the cut (score must exceed it); jet 4 below 30 GeV. event 1: tagged
    n = jet_multiplicities(jets, [e, mu], JetCuts())
    np.testing.assert_array_equal(n["n_jets"], [3, 1])
    np.testing.assert_array_equal(n["n_bjets"], [1, 1])
    tight = jet_multiplicities(jets, [e, mu], JetCuts(btag_min=0.6))
    np.testing.assert_array_equal(tight["n_bjets"], [1, 0])
    # without the score the b-jet count is unknown (-1), the jet count is not
    untagged = jet_multiplicities(jets[["pt", "eta", "phi"]], [e, mu], JetCuts())
    np.testing.assert_array_equal(untagged["n_bjets"], [-1, -1])
    np.testing.assert_array_equal(untagged["n_jets"], [3, 1])


# -- variations ---------------------------------------------------------------------------------
def test_variation_names_follow_design():
    assert variation_name("muon_scale", 1) == "muon_scale_up1"
    assert variation_name("muon_scale", -2.0) == "muon_scale_down2"
    assert variation_name("norm", 0.5) == "norm_up0p5"
    assert variation_name("electron_scale", 0) == "electron_scale_up0"


def test_scale_factor_barrel_and_endcap():
    rows = [
        [(40.0, 0.3, 0.0, 1, 0.1, 4), (40.0, -1.2, 1.0, 1, 0.1, 4), (40.0, 2.0, 2.0, 1, 0.1, 4)]
    ]
    lep = leptons(rows)
    up = scale_momenta(lep, ELECTRON_SCALE, 1.0)
    down2 = scale_momenta(lep, ELECTRON_SCALE, -2.0)
    # |eta| < 1.2 barrel (0.3 %), |eta| >= 1.2 endcap (3 x 0.3 %)
    np.testing.assert_allclose(
        ak.to_list(up.pt)[0], [40 * math.exp(0.003), 40 * math.exp(0.009), 40 * math.exp(0.009)]
    )
    np.testing.assert_allclose(ak.to_list(down2.pt)[0][0], 40 * math.exp(-0.006))
    assert MUON_SCALE.sigma_endcap == pytest.approx(0.0015)
    assert ak.to_list(up.eta) == ak.to_list(lep.eta) and ak.to_list(up.phi) == ak.to_list(lep.phi)
    custom = MomentumScale("muon", 0.01, sigma_endcap=0.05, eta_boundary=1.0)
    assert custom.factor(np.array([1.1]), 1.0)[0] == pytest.approx(math.exp(0.05))
    with pytest.raises(ValueError, match="'electron' or 'muon'"):
        MomentumScale("tau", 0.03)


def test_nu_zero_is_the_identity():
    lep = leptons([[(40.0, 0.3, 0.0, 1, 0.1, 4), (17.0, 2.0, 2.0, -1, 0.1, 4)], []])
    same = scale_momenta(lep, ELECTRON_SCALE, 0.0)
    assert ak.to_list(same) == ak.to_list(lep)
    met_pt, met_phi = np.array([33.3, 12.0]), np.array([0.7, -2.9])
    pt, phi = propagate_to_met(met_pt, met_phi, lep, same)
    np.testing.assert_array_equal(pt, met_pt)
    np.testing.assert_array_equal(phi, met_phi)


def test_met_absorbs_the_lepton_momentum_change():
    lep = leptons([[(40.0, 0.3, 0.0, 1, 0.1, 4)], [(40.0, 0.3, 0.5, 1, 0.1, 4)]])
    up = scale_momenta(lep, ELECTRON_SCALE, 2.0)
    dpt = 40 * (math.exp(0.006) - 1)
    pt, phi = propagate_to_met(np.array([10.0, 0.0]), np.array([0.0, 0.0]), lep, up)
    # event 0: MET along +x, lepton along +x gains dpt -> MET shrinks by dpt
    assert pt[0] == pytest.approx(10.0 - dpt, rel=1e-12) and phi[0] == pytest.approx(0.0)
    # event 1: no MET; the lepton gains dpt at phi 0.5 -> MET of dpt opposite to it
    assert pt[1] == pytest.approx(dpt, rel=1e-9)
    assert phi[1] == pytest.approx(0.5 - math.pi, abs=1e-9)


def test_normalisation_factor():
    assert Normalisation().factor(1.0) == pytest.approx(math.exp(0.025))
    assert Normalisation(sigma=0.1).factor(-2.0) == pytest.approx(math.exp(-0.2))
