"""Figures: produced, non-empty, for 1D and multi-dimensional results and processor output."""

from __future__ import annotations

import pytest

from symnplm.cli import main
from symnplm.plotting import plot_kinematics, plot_result
from symnplm.workflow.config import from_dict
from symnplm.workflow.runs import run


@pytest.fixture(scope="module")
def results(processed, tmp_path_factory, local_client):
    out = tmp_path_factory.mktemp("results")
    base = {
        "input": str(processed),
        "unweight": "none",
        "statistic": {"max_iter": 15},
        "calibration": {"method": "permutations", "n": 6, "batch_size": 3},
    }
    for name, features in (("1d", "m_coll"), ("2d", ["m_coll", "dphi"])):
        run(
            from_dict({**base, "features": features, "output": str(out / name)}),
            client=local_client,
        )
    return out


def _nonempty(paths):
    assert paths
    for p in paths:
        assert p.exists() and p.stat().st_size > 5_000, p  # a real image, not an empty canvas
    return {p.name for p in paths}


def test_figures_of_a_one_dimensional_result(results, tmp_path):
    names = _nonempty(plot_result(results / "1d", tmp_path, formats=("png", "pdf")))
    assert {"null_t.png", "null_t.pdf", "fit_m_coll.png", "t_vs_steps.png"} <= names


def test_projections_of_a_multidimensional_result(results):
    names = _nonempty(plot_result(results / "2d"))  # default: RESULT/figures
    assert {"fit_m_coll.png", "fit_dphi.png", "null_t.png"} <= names
    assert (results / "2d" / "figures" / "fit_dphi.png").exists()


def test_kinematics_per_variation(processed, tmp_path):
    names = _nonempty(
        plot_kinematics(processed, tmp_path, variations=["nominal", "muon_scale_up1"])
    )
    assert names == {"kinematics_nominal.png", "kinematics_muon_scale_up1.png"}


def test_plot_command(results, processed, tmp_path, capsys):
    assert (
        main(["plot", str(results / "1d"), "-o", str(tmp_path), "--kinematics", str(processed)])
        == 0
    )
    printed = capsys.readouterr().out.split()
    assert str(tmp_path / "null_t.png") in printed
    assert str(tmp_path / "kinematics_nominal.png") in printed
    assert main(["plot", str(tmp_path / "nothing")]) == 2
    assert "not a complete result directory" in capsys.readouterr().err
