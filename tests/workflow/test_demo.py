"""``symnplm demo`` end to end on a reduced fileset (a few small demo datasets)."""

from __future__ import annotations

import json

import pytest

from symnplm.cli import main
from symnplm.workflow.demo import default_efficiency_map, default_fileset

SMALL = ("ww", "tw", "wz", "ggh_htaue", "vbfh_htaue")


@pytest.fixture(scope="module")
def small_fileset(tmp_path_factory):
    full = json.loads(default_fileset().read_text())
    base = default_fileset().parent
    small = {}
    for d in SMALL:
        entry = dict(full[d])
        entry["files"] = {str(base / f): tree for f, tree in full[d]["files"].items()}
        small[d] = entry
    path = tmp_path_factory.mktemp("fileset") / "fileset.json"
    path.write_text(json.dumps(small))
    return path


@pytest.mark.slow
def test_demo_writes_results_figures_and_a_summary(small_fileset, tmp_path, capsys):
    out = tmp_path / "demo"
    args = [
        "demo",
        "-o",
        str(out),
        "--fileset",
        str(small_fileset),
        "--permutations",
        "4",
        "--batch-size",
        "2",
        "--max-iter",
        "10",
        "--workers",
        "1",
        "--quiet",
    ]
    assert main(args) == 0
    printed = capsys.readouterr()
    assert "injected BR" in printed.out and "m_coll" in printed.out and "5d" in printed.out
    rows = json.loads((out / "summary.json").read_text())["rows"]
    assert {r["observable"] for r in rows} == {"m_coll", "5d"}
    assert {r["dof"] for r in rows} == {12, 28}  # 1-4-1 and 5-4-1 networks, parameters - 1
    assert all(r["n_permutations"] == 4 for r in rows)
    for obs in ("m_coll", "5d"):
        figures = out / obs / "figures"
        assert (figures / "null_t.png").stat().st_size > 5_000
        assert (figures / "diagnostics.png").stat().st_size > 5_000
        assert (
            figures / "fit_m_coll.png" if obs == "m_coll" else figures / "fit_dphi.png"
        ).exists()
        run = json.loads((out / obs / "run.json").read_text())
        # the weights as they are, at the fileset's luminosity (5 fb^-1)
        assert run["config"]["unweight"] == "none"
        assert run["samples"]["A"]["provenance"]["luminosity_fb"] == 5.0
        # the map's uncertainty went into the permutations; binned diagnostics came along
        assert run["reweighting_uncertainty"]["bins_used"] > 10
        assert {d["name"] for d in run["diagnostics"]} >= {"eta_lead", "eta_lead:eta_sublead"}
    manifest = json.loads((out / "processed" / "manifest.json").read_text())
    assert manifest["config"]["efficiency"]["source"] == str(default_efficiency_map())
    assert manifest["config"]["muon"]["eta_vetoes"] == [[0.0, 0.1], [1.37, 1.52]]
    assert manifest["config"]["muon"]["iso_max"] == manifest["config"]["electron"]["iso_max"]
    assert (out / "figures" / "kinematics_nominal.png").exists()
    assert "| m_coll |" in (out / "summary.md").read_text()

    # rerun: processing and campaigns are reused, nothing is recomputed
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("*/campaign/batch-*.npz")}
    assert len(stamps) == 4
    assert main(args) == 0
    assert "reusing processed demo dataset" in capsys.readouterr().err
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    again = json.loads((out / "summary.json").read_text())["rows"]
    assert [(r["t"], r["p"], r["Z"]) for r in again] == [(r["t"], r["p"], r["Z"]) for r in rows]

    # with LFV signal: results under br_<value>/
    assert main([*args, "--inject-br", "0.05", "--observables", "m_coll"]) == 0
    injected = json.loads((out / "br_0.05" / "m_coll" / "run.json").read_text())
    assert injected["config"]["inject"]["branching_ratio"] == 0.05


@pytest.mark.slow
def test_demo_without_the_map_and_with_a_map_of_its_own_events(small_fileset, tmp_path, capsys):
    """--efficiency-map none: results under uncorrected/; a map measured on the demo's
    own files is refused, naming the problem."""
    out = tmp_path / "demo"
    args = ["demo", "-o", str(out), "--fileset", str(small_fileset), "--permutations", "2",
            "--batch-size", "2", "--max-iter", "5", "--workers", "1", "--quiet",
            "--observables", "m_coll"]  # fmt: skip
    assert main([*args, "--efficiency-map", "none"]) == 0
    run = json.loads((out / "uncorrected" / "m_coll" / "run.json").read_text())
    assert run["config"]["input"].endswith("processed_uncorrected")
    assert run["reweighting_uncertainty"] is None
    rows = json.loads((out / "summary.json").read_text())["rows"]
    assert [r["efficiency_corrected"] for r in rows] == [False]

    from symnplm.processors.efficiency_map import measure_from_output

    own = measure_from_output(
        out / "processed_uncorrected", pt_edges=(15, 40, 6500), abseta_edges=(0, 2.3)
    )
    own.write(tmp_path / "own.json")
    capsys.readouterr()
    assert main([*args, "--efficiency-map", str(tmp_path / "own.json")]) == 2
    assert "measured on events this run processes" in capsys.readouterr().err


def test_the_demo_finds_its_dataset_beside_the_fileset(tmp_path, monkeypatch):
    """Installed from a wheel and run elsewhere: the map comes from beside --fileset."""
    from symnplm.workflow.demo import default_efficiency_map, default_fileset

    beside = tmp_path / "somewhere" / "efficiency_map.json"
    beside.parent.mkdir()
    beside.write_text("{}")
    assert default_efficiency_map(beside.parent / "fileset.json") == beside
    # none beside the fileset: the embedded dataset's map
    embedded = default_fileset().parent / "efficiency_map.json"
    assert default_efficiency_map(tmp_path / "fileset.json") == embedded
    (tmp_path / "datasets" / "demo").mkdir(parents=True)
    (tmp_path / "datasets" / "demo" / "fileset.json").write_text("{}")
    monkeypatch.chdir(tmp_path)
    assert default_fileset() == tmp_path / "datasets" / "demo" / "fileset.json"
