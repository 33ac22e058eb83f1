"""The files are NanoAOD: coffea reads them without warnings, branch types match real CMS files."""

from __future__ import annotations

import warnings

import awkward as ak
import numpy as np
import pytest
import uproot
from coffea.nanoevents import NanoAODSchema, NanoEventsFactory

from symnplm.generation.nanoaod import round_mantissa
from symnplm.io.filesets import load_fileset


@pytest.fixture(scope="module")
def files(tiny_production) -> dict[str, list[str]]:
    fileset = load_fileset(tiny_production.fileset_path)
    return {name: list(entry["files"]) for name, entry in fileset.items()}


def _events(path: str):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any schema warning fails the test
        return NanoEventsFactory.from_root(
            {path: "Events"}, schemaclass=NanoAODSchema, mode="eager"
        ).events()


def test_every_file_opens_with_coffea_without_warnings(files):
    for name, paths in files.items():
        for path in paths:
            events = _events(path)
            assert len(events) == 20, path
            for collection in ("Electron", "Muon", "Jet", "GenPart", "MET", "GenMET"):
                assert collection in events.fields, (name, collection)


def test_collections_behave_as_nanoaod(files):
    events = _events(files["ttbar"][0])
    ele, mu = events.Electron, events.Muon
    assert set(np.unique(ak.flatten(ele.pdgId))) <= {-11, 11}
    assert set(np.unique(ak.flatten(mu.pdgId))) <= {-13, 13}
    assert ak.all(ele.pdgId == -11 * ele.charge)
    assert ak.all(ak.flatten(mu.tightId))
    # Four-vector behaviour and truth matching through the global index.
    matched = ak.flatten(ele.matched_gen[ele.genPartIdx >= 0].pdgId)
    assert ak.all(np.abs(matched) == 11)
    assert ak.all(ak.flatten(ele.pt) >= 10.0)
    # Leptons come pT-ordered, like in NanoAOD.
    assert ak.all(ak.flatten(ele.pt[:, :-1] - ele.pt[:, 1:]) >= 0)
    # GenPart mothers: prompt leptons of tt̄ come from W bosons (or τ from W).
    gen = events.GenPart
    leptons = gen[(np.abs(gen.pdgId) == 11) | (np.abs(gen.pdgId) == 13)]
    parents = np.abs(ak.flatten(leptons.parent.pdgId))
    assert set(np.unique(ak.to_numpy(parents))) <= {15, 24}
    assert ak.all(ak.flatten(leptons.hasFlags(["isLastCopy"])))


def test_runs_tree_has_the_nanoaod_sum_of_weights(files):
    with uproot.open(files["ww"][0]) as f:
        runs = f["Runs"]
        assert set(runs.keys()) >= {"run", "genEventCount", "genEventSumw", "genEventSumw2"}
        assert runs["genEventCount"].array(library="np")[0] == 20


def test_branch_types_agree_with_real_cms_nanoaod(files, shared_data):
    """Every branch we write that also exists in a real CMS NanoAODv6 file has its type."""
    real = uproot.open(shared_data / "nanoaod" / "nano_dy.root")["Events"]
    ours = uproot.open(files["ztautau"][0])["Events"]
    compared = 0
    for name in ours.keys():
        if name in real.keys() and not name.startswith("n"):
            assert ours[name].typename == real[name].typename, name
            compared += 1
    assert compared >= 40
    for must in (
        "Electron_pfRelIso03_all",
        "Electron_cutBased",
        "Muon_tightId",
        "genWeight",
        "GenPart_statusFlags",
        "Jet_btagDeepFlavB",
        "MET_pt",
        "luminosityBlock",
    ):
        assert must in ours.keys() and must in real.keys()


@pytest.mark.parametrize("bits", [8, 12, 16])
def test_round_mantissa_keeps_the_requested_relative_precision(bits):
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.lognormal(3, 2, 1000), -rng.lognormal(0, 1, 100), [0.0]])
    r = round_mantissa(x, bits)
    assert r.dtype == np.float32
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.abs(r - x.astype(np.float32)) / np.abs(x.astype(np.float32))
    assert np.nanmax(rel) <= 2.0 ** -(bits + 1) * 1.0001
    np.testing.assert_array_equal(round_mantissa(r, bits), r)  # idempotent
    # The dropped bits are zero, which is what makes the branches compress.
    assert np.all(r.view(np.uint32) & ((1 << (23 - bits)) - 1) == 0)
