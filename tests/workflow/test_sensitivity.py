"""Signal-injection scans: Z grows with the injected branching ratio."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from symnplm.cli import main
from symnplm.inference import p_to_z
from symnplm.workflow.config import from_dict
from symnplm.workflow.sensitivity import ideal_z, sensitivity_scan


def test_z_grows_with_the_injected_signal(processed):
    cfg = from_dict(
        {
            "input": str(processed),
            # thinned pseudo-experiments at 0.5 of the simulation's 5 fb^-1: w <= 1
            "luminosity_fb": 0.5,
            "statistic": {"max_iter": 20},
            "inject": {"datasets": ["ggh_htaue"]},
            "seed": 4,
        }
    )
    t0, points = sensitivity_scan(cfg, [0.1, 0.4], n_toys=6, n_null=10, batch_size=6)
    assert [p.branching_ratio for p in points] == [0.0, 0.1, 0.4]
    assert len(t0) == 10 and len(points[1].t) == 6
    medians = [np.median(p.z_chi2) for p in points]
    assert medians[0] < medians[1] < medians[2]
    assert np.median(points[2].t) > np.percentile(t0, 90)
    # the empirical Z is capped by the null size: p >= 1/11
    assert np.all(points[2].z <= p_to_z(1 / 11) + 1e-12)
    # Z_id of Eq. 29 is linear in N_s for s << b, slower where the peak has s ~ b
    z1, z4 = ideal_z(cfg, 0.1, np.linspace(0, 5, 51)), points[2].z_ideal
    assert points[0].z_ideal == 0.0 and 2.0 < z4 / z1 < 4.0
    # pseudo-experiments are thinned simulation: the weights must allow it
    with pytest.raises(ValueError, match=r"weights up to 1\.6 exceed 1"):
        sensitivity_scan(dataclasses.replace(cfg, luminosity_fb=None), [0.1], n_toys=2)


def test_sensitivity_command_writes_json_and_figures(processed, tmp_path):
    out = tmp_path / "sens"
    code = main(
        ["sensitivity", "--input", str(processed), "--inject-datasets", "ggh_htaue",
         "--brs", "0.3", "--toys", "3", "--null-toys", "4", "--max-iter", "10",
         "--luminosity-fb", "0.5",
         "--output", str(out), "--quiet"]
    )  # fmt: skip
    assert code == 0
    scan = json.loads((out / "sensitivity.json").read_text())
    assert [p["branching_ratio"] for p in scan["points"]] == [0.0, 0.3]
    assert scan["seed"] == 0 and scan["provenance"]["versions"]["numpy"]
    for name in ("z_vs_br.png", "z_vs_zid.png"):
        assert (out / name).stat().st_size > 5_000


def test_sensitivity_flags_without_null_toys_parse_to_the_default():
    """``--null-toys`` omitted: None (then --toys), not a missing attribute."""
    from symnplm.cli import build_parser

    args = build_parser().parse_args(["sensitivity", "--brs", "0.1", "--output", "out"])
    assert args.null_toys is None and args.toys == 20


def test_protocol_flags_parse_with_pseudo_data_the_default():
    from symnplm.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["sensitivity", "--brs", "0.1", "--output", "out"])
    assert args.protocol == "pseudo-data" and args.luminosities is None
    args = parser.parse_args(
        ["sensitivity", "--brs", "0.1", "--protocol", "bootstrap", "--luminosities", "5", "10",
         "--output", "out"]
    )  # fmt: skip
    assert args.protocol == "bootstrap" and args.luminosities == [5.0, 10.0]
    with pytest.raises(SystemExit):
        parser.parse_args(["sensitivity", "--brs", "0.1", "--protocol", "toys"])


def test_python_dash_m_symnplm_cli_is_the_command():
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "symnplm.cli", "--version"], capture_output=True, text=True
    )
    assert out.returncode == 0 and out.stdout.startswith("symnplm ")
