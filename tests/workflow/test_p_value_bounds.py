"""A p-value at the floor of its null is a bound everywhere; unconverged fits are flagged.

With n null replicas the empirical p is (1 + #{t_null ≥ t_obs}) / (n + 1): when no
replica reaches t_obs it is 1/(n+1), and all that is known is p < 1/(n+1), Z > Z(1/(n+1)).
"""

from __future__ import annotations

import json

import matplotlib.pyplot as plt
import numpy as np
import pytest

from symnplm.cli import main
from symnplm.cli.test import summary_line
from symnplm.inference.calculators import calibrated
from symnplm.inference.results import NullDistribution, TestResult
from symnplm.io.booking import (
    convergence_note,
    format_p_z,
    load_result,
    p_value_is_bound,
    result_p_is_bound,
)
from symnplm.plotting import null_figure
from symnplm.workflow.demo import summary_rows, write_summary

N_NULL = 9


def _observed(t: float, converged: bool = True, optimizer: str = "newton") -> TestResult:
    return TestResult(
        statistic="symmetrized",
        t=t,
        parts={},
        dof=12,
        n_parameters=13,
        diverged=False,
        converged=converged,
        functions={},
        log_ratio={},
        model={},
        history_steps=np.zeros(0, dtype=np.int64),
        history={},
        samples={},
        seed=0,
        config={"fit": {"optimizer": optimizer}},
        provenance={},
        seconds=0.0,
    )


def _null() -> NullDistribution:
    t = np.linspace(5.0, 25.0, N_NULL)
    return NullDistribution(
        method="permutations",
        t=t,
        diverged=np.zeros(N_NULL, bool),
        converged=np.ones(N_NULL, bool),
        seed=0,
        replica_ids=np.arange(N_NULL),
    )


def test_t_obs_above_every_null_t_gives_a_bound():
    result = calibrated(_observed(100.0), _null())
    assert result.p_value == pytest.approx(1 / (N_NULL + 1))
    assert result_p_is_bound(result) and p_value_is_bound(result.p_value, N_NULL)
    line = summary_line(result)
    assert f"p < {1 / (N_NULL + 1):.2g}  Z > {result.z:.2f}" in line
    assert "none reaching t" in line and "p = " not in line and "NOT converged" not in line


def test_one_replica_reaching_t_obs_gives_a_value():
    null = _null()
    result = calibrated(_observed(float(null.t.max())), null)  # t_null >= t_obs counts
    assert result.p_value == pytest.approx(2 / (N_NULL + 1))
    assert not result_p_is_bound(result) and not p_value_is_bound(result.p_value, N_NULL)
    line = summary_line(result)
    assert f"p = {result.p_value:.3g}  Z = {result.z:.2f}" in line and "p < " not in line


def test_asymptotic_p_values_have_no_floor():
    assert not p_value_is_bound(1e-9, 0)
    assert format_p_z(0.5, 0.0, False) == "p = 0.5, Z = 0.00"
    assert format_p_z(1 / 101, 2.33, True) == "p < 0.0099, Z > 2.33"
    assert format_p_z("0.5", "inf", False) == "p = 0.5, Z = inf"  # JSON strings


def test_unconverged_observed_fit_is_flagged_in_the_summary_line():
    null = _null()
    line = summary_line(calibrated(_observed(10.0, converged=False), null))
    assert line.endswith("[observed fit NOT converged (iteration cap reached)]")
    line = summary_line(calibrated(_observed(10.0, converged=False, optimizer="adam"), null))
    assert "convergence not checked" in line
    assert convergence_note(True, "newton") is None
    assert "[" not in summary_line(calibrated(_observed(10.0), null))


@pytest.fixture(scope="module")
def strong_signal(tmp_path_factory):
    """A toy test whose observed t no permutation reaches: the p-value is a bound."""
    out = tmp_path_factory.mktemp("bound") / "toy"
    args = ["test", "--n-a", "400", "--n-b", "400", "--signal", "S1", "--n-signal", "200"]
    args += ["--calibration", f"permutations:{N_NULL}", "--max-iter", "30", "--seed", "1"]
    return out, [*args, "--output", str(out), "--quiet"]


def test_a_bound_everywhere(strong_signal, capsys):
    out, args = strong_signal
    assert main(args) == 0
    printed = capsys.readouterr().out
    floor = f"{1 / (N_NULL + 1):.2g}"
    # the command's summary line
    assert f"p < {floor}  Z > " in printed and "none reaching t" in printed
    # run.json
    run = json.loads((out / "run.json").read_text())
    assert run["p_is_bound"] is True and run["p_value"] == pytest.approx(1 / (N_NULL + 1))
    # the figure
    booked = load_result(out)
    fig = null_figure(booked)
    title = fig.axes[0].get_title(loc="left")
    plt.close(fig)
    assert f"p < {floor}, Z > " in title and "p = " not in title
    # the demo summary (table, Markdown, notes)
    rows = summary_rows(out.parent)
    assert rows[0]["p_is_bound"] is True
    write_summary(out.parent, rows)
    table = (out.parent / "summary.md").read_text()
    assert f"| < {floor} | > {rows[0]['Z']:.2f}" in table
    assert "no permutation reached the observed t" in table
    # a run.json written before the flag existed: p·(n+1) = 1 says the same
    del run["p_is_bound"]
    (out / "run.json").write_text(json.dumps(run))
    assert summary_rows(out.parent)[0]["p_is_bound"] is True


def test_demo_summary_flags_fits_that_did_not_converge(strong_signal, tmp_path):
    out, args = strong_signal
    if not (out / "run.json").exists():
        assert main(args) == 0
    run = json.loads((out / "run.json").read_text())
    run.update(converged=False, p_is_bound=False, p_value=0.3)
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "run.json").write_text(json.dumps(run))
    rows = summary_rows(tmp_path)
    write_summary(tmp_path, rows)
    table = (tmp_path / "summary.md").read_text()
    assert "| 0.3 | " in table and " (!) |" in table
    assert "(!) r: observed fit NOT converged (iteration cap reached)." in table


def test_demo_summary_of_a_result_below_every_null_t(strong_signal, tmp_path):
    """p = 1 gives Z = -inf, which run.json stores as the string "-inf"."""
    out, args = strong_signal
    if not (out / "run.json").exists():
        assert main(args) == 0
    run = json.loads((out / "run.json").read_text())
    run.update(p_is_bound=False, p_value=1.0, z="-inf", z_asymptotic="-inf", t=0.0)
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "run.json").write_text(json.dumps(run))
    rows = summary_rows(tmp_path)
    assert rows[0]["Z"] == -np.inf and rows[0]["Z_asymptotic"] == -np.inf
    write_summary(tmp_path, rows)
    assert "| 1 | -inf" in (tmp_path / "summary.md").read_text()
