"""`python -m symnplm.inference` / `symnplm test` on tiny inputs."""

import json
import subprocess
import sys

import numpy as np
import pytest

from symnplm.cli import main as symnplm_main
from symnplm.cli.test import main
from symnplm.io.samples import Sample


def test_toy_run_prints_and_writes_a_result(tmp_path, capsys):
    out = tmp_path / "res"
    main(["--n-a", "300", "--n-b", "300", "--max-iter", "20", "--seed", "3", "--output", str(out)])
    printed = capsys.readouterr().out
    assert "t = " in printed and "Z = " in printed
    meta = json.loads((out / "result.json").read_text())
    assert meta["observed"]["seed"] == 3 and meta["dof"] == 12 and meta["method"] == "asymptotic"
    assert meta["observed"]["samples"]["A"]["n_events"] > 200


def test_parquet_inputs_and_permutations(tmp_path, capsys):
    rng = np.random.default_rng(0)
    Sample(rng.exponential(size=(200, 1)), names=["m_coll"], name="emu").to_parquet(
        tmp_path / "a.parquet"
    )
    Sample(rng.exponential(size=(220, 1)), names=["m_coll"], name="mue").to_parquet(
        tmp_path / "b.parquet"
    )
    code = symnplm_main(
        [
            "test",
            "--a",
            str(tmp_path / "a.parquet"),
            "--b",
            str(tmp_path / "b.parquet"),
            "--statistic",
            "binned",
            "--bins",
            "5",
            "--calibration",
            "permutations:9",
        ]
    )
    assert code == 0
    assert "9 replicas" in capsys.readouterr().out


def test_bad_arguments_are_reported(capsys):
    with pytest.raises(SystemExit):
        main(["--calibration", "permutations"])  # missing count
    assert main(["--a", "x.parquet"]) == 2
    assert "a.path and b.path" in capsys.readouterr().err


def test_module_entry_point_help():
    out = subprocess.run(
        [sys.executable, "-m", "symnplm.inference", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "--calibration" in out.stdout
