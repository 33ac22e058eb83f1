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
        pt_e, eta_e, pt_mu, eta_mu, w, pt_edges=PT_EDGES, abseta_edges=ETA_EDGES, min_per_bin=0
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
        pt_e,
        eta_e,
        pt_mu,
        eta_mu,
        w,
        pt_edges=PT_EDGES,
        abseta_edges=ETA_EDGES,
        iterations=1,
        min_per_bin=0,
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
    ratio = measure_efficiency_ratio(pt_e, eta_e, pt_mu, eta_mu, min_per_bin=0, n_bootstrap=0)
    np.testing.assert_allclose(ratio(pt_e, eta_e), 1.0, rtol=1e-12)


def test_correctionlib_round_trip(tmp_path):
    pt_e, eta_e, pt_mu, eta_mu, w = asymmetric_sample()
    ratio = measure_efficiency_ratio(
        pt_e, eta_e, pt_mu, eta_mu, w, pt_edges=PT_EDGES, abseta_edges=ETA_EDGES, min_per_bin=0
    )
    path = ratio.write(tmp_path / "eff.json")
    back = EfficiencyRatio.read(path)
    probe_pt = np.array([10.0, 15.0, 39.99, 40.0, 150.0, 1e4])  # incl. outside the edges
    probe_eta = np.array([0.0, -1.19, 1.2, -2.4, 3.0, 0.1])
    np.testing.assert_array_equal(back(probe_pt, probe_eta), ratio(probe_pt, probe_eta))
    # the file is plain correctionlib: readable without symnplm
    import correctionlib

    corr = correctionlib.CorrectionSet.from_file(str(path))["efficiency_ratio"]
    for systematic in ("nominal", "up", "down"):
        np.testing.assert_array_equal(
            corr.evaluate(systematic, probe_pt, np.abs(probe_eta)),
            ratio(probe_pt, probe_eta, systematic),
        )
    # the measurement record travels inside the file
    assert back.measurement["n_bootstrap"] == ratio.measurement["n_bootstrap"]
    np.testing.assert_array_equal(back.bins()[3], ratio.bins()[3])
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
    with pytest.raises(ValueError, match="needs 'pt' and 'abseta'"):
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


def test_default_edges_sit_on_the_detector_boundaries():
    from symnplm.physics.efficiency import DEFAULT_ABSETA_EDGES
    from symnplm.physics.selection import ETA_VETOES

    # every vetoed region is whole bins: no bin mixes a vetoed and a kept |eta|
    for low, high in ETA_VETOES:
        assert low in DEFAULT_ABSETA_EDGES and high in DEFAULT_ABSETA_EDGES
    assert DEFAULT_ABSETA_EDGES[-1] == 2.3  # the selection's |eta| limit
    # outside the vetoes, an efficiency step anywhere is resolved to 0.1 in |eta|
    lows, widths = np.array(DEFAULT_ABSETA_EDGES[:-1]), np.diff(DEFAULT_ABSETA_EDGES)
    vetoed = np.zeros(len(widths), bool)
    for low, high in ETA_VETOES:
        vetoed |= (lows >= low) & (lows < high)
    assert widths[~vetoed].max() <= 0.1 + 1e-12
    # configured edges are the map's edges
    rng = np.random.default_rng(3)
    pt, eta = rng.uniform(15, 100, (2, 2000)), rng.uniform(-2.3, 2.3, (2, 2000))
    edges = (0.0, 0.4, 1.1, 2.3)
    ratio = measure_efficiency_ratio(*pt[:1], *eta[:1], *pt[1:], *eta[1:], abseta_edges=edges,
                                     n_bootstrap=0)  # fmt: skip
    assert tuple(ratio.bins()[1]) == edges
    assert not ratio.has_uncertainty


def test_bootstrap_uncertainty_is_the_spread_over_independent_samples():
    """The bootstrap σ of log R from one sample matches the spread of the map measured on
    many independent samples of the same (symmetric, equal-efficiency) population."""
    edges = dict(pt_edges=(15.0, 40.0, 100.0), abseta_edges=(0.0, 1.0, 2.3))
    n = 5000

    def sample(rng):
        pt, eta = rng.uniform(15, 100, size=(2, n)), rng.uniform(-2.3, 2.3, size=(2, n))
        return pt[0], eta[0], pt[1], eta[1]

    rng = np.random.default_rng(11)
    spread = np.std(
        [
            np.log(measure_efficiency_ratio(*sample(rng), n_bootstrap=0, **edges).bins()[2])
            for _ in range(200)
        ],
        axis=0,
        ddof=1,
    ).ravel()
    one = sample(np.random.default_rng(12))
    ratio = measure_efficiency_ratio(*one, n_bootstrap=200, seed=5, **edges)
    # 200 samples and 200 replicas: each σ is known to ±5 %; rtol 0.2 is ≳ 3 standard errors
    np.testing.assert_allclose(ratio.bins()[3].ravel(), spread, rtol=0.2)
    up, down = ratio(20.0, 0.5, "up"), ratio(20.0, 0.5, "down")
    assert up * down == pytest.approx(ratio(20.0, 0.5) ** 2, rel=1e-12)  # R e^{±σ}
    assert up > ratio(20.0, 0.5) > down
    # seeded: the same seed gives the same uncertainties, another seed others
    again = measure_efficiency_ratio(*one, n_bootstrap=200, seed=5, **edges)
    np.testing.assert_array_equal(again.bins()[3], ratio.bins()[3])
    other = measure_efficiency_ratio(*one, n_bootstrap=200, seed=6, **edges)
    assert not np.array_equal(other.bins()[3], ratio.bins()[3])


def test_negative_weights_are_refused_by_the_measurement():
    with pytest.raises(ValueError, match="1 events have negative weights"):
        measure_efficiency_ratio([20, 30], [0.5, 0.5], [30, 20], [1.0, 1.0], [1.0, -0.5])


def test_a_map_too_fine_for_its_sample_is_refused():
    rng = np.random.default_rng(4)
    pt, eta = rng.uniform(15, 100, size=(2, 600)), rng.uniform(-2.3, 2.3, size=(2, 600))
    with pytest.raises(ValueError, match=r"median bin holds \d+ electrons or muons"):
        measure_efficiency_ratio(pt[0], eta[0], pt[1], eta[1])  # 600 events, ~200 bins
    coarse = measure_efficiency_ratio(
        pt[0], eta[0], pt[1], eta[1], pt_edges=(15, 40, 100), abseta_edges=(0, 1.2, 2.3)
    )
    assert coarse.bins()[2].shape == (2, 2)


def test_bins_seen_for_one_flavour_only_are_masked_for_both():
    """A region where electrons are lost (an unknown crack) is masked: events with either
    lepton there are outside the common acceptance; the rest is corrected."""
    rng = np.random.default_rng(21)
    n = 40_000
    pt, eta = rng.uniform(15, 100, size=(2, n)), rng.uniform(-2.3, 2.3, size=(2, n))
    first_is_e = rng.random(n) < 0.5
    pt_e, pt_mu = np.where(first_is_e, pt[0], pt[1]), np.where(first_is_e, pt[1], pt[0])
    eta_e, eta_mu = np.where(first_is_e, eta[0], eta[1]), np.where(first_is_e, eta[1], eta[0])
    crack = (np.abs(eta_e) > 0.6) & (np.abs(eta_e) < 0.8)  # electrons lost there
    keep = ~crack & (rng.random(n) < np.where(np.abs(eta_e) < 1.2, 0.9, 0.7))
    edges = dict(pt_edges=(15, 40, 100), abseta_edges=(0, 0.6, 0.8, 1.2, 2.3), n_bootstrap=0)
    ratio = measure_efficiency_ratio(pt_e[keep], eta_e[keep], pt_mu[keep], eta_mu[keep], **edges)
    assert sorted(map(tuple, ratio.measurement["masked_bins"])) == [(0, 1), (1, 1)]
    np.testing.assert_array_equal(ratio.accepts([20.0, 20.0, 50.0], [0.5, -0.7, 0.75]),
                                  [True, False, False])  # fmt: skip
    # in the accepted region the map restores the e/mu symmetry of the eta spectra
    inside = keep & ratio.accepts(pt_e, eta_e) & ratio.accepts(pt_mu, eta_mu)
    w = ratio(pt_e, eta_e)[inside]
    h_e = np.histogram(np.abs(eta_e[inside]), (0, 0.6, 1.2, 2.3), weights=w)[0]
    h_mu = np.histogram(np.abs(eta_mu[inside]), (0, 0.6, 1.2, 2.3), weights=w)[0]
    np.testing.assert_allclose(h_e, h_mu, rtol=0.03)  # ~2.5 % statistical precision
    unmasked = measure_efficiency_ratio(pt_e, eta_e, pt_mu, eta_mu, **edges)
    assert unmasked.measurement["masked_bins"] == []
    assert unmasked.accepts([20.0], [0.7]).all()
