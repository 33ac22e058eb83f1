"""NanoAOD versions name and type the same objects differently: the processor reads the
branches it is told to, in each version's types, and a branch it is told to read but the
file lacks is an error naming the file and the branch (never a cut quietly dropped)."""

from __future__ import annotations

import numpy as np
import pytest
from handmade_nanoaod import Event, Lepton, write_fileset, write_nanoaod

from symnplm.cli import main
from symnplm.io.samples import load_sample, read_manifest
from symnplm.processors.emu import EMuProcessor
from symnplm.processors.inputs import InputError
from symnplm.processors.runner import process_fileset

MVA = {"v6": "mvaFall17V2Iso_WP90", "v9": "mvaFall17V2Iso_WP90", "v12": "mvaIso_WP90"}


def events() -> list[Event]:
    """Four events, each selected by a different choice of ID, isolation or MET."""
    muon = Lepton(30.0, -0.3, 2.0, -1, ident=1)
    return [
        # 0: tight cut-based electron failing the MVA working point
        Event([Lepton(40.0, 0.3, 0.0, 1, ident=4, mva=False)], [muon], (10.0, 1.0)),
        # 1: loose cut-based electron passing the MVA working point
        Event([Lepton(41.0, 0.3, 0.0, 1, ident=2, mva=True)], [muon], (10.0, 1.0)),
        # 2: a muon isolated in the 0.3 cone only
        Event(
            [Lepton(42.0, 0.3, 0.0, 1)],
            [Lepton(30.0, -0.3, 2.0, -1, ident=1, iso04=0.4)],
            (10.0, 1.0),
            puppi_met=(55.0, -2.0),
        ),
        # 3: a muon failing the tight ID
        Event([Lepton(43.0, 0.3, 0.0, 1)], [Lepton(30.0, -0.3, 2.0, -1, ident=0)], (10.0, 1.0)),
    ]


def process(tmp_path, version, *options):
    path = write_nanoaod(tmp_path / f"{version}.root", events(), version=version)
    meta = {"xsec": 1.0, "luminosity_fb": 0.004}  # sumw from the version's Runs tree
    fs = write_fileset(tmp_path / f"{version}.json", {"mc": {"files": [path], "metadata": meta}})
    out = tmp_path / "_".join([version, *options]).replace("-", "").replace(":", "")
    argv = ["process", str(fs), "-o", str(out), "--quiet", "--scale-nu", "--norm-nu", *options]
    return main(argv), out


@pytest.mark.parametrize("version", sorted(MVA))
def test_each_versions_names_select_the_events_they_should(tmp_path, version):
    def selected(*options):
        code, out = process(tmp_path, version, *options)
        assert code == 0
        return sorted(load_sample(out, "mc", "emu").column("pt_e").round(3).tolist())

    assert selected() == [40.0, 42.0]  # cutBased >= 3 and tightId, the 0.3 cone
    assert selected("--electron-id", f"{MVA[version]}:1") == [41.0, 42.0]
    assert selected("--muon-isolation-branch", "pfRelIso04_all") == [40.0]
    assert selected("--muon-id", "mediumId") == [40.0, 42.0, 43.0]
    assert selected("--electron-id", "none", "--muon-id", "none") == [40.0, 41.0, 42.0, 43.0]
    # simulation normalised with the version's Runs-tree sum (genEventSumw_ in v6)
    _, out = process(tmp_path, version)
    np.testing.assert_allclose(load_sample(out, "mc", "emu").weights, 1.0)  # 1 x 1 x 4 / 4


def test_the_met_collection_is_chosen(tmp_path):
    _, out = process(tmp_path, "v12", "--met", "PuppiMET")
    met = load_sample(out, "mc", "emu", features=["met"]).features[:, 0]
    np.testing.assert_allclose(sorted(met), [10.0, 55.0])
    assert read_manifest(out)["config"]["met"] == "PuppiMET"


@pytest.mark.parametrize(
    ("options", "branch"),
    [
        (("--electron-id", "mvaFall17V2Iso_WP90"), "Electron_mvaFall17V2Iso_WP90"),
        (("--met", "RawMET"), "RawMET_pt"),
    ],
)
def test_a_branch_asked_for_but_absent_is_named(tmp_path, capsys, options, branch):
    """A Run 2 MVA name on a Run 3 file: an error naming file and branch, before processing."""
    code, out = process(tmp_path, "v12", *options)
    err = capsys.readouterr().err
    assert code == 2 and "v12.root" in err and branch in err
    assert not (out / "manifest.json").exists()


def test_a_missing_id_branch_is_not_dropped_quietly(tmp_path):
    path = write_nanoaod(tmp_path / "noid.root", events(), drop=["Electron_cutBased"])
    with pytest.raises(
        InputError, match=r"noid\.root .* lacks the branch\(es\) \['Electron_cutBased'\]"
    ):
        process_fileset(
            {"mc": [str(path)]}, tmp_path / "out", EMuProcessor(scale_nus=[], normalisation=None)
        )
