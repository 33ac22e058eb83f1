"""The parametric detector on hand-built events, where every number is known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from symnplm.generation.detector import simulate
from symnplm.generation.detector_config import DetectorConfig, EfficiencyMap, parse_assignments
from symnplm.generation.event_record import ParticleBatch

#: A detector without smearing, inefficiency, UE or MET noise.
PERFECT = DetectorConfig(
    electron_sampling_term=0.0,
    electron_constant_term=0.0,
    electron_reco_eff_barrel=1.0,
    electron_reco_eff_endcap=1.0,
    electron_id_plateau=1.0,
    electron_id_turn_on=0.0,
    muon_eff_plateau=1.0,
    muon_eff_turn_on=0.0,
    muon_gap_eff=1.0,
    muon_resolution_a=(0.0, 0.0, 0.0),
    muon_resolution_b=(0.0, 0.0, 0.0),
    ue_density=0.0,
    met_noise=0.0,
    met_resolution_sqrt_sumet=0.0,
    jet_noise_term=0.0,
    jet_stochastic_term=0.0,
    jet_constant_term=0.0,
)
SEED = np.random.SeedSequence(2024)


def particle(pdg_id, pt, eta, phi, mother=3, status=1, mass=0.0):
    px, py, pz = pt * math.cos(phi), pt * math.sin(phi), pt * math.sinh(eta)
    return (pdg_id, status, mother, px, py, pz, math.sqrt(px**2 + py**2 + pz**2 + mass**2), mass)


def header(boson: int = -24):
    """System, two beams and a hard-process boson (index 3) as Pythia lays them out."""
    return [
        (90, -11, 0, 0.0, 0.0, 0.0, 13000.0, 13000.0),
        (2212, -12, 0, 0.0, 0.0, 6500.0, 6500.0, 0.938),
        (2212, -12, 0, 0.0, 0.0, -6500.0, 6500.0, 0.938),
        (boson, -22, 1, 0.0, 0.0, 0.0, 80.4, 80.4),
    ]


def make_batch(events: list[list[tuple]]) -> ParticleBatch:
    rows = [p for ev in events for p in ev]
    counts = [len(ev) for ev in events]
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    col = list(zip(*rows, strict=False))
    n = len(rows)
    return ParticleBatch(
        offsets=offsets,
        pdg_id=np.array(col[0], dtype=np.int32),
        status=np.array(col[1], dtype=np.int32),
        mother1=np.array(col[2], dtype=np.int32),
        daughter1=np.zeros(n, dtype=np.int32),
        daughter2=np.zeros(n, dtype=np.int32),
        px=np.array(col[3]),
        py=np.array(col[4]),
        pz=np.array(col[5]),
        energy=np.array(col[6]),
        mass=np.array(col[7]),
    )


def electron_event():
    return [
        *header(),
        particle(11, 50.0, 0.0, 0.0),  # 4: prompt electron from the W
        particle(-12, 30.0, 0.3, math.pi),  # 5: neutrino
        particle(22, 5.0, 0.05, 0.0, mother=4),  # 6: FSR photon inside the dressing cone
        particle(211, 3.0, 0.0, 0.2, mother=0),  # 7: in the isolation cone
        particle(-211, 10.0, 0.0, 0.5, mother=0),  # 8: outside it
    ]


def test_electron_is_dressed_isolated_and_measured():
    reco = simulate(make_batch([electron_event()]), PERFECT, SEED)
    ele = reco.collections["Electron"]
    assert ele.counts.tolist() == [1]
    dressed = np.array([55.0, 0.0, 5.0 * math.sinh(0.05)])
    energy = 50.0 + 5.0 * math.cosh(0.05)
    eta = math.asinh(dressed[2] / 55.0)
    expected_pt = energy / math.cosh(eta)
    assert ele.fields["pt"][0] == pytest.approx(expected_pt, rel=1e-12)
    assert ele.fields["eta"][0] == pytest.approx(eta, rel=1e-12)
    # Only the pion at ΔR = 0.2 is in the cone: the photon belongs to the electron.
    assert ele.fields["pfRelIso03_all"][0] == pytest.approx(3.0 / expected_pt, rel=1e-12)
    assert ele.fields["charge"][0] == -1 and ele.fields["pdgId"][0] == 11
    assert ele.fields["genPartFlav"][0] == 1
    gen = reco.collections["GenPart"]
    assert gen.fields["pdgId"][ele.fields["genPartIdx"][0]] == 11


def test_met_is_the_neutrino_when_nothing_is_mismeasured():
    event = [*header(), particle(11, 40.0, 0.5, 0.0), particle(-12, 40.0, -0.5, math.pi)]
    reco = simulate(make_batch([event]), PERFECT, SEED)
    assert reco.met["GenMET_pt"][0] == pytest.approx(40.0)
    assert reco.met["MET_pt"][0] == pytest.approx(40.0, rel=1e-9)
    assert reco.met["MET_phi"][0] == pytest.approx(math.pi, abs=1e-9) or reco.met["MET_phi"][
        0
    ] == pytest.approx(-math.pi, abs=1e-9)


def test_met_follows_the_measured_muon():
    event = [*header(), particle(13, 40.0, 0.5, 0.0), particle(-14, 40.0, -0.5, math.pi)]
    cfg = PERFECT.replace(muon_scale_offset=0.05)
    reco = simulate(make_batch([event]), cfg, SEED)
    # The muon is measured 5% high, so the recoil (MET) is 2 GeV low.
    assert reco.met["MET_pt"][0] == pytest.approx(42.0, rel=1e-9)


def test_muon_scale_offset_and_sagitta_bias_are_exact():
    mu_minus = [*header(), particle(13, 40.0, 1.0, 1.0)]
    mu_plus = [*header(24), particle(-13, 40.0, 1.0, 1.0)]
    batch = make_batch([mu_minus, mu_plus])
    pt = simulate(batch, PERFECT.replace(muon_scale_offset=0.01), SEED).collections["Muon"]
    assert pt.fields["pt"] == pytest.approx([40.4, 40.4], rel=1e-12)
    reco = simulate(batch, PERFECT.replace(muon_sagitta_bias=1.0), SEED).collections["Muon"]
    # q/pT → q/pT + δ with δ = 1 TeV⁻¹: μ⁻ (q = -1) gets harder, μ⁺ softer.
    assert reco.fields["charge"].tolist() == [-1, 1]
    assert reco.fields["pt"] == pytest.approx([1 / (1 / 40 - 1e-3), 1 / (1 / 40 + 1e-3)], rel=1e-12)


def test_acceptance_holes_remove_leptons():
    events = [
        [*header(), particle(11, 40.0, 1.45, 0.0)],  # calorimeter crack
        [*header(), particle(11, 40.0, 2.6, 0.0)],  # beyond |η| = 2.47
        [*header(), particle(13, 40.0, 0.05, 0.0)],  # spectrometer gap (efficiency 0 here)
        [*header(), particle(13, 40.0, 2.6, 0.0)],  # beyond |η| = 2.5
        [*header(), particle(11, 8.0, 0.0, 0.0), particle(13, 8.0, 1.0, 1.0)],  # below 10 GeV
        [*header(), particle(11, 40.0, 1.0, 0.0), particle(13, 40.0, 1.0, 2.0)],  # accepted
    ]
    reco = simulate(make_batch(events), PERFECT.replace(muon_gap_eff=0.0), SEED)
    assert reco.collections["Electron"].counts.tolist() == [0, 0, 0, 0, 0, 1]
    assert reco.collections["Muon"].counts.tolist() == [0, 0, 0, 0, 0, 1]


def _many(lepton: int, pt: float, eta: float, n: int) -> ParticleBatch:
    rng = np.random.default_rng(0)
    return make_batch(
        [[*header(), particle(lepton, pt, eta, phi)] for phi in rng.uniform(-np.pi, np.pi, n)]
    )


def test_efficiency_scale_map_removes_a_known_fraction_of_the_same_muons():
    batch = _many(13, 40.0, 0.5, 4000)
    nominal = simulate(batch, DetectorConfig(ue_density=0.0), SEED).collections["Muon"]
    scaled_cfg = DetectorConfig(ue_density=0.0, muon_efficiency_scale=EfficiencyMap.constant(0.9))
    scaled = simulate(batch, scaled_cfg, SEED).collections["Muon"]
    # Same random numbers: the scaled selection is a subset of the nominal one.
    assert np.all(scaled.counts <= nominal.counts)
    eff = DetectorConfig().muon_efficiency(np.array([40.0]), np.array([0.5]))[0]
    ratio = scaled.counts.sum() / nominal.counts.sum()
    sigma = math.sqrt(0.9 * 0.1 / nominal.counts.sum())
    assert ratio == pytest.approx(0.9, abs=4 * sigma)
    assert nominal.counts.mean() == pytest.approx(eff, abs=4 * math.sqrt(eff * (1 - eff) / 4000))


def test_binned_electron_map_acts_only_in_its_bin():
    cfg = PERFECT.replace(
        electron_efficiency_scale=EfficiencyMap(
            pt_edges=(0.0, 30.0, 1e9), abs_eta_edges=(0.0, 2.5), values=((0.5,), (1.0,))
        )
    )
    low = simulate(_many(11, 20.0, 0.3, 2000), cfg, SEED).collections["Electron"]
    high = simulate(_many(11, 40.0, 0.3, 2000), cfg, SEED).collections["Electron"]
    assert high.counts.sum() == 2000
    assert low.counts.sum() / 2000 == pytest.approx(0.5, abs=4 * math.sqrt(0.25 / 2000))


def test_scale_offsets_move_only_their_flavour():
    events = [[*header(), particle(11, 40.0, 0.3, 0.0), particle(13, 35.0, -0.7, 2.0)]] * 50
    batch = make_batch(events)
    cfg = DetectorConfig(
        ue_density=0.0,
        electron_id_plateau=1.0,
        electron_id_turn_on=0.0,
        electron_reco_eff_barrel=1.0,
        muon_eff_plateau=1.0,
        muon_eff_turn_on=0.0,
    )
    nominal = simulate(batch, cfg, SEED)
    shifted = simulate(batch, cfg.replace(electron_scale_offset=0.02), SEED)
    e0, e1 = nominal.collections["Electron"], shifted.collections["Electron"]
    np.testing.assert_allclose(e1.fields["pt"], 1.02 * e0.fields["pt"], rtol=1e-12)
    np.testing.assert_array_equal(
        shifted.collections["Muon"].fields["pt"], nominal.collections["Muon"].fields["pt"]
    )


@pytest.mark.parametrize(
    ("lepton", "pt", "eta", "expected"),
    [
        (13, 50.0, 0.2, math.hypot(0.010, 1e-4 * 50.0)),
        (13, 80.0, 2.0, math.hypot(0.025, 3.5e-4 * 80.0)),
        (11, 100.0, 0.0, math.hypot(0.101 / 10.0, 0.0017)),
    ],
)
def test_momentum_resolution_has_the_configured_width(lepton, pt, eta, expected):
    cfg = DetectorConfig(
        ue_density=0.0,
        electron_id_plateau=1.0,
        electron_id_turn_on=0.0,
        electron_reco_eff_barrel=1.0,
        muon_eff_plateau=1.0,
        muon_eff_turn_on=0.0,
    )
    n = 5000
    col = simulate(_many(lepton, pt, eta, n), cfg, SEED).collections[
        "Muon" if lepton == 13 else "Electron"
    ]
    assert col.counts.sum() == n
    spread = np.std(col.fields["pt"] / pt - 1.0)
    assert spread == pytest.approx(expected, rel=4 / math.sqrt(2 * n))


def test_electron_identification_efficiency_rises_with_pt_and_muons_are_flatter():
    cfg = DetectorConfig()
    pts = np.array([15.0, 25.0, 50.0, 100.0])
    eta = np.full(4, 0.5)
    e_eff, m_eff = cfg.electron_efficiency(pts, eta), cfg.muon_efficiency(pts, eta)
    assert np.all(np.diff(e_eff) > 0)
    assert e_eff[-1] - e_eff[0] > 0.05
    assert m_eff[-1] - m_eff[0] < 0.02
    assert cfg.electron_efficiency(np.array([40.0]), np.array([1.45]))[0] == 0.0


def test_underlying_event_emulation_raises_isolation():
    batch = _many(13, 40.0, 0.5, 3000)
    iso = simulate(batch, DetectorConfig(), SEED).collections["Muon"].fields["pfRelIso03_all"]
    cfg = DetectorConfig()
    # Mean UE ΣpT in the cone: density × area × mean pT.
    expected = cfg.ue_density * math.pi * cfg.isolation_cone**2 * cfg.ue_mean_pt / 40.0
    assert iso.mean() == pytest.approx(expected, rel=0.1)
    off = simulate(batch, DetectorConfig(ue_density=0.0), SEED).collections["Muon"]
    assert np.all(off.fields["pfRelIso03_all"] == 0.0)


def test_detector_config_round_trip_and_errors():
    cfg = DetectorConfig(
        muon_efficiency_scale=EfficiencyMap.constant(0.97), electron_scale_offset=0.003
    )
    assert DetectorConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match=r"unknown detector parameter.*muon_scale_ofset"):
        DetectorConfig.from_dict({"muon_scale_ofset": 0.01})
    with pytest.raises(ValueError, match="electron_charge_flip_rate must lie in \\[0, 1\\], got 2"):
        DetectorConfig(electron_charge_flip_rate=2.0)
    with pytest.raises(ValueError, match="values must have shape \\(2, 1\\)"):
        EfficiencyMap(pt_edges=(0, 30, 100), values=((1.0,),))
    with pytest.raises(ValueError, match="not of the form name=value"):
        parse_assignments(["muon_scale_offset"])
    assert parse_assignments(["muon_scale_offset=-0.002"]) == {"muon_scale_offset": -0.002}


def _jet_event():
    """A 60 GeV 'jet' of three collinear hadrons at η = 0.5, nothing else visible."""
    return [
        *header(),
        particle(211, 30.0, 0.50, 1.00, mother=0),
        particle(-211, 20.0, 0.55, 1.05, mother=0),
        particle(130, 10.0, 0.45, 0.95, mother=0),
    ]


def test_jet_to_electron_fakes_replace_the_jet():
    batch = make_batch([_jet_event()] * 20)
    jets_only = simulate(batch, PERFECT, SEED)
    assert jets_only.collections["Jet"].counts.tolist() == [1] * 20
    assert jets_only.collections["Electron"].counts.sum() == 0
    reco = simulate(batch, PERFECT.replace(jet_fake_electron_rate=1.0), SEED)
    ele = reco.collections["Electron"]
    assert reco.collections["Jet"].counts.sum() == 0
    assert ele.counts.tolist() == [1] * 20
    jet_pt = jets_only.collections["Jet"].fields["pt"]
    assert np.all((ele.fields["pt"] >= 0.6 * jet_pt) & (ele.fields["pt"] <= jet_pt))
    assert np.all(ele.fields["genPartIdx"] == -1) and np.all(ele.fields["genPartFlav"] == 0)
    # The event is measured as a single electron: MET balances it exactly.
    np.testing.assert_allclose(reco.met["MET_pt"], ele.fields["pt"], rtol=1e-9)


def test_charge_flip_rate_flips_electron_charges():
    batch = make_batch([electron_event()] * 10)
    reco = simulate(batch, PERFECT.replace(electron_charge_flip_rate=1.0), SEED)
    ele = reco.collections["Electron"].fields
    assert np.all(ele["charge"] == 1) and np.all(ele["pdgId"] == -11)
