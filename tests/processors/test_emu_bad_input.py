"""Bad input gives a clear message naming the file / branch; skip-bad-files processes the rest."""

from __future__ import annotations

import json

import numpy as np
import pytest
import uproot
from handmade_nanoaod import Event, Lepton, write_fileset, write_nanoaod

from symnplm.io.samples import EmptySelectionError, load_sample, read_manifest
from symnplm.processors.emu import EMuProcessor
from symnplm.processors.inputs import DamagedFileError, InputError
from symnplm.processors.runner import process_fileset

FAST = {"scale_nus": [], "normalisation": None, "luminosity_fb": 1.0}


def good_events(n: int = 6) -> list[Event]:
    """n selected events: electron leading in the even ones."""
    return [
        Event(
            # |eta| 0.2-0.7: inside the fiducial region (clear of the vetoed gap and crack)
            [Lepton(40.0 if i % 2 == 0 else 20.0, 0.2 + 0.1 * (i % 6), 0.0, 1)],
            [Lepton(30.0, -0.2 - 0.1 * (i % 6), 2.0, -1, ident=1)],
            (10.0, 1.0),
        )
        for i in range(n)
    ]


def damaged_basket_file(path):
    """A file whose header and tree metadata are fine but whose Electron_pt basket is garbage."""
    write_nanoaod(path, good_events(200))
    branch = uproot.open(path)["Events"]["Electron_pt"]
    seek, size = int(branch.member("fBasketSeek")[0]), int(branch.member("fBasketBytes")[0])
    data = bytearray(path.read_bytes())
    data[seek + 100 : seek + size - 10] = b"\x55" * (size - 110)
    path.write_bytes(bytes(data))
    return path


@pytest.fixture
def bad_files(tmp_path):
    garbage = tmp_path / "garbage.root"
    garbage.write_bytes(b"this is not a ROOT file" * 10)
    no_tree = tmp_path / "no_tree.root"
    with uproot.recreate(no_tree) as f:
        f.mktree("Other", {"x": np.arange(3.0)})
    return {
        "missing": tmp_path / "does_not_exist.root",
        "garbage": garbage,
        "no_tree": no_tree,
        "no_iso": write_nanoaod(
            tmp_path / "no_iso.root", good_events(), drop=["Muon_pfRelIso03_all"]
        ),
        "damaged": damaged_basket_file(tmp_path / "damaged.root"),
    }


@pytest.mark.parametrize(
    ("which", "message"),
    [
        ("missing", r"does_not_exist\.root \(dataset 'mc'\): no such file"),
        ("garbage", r"garbage\.root \(dataset 'mc'\): not a readable ROOT file"),
        ("no_tree", r"no_tree\.root \(dataset 'mc'\): no tree 'Events'"),
        (
            "no_iso",
            r"no_iso\.root \(dataset 'mc'\): tree 'Events' lacks the branch\(es\) "
            r"\['Muon_pfRelIso03_all'\]",
        ),
    ],
)
def test_bad_file_is_named(bad_files, tmp_path, which, message):
    good = write_nanoaod(tmp_path / "good.root", good_events())
    fileset = {"mc": [str(good), str(bad_files[which])]}
    with pytest.raises(InputError, match=message):
        process_fileset(fileset, tmp_path / "out", EMuProcessor(**FAST))
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_damaged_data_is_named_with_the_entries(bad_files, tmp_path):
    with pytest.raises(
        DamagedFileError, match=r"damaged\.root \(entries 0-200\): cannot read the data"
    ):
        process_fileset({"mc": [str(bad_files["damaged"])]}, tmp_path / "out", EMuProcessor(**FAST))


@pytest.mark.parametrize("executor", ["iterative", "futures"])
def test_a_truncated_file_is_named_in_one_line_by_every_executor(tmp_path, executor):
    """The futures executor re-raises a worker's error as text: the file is still named."""
    good = write_nanoaod(tmp_path / "good.root", good_events(200))
    data = good.read_bytes()
    truncated = tmp_path / "truncated.root"
    truncated.write_bytes(data[: int(len(data) * 0.6)])
    with pytest.raises(DamagedFileError) as info:
        process_fileset(
            {"mc": [str(truncated)]},
            tmp_path / "out",
            EMuProcessor(**FAST),
            executor=executor,
            workers=2,
        )
    message = str(info.value)
    assert message.startswith(f"{truncated} (entries 0-200): cannot read the data")
    assert "\n" not in message and "WorkItem" not in message


def test_skip_bad_files_processes_the_rest_and_reports(bad_files, tmp_path):
    good = write_nanoaod(tmp_path / "good.root", good_events())
    files = [str(good)] + [str(p) for p in bad_files.values()]
    fileset = {"mc": {"files": files, "metadata": {"xsec": 1.0}}}
    report = process_fileset(fileset, tmp_path / "out", EMuProcessor(**FAST), skip_bad_files=True)
    skipped = {b.path: b.reason for b in report.skipped}
    assert set(skipped) == {str(p) for p in bad_files.values()}
    assert (
        skipped[str(bad_files["no_iso"])]
        == "tree 'Events' lacks the branch(es) ['Muon_pfRelIso03_all']"
    )
    assert "failed to read" in skipped[str(bad_files["damaged"])]
    # the damaged file's Runs tree counts in sumw although its events were not processed
    assert any("'mc': part of its input was skipped" in note for note in report.notes)
    assert (report.counts()["mc", "emu"], report.counts()["mc", "mue"]) == (
        3,
        3,
    )  # the good file only
    manifest = read_manifest(tmp_path / "out")
    assert {s["path"] for s in manifest["skipped"]} == set(skipped)
    assert list(manifest["fileset"]["mc"]["files"]) == [str(good), str(bad_files["damaged"])]


def test_skip_bad_files_with_nothing_left(bad_files, tmp_path):
    with pytest.raises(InputError, match="no readable input file left"):
        process_fileset(
            {"mc": [str(bad_files["garbage"])]},
            tmp_path / "out",
            EMuProcessor(**FAST),
            skip_bad_files=True,
        )


def test_simulation_without_gen_weight_is_named(tmp_path):
    path = write_nanoaod(tmp_path / "nogen.root", good_events(), mc=False)
    with pytest.raises(InputError, match=r"nogen\.root .* lacks the branch\(es\) \['genWeight'\]"):
        process_fileset(
            {"mc": {"files": [str(path)], "metadata": {"xsec": 1.0}}},
            tmp_path / "out",
            EMuProcessor(**FAST),
        )


def test_simulation_without_runs_tree_needs_sumw(tmp_path):
    path = write_nanoaod(tmp_path / "noruns.root", good_events(), runs=False)
    with pytest.raises(InputError, match=r"noruns\.root: no 'Runs' tree .* add 'sumw'"):
        process_fileset(
            {"mc": {"files": [str(path)], "metadata": {"xsec": 1.0}}},
            tmp_path / "out",
            EMuProcessor(**FAST),
        )
    report = process_fileset(
        {"mc": {"files": [str(path)], "metadata": {"xsec": 1.0, "sumw": 4.0}}},
        tmp_path / "out",
        EMuProcessor(**(FAST | {"luminosity_fb": 0.002})),
    )
    np.testing.assert_allclose(
        load_sample(report.outdir, "mc", "emu").weights, 0.5
    )  # 1 x 1 x 2 / 4


def test_bad_fileset_entries_are_named(tmp_path):
    path = write_nanoaod(tmp_path / "f.root", good_events())
    with pytest.raises(InputError, match=r"metadata 'xsec' = -3\.0"):
        process_fileset(
            {"mc": {"files": [str(path)], "metadata": {"xsec": -3.0}}}, tmp_path / "out"
        )
    for key, value in [("xsec", True), ("luminosity_fb", -5.0), ("lfv_branching_ratio", 0.0)]:
        # a bool is an int to Python; a negative luminosity would give negative weights
        with pytest.raises(InputError, match=f"metadata '{key}' = {value!r}, expected a positive"):
            process_fileset(
                {"mc": {"files": [str(path)], "metadata": {key: value}}}, tmp_path / "out"
            )
    with pytest.raises(InputError, match=r"metadata 'is_data' = 'false', expected true or false"):
        process_fileset({"mc": {"files": [str(path)], "metadata": {"is_data": "false"}}}, "o")
    with pytest.raises(InputError, match="dataset name 'a/b'"):
        process_fileset({"a/b": [str(path)]}, tmp_path / "out")
    for escape in ("..", "."):  # would write beside or above the columns folder
        with pytest.raises(InputError, match=f"dataset name '{escape}'"):
            process_fileset({escape: [str(path)]}, tmp_path / "out")
    with pytest.raises(InputError, match="dataset 'mc' has no files"):
        process_fileset({"mc": []}, tmp_path / "out")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(InputError, match=r"broken\.json: not a valid fileset JSON"):
        process_fileset(tmp_path / "broken.json", tmp_path / "out")
    with pytest.raises(InputError, match=r"nope\.json: no such fileset file"):
        process_fileset(tmp_path / "nope.json", tmp_path / "out")


def test_a_manifest_path_out_of_the_directory_is_not_followed(tmp_path):
    path = write_nanoaod(tmp_path / "f.root", good_events())
    out = tmp_path / "out"
    process_fileset({"mc": [str(path)]}, out, EMuProcessor(**FAST))
    manifest = read_manifest(out)
    entry = next(s for s in manifest["samples"] if s["parts"] and s["category"] == "emu")
    outside = tmp_path / "elsewhere.parquet"
    outside.write_bytes((out / entry["parts"][0]["path"]).read_bytes())
    entry["parts"][0]["path"] = "../elsewhere.parquet"
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="points outside the directory"):
        load_sample(out, "mc", "emu", entry["variation"])


def test_relative_paths_resolve_against_the_fileset(tmp_path):
    write_nanoaod(tmp_path / "data" / "f.root", good_events())
    fs = tmp_path / "data" / "fileset.json"
    fs.write_text(json.dumps({"d": {"files": ["f.root"], "metadata": {"is_data": True}}}))
    report = process_fileset(fs, tmp_path / "out", EMuProcessor(**FAST))
    assert report.counts()["d", "emu"] == 3


def test_empty_selection_is_reported_and_refused_on_loading(tmp_path):
    failing = [
        Event([Lepton(40.0, 0.0, 0.0, 1, iso=0.5)], [Lepton(30.0, 0.0, 2.0, -1, ident=1)])
    ] * 4
    path = write_nanoaod(tmp_path / "empty.root", failing)
    fs = write_fileset(tmp_path / "fs.json", {"mc": {"files": [path]}})
    report = process_fileset(fs, tmp_path / "out", EMuProcessor(**FAST))
    assert any("'mc': no event passed the selection" in note for note in report.notes)
    assert report.cutflow["mc"] == {
        "all": 4, "finite_inputs": 4, "one_electron": 0, "one_muon": 0, "opposite_charge": 0,
        "emu": 0, "mue": 0, "ep_mum": 0, "em_mup": 0,
    }  # fmt: skip
    with pytest.raises(
        EmptySelectionError, match=r"no event of mc/emu/nominal passed .*'all': 4.*empty\.root"
    ):
        load_sample(tmp_path / "out", "mc", "emu")
    with pytest.raises(
        KeyError, match=r"category='tau'.*'categories': \['em_mup', 'emu', 'ep_mum', 'mue'\]"
    ):
        load_sample(tmp_path / "out", "mc", "tau")
    assert not list((tmp_path / "out").rglob("*.parquet"))


def test_incomplete_output_directory_is_refused(tmp_path):
    path = write_nanoaod(tmp_path / "f.root", good_events())
    process_fileset({"mc": [str(path)]}, tmp_path / "out", EMuProcessor(**FAST))
    assert len(load_sample(tmp_path / "out", "mc", "emu")) == 3
    (tmp_path / "out" / "manifest.json").unlink()  # as after an interrupted re-run
    with pytest.raises(FileNotFoundError, match="not a complete processor output"):
        load_sample(tmp_path / "out", "mc", "emu")


def test_rerun_replaces_the_previous_output(tmp_path):
    path = write_nanoaod(tmp_path / "f.root", good_events())
    process_fileset(
        {"mc": [str(path)]}, tmp_path / "out", EMuProcessor(scale_nus=[1.0], normalisation=None)
    )
    variation_dir = tmp_path / "out" / "columns" / "mc" / "muon_scale_up1"
    assert list(variation_dir.glob("*.parquet"))
    with pytest.raises(InputError, match="processor configuration differ"):
        process_fileset({"mc": [str(path)]}, tmp_path / "out", EMuProcessor(**FAST))
    process_fileset({"mc": [str(path)]}, tmp_path / "out", EMuProcessor(**FAST), overwrite=True)
    assert not list(variation_dir.glob("*.parquet"))  # its files, listed before, are gone
    with pytest.raises(KeyError, match="muon_scale_up1"):
        load_sample(tmp_path / "out", "mc", "emu", "muon_scale_up1")


def test_simulation_without_a_luminosity_is_refused_naming_the_remedy(tmp_path):
    """A cross section needs a luminosity: none given and none in the fileset is an error."""
    path = write_nanoaod(tmp_path / "mc.root", good_events())
    fs = {"mc": {"files": [str(path)], "metadata": {"xsec": 1.0, "sumw": 4.0}}}
    with pytest.raises(InputError, match=r"\['mc'\] have a cross section .* luminosity_fb"):
        process_fileset(fs, tmp_path / "out", EMuProcessor(scale_nus=[], normalisation=None))
    # the fileset's background luminosity is the default, as for `symnplm process`
    fs["mc"]["metadata"]["luminosity_fb"] = 0.004
    report = process_fileset(fs, tmp_path / "out", EMuProcessor(scale_nus=[], normalisation=None))
    np.testing.assert_allclose(load_sample(report.outdir, "mc", "emu").weights, 1.0)  # 1x1x4/4
    assert read_manifest(report.outdir)["config"]["luminosity_fb"] == 0.004


def test_a_directory_being_written_is_refused(tmp_path):
    """A second run into a directory another run is writing fails at once, naming it."""
    from symnplm.io.files import DirectoryBusy, directory_lock

    path = write_nanoaod(tmp_path / "mc.root", good_events())
    out = tmp_path / "out"
    with directory_lock(out), pytest.raises(DirectoryBusy, match="another symnplm run"):
        process_fileset({"mc": [str(path)]}, out, EMuProcessor(**FAST))
    process_fileset({"mc": [str(path)]}, out, EMuProcessor(**FAST))  # the lock is released


def test_another_processing_is_not_overwritten_and_foreign_files_survive(tmp_path):
    """Other datasets into a processed folder: refused; with overwrite, only its files go."""
    path = write_nanoaod(tmp_path / "mc.root", good_events())
    out = tmp_path / "out"
    process_fileset({"mc": [str(path)]}, out, EMuProcessor(**FAST))
    first = {p["path"] for s in read_manifest(out)["samples"] for p in s["parts"]}
    foreign = out / "columns" / "mine.parquet"
    foreign.write_bytes(b"an analyst's file")
    with pytest.raises(InputError, match="another processing .* datasets differ"):
        process_fileset({"other": [str(path)]}, out, EMuProcessor(**FAST))
    assert {p["path"] for s in read_manifest(out)["samples"] for p in s["parts"]} == first
    process_fileset({"other": [str(path)]}, out, EMuProcessor(**FAST), overwrite=True)
    assert all(not (out / p).exists() for p in first)  # the replaced processing's samples
    assert foreign.read_bytes() == b"an analyst's file"  # never its to delete
    # the same processing again needs no flag
    process_fileset({"other": [str(path)]}, out, EMuProcessor(**FAST))


def test_events_with_non_finite_inputs_are_skipped_counted_and_reported(tmp_path):
    """A NaN pT fails every cut and an infinite one passes them: such events are skipped
    whole (never a silently different lepton), counted per file and in the cutflow."""
    nan, inf = float("nan"), float("inf")
    electron, muon = Lepton(40.0, 0.3, 0.0, 1), Lepton(30.0, -0.3, 2.0, -1, ident=1)
    corrupted = [
        # without the rule, the NaN electron would vanish and the other one be selected
        Event([Lepton(nan, 0.5, 1.0, -1), electron], [muon], (10.0, 1.0)),
        Event([electron], [Lepton(inf, -0.3, 2.0, -1, ident=1)], (10.0, 1.0)),
        Event([electron], [muon], (nan, 1.0)),
        Event([electron], [muon], (10.0, 1.0), jets=[(inf, 0.0, 0.5)]),
        Event([electron], [muon], (10.0, 1.0), gen_weight=nan),
    ]
    events = good_events(6)
    events[2:2] = corrupted  # spread over the two chunks
    path = write_nanoaod(tmp_path / "mc.root", events, sumw=6.0)
    proc = EMuProcessor(scale_nus=[1.0], normalisation=None, luminosity_fb=1.0)
    report = process_fileset({"mc": [str(path)]}, tmp_path / "out", proc, chunksize=6)
    flow = report.cutflow["mc"]
    assert (flow["all"], flow["finite_inputs"], flow["emu"], flow["mue"]) == (11, 6, 3, 3)
    manifest = read_manifest(report.outdir)
    assert manifest["nonfinite_inputs"] == {"mc": {str(path): 5}}
    assert any("'mc': 5 event(s) with a non-finite" in n for n in report.notes)
    # every variation is written: no non-finite value reached the columns
    assert not any("not written" in n for n in report.notes)
    sample = load_sample(report.outdir, "mc", "emu", "electron_scale_up1")
    assert len(sample) == 3 and np.isfinite(sample.features).all()


def test_process_once_reuses_its_output_and_replaces_only_its_own(tmp_path):
    """The demo's processing step: reused when complete, remade when its configuration
    changed, but another processing found in the folder (a user's) is never replaced."""
    from symnplm.processors.runner import PROCESSED_MARKER, process_once

    path = write_nanoaod(tmp_path / "f.root", good_events())
    fs = write_fileset(tmp_path / "fs.json", {"mc": {"files": [path]}})
    out = tmp_path / "out"
    assert process_once(fs, out, EMuProcessor(**FAST)) is False
    assert process_once(fs, out, EMuProcessor(**FAST)) is True  # complete: reused
    changed = EMuProcessor(**(FAST | {"scale_nus": [1.0]}))
    assert process_once(fs, out, changed) is False  # its own output, remade
    assert len(load_sample(out, "mc", "emu", "muon_scale_up1")) == 3
    users = tmp_path / "users"
    process_fileset(fs, users, EMuProcessor(**FAST))
    with pytest.raises(InputError, match="another processing"):
        process_once(fs, users, changed)
    assert not (users / PROCESSED_MARKER).exists()
    assert len(load_sample(users, "mc", "emu")) == 3  # untouched
