"""The e-mu processor on hand-built NanoAOD files with known events."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from coffea.nanoevents import NanoEventsFactory
from handmade_nanoaod import Event, Lepton, write_fileset, write_nanoaod

from symnplm.io.booking import read_hists
from symnplm.io.samples import load_sample, read_manifest
from symnplm.physics import SELECTIONS, TWO_BODY_FEATURES, EfficiencyRatio
from symnplm.processors.efficiency_map import measure_from_output
from symnplm.processors.emu import EMuNanoAODSchema, EMuProcessor
from symnplm.processors.inputs import InputError
from symnplm.processors.runner import process_fileset

XSEC, LUMI = 2.0, 1000.0


def f32(x: float) -> float:
    """The value as stored in a float32 branch."""
    return float(np.float32(x))


def known_events() -> list[Event]:
    """Ten events; the comment says what the default selection does with each."""
    ep, em = (
        (lambda pt, eta, phi, **k: Lepton(pt, eta, phi, +1, **k)),
        (lambda pt, eta, phi, **k: Lepton(pt, eta, phi, -1, **k)),
    )
    return [
        # 0: e+ mu-, electron leads -> emu, ep_mum; one b-tagged jet far from both leptons
        Event([ep(50, 0.5, 0.0)], [em(30, -0.3, 2.0, ident=1)], (20, 1.0), [(45, 2.0, -2.0, 0.8)]),
        # 1: e- mu+, muon leads (endcaps) -> mue, em_mup; jets: one counted (score below
        #    the b-tag cut), one b-tagged on the muon (dR 0.1), one below 30 GeV
        Event(
            [em(25, 1.6, -1.0)],
            [ep(40, -1.8, 2.5, ident=1)],
            (35, -2.0),
            [(50, 0.0, 1.0, 0.3), (60, -1.8, 2.6, 0.9), (20, 0.0, 1.0, 0.9)],
            gen_weight=2.0,
        ),
        # 2: electron just above 15 GeV -> mue, ep_mum; leaves at electron_scale_down2
        Event([ep(15.05, 0.2, 0.3)], [em(60, 1.0, -2.0, ident=1)], (10, 0.0)),
        # 3: electron just below 15 GeV -> not selected; enters at electron_scale_up1/2
        Event([em(14.97, 0.4, 1.0)], [ep(45, -0.5, -1.5, ident=1)], (5, 2.0)),
        # 4: electron not isolated -> fails one_electron
        Event([ep(40, 0.6, 0.0, iso=0.2)], [em(30, 0.6, 3.0, ident=1)]),
        # 5: two good electrons -> fails one_electron
        Event([ep(40, 0.6, 0.0), em(35, 1.0, 1.0)], [em(30, 0.6, 3.0, ident=1)]),
        # 6: same-sign e+ mu+ -> fails opposite_charge (selected with charge="same")
        Event([ep(35, 0.15, 0.0)], [ep(25, 0.2, 3.0, ident=1)]),
        # 7: muon fails the tight ID -> fails one_muon
        Event([ep(40, 0.6, 0.0)], [em(30, 0.6, 3.0, ident=0)]),
        # 8: electron beyond |eta| 2.3 -> fails one_electron
        Event([ep(40, 2.4, 0.0)], [em(30, 0.6, 3.0, ident=1)]),
        # 9: e- (endcap) slightly softer than the mu+ -> mue, em_mup; becomes emu at
        #    electron_scale_up1/2 (20 * exp(0.009) > 20.1); negative generator weight
        Event([em(20.0, -2.0, 0.5)], [ep(20.1, 0.8, -2.5, ident=1)], (15, 1.2), gen_weight=-0.5),
    ]


SUMW = 1 + 2 + 1 + 1 + 1 + 1 + 1 + 1 + 1 - 0.5
NORM = XSEC * LUMI / SUMW


def swapped(event: Event) -> Event:
    """The same event with the electron and muon roles exchanged (IDs passing)."""
    as_electrons = [replace(mu, ident=4) for mu in event.muons]
    as_muons = [replace(e, ident=1) for e in event.electrons]
    return Event(as_electrons, as_muons, event.met, event.jets, event.gen_weight)


@pytest.fixture(scope="module")
def known(tmp_path_factory):
    """Output directory of the default processor on :func:`known_events` (simulation)."""
    tmp = tmp_path_factory.mktemp("known")
    path = write_nanoaod(tmp / "known.root", known_events())
    fs = write_fileset(tmp / "fileset.json", {"mc": {"files": [path], "metadata": {"xsec": XSEC}}})
    report = process_fileset(fs, tmp / "out", EMuProcessor(luminosity_fb=LUMI / 1000.0))
    return tmp / "out", report


def column(outdir, category, variation, name, dataset="mc"):
    return load_sample(outdir, dataset, category, variation, [name]).features[:, 0]


def test_counts_per_category_and_charge(known):
    outdir, report = known
    assert report.counts() == {
        ("mc", "emu"): 1,
        ("mc", "mue"): 3,
        ("mc", "ep_mum"): 2,
        ("mc", "em_mup"): 2,
    }
    assert report.cutflow["mc"] == {
        "all": 10,
        "finite_inputs": 10,
        "one_electron": 6,
        "one_muon": 5,
        "opposite_charge": 4,
        "emu": 1,
        "mue": 3,
        "ep_mum": 2,
        "em_mup": 2,
    }
    np.testing.assert_array_equal(column(outdir, "mue", "nominal", "pt_mu"), [40, 60, f32(20.1)])


def test_features_equal_hand_computed_values(known):
    outdir, _ = known
    emu = load_sample(outdir, "mc", "emu", "nominal")
    row = dict(zip(emu.names, emu.features[0], strict=True))
    eta_mu = f32(-0.3)
    # the features are computed in double and stored in single precision
    assert row["m_coll"] == pytest.approx(
        math.sqrt(2 * 50 * (30 + 20) * (math.cosh(0.5 - eta_mu) - math.cos(2.0))), rel=1e-7
    )
    assert (row["pt_lead"], row["eta_lead"], row["pt_sublead"], row["eta_sublead"]) == (
        50.0,
        0.5,
        30.0,
        eta_mu,
    )
    assert row["dphi"] == pytest.approx(2.0, rel=1e-7)
    assert (row["met"], row["n_jets"], row["charge_e"], row["charge_mu"]) == (20.0, 1.0, 1.0, -1.0)
    assert row["n_bjets"] == 1.0
    assert emu.weights[0] == pytest.approx(NORM, rel=1e-12)  # genWeight x xsec x L / sumw

    mue = load_sample(outdir, "mc", "mue", "nominal")
    first = dict(zip(mue.names, mue.features[0], strict=True))
    e1, mu1 = (25.0, f32(1.6), f32(-1.0)), (40.0, f32(-1.8), f32(2.5))
    dphi = abs((mu1[2] - e1[2] + math.pi) % (2 * math.pi) - math.pi)
    m_coll = math.sqrt(2 * 40 * (25 + 35) * (math.cosh(mu1[1] - e1[1]) - math.cos(dphi)))
    assert first["m_coll"] == pytest.approx(m_coll, rel=1e-7)
    assert (first["pt_lead"], first["pt_sublead"], first["n_jets"]) == (40.0, 25.0, 1.0)
    assert first["n_bjets"] == 0.0  # the tagged jets: on the muon, and below 30 GeV
    assert first["dphi"] == pytest.approx(dphi, rel=1e-7)

    def p4(pt, eta, phi, m):
        return np.array(
            [
                math.hypot(pt * math.cosh(eta), m),
                pt * math.cos(phi),
                pt * math.sin(phi),
                pt * math.sinh(eta),
            ]
        )

    tot = p4(*e1, f32(0.000511)) + p4(*mu1, f32(0.10566))
    assert first["m_ll"] == pytest.approx(math.sqrt(tot[0] ** 2 - np.sum(tot[1:] ** 2)), rel=1e-7)
    np.testing.assert_allclose(mue.weights, NORM * np.array([2.0, 1.0, -0.5]), rtol=1e-12)
    assert set(TWO_BODY_FEATURES) <= set(mue.names)


def test_scale_shift_moves_pt_by_the_factor_and_migrates_events(known):
    outdir, _ = known
    # muon scale: pT x exp(nu sigma), barrel 0.05 %, endcap 0.15 %; no migration
    nominal = load_sample(outdir, "mc", "mue", "nominal")
    up = load_sample(outdir, "mc", "mue", "muon_scale_up1")
    eta_mu = nominal.column("eta_mu")
    factor = np.exp(np.where(np.abs(eta_mu) < 1.2, 0.0005, 0.0015))
    np.testing.assert_allclose(up.column("pt_mu"), nominal.column("pt_mu") * factor, rtol=1e-7)
    np.testing.assert_array_equal(up.column("pt_e"), nominal.column("pt_e"))
    # MET absorbs the muon's change: event 1 (muon at phi 2.5, MET 35 at phi -2)
    dpt = 40 * (math.exp(0.0015) - 1)
    mex = 35 * math.cos(-2.0) - dpt * math.cos(f32(2.5))
    mey = 35 * math.sin(-2.0) - dpt * math.sin(f32(2.5))
    assert up.column("met")[0] == pytest.approx(math.hypot(mex, mey), rel=1e-7)

    # electron scale: event 3 (14.97 GeV) enters at up1, event 2 (15.05 GeV) leaves at down2,
    # event 9 moves from mue to emu at up1
    _, report = known
    counts = {
        v: report.counts(v)
        for v in ("electron_scale_up1", "electron_scale_down1", "electron_scale_down2")
    }
    assert counts["electron_scale_up1"][("mc", "emu")] == 2
    assert counts["electron_scale_up1"][("mc", "mue")] == 3
    assert counts["electron_scale_down1"][("mc", "mue")] == 3
    assert counts["electron_scale_down2"][("mc", "mue")] == 2
    entered = column(outdir, "mue", "electron_scale_up1", "pt_e")
    assert np.isclose(entered, f32(14.97) * math.exp(0.003), rtol=1e-7, atol=0).any()
    assert column(outdir, "emu", "electron_scale_up1", "pt_e")[1] == pytest.approx(
        20 * math.exp(0.009)
    )


def test_normalisation_variation_scales_weights_only(known):
    outdir, _ = known
    nominal = load_sample(outdir, "mc", "mue", "nominal")
    down = load_sample(outdir, "mc", "mue", "norm_down2")
    np.testing.assert_array_equal(down.features, nominal.features)
    np.testing.assert_allclose(down.weights, nominal.weights * math.exp(-2 * 0.025), rtol=1e-12)


def test_histograms_and_manifest(known):
    outdir, _ = known
    hists = read_hists(outdir)
    h = hists["m_coll"][{"dataset": "mc", "category": "emu", "variation": "nominal"}]
    m_coll = column(outdir, "emu", "nominal", "m_coll")[0]
    assert h.values().sum() == pytest.approx(NORM) and h.values()[
        int(m_coll // 5)
    ] == pytest.approx(NORM)
    lep = hists["lepton_pt"][
        {"dataset": "mc", "category": "mue", "variation": "norm_up1", "lepton": "muon"}
    ]
    assert lep.values().sum() == pytest.approx(NORM * 2.5 * math.exp(0.025))
    assert hists["n_jets"][{"dataset": "mc", "category": "mue", "variation": "nominal"}].values()[
        1
    ] == (pytest.approx(2 * NORM))
    manifest = read_manifest(outdir)
    assert manifest["seed"] is None and manifest["config"]["luminosity_pb"] == LUMI
    assert manifest["weighting"] == {"mc": ["genWeight * xsec * luminosity / sumw"]}
    assert manifest["provenance"]["versions"]["coffea"]
    assert len(manifest["samples"]) == 4 * len(EMuProcessor().variations)
    sample = load_sample(outdir, "mc", "emu", "nominal")
    assert sample.provenance["processor"]["electron"]["iso_max"] == 0.15
    assert sample.provenance["metadata"]["sumw"] == pytest.approx(SUMW)


def test_nu_zero_variation_is_the_identity(tmp_path):
    path = write_nanoaod(tmp_path / "known.root", known_events())
    proc = EMuProcessor(scale_nus=[0.0], normalisation=None)
    assert proc.variations == ["nominal", "electron_scale_up0", "muon_scale_up0"]
    report = process_fileset({"mc": [str(path)]}, tmp_path / "out", proc)
    # no cross section in the fileset: genWeight alone, and the user is told
    assert any("'mc': event weights are ['genWeight (no xsec" in n for n in report.notes)
    for category in proc.categories:
        nominal = load_sample(tmp_path / "out", "mc", category, "nominal")
        for variation in proc.variations[1:]:
            varied = load_sample(tmp_path / "out", "mc", category, variation)
            np.testing.assert_array_equal(varied.features, nominal.features)
            np.testing.assert_array_equal(varied.weights, nominal.weights)


def test_swapping_electron_and_muon_swaps_categories(tmp_path):
    selected = [known_events()[i] for i in (0, 1, 2, 9)]
    a = write_nanoaod(tmp_path / "a.root", selected, mc=False)
    b = write_nanoaod(tmp_path / "b.root", [swapped(e) for e in selected], mc=False)
    fs = {"a": {"files": [str(a)], "metadata": {"is_data": True}}, "b": {"files": [str(b)]}}
    report = process_fileset(fs, tmp_path / "out", EMuProcessor(scale_nus=[], normalisation=None))
    counts = report.counts()
    assert (counts["a", "emu"], counts["a", "mue"]) == (1, 3)
    assert (counts["b", "emu"], counts["b", "mue"]) == (3, 1)
    assert (counts["a", "ep_mum"], counts["b", "em_mup"]) == (2, 2)
    out = tmp_path / "out"
    for cat_a, cat_b in (("emu", "mue"), ("mue", "emu"), ("ep_mum", "em_mup")):
        sa = load_sample(out, "a", cat_a, features=[*TWO_BODY_FEATURES, "m_coll"])
        sb = load_sample(out, "b", cat_b, features=[*TWO_BODY_FEATURES, "m_coll"])
        np.testing.assert_array_equal(sa.features, sb.features)
        np.testing.assert_allclose(
            load_sample(out, "a", cat_a, features=["m_ll"]).features,
            load_sample(out, "b", cat_b, features=["m_ll"]).features,
            rtol=1e-4,  # the lepton masses are swapped too
        )
    assert np.all(load_sample(out, "a", "mue").weights == 1.0)  # data: unit weights


def test_same_sign_control_region(tmp_path):
    path = write_nanoaod(tmp_path / "known.root", known_events())
    proc = EMuProcessor(charge="same", scale_nus=[], normalisation=None)
    report = process_fileset({"mc": [str(path)]}, tmp_path / "out", proc)
    assert report.counts() == {
        ("mc", "emu"): 1,
        ("mc", "mue"): 0,
        ("mc", "ep_mup"): 1,
        ("mc", "em_mum"): 0,
    }
    assert report.cutflow["mc"]["same_charge"] == 1


def test_collinear_form_option(tmp_path):
    path = write_nanoaod(tmp_path / "known.root", known_events()[:1])
    proc = EMuProcessor(collinear_form="cms", scale_nus=[], normalisation=None)
    process_fileset({"mc": [str(path)]}, tmp_path / "out", proc)
    m_coll = column(tmp_path / "out", "emu", "nominal", "m_coll")[0]
    m_ll = column(tmp_path / "out", "emu", "nominal", "m_ll")[0]
    along = 20 * math.cos(1.0 - 2.0)  # MET projected on the subleading lepton
    assert m_coll == pytest.approx(m_ll / math.sqrt(30 / (30 + along)), rel=1e-7)


def asymmetric_events() -> list[Event]:
    """Two pT bins with eps_e = (1/2, 3/4), eps_mu = 1: multiplicities 4 eps_e(e) eps_mu(mu)."""

    def pair(pt_e, pt_mu, n):
        return [Event([Lepton(pt_e, 0.5, 0.0, 1)], [Lepton(pt_mu, -0.5, 2.0, -1, ident=1)])] * n

    return (
        pair(25, 30, 2)
        + pair(30, 25, 2)
        + pair(25, 60, 2)
        + pair(60, 25, 3)
        + pair(50, 70, 3)
        + pair(70, 50, 3)
    )


# hand-made samples of a few events: the sparse-map guard is off
FAST_MAP = {
    "pt_edges": (15, 40, 200),
    "abseta_edges": (0, 2.5),
    "n_bootstrap": 20,
    "seed": 3,
    "min_per_bin": 0,
}


def test_efficiency_weights_restore_emu_mue_symmetry(tmp_path):
    # the map is measured on one sample (other event numbers: another production) ...
    calib = write_nanoaod(tmp_path / "calib.root", asymmetric_events(), mc=False, first_event=1001)
    first = process_fileset(
        {"data": [str(calib)]}, tmp_path / "pass1", EMuProcessor(scale_nus=[], normalisation=None)
    )
    assert (first.counts()["data", "emu"], first.counts()["data", "mue"]) == (8, 7)
    ratio = measure_from_output(tmp_path / "pass1", **FAST_MAP)
    ratio.write(tmp_path / "eff.json")
    # ... and applied to another one with the same efficiencies
    path = write_nanoaod(tmp_path / "asym.root", asymmetric_events(), mc=False)
    proc = EMuProcessor(scale_nus=[], normalisation=None, efficiency=tmp_path / "eff.json")
    second = process_fileset({"data": [str(path)]}, tmp_path / "pass2", proc)
    # both flavours populate every bin of this map: nothing is masked, every event stays
    assert ratio.measurement["masked_bins"] == []
    steps = list(second.cutflow["data"])
    after = steps.index("opposite_charge") + 1  # after the selection, before the categories
    assert steps[after : after + 2] == ["map_acceptance", "emu"]
    assert second.cutflow["data"]["map_acceptance"] == 15
    emu = load_sample(tmp_path / "pass2", "data", "emu")
    mue = load_sample(tmp_path / "pass2", "data", "mue")
    assert emu.sum_weights == pytest.approx(mue.sum_weights, rel=1e-9)
    assert emu.sum_weights + mue.sum_weights == pytest.approx(15.0, rel=1e-9)  # total kept
    # eps_mu/eps_e is 2 below 40 GeV and 4/3 above: ratio of the two weights 1.5
    w = {pt: emu.weights[emu.column("pt_e") == pt][0] for pt in (30.0, 60.0)}
    assert w[30.0] / w[60.0] == pytest.approx(1.5, rel=1e-9)
    manifest = read_manifest(tmp_path / "pass2")
    assert manifest["config"]["efficiency"]["source"].endswith("eff.json")
    # the bin-by-bin uncertainty becomes the efficiency_up1 / _down1 weight variations
    for variation, systematic in (("efficiency_up1", "up"), ("efficiency_down1", "down")):
        varied = load_sample(tmp_path / "pass2", "data", "emu", variation)
        np.testing.assert_array_equal(varied.features, emu.features)
        pt, eta = emu.column("pt_e"), emu.column("eta_e")
        expected = emu.weights * ratio(pt, eta, systematic) / ratio(pt, eta)
        np.testing.assert_allclose(varied.weights, expected, rtol=1e-12)
        assert not np.allclose(varied.weights, emu.weights)
    # the applied map is kept with the output
    assert manifest["efficiency_map"] == "efficiency_map.json"
    kept = EfficiencyRatio.read(tmp_path / "pass2" / "efficiency_map.json")
    np.testing.assert_array_equal(kept(pt, eta), ratio(pt, eta))


def test_map_is_refused_on_the_events_it_was_measured_on(tmp_path):
    path = write_nanoaod(tmp_path / "asym.root", asymmetric_events(), mc=False)
    process_fileset({"data": [str(path)]}, tmp_path / "pass1", EMuProcessor(scale_nus=[]))
    measure_from_output(tmp_path / "pass1", **FAST_MAP).write(tmp_path / "eff.json")
    proc = EMuProcessor(scale_nus=[], efficiency=tmp_path / "eff.json")
    # the same content under another name is the same events
    copy = tmp_path / "copy.root"
    copy.write_bytes(path.read_bytes())
    with pytest.raises(InputError, match=r"measured on events this run processes .*copy\.root"):
        process_fileset({"data": [str(copy)]}, tmp_path / "pass2", proc)
    assert not (tmp_path / "pass2" / "manifest.json").exists()
    # forced: applied, and the output says so
    report = process_fileset(
        {"data": [str(path)]}, tmp_path / "forced", proc, allow_map_overlap=True
    )
    assert any("--allow-map-overlap" in note for note in report.notes)


def test_event_parity_splits_a_sample_into_independent_halves(tmp_path):
    events = asymmetric_events()
    path = write_nanoaod(tmp_path / "asym.root", events, mc=False)
    odd = process_fileset(
        {"data": [str(path)]}, tmp_path / "odd", EMuProcessor(scale_nus=[], events="odd")
    )
    even = process_fileset(
        {"data": [str(path)]}, tmp_path / "even", EMuProcessor(scale_nus=[], events="even")
    )
    assert odd.cutflow["data"]["all"] == even.cutflow["data"]["all"] == len(events)
    # event numbers 1..15: 8 odd, 7 even, every event in exactly one half
    assert (odd.cutflow["data"]["odd_events"], even.cutflow["data"]["even_events"]) == (8, 7)
    n_odd = sum(odd.counts()[("data", c)] for c in ("emu", "mue"))
    n_even = sum(even.counts()[("data", c)] for c in ("emu", "mue"))
    assert n_odd + n_even == len(events)
    # a map from the odd half applies to the even half; not to the odd half itself
    measure_from_output(tmp_path / "odd", **FAST_MAP).write(tmp_path / "eff.json")
    proc = EMuProcessor(scale_nus=[], efficiency=tmp_path / "eff.json", events="even")
    process_fileset({"data": [str(path)]}, tmp_path / "even_corrected", proc)
    with pytest.raises(InputError, match="map events: odd, this run: odd"):
        process_fileset(
            {"data": [str(path)]},
            tmp_path / "odd_corrected",
            EMuProcessor(scale_nus=[], efficiency=tmp_path / "eff.json", events="odd"),
        )


@pytest.mark.parametrize("mode", ["eager", "virtual"])
def test_processor_on_nanoevents_directly(tmp_path, mode):
    path = write_nanoaod(tmp_path / "known.root", known_events(), mc=False)
    proc = EMuProcessor(scale_nus=[1.0], normalisation=None)
    events = NanoEventsFactory.from_root(
        {str(path): "Events"},
        schemaclass=EMuNanoAODSchema,
        mode=mode,
        metadata={"dataset": "d", "filename": str(path)},
        iteritems_options={"filter_name": proc.branches()},
    ).events()
    out = proc.postprocess(proc.process(events))
    assert out["cutflow"]["d"]["opposite_charge"] == 4
    tables = {(c, v): cols for _, c, v, cols in proc.tables(out)}
    np.testing.assert_array_equal(tables["emu", "nominal"]["pt_e"], [50.0])
    np.testing.assert_array_equal(
        tables["emu", "electron_scale_up1"]["pt_e"], [50 * math.exp(0.003), 20 * math.exp(0.009)]
    )
    assert set(tables) == {(c, v) for c in proc.categories for v in proc.variations}
    # a cross section says "simulation", which needs genWeight: the file and branch are named
    events.metadata["xsec"] = 1.0
    with pytest.raises(
        InputError, match=r"known\.root: branch 'genWeight' not found in tree 'Events'"
    ):
        proc.process(events)


def test_map_measured_with_other_cuts_is_refused(tmp_path):
    calib = write_nanoaod(tmp_path / "calib.root", asymmetric_events(), mc=False, first_event=1001)
    process_fileset({"data": [str(calib)]}, tmp_path / "pass1", EMuProcessor(scale_nus=[]))
    measure_from_output(tmp_path / "pass1", **FAST_MAP).write(tmp_path / "eff.json")
    paper_e, paper_mu = SELECTIONS["paper"]
    with pytest.raises(ValueError, match=r"measured with other electron cuts \(eta_vetoes differ"):
        EMuProcessor(electron=paper_e, muon=paper_mu, efficiency=tmp_path / "eff.json")
    EMuProcessor(efficiency=tmp_path / "eff.json")  # the same (lfuv) cuts: accepted


def test_without_the_btag_score_n_bjets_is_minus_one_and_said(tmp_path):
    path = write_nanoaod(tmp_path / "nobtag.root", known_events(), drop=["Jet_btagDeepFlavB"])
    fs = write_fileset(tmp_path / "fs.json", {"mc": {"files": [path], "metadata": {"xsec": XSEC}}})
    report = process_fileset(fs, tmp_path / "out", EMuProcessor(luminosity_fb=LUMI / 1000.0))
    n_jets = column(tmp_path / "out", "emu", "nominal", "n_jets")
    n_bjets = column(tmp_path / "out", "emu", "nominal", "n_bjets")
    assert n_jets[0] == 1.0 and np.all(n_bjets == -1.0)
    assert any("Jet_btagDeepFlavB" in n and "n_bjets" in n for n in report.notes)


def test_histograms_are_also_written_as_root(known):
    """hists.root holds one TH1 per (dataset, category, variation), equal to hists.json."""
    import uproot

    outdir, _ = known
    hists = read_hists(outdir)
    assert read_manifest(outdir)["hists_root"] == "hists.root"
    with uproot.open(outdir / "hists.root") as f:
        for name, where in (
            ("m_coll", ("mc", "emu", "nominal")),
            ("n_jets", ("mc", "mue", "nominal")),
        ):
            th1 = f["/".join([name, *where])]
            expected = hists[name][dict(zip(("dataset", "category", "variation"), where))]
            np.testing.assert_allclose(th1.values(flow=True), expected.values(flow=True))
            np.testing.assert_allclose(th1.variances(flow=True), expected.variances(flow=True))
            np.testing.assert_allclose(th1.axis().edges(), expected.axes[0].edges)
        # the per-lepton histograms have one more category axis
        assert "lepton_pt/mc/emu/nominal/electron" in {k.split(";")[0] for k in f.keys()}


def test_one_file_per_event_variation_holds_every_category(known):
    """Categories are row filters, efficiency variations weight columns and normalisation
    variations a factor in the manifest, of one file per (chunk, event variation): no event
    is stored twice, no weight copied to be multiplied by a number."""
    import pyarrow.parquet as pq

    from symnplm.physics import category_filters, emu_categories

    outdir, _ = known
    manifest = read_manifest(outdir)
    folders = sorted(p.name for p in (outdir / "columns" / "mc").iterdir())
    event_variations = {v for v in manifest["config"]["variations"] if not v.startswith("norm")}
    event_variations -= {v for v in event_variations if v.startswith("efficiency")}
    assert folders == sorted(event_variations)
    (nominal_file,) = (outdir / "columns" / "mc" / "nominal").glob("*.parquet")  # one chunk
    nominal = pq.read_table(nominal_file)
    assert not [c for c in nominal.column_names if c.startswith("weight:norm")]
    # the features in single precision (as NanoAOD stores them), the weights in double
    assert nominal.schema.field("m_coll").type == "float" == nominal.schema.field("n_jets").type
    assert nominal.schema.field("weight").type == "double"
    up1 = next(s for s in manifest["samples"] if s["variation"] == "norm_up1" and s["parts"])
    assert all(p["scale"] == pytest.approx(math.exp(0.025)) for p in up1["parts"])
    # the stored filters select exactly the events emu_categories assigns
    cols = {c: nominal.column(c).to_numpy() for c in ("pt_e", "pt_mu", "charge_e", "charge_mu")}
    masks = emu_categories(cols["pt_e"], cols["pt_mu"], cols["charge_e"], cols["charge_mu"])
    for category, where in category_filters().items():
        rows = np.ones(nominal.num_rows, dtype=bool)
        for column_name, value in where.items():
            rows &= nominal.column(column_name).to_numpy() == value
        np.testing.assert_array_equal(rows, masks[category], err_msg=category)
        loaded = load_sample(outdir, "mc", category, "norm_up1", ["pt_e"])
        np.testing.assert_allclose(
            loaded.weights,
            nominal.column("weight").to_numpy()[masks[category]] * math.exp(0.025),
            rtol=1e-12,
        )


# -- event-level cuts: trigger and certified luminosity ------------------------------------
def _triggered_events():
    """Four selected e-mu events: which path fired, and their luminosity sections."""
    flags = [(True, False), (False, True), (False, False), (True, True)]
    return [
        Event(
            [Lepton(50.0, 0.5, 0.0, 1)],
            [Lepton(30.0, -0.5, 2.0, -1, ident=1)],
            extra={"HLT_IsoMu24": mu, "HLT_Ele32_WPTight_Gsf": e, "luminosityBlock": k + 1},
        )
        for k, (mu, e) in enumerate(flags)
    ]


def test_triggers_keep_events_that_fired_one_path(tmp_path):
    path = write_nanoaod(tmp_path / "t.root", _triggered_events(), mc=False)
    fs = {"data": {"files": [str(path)], "metadata": {"is_data": True}}}
    out = tmp_path / "out"
    proc = EMuProcessor(triggers=["HLT_IsoMu24", "Ele32_WPTight_Gsf"], scale_nus=[], norm_nus=[])
    process_fileset(fs, out, proc)
    flow = read_manifest(out)["cutflow"]["data"]
    assert (flow["all"], flow["trigger"], flow["opposite_charge"]) == (4, 3, 3)
    assert list(flow)[:2] == ["all", "trigger"]  # before any object is looked at
    # a dataset's metadata replaces the processor's paths
    fs["data"]["metadata"]["triggers"] = ["IsoMu24"]
    process_fileset(fs, tmp_path / "out2", proc)
    assert read_manifest(tmp_path / "out2")["cutflow"]["data"]["trigger"] == 2


def test_a_missing_trigger_path_names_file_and_branch(tmp_path):
    path = write_nanoaod(tmp_path / "t.root", _triggered_events(), mc=False)
    fs = {"data": {"files": [str(path)], "metadata": {"is_data": True}}}
    with pytest.raises(InputError, match=r"t\.root: trigger branch\(es\) \['HLT_Mu50'\]"):
        process_fileset(fs, tmp_path / "out", EMuProcessor(triggers=["Mu50"]))
    fs["data"]["metadata"]["triggers"] = "IsoMu24"  # a string, not a list
    with pytest.raises(InputError, match="dataset 'data': metadata 'triggers': expected a list"):
        process_fileset(fs, tmp_path / "out", EMuProcessor())


def test_the_lumi_mask_keeps_certified_sections_of_data_only(tmp_path):
    golden = tmp_path / "golden.json"
    golden.write_text('{"1": [[2, 3]]}')  # run 1, sections 2-3
    events = _triggered_events()
    data = write_nanoaod(tmp_path / "d.root", events, mc=False)
    mc = write_nanoaod(tmp_path / "m.root", events)
    fs = {
        "data": {"files": [str(data)], "metadata": {"is_data": True}},
        "mc": {"files": [str(mc)], "metadata": {}},
    }
    process_fileset(fs, tmp_path / "out", EMuProcessor(lumi_mask=golden, scale_nus=[], norm_nus=[]))
    manifest = read_manifest(tmp_path / "out")
    assert manifest["cutflow"]["data"]["lumi_mask"] == 2
    assert manifest["cutflow"]["data"]["opposite_charge"] == 2
    assert "lumi_mask" not in manifest["cutflow"]["mc"]  # simulation has no certification
    assert manifest["cutflow"]["mc"]["opposite_charge"] == 4
    assert manifest["config"]["lumi_mask"] == str(golden)
    golden.write_text("[1, 2]")
    with pytest.raises(InputError, match=r"golden\.json: not a certified-luminosity JSON"):
        EMuProcessor(lumi_mask=golden)


def _scale_factor_file(path, name, inputs):
    """A correctionlib file: 1.1 for pT < 40 GeV, 0.9 above, whatever the other inputs."""
    import correctionlib.schemav2 as cs

    kinds = {"pt": "real", "abseta": "real", "eta": "real", "ValType": "string"}
    correction = cs.Correction(
        name=name,
        version=1,
        inputs=[cs.Variable(name=i, type=kinds[i]) for i in inputs],
        output=cs.Variable(name="sf", type="real"),
        data=cs.Binning(
            nodetype="binning", input="pt", edges=[0, 40, 1000], content=[1.1, 0.9], flow="clamp"
        ),
    )
    path.write_text(cs.CorrectionSet(schema_version=2, corrections=[correction]).model_dump_json())
    return path


def test_scale_factors_multiply_simulation_weights_at_the_selected_leptons(tmp_path):
    """Electron SF 1.1 below 40 GeV and 0.9 above; a muon SF with a fixed string input."""
    from symnplm.physics.scale_factors import LeptonScaleFactor

    events = [
        Event([Lepton(50.0, 0.5, 0.0, 1)], [Lepton(30.0, -0.5, 2.0, -1, ident=1)]),  # e 0.9, mu 1.1
        Event([Lepton(25.0, 1.0, 0.0, -1)], [Lepton(45.0, 0.3, 2.0, 1, ident=1)]),  # e 1.1, mu 0.9
    ]
    mc = write_nanoaod(tmp_path / "mc.root", events)
    data = write_nanoaod(tmp_path / "data.root", events, mc=False)
    fs = {
        "mc": {"files": [str(mc)], "metadata": {}},
        "data": {"files": [str(data)], "metadata": {}},
    }
    e_file = _scale_factor_file(tmp_path / "e.json", "EleID", ["abseta", "pt"])
    mu_file = _scale_factor_file(tmp_path / "m.json", "MuID", ["eta", "pt", "ValType"])
    sfs = [
        LeptonScaleFactor("electron", str(e_file), "EleID"),
        LeptonScaleFactor.parse(f"muon:{mu_file}:MuID:ValType=sf"),
    ]
    out = tmp_path / "out"
    process_fileset(fs, out, EMuProcessor(scale_factors=sfs, scale_nus=[], norm_nus=[]))
    emu, mue = (load_sample(out, "mc", c, "nominal", ["pt_e"]) for c in ("emu", "mue"))
    assert emu.weights[0] == pytest.approx(0.9 * 1.1)  # genWeight 1, no xsec: not normalised
    assert mue.weights[0] == pytest.approx(1.1 * 0.9)
    assert load_sample(out, "data", "emu", "nominal", ["pt_e"]).weights[0] == 1.0  # data untouched
    assert read_manifest(out)["config"]["scale_factors"][1]["fixed"] == {"ValType": "sf"}
    with pytest.raises(
        ValueError, match=r"m\.json: correction 'MuID' has input\(s\) \['ValType'\]"
    ):
        EMuProcessor(scale_factors=[LeptonScaleFactor("muon", str(tmp_path / "m.json"), "MuID")])
    with pytest.raises(KeyError, match="no correction 'Nope'"):
        EMuProcessor(scale_factors=[LeptonScaleFactor("muon", str(tmp_path / "m.json"), "Nope")])
