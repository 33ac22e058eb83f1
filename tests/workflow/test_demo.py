"""``symnplm demo`` end to end on a reduced fileset (a few small demo datasets)."""

from __future__ import annotations

import json

import pytest

from symnplm.cli import main
from symnplm.demo import default_fileset

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
        assert (
            figures / "fit_m_coll.png" if obs == "m_coll" else figures / "fit_dphi.png"
        ).exists()
        run = json.loads((out / obs / "run.json").read_text())
        assert run["config"]["unweight"] == "poisson"
        # the fileset's luminosity (5 fb^-1): pseudo-data has unit weights, counts ≈ Σw
        assert run["samples"]["A"]["provenance"]["luminosity_fb"] == 5.0
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
def test_demo_with_efficiency_correction(small_fileset, tmp_path, capsys):
    """The map is measured on the background and the reprocessed events carry R(electron)."""
    from symnplm.physics import EfficiencyRatio
    from symnplm.samples import load_sample

    out = tmp_path / "demo"
    args = ["demo", "-o", str(out), "--fileset", str(small_fileset), "--permutations", "2",
            "--batch-size", "2", "--max-iter", "5", "--workers", "1", "--quiet",
            "--efficiency-correction", "--observables", "m_coll"]  # fmt: skip
    assert main(args) == 0
    ratio = EfficiencyRatio.read(out / "efficiency_map.json")
    plain = load_sample(out / "processed", "ww", "emu", features=["pt_e", "eta_e"])
    weighted = load_sample(out / "processed_effcorr", "ww", "emu", features=["pt_e", "eta_e"])
    expected = plain.weights * ratio(plain.column("pt_e"), plain.column("eta_e"))
    assert weighted.weights == pytest.approx(expected)
    run = json.loads((out / "effcorr" / "m_coll" / "run.json").read_text())
    assert run["config"]["input"].endswith("processed_effcorr")
    rows = json.loads((out / "summary.json").read_text())["rows"]
    assert [r["efficiency_corrected"] for r in rows] == [True]
    assert (out / "figures" / "effcorr" / "kinematics_nominal.png").exists()
