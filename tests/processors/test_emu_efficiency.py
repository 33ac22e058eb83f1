"""Efficiency-ratio maps: measurement restores emu/mue symmetry; correctionlib round trip."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from symnplm.physics import EfficiencyRatio, emu_categories, measure_efficiency_ratio

PT_EDGES = (15.0, 40.0, 200.0)
ETA_EDGES = (0.0, 1.2, 2.5)
# true efficiencies per (pT bin, |eta| bin): electrons worse and pT/eta dependent
EPS_E = np.array([[0.50, 0.40], [0.75, 0.60]])
EPS_MU = np.array([[0.95, 0.90], [1.00, 0.97]])


def _bin(pt, abseta):
    return int(pt >= 40.0), int(abseta >= 1.2)


def asymmetric_sample():
    """An e <-> mu symmetric truth seen with different e and mu efficiencies.

    Every truth pair of lepton momenta appears twice, once with the electron on the
    first lepton and once on the second; each assignment is weighted by
    eps_e(electron) * eps_mu(muon), as a detector would record it.
    """
    truth = [  # (pt1, eta1, pt2, eta2)
        (25.0, 0.3, 30.0, 1.5),
        (25.0, 1.8, 60.0, 0.2),
        (50.0, 0.5, 70.0, 2.0),
        (18.0, 1.3, 120.0, 1.0),
        (35.0, 0.1, 45.0, 1.9),
        (90.0, 2.2, 22.0, 0.7),
    ]
    rows = []
    for pt1, eta1, pt2, eta2 in truth:
        for (pe, ee), (pm, em) in (((pt1, eta1), (pt2, eta2)), ((pt2, eta2), (pt1, eta1))):
            w = EPS_E[_bin(pe, ee)] * EPS_MU[_bin(pm, em)]
            rows.append((pe, ee, pm, em, w))
    return np.array(rows).T


def yields(pt_e, pt_mu, w):
    cats = emu_categories(pt_e, pt_mu, np.ones_like(pt_e), -np.ones_like(pt_e))
    return w[cats["emu"]].sum(), w[cats["mue"]].sum()


def test_measured_map_restores_equal_emu_mue_yields():
    pt_e, eta_e, pt_mu, eta_mu, w = asymmetric_sample()
    emu, mue = yields(pt_e, pt_mu, w)
    assert abs(emu - mue) / (emu + mue) > 0.05  # the detector makes the samples differ

    ratio = measure_efficiency_ratio(
        pt_e, eta_e, pt_mu, eta_mu, w, pt_edges=PT_EDGES, abseta_edges=ETA_EDGES
    )
    assert ratio.measurement["converged"]
    reweighted = w * ratio(pt_e, eta_e)
    emu_w, mue_w = yields(pt_e, pt_mu, reweighted)
    assert emu_w == pytest.approx(mue_w, rel=1e-9)
    # the total yield is kept, and the map is eps_mu/eps_e up to one constant
    assert reweighted.sum() == pytest.approx(w.sum(), rel=1e-12)
    centres_pt, centres_eta = np.array([20.0, 20.0, 50.0, 50.0]), np.array([0.5, 2.0, 0.5, 2.0])
    got = ratio(centres_pt, centres_eta)
    truth = (EPS_MU / EPS_E).ravel()
    np.testing.assert_allclose(got / got[0], truth / truth[0], rtol=1e-9)


def test_single_iteration_is_the_plain_count_ratio():
    pt_e, eta_e, pt_mu, eta_mu, w = asymmetric_sample()
    ratio = measure_efficiency_ratio(
        pt_e, eta_e, pt_mu, eta_mu, w, pt_edges=PT_EDGES, abseta_edges=ETA_EDGES, iterations=1
    )
    n_e = np.array(ratio.measurement["n_electron"]).ravel()
    n_mu = np.array(ratio.measurement["n_muon"]).ravel()
    # bin (0, 0) as the reference: the overall normalisation cancels
    got = ratio(np.array([20.0, 20.0, 50.0, 50.0]), np.array([0.5, 2.0, 0.5, 2.0]))
    np.testing.assert_allclose(got / got[0], (n_mu / n_e) / (n_mu[0] / n_e[0]), rtol=1e-12)
    assert ratio.measurement["iterations"] == 1


def test_symmetric_sample_gives_a_flat_map():
    rng = np.random.default_rng(7)
    pt = rng.uniform(15, 150, size=(2, 500))
    eta = rng.uniform(-2.3, 2.3, size=(2, 500))
    # both assignments of every pair, equal efficiencies: nothing to correct
    pt_e, pt_mu = np.concatenate([pt[0], pt[1]]), np.concatenate([pt[1], pt[0]])
    eta_e, eta_mu = np.concatenate([eta[0], eta[1]]), np.concatenate([eta[1], eta[0]])
    ratio = measure_efficiency_ratio(pt_e, eta_e, pt_mu, eta_mu)
    np.testing.assert_allclose(ratio(pt_e, eta_e), 1.0, rtol=1e-12)


def test_correctionlib_round_trip(tmp_path):
    pt_e, eta_e, pt_mu, eta_mu, w = asymmetric_sample()
    ratio = measure_efficiency_ratio(
        pt_e, eta_e, pt_mu, eta_mu, w, pt_edges=PT_EDGES, abseta_edges=ETA_EDGES
    )
    path = ratio.write(tmp_path / "eff.json")
    back = EfficiencyRatio.read(path)
    probe_pt = np.array([10.0, 15.0, 39.99, 40.0, 150.0, 1e4])  # incl. outside the edges
    probe_eta = np.array([0.0, -1.19, 1.2, -2.4, 3.0, 0.1])
    np.testing.assert_array_equal(back(probe_pt, probe_eta), ratio(probe_pt, probe_eta))
    # the file is plain correctionlib: readable without symnplm
    import correctionlib

    corr = correctionlib.CorrectionSet.from_file(str(path))["efficiency_ratio"]
    np.testing.assert_array_equal(
        corr.evaluate(probe_pt, np.abs(probe_eta)), ratio(probe_pt, probe_eta)
    )
    # and it survives pickling (sent to coffea workers)
    np.testing.assert_array_equal(
        pickle.loads(pickle.dumps(back))(probe_pt, probe_eta), back(probe_pt, probe_eta)
    )


def test_user_map_with_signed_eta_input(tmp_path):
    import correctionlib.schemav2 as cs

    corr = cs.Correction(
        name="my_ratio",
        version=2,
        inputs=[cs.Variable(name="eta", type="real"), cs.Variable(name="pt", type="real")],
        output=cs.Variable(name="w", type="real"),
        data=cs.MultiBinning(
            nodetype="multibinning",
            inputs=["eta", "pt"],
            edges=[[-2.5, 0.0, 2.5], [15.0, 50.0, 1000.0]],
            content=[1.0, 2.0, 3.0, 4.0],
            flow="clamp",
        ),
    )
    other = cs.Correction(
        name="other", version=1, inputs=[cs.Variable(name="x", type="real")],
        output=cs.Variable(name="y", type="real"), data=1.0,
    )  # fmt: skip
    path = tmp_path / "user.json"
    path.write_text(cs.CorrectionSet(schema_version=2, corrections=[corr, other]).model_dump_json())
    with pytest.raises(ValueError, match="say which one"):
        EfficiencyRatio.read(path)
    ratio = EfficiencyRatio.read(path, "my_ratio")
    np.testing.assert_array_equal(
        ratio(np.array([20.0, 60.0, 20.0]), np.array([-1.0, -1.0, 1.0])), [1, 2, 3]
    )
    with pytest.raises(ValueError, match="needs exactly 'pt' and 'abseta'"):
        EfficiencyRatio.read(path, "other")
    with pytest.raises(KeyError, match="no correction named 'nope'"):
        EfficiencyRatio.read(path, "nope")


def test_bad_maps_and_samples_are_rejected(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"missing\.json: no such"):
        EfficiencyRatio.read(tmp_path / "missing.json")
    (tmp_path / "junk.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"junk\.json: not a correctionlib"):
        EfficiencyRatio.read(tmp_path / "junk.json")
    with pytest.raises(ValueError, match="shape"):
        EfficiencyRatio.from_bins(PT_EDGES, ETA_EDGES, np.ones((3, 2)))
    with pytest.raises(ValueError, match="positive"):
        EfficiencyRatio.from_bins(PT_EDGES, ETA_EDGES, np.zeros((2, 2)))
    with pytest.raises(ValueError, match="empty"):
        measure_efficiency_ratio([], [], [], [])
    assert json.loads(EfficiencyRatio.from_bins(PT_EDGES, ETA_EDGES, np.ones((2, 2))).json_text)
