"""The real CMS NanoAOD files (../shared/data/nanoaod) run without errors or warnings.

The expected counts come from an independent, event-by-event Python selection on the
same files read with plain uproot.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from dataclasses import replace

import numpy as np
import pytest
import uproot

from symnplm.io.samples import read_manifest
from symnplm.physics import MUON_CUTS, LeptonCuts
from symnplm.processors.emu import EMuProcessor
from symnplm.processors.inputs import load_fileset
from symnplm.processors.runner import process_fileset, run_processor

LOOSE_E = LeptonCuts(iso_max=math.inf, id_field=None)
LOOSE_MU = LeptonCuts(iso_max=math.inf, id_field=None)
DY_XSEC = 6077.22  # pb, DYJetsToLL_M-50 NLO


def reference_selection(path, e_iso, mu_iso, use_id):
    """Counts per category, m_coll and index of the selected events, one event at a time."""
    names = ["pt", "eta", "phi", "charge", "pfRelIso03_all"]
    tree = uproot.open(path)["Events"]
    e = tree.arrays([f"Electron_{n}" for n in [*names, "cutBased"]], library="np")
    mu = tree.arrays([f"Muon_{n}" for n in [*names, "tightId"]], library="np")
    met = tree.arrays(["MET_pt", "MET_phi"], library="np")
    counts, m_coll, index = Counter(), [], []
    for i in range(tree.num_entries):

        def good(arr, flavour, iso_max, id_name, id_min, i=i):
            n = len(arr[f"{flavour}_pt"][i])
            return [
                k
                for k in range(n)
                if arr[f"{flavour}_pt"][i][k] >= 15
                and abs(arr[f"{flavour}_eta"][i][k]) <= 2.3
                and arr[f"{flavour}_pfRelIso03_all"][i][k] < iso_max
                and (not use_id or arr[f"{flavour}_{id_name}"][i][k] >= id_min)
            ]

        es, mus = good(e, "Electron", e_iso, "cutBased", 3), good(mu, "Muon", mu_iso, "tightId", 1)
        if len(es) != 1 or len(mus) != 1:
            continue
        qe, qmu = e["Electron_charge"][i][es[0]], mu["Muon_charge"][i][mus[0]]
        if qe * qmu >= 0:
            continue
        index.append(i)
        pe, pmu = float(e["Electron_pt"][i][es[0]]), float(mu["Muon_pt"][i][mus[0]])
        counts["emu" if pe > pmu else "mue"] += 1
        counts["ep_mum" if qe > 0 else "em_mup"] += 1
        lead, sub = (e, "Electron", es[0]), (mu, "Muon", mus[0])
        if pmu > pe:
            lead, sub = sub, lead
        eta = [float(a[f"{f}_eta"][i][k]) for a, f, k in (lead, sub)]
        phi = [float(a[f"{f}_phi"][i][k]) for a, f, k in (lead, sub)]
        pts = [max(pe, pmu), min(pe, pmu)]
        m_coll.append(
            math.sqrt(
                2
                * pts[0]
                * (pts[1] + float(met["MET_pt"][i]))
                * (math.cosh(eta[0] - eta[1]) - math.cos(phi[0] - phi[1]))
            )
        )
    return counts, m_coll, index


@pytest.fixture
def cms_fileset(shared_data):
    nanoaod = shared_data / "nanoaod"
    return {
        "dy": {"files": {str(nanoaod / "nano_dy.root"): "Events"}, "metadata": {"xsec": DY_XSEC}},
        "data": {
            "files": {str(nanoaod / "nano_dimuon.root"): "Events"},
            "metadata": {"is_data": True},
        },
    }


@pytest.mark.parametrize("selection", ["default", "loose"])
def test_real_cms_files_run_cleanly(cms_fileset, tmp_path, selection):
    if selection == "default":
        proc, cuts = EMuProcessor(luminosity_fb=20.0), (0.15, 0.25, True)
    else:  # no isolation or ID: the DY file then has one e-mu event
        proc = EMuProcessor(electron=LOOSE_E, muon=LOOSE_MU, luminosity_fb=20.0)
        cuts = (math.inf, math.inf, False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no schema (or any other) warning
        report = process_fileset(cms_fileset, tmp_path / "out", proc)
    print(f"{selection}: cutflow {report.cutflow}; skipped {report.skipped}; notes {report.notes}")
    assert not report.skipped
    assert not any("input lacks" in n for n in report.notes)  # ID flags present in real NanoAOD
    assert report.cutflow["dy"]["all"] == report.cutflow["data"]["all"] == 40
    # the columns in memory too: a Sample refuses a negative total weight (NLO DY)
    files = load_fileset(cms_fileset)
    with uproot.open(next(iter(files["dy"]["files"]))) as f:
        sumw = float(f["Runs"]["genEventSumw_"].array(library="np").sum())
    files["dy"]["metadata"]["sumw"] = sumw
    output, _ = run_processor(files, proc)
    for dataset, entry in cms_fileset.items():
        path = next(iter(entry["files"]))
        expected, m_coll, index = reference_selection(path, *cuts)
        got = {c: report.counts()[dataset, c] for c in proc.categories}
        assert got == {c: expected.get(c, 0) for c in proc.categories}
        if not index:
            continue
        cols = output["columns"][dataset, "nominal"]
        np.testing.assert_allclose(sorted(cols["m_coll"]), sorted(m_coll), rtol=1e-6)
        if dataset == "dy":  # genWeight x xsec x L / sumw, sumw from the v6 Runs/genEventSumw_
            with uproot.open(path) as f:
                gen = f["Events"]["genWeight"].array(library="np")[index]
            expected_w = gen * DY_XSEC * 20_000.0 / sumw  # 20 fb⁻¹ in pb⁻¹
            np.testing.assert_allclose(sorted(cols["weight"]), sorted(expected_w), rtol=1e-6)
            nominal = [
                s for s in report.samples if s["dataset"] == "dy" and s["variation"] == "nominal"
            ]
            written = sum(s["sum_weights"] for s in nominal if s["category"] in ("emu", "mue"))
            assert written == pytest.approx(expected_w.sum(), rel=1e-6)
    if selection == "loose":  # the README's one DY event with exactly one e and one mu above 15 GeV
        assert sum(report.counts()["dy", c] for c in ("emu", "mue")) == 1


def test_real_triggers_lumi_mask_and_muon_isolation(cms_fileset, tmp_path):
    """The HLT bits, run / luminosity sections and pfRelIso04 of real NanoAOD v6."""
    branches = ["run", "luminosityBlock", "HLT_IsoMu24", "HLT_Ele32_WPTight_Gsf"]
    with uproot.open(next(iter(cms_fileset["data"]["files"]))) as f:
        data = f["Events"].arrays(branches, library="np")
    with uproot.open(next(iter(cms_fileset["dy"]["files"]))) as f:
        dy = f["Events"].arrays(branches[2:], library="np")
    (run,), (section,) = np.unique(data["run"]), np.unique(data["luminosityBlock"])
    counts = {}
    for name, sections in (("certified", [section, section]), ("not", [section + 1, section + 9])):
        golden = tmp_path / f"{name}.json"
        golden.write_text(f'{{"{run}": [[{sections[0]}, {sections[1]}]]}}')
        proc = EMuProcessor(
            luminosity_fb=20.0,
            muon=replace(MUON_CUTS, iso_field="pfRelIso04_all"),
            triggers=["IsoMu24", "HLT_Ele32_WPTight_Gsf"],
            lumi_mask=golden,
        )
        out = tmp_path / name
        counts[name] = process_fileset(cms_fileset, out, proc).cutflow
        assert read_manifest(out)["config"]["muon"]["iso_field"] == "pfRelIso04_all"
    fired = {
        k: int(np.sum(v["HLT_IsoMu24"] | v["HLT_Ele32_WPTight_Gsf"]))
        for k, v in (("data", data), ("dy", dy))
    }
    # every event of the slice is in one section of one run: all certified, or none
    assert counts["certified"]["data"]["lumi_mask"] == 40
    assert counts["not"]["data"]["lumi_mask"] == 0 == counts["not"]["data"]["trigger"]
    assert counts["certified"]["data"]["trigger"] == fired["data"] == 4
    assert "lumi_mask" not in counts["certified"]["dy"]  # simulation has no certification
    assert counts["certified"]["dy"]["trigger"] == fired["dy"] > 0
