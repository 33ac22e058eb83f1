"""Region scans: joint permutations, global significance, resumable outputs, clear errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

from symnplm.cli import main
from symnplm.io.booking import read_hists
from symnplm.io.samples import Sample
from symnplm.workflow.config import ConfigError, from_mapping
from symnplm.workflow.scan import ScanConfig, ScanData, load_scan, run_scan


def _toy(seed: int, n_signal: int) -> ScanData:
    """x ~ N(0, 1) in A and B, region variable r ~ U(0, 6); A has a bump at x = 1.5, r < 1."""
    rng = np.random.default_rng(seed)

    def events(n: int, sig: int) -> Sample:
        x, r = rng.normal(size=n), rng.uniform(0, 6, size=n)
        xs, rs = rng.normal(1.5, 0.3, size=sig), rng.uniform(0, 1, size=sig)
        return Sample(np.stack([np.r_[x, xs], np.r_[r, rs]], 1), None, ("x", "r"))

    return ScanData.from_samples(events(3000, n_signal), events(3000, 0))


def _toy_scan(data, regions, directory, client):
    cfg = from_mapping(
        ScanConfig,
        {
            "regions": regions,
            "observables": {"x": ["x"]},
            "statistics": {"binned": {"method": "binned", "bins": 10}},
            "calibration": {"permutations": 1000},
            "seed": 5,
        },
    )
    return run_scan(cfg, directory, data=data, client=client)


def test_global_p_beats_bonferroni_only_for_correlated_cells(tmp_path, local_client):
    """Signal in r < 1: six nested regions (correlated) against six disjoint slices.

    Seeded (toy seed 7, scan seed 5, 1000 joint permutations). Disjoint cells are six
    nearly independent looks: global p ≈ Bonferroni (Šidák). Nested cells are nearly one
    look: the joint ensemble knows it, Bonferroni does not.
    """
    data = _toy(7, 40)
    disjoint = _toy_scan(
        data, {f"r{k}": {"r": [k, k + 1]} for k in range(6)}, tmp_path / "d", local_client
    )
    nested = _toy_scan(
        data,
        {f"lt{k}": {"r": [None, 1.0 + 0.05 * k]} for k in range(6)},
        tmp_path / "n",
        local_client,
    )
    gd, gn = disjoint.significance, nested.significance
    # the signal region stands out among the disjoint cells
    assert np.argmin(gd.local_p) == 0 and gd.local_p[0] < 0.1 < gd.local_p[1:].min()
    assert gd.global_p > 0.8 * gd.bonferroni_p
    assert gn.global_p < 0.5 * gn.bonferroni_p
    assert gd.global_p <= gd.bonferroni_p + 1e-12 and gn.global_p <= gn.bonferroni_p + 1e-12


def test_cells_share_one_relabelling_per_replica(tmp_path, local_client):
    """Two identical regions get identical nulls: the same labels reach every cell."""
    res = _toy_scan(_toy(1, 0), {"a": {}, "b": {"r": [None, 10.0]}}, tmp_path, local_client)
    np.testing.assert_array_equal(res.t_null[0], res.t_null[1])
    assert res.significance.trial_factor == pytest.approx(1.0)


SCAN = {
    "regions": {"inclusive": {}, "0j": {"n_jets": 0}, "ge1j": {"n_jets": [1, None]}},
    "observables": {"m_coll": "m_coll", "two": ["m_coll", "met"]},
    "statistics": {
        "sym": {"method": "symmetrized", "max_iter": 15},
        "binned": {"method": "binned", "bins": 5},
    },
    "calibration": {"permutations": 12, "batch_size": 3},
    "seed": 3,
}


def _scan_file(tmp_path, processed, **changes):
    path = tmp_path / "scan.yaml"
    path.write_text(yaml.safe_dump({"input": str(processed), **SCAN, **changes}))
    return path


def test_cli_scan_writes_table_hists_and_figure(tmp_path, processed, capsys):
    path = _scan_file(tmp_path, processed)
    assert main(["scan", str(path), "-o", str(tmp_path / "out"), "--quiet"]) == 0
    out = capsys.readouterr()
    assert "global p" in out.out and "left out" in out.err  # binned × two-column observable
    summary = json.loads((tmp_path / "out" / "table.json").read_text())
    cells = summary["cells"]
    assert len(cells) == 3 * (2 + 1)  # the binned statistic skips the 2D observable
    assert {c["region"] for c in cells} == {"inclusive", "0j", "ge1j"}
    assert summary["global"]["n_replicas"] == 12 and summary["seed"] == 3
    assert "torch" in summary["provenance"]["versions"]
    # regions hold the events they say: 0j and ge1j partition the inclusive sample
    n = {
        (c["region"], c["statistic"]): c["n_a"] + c["n_b"]
        for c in cells
        if c["observable"] == "m_coll"
    }
    assert n["0j", "sym"] + n["ge1j", "sym"] == n["inclusive", "sym"]
    assert len((tmp_path / "out" / "table.csv").read_text().splitlines()) == 1 + len(cells)
    h = read_hists(tmp_path / "out")["local_z"]
    assert [ax.name for ax in h.axes] == ["region", "observable", "statistic"]
    row = cells[0]
    assert h[row["region"], row["observable"], row["statistic"]] == pytest.approx(row["local_z"])
    assert (tmp_path / "out" / "summary.png").stat().st_size > 10_000


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"regionz": {}}, "regionz: unknown key"),
        ({"regions": {"0j": {"njets": 0}}}, "regions.0j.njets: not a column"),
        ({"regions": {"bad": {"n_jets": [3, 1]}}}, r"regions.bad.n_jets: empty range"),
        ({"regions": {"../x": {}}}, r"regions\.\.\./x: names use letters"),
        ({"statistics": {"s": {"method": "magic"}}}, "statistics.s.method"),
        ({"observables": {"o": ["m_coll", "m_coll"]}}, "observables.o: a column is listed twice"),
        ({"calibration": {"permutations": 0}}, "calibration.permutations: must be >= 1"),
        ({"calibration": {"workers": True}}, "calibration.workers: expected int, got True"),
        ({"statistics": {"s": {"bins": 0}}}, "statistics.s.bins: must be >= 1, got 0"),
        ({"statistics": {"s": {"bin": 3}}}, r"statistics.s.bin: unknown key; .* in statistics.s:"),
        ({"observables": {"o": 5}}, r"observables.o: expected list\[str\] \| str, got 5"),
    ],
)
def test_invalid_scan_files_name_the_key(tmp_path, processed, capsys, changes, message):
    path = _scan_file(tmp_path, processed, **changes)
    assert main(["scan", str(path), "-o", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert str(path) in err or "regions.0j" in err
    import re

    assert re.search(message, err), err


def test_a_directory_holding_another_scan_is_refused(tmp_path, processed, capsys):
    path = _scan_file(tmp_path, processed, calibration={"permutations": 3})
    assert main(["scan", str(path), "-o", str(tmp_path / "out"), "--quiet"]) == 0
    assert main(["scan", str(path), "-o", str(tmp_path / "out"), "--seed", "9", "-q"]) == 2
    assert "holds a different scan" in capsys.readouterr().err


def test_load_scan_reports_the_file(tmp_path):
    bad = tmp_path / "s.toml"
    bad.write_text('input = "x"\n[regions.a]\nn_jets = "zero"\n')
    with pytest.raises(ConfigError, match=r"s.toml: regions.a.n_jets: expected"):
        load_scan(bad)
    listed = tmp_path / "s.yaml"
    listed.write_text("- regions: {}\n")
    with pytest.raises(ConfigError, match=r"s.yaml: expected a mapping of keys at the top level"):
        load_scan(listed)


@pytest.mark.slow
def test_killed_scan_resumes_to_the_uninterrupted_result(tmp_path, processed):
    """`symnplm scan` killed (SIGKILL) after its first batches, rerun: the same table."""
    path = _scan_file(tmp_path, processed, calibration={"permutations": 24, "batch_size": 2})
    cmd = [sys.executable, "-c", "import sys; from symnplm.cli import main; sys.exit(main())"]
    args = ["scan", str(path), "--quiet", "-o"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([*cmd, *args, str(tmp_path / "full")], check=True, env=env)

    out = tmp_path / "cut"
    proc = subprocess.Popen([*cmd, *args, str(out)], env=env, start_new_session=True)
    deadline = time.monotonic() + 120
    while len(list(out.glob("cells/*/null_*.npz"))) < 3 and time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = {p: p.stat().st_mtime_ns for p in out.glob("cells/*/null_*.npz")}
    assert 3 <= len(before) < 9 * 12, "the scan should be killed mid-way"
    assert not (out / "table.json").exists()

    subprocess.run([*cmd, *args, str(out)], check=True, env=env)
    assert {p: p.stat().st_mtime_ns for p in before} == before  # finished batches kept
    full = json.loads((tmp_path / "full" / "table.json").read_text())
    resumed = json.loads((out / "table.json").read_text())
    for a, b in zip(full["cells"], resumed["cells"]):
        assert (a["cell"], a["t"], a["local_p"], a["null_mean"]) == (
            b["cell"],
            b["t"],
            b["local_p"],
            b["null_mean"],
        )
    assert full["global"] == resumed["global"]
