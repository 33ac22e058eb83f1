"""``symnplm process``: help, a run on a small fileset, efficiency-map round, errors."""

from __future__ import annotations

import argparse
import importlib

import pytest
from handmade_nanoaod import Event, Lepton, write_fileset, write_nanoaod

from symnplm.cli import SUBCOMMANDS
from symnplm.io.samples import load_sample, read_manifest
from symnplm.physics import EfficiencyRatio


def parser() -> argparse.ArgumentParser:
    """The top-level parser with the ``process`` command as registered in symnplm.cli."""
    module, func = SUBCOMMANDS["process"].split(":")
    top = argparse.ArgumentParser(prog="symnplm")
    getattr(importlib.import_module(module), func)(top.add_subparsers(dest="command"))
    return top


def run(*argv: str) -> int:
    args = parser().parse_args(["process", *argv])
    return args.func(args)


@pytest.fixture
def small_fileset(tmp_path):
    events = [
        Event([Lepton(50.0, 0.2, 0.0, 1)], [Lepton(30.0, 1.6, 2.0, -1, ident=1)], (25.0, 1.0)),
        Event([Lepton(25.0, 1.8, 1.0, -1)], [Lepton(45.0, 0.3, -2.0, 1, ident=1)], (15.0, 0.0)),
        Event([Lepton(35.0, 0.5, 2.5, 1)], [Lepton(20.0, 2.0, -0.5, -1, ident=1)], (5.0, 2.0)),
    ]
    path = write_nanoaod(tmp_path / "small.root", events, mc=False)
    return write_fileset(
        tmp_path / "fileset.json", {"data": {"files": [path], "metadata": {"is_data": True}}}
    )


def test_help_lists_the_options(capsys):
    with pytest.raises(SystemExit) as exit_:
        parser().parse_args(["process", "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for option in (
        "FILESET",
        "--outdir",
        "--executor",
        "--skip-bad-files",
        "--efficiency-map",
        "--scale-nu",
    ):
        assert option in text


def test_process_command_writes_samples_and_an_efficiency_map(small_fileset, tmp_path, capsys):
    out = tmp_path / "out"
    eff = tmp_path / "eff.json"
    code = run(
        str(small_fileset), "-o", str(out), "--quiet", "--scale-nu", "1", "--norm-nu",
        "--measure-efficiency-map", str(eff), "--efficiency-min-per-bin", "0",
        "--efficiency-pt-edges", "15", "6500", "--efficiency-eta-edges", "0", "2.3",
    )  # fmt: skip
    assert code == 0
    printed = capsys.readouterr()
    assert "data" in printed.out and "efficiency-ratio map written" in printed.err
    assert len(load_sample(out, "data", "emu", "electron_scale_up1")) == 2
    assert len(load_sample(out, "data", "mue")) == 1
    assert read_manifest(out)["config"]["variations"] == [
        "nominal", "electron_scale_up1", "muon_scale_up1",
    ]  # fmt: skip
    ratio = EfficiencyRatio.read(eff)
    assert ratio.name == "efficiency_ratio"

    # applying the map to the events it was measured on is refused, naming the way out
    code = run(
        str(small_fileset), "-o", str(tmp_path / "out2"), "--quiet", "--efficiency-map", str(eff)
    )
    assert code == 2
    assert "--allow-map-overlap" in capsys.readouterr().err
    assert not (tmp_path / "out2" / "manifest.json").exists()
    code = run(
        str(small_fileset), "-o", str(tmp_path / "out2"), "--quiet", "--efficiency-map", str(eff),
        "--allow-map-overlap",
    )  # fmt: skip
    assert code == 0
    manifest = read_manifest(tmp_path / "out2")
    assert manifest["config"]["efficiency"]["source"] == str(eff)
    assert any("applied anyway" in note for note in manifest["notes"])


def test_process_command_reports_bad_input(tmp_path, capsys):
    code = run(str(tmp_path / "missing.json"), "-o", str(tmp_path / "out"), "--quiet")
    assert code == 2
    assert "missing.json: no such fileset file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parser().parse_args(["process", "fs.json", "-o", "x", "--eta-vetoes", "1.4"])
    with pytest.raises(SystemExit):
        parser().parse_args(["process", "fs.json", "-o", "x", "--eta-vetoes", "1.5,1.2"])


def test_an_unwritable_destination_is_refused_before_processing(small_fileset, tmp_path, capsys):
    (tmp_path / "afile").write_text("")
    code = run(str(small_fileset), "-o", str(tmp_path / "afile" / "out"), "--quiet")
    assert code == 2 and "afile is a file, not a directory" in capsys.readouterr().err
    map_path = tmp_path / "afile" / "map.json"
    out = tmp_path / "out"
    code = run(
        str(small_fileset), "-o", str(out), "--quiet", "--measure-efficiency-map", str(map_path)
    )
    assert code == 2 and "is a file, not a directory" in capsys.readouterr().err
    assert not out.exists()  # refused before any processing
    (tmp_path / "adir").mkdir()  # a folder where the map file should go
    code = run(
        str(small_fileset),
        "-o",
        str(out),
        "--quiet",
        "--measure-efficiency-map",
        str(tmp_path / "adir"),
    )
    assert code == 2 and "adir: is a directory, not a file name" in capsys.readouterr().err
    assert not out.exists()


def test_selection_options_reach_the_processor(small_fileset, tmp_path):
    """The lfuv default vetoes |eta| 1.37-1.52 for both flavours; the paper's selection does
    not; --eta-vetoes and --isolation change both flavours."""
    events = [
        Event([Lepton(50.0, 1.45, 0.0, 1)], [Lepton(30.0, 0.5, 2.0, -1, ident=1)]),  # e in crack
        Event([Lepton(50.0, 0.5, 0.0, 1)], [Lepton(30.0, -1.45, 2.0, -1, ident=1)]),  # mu in crack
        Event([Lepton(50.0, 0.5, 0.0, 1)], [Lepton(30.0, 0.7, 2.0, -1, ident=1, iso=0.2)]),
        Event([Lepton(50.0, 0.5, 0.0, 1)], [Lepton(30.0, 0.7, 2.0, -1, ident=1)]),
    ]
    path = write_nanoaod(tmp_path / "geo.root", events, mc=False)
    fs = write_fileset(tmp_path / "geo.json", {"data": {"files": [path], "metadata": {}}})

    def selected(*options):
        out = tmp_path / "_".join(["o", *options]).replace(",", "_").replace("-", "")
        assert run(str(fs), "-o", str(out), "--quiet", "--scale-nu", "--norm-nu", *options) == 0
        return read_manifest(out)["cutflow"]["data"]["opposite_charge"]

    assert selected() == 1  # both crack events and the muon with isolation 0.2 are out
    assert selected("--selection", "paper") == 4  # no veto; muon isolation < 0.25
    assert selected("--eta-vetoes") == 3  # no veto; one isolation cut of 0.15
    assert selected("--isolation", "0.25") == 2
    assert selected("--eta-vetoes", "1.4,1.5", "--isolation", "0.25") == 2


def test_btag_working_point_reaches_the_processor(tmp_path):
    """--btag-min moves the b-tag cut: a jet of score 0.3 is tagged at 0.2783, not at 0.5."""
    event = Event(
        [Lepton(50.0, 0.5, 0.0, 1)],
        [Lepton(30.0, -0.5, 2.0, -1, ident=1)],
        jets=[(60, 1.0, -2.0, 0.3)],
    )
    path = write_nanoaod(tmp_path / "b.root", [event], mc=False)
    fs = write_fileset(tmp_path / "b.json", {"data": {"files": [path], "metadata": {}}})
    counts = []
    for options in ([], ["--btag-min", "0.2783"]):
        out = tmp_path / f"out{len(options)}"
        assert run(str(fs), "-o", str(out), "--quiet", "--scale-nu", "--norm-nu", *options) == 0
        sample = load_sample(out, "data", "emu", "nominal", ["n_jets", "n_bjets"])
        counts.append(sample.features[0].tolist())
    assert counts == [[1.0, 0.0], [1.0, 1.0]]


def test_default_luminosity_is_the_filesets(tmp_path):
    """Without --luminosity, simulation is normalised to the fileset's luminosity_fb."""
    events = [
        Event([Lepton(50.0, 0.2, 0.0, 1)], [Lepton(30.0, 1.6, 2.0, -1, ident=1)], (25.0, 1.0)),
        Event([Lepton(25.0, 1.8, 1.0, -1)], [Lepton(45.0, 0.3, -2.0, 1, ident=1)], (15.0, 0.0)),
    ]
    path = write_nanoaod(tmp_path / "mc.root", events)  # genWeight 1, Σw = 2
    meta = {"xsec": 0.4, "luminosity_fb": 5.0, "is_signal": False}
    fileset = write_fileset(tmp_path / "fs.json", {"bkg": {"files": [path], "metadata": meta}})
    assert run(str(fileset), "-o", str(tmp_path / "out"), "--quiet", "--scale-nu", "--norm-nu") == 0
    assert read_manifest(tmp_path / "out")["config"]["luminosity_pb"] == 5000.0
    # weight = genWeight · xsec · L / Σw = 0.4 pb · 5000 pb⁻¹ / 2 = 1000
    sample = load_sample(tmp_path / "out", "bkg", "emu")
    assert sample.weights[0] == pytest.approx(1000.0)


def test_trigger_lumi_mask_and_isolation_options_reach_the_processor(tmp_path, capsys):
    event = Event(
        [Lepton(50.0, 0.5, 0.0, 1)],
        [Lepton(30.0, -0.5, 2.0, -1, ident=1)],
        extra={"HLT_IsoMu24": True, "HLT_Mu50": False},
    )
    path = write_nanoaod(tmp_path / "t.root", [event, event], mc=False)
    fs = write_fileset(tmp_path / "t.json", {"data": {"files": [path], "metadata": {}}})
    golden = tmp_path / "golden.json"
    golden.write_text('{"1": [[1, 10]]}')
    out = tmp_path / "out"
    options = ["--triggers", "HLT_Mu50", "IsoMu24", "--lumi-mask", str(golden),
               "--muon-isolation-branch", "pfRelIso03_all"]  # fmt: skip
    assert run(str(fs), "-o", str(out), "--quiet", "--scale-nu", "--norm-nu", *options) == 0
    manifest = read_manifest(out)
    assert manifest["config"]["triggers"] == ["Mu50", "IsoMu24"]
    assert manifest["config"]["lumi_mask"] == str(golden)
    assert manifest["cutflow"]["data"]["trigger"] == 2
    (tmp_path / "bad.json").write_text("not json")
    code = run(
        str(fs), "-o", str(tmp_path / "o2"), "--quiet", "--lumi-mask", str(tmp_path / "bad.json")
    )
    err = capsys.readouterr().err
    assert (
        code == 2 and "bad.json: not a certified-luminosity JSON" in err and "Traceback" not in err
    )


def test_two_processes_into_one_directory(tmp_path):
    """Two real `symnplm process` runs into one folder: the second is refused at once and
    the first finishes a consistent output (every file its manifest lists exists)."""
    import subprocess
    import sys
    import time

    events = [
        Event(
            [Lepton(40.0 if i % 2 else 20.0, 0.3, 0.0, 1)], [Lepton(30.0, -0.3, 2.0, -1, ident=1)]
        )
        for i in range(1000)
    ]
    path = write_nanoaod(tmp_path / "f.root", events, mc=False)
    fs = write_fileset(tmp_path / "fs.json", {"data": {"files": [path], "metadata": {}}})
    out = tmp_path / "out"
    argv = ["process", str(fs), "-o", str(out), "--quiet", "--chunksize", "50"]
    argv += ["--scale-nu", "--norm-nu"]  # the nominal events only: a quicker run
    # the second run imports first and starts its processing when told to, so that it
    # reaches the folder while the first one is writing it
    second = subprocess.Popen(
        [sys.executable, "-c", "import sys; import symnplm.processors.runner; "
         f"from symnplm.cli import main; sys.stdin.readline(); "
         f"sys.exit(main({argv!r}))"],
        stdin=subprocess.PIPE, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    first = subprocess.Popen(
        [sys.executable, "-m", "symnplm.cli", *argv],
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not list(out.glob("columns/data/nominal/*.parquet")):  # the first is writing
        assert first.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    out2, err2 = second.communicate("go\n", timeout=120)
    _, err1 = first.communicate(timeout=300)
    assert second.returncode == 2, err2
    assert "another symnplm run is writing this directory" in err2
    assert "Traceback" not in err2 + out2
    assert first.returncode == 0, err1
    manifest = read_manifest(out)
    parts = [p["path"] for s in manifest["samples"] for p in s["parts"]]
    assert parts and all((out / p).exists() for p in parts)
    assert manifest["cutflow"]["data"]["all"] == 1000


def test_a_scheduler_that_does_not_answer_is_one_line(small_fileset, tmp_path, capsys):
    import dask

    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        code = run(
            str(small_fileset), "-o", str(tmp_path / "out"), "--quiet",
            "--executor", "dask", "--scheduler", "tcp://127.0.0.1:9",
        )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "scheduler tcp://127.0.0.1:9: no answer within 1 s" in err
    assert "Traceback" not in err
