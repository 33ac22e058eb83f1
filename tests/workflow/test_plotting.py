"""Figures: files for 1D and multi-dimensional results and processor output, and what they show.

The builders return matplotlib figures; the tests read back labels, axis ranges, bin
edges, the triangles marking ratio points beyond a panel, and where legends sit.
"""

from __future__ import annotations

import json
import shutil

import hist
import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.patches import StepPatch

from symnplm import plotting
from symnplm.cli import main
from symnplm.io.booking import load_result, read_hists, result_p_is_bound
from symnplm.plotting import (
    LABEL_GID,
    OUT_OF_RANGE,
    fit_figures,
    history_figure,
    kinematics_figures,
    null_figure,
    plot_kinematics,
    plot_result,
)
from symnplm.processors.histograms import ABS_ETA_EDGES
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
    for name, features in (("1d", "m_coll"), ("3d", ["m_coll", "eta_lead", "dphi"])):
        run(
            from_dict({**base, "features": features, "output": str(out / name)}),
            client=local_client,
        )
    return out


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _nonempty(paths):
    assert paths
    for p in paths:
        assert p.exists() and p.stat().st_size > 5_000, p  # a real image, not an empty canvas
    return {p.name for p in paths}


def _label_texts(ax) -> list[str]:
    return [t.get_text() for t in ax.texts if t.get_gid() == LABEL_GID]


def _triangles(ax) -> int:
    """Ratio points marked beyond the panel's range."""
    return sum(len(line.get_xdata()) for line in ax.lines if line.get_gid() == OUT_OF_RANGE)


def _data_points(ax) -> np.ndarray:
    """Display coordinates of the data drawn in data coordinates: markers, error bars, steps."""
    points = [np.empty((0, 2))]
    for line in ax.lines:
        if line.get_transform() == ax.transData and len(line.get_xdata()):
            xy = np.column_stack([line.get_xdata(), line.get_ydata()]).astype(float)
            points.append(ax.transData.transform(xy))
    for coll in ax.collections:  # error bars: the segments' ends
        for seg in getattr(coll, "get_segments", list)():
            points.append(coll.get_transform().transform(np.asarray(seg)))
    for patch in ax.patches:
        if isinstance(patch, StepPatch):
            points.append(patch.get_transform().transform(patch.get_path().vertices))
    xy = np.concatenate(points)
    return xy[np.isfinite(xy).all(axis=1)]


def _background(h, rebin: int = 1, **where) -> np.ndarray:
    """Counts of the fixture's background datasets (what the kinematics pages sum)."""
    parts = [h[{"dataset": d, **where}][:: hist.rebin(rebin)] for d in ("ttbar", "ztautau")]
    return parts[0].values() + parts[1].values()


def _covered(ax, legend) -> int:
    """How many data points lie inside the legend's box."""
    renderer = ax.figure.canvas.get_renderer()
    box = legend.get_window_extent(renderer)
    xy = _data_points(ax)
    inside = (xy[:, 0] > box.x0) & (xy[:, 0] < box.x1) & (xy[:, 1] > box.y0) & (xy[:, 1] < box.y1)
    return int(inside.sum())


# ---------------------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------------------
def test_figures_of_a_one_dimensional_result(results, tmp_path):
    names = _nonempty(plot_result(results / "1d", tmp_path, formats=("png", "pdf")))
    assert {"null_t.png", "null_t.pdf", "fit_m_coll.png", "t_vs_steps.png"} <= names


def test_projections_of_a_multidimensional_result(results):
    names = _nonempty(plot_result(results / "3d"))  # default: RESULT/figures
    assert {"fit_m_coll.png", "fit_eta_lead.png", "fit_dphi.png", "null_t.png"} <= names
    assert (results / "3d" / "figures" / "fit_dphi.png").exists()


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


# ---------------------------------------------------------------------------------------
# content: results
# ---------------------------------------------------------------------------------------
def test_label_carries_the_luminosity_of_the_data(results):
    booked = load_result(results / "1d")
    ax = null_figure(booked).axes[0]
    # the fixture's fileset records 5 fb^-1, the run scaled the samples to it
    assert _label_texts(ax) == ["symnplm", "Simulation", "5 fb$^{-1}$ (13 TeV)"]
    for sample in booked.summary["samples"].values():
        sample["provenance"]["luminosity_fb"] = 7.5
    ax = fit_figures(booked)["m_coll"].axes[0]
    assert "7.5 fb$^{-1}$ (13 TeV)" in _label_texts(ax)
    for sample in booked.summary["samples"].values():
        sample["provenance"]["luminosity_fb"] = None  # unknown (parquet inputs, toys)
    assert _label_texts(null_figure(booked).axes[0])[-1] == "(13 TeV)"


def test_fit_bins_are_round_and_sit_on_the_crack(results):
    booked = load_result(results / "3d")
    figures = fit_figures(booked)
    eta = booked.hists["samples/eta_lead"].axes[1].edges
    np.testing.assert_allclose(eta, -eta[::-1])  # symmetric
    for edge in (1.37, 1.52):
        assert np.isclose(eta, edge).any() and np.isclose(eta, -edge).any()
    assert eta[-1] == pytest.approx(2.3)  # the fixture's leptons reach |η| = 2.3
    dphi = booked.hists["samples/dphi"].axes[1].edges
    assert (dphi[0], dphi[-1]) == (0.0, pytest.approx(np.pi))
    m = booked.hists["samples/m_coll"].axes[1].edges
    step = np.diff(m)
    np.testing.assert_allclose(step, step[0])
    assert m[0] % step[0] == pytest.approx(0.0, abs=1e-9)  # the first edge is a multiple
    ax = figures["eta_lead"].axes[0]
    assert ax.get_xlim() == pytest.approx((eta[0], eta[-1]))
    assert ax.get_ylabel() == "events / 0.1"  # variable bins: per round width


def test_fit_ratio_panel_marks_points_beyond_its_range(results):
    booked = load_result(results / "3d")
    for feature, fig in fit_figures(booked).items():
        ax, rax = fig.axes[:2]
        data = booked.hists[f"samples/{feature}"]
        a, b = data["A", :].values(), data["B", :].values()
        lo, hi = rax.get_ylim()
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.where(b > 0, a / b, np.where(a > 0, np.inf, np.nan))
        assert _triangles(rax) == np.count_nonzero((r > hi) | (r < lo)), feature
        assert _covered(ax, ax.get_legend()) == 0, feature


def test_null_figure_keeps_its_legend_off_the_data(results):
    booked = load_result(results / "1d")
    ax = null_figure(booked).axes[0]
    assert _covered(ax, ax.get_legend()) == 0
    title = ax.get_title(loc="left")
    bound = result_p_is_bound(booked.calibration)
    assert ("p < " in title) == bound and ("p = " in title) == (not bound)


def test_null_figure_shows_a_p_at_the_floor_as_a_bound(results):
    booked = load_result(results / "1d")
    n = len(booked.calibration.null)
    booked.calibration.observed.t = 1e4  # beyond every replica
    booked.summary.update(t=1e4, p_value=1 / (n + 1), z=2.0)
    ax = null_figure(booked).axes[0]
    title = ax.get_title(loc="left")
    assert f"p < {1 / (n + 1):.2g}, Z > 2.00" in title and "p = " not in title
    # t_obs is far beyond the axis: an arrow on its end, explained in the legend
    assert [line.get_gid() for line in ax.lines].count("t_obs_beyond") == 1
    assert any("beyond the axis" in t.get_text() for t in ax.get_legend().get_texts())


def test_unconverged_fits_are_flagged(results):
    booked = load_result(results / "1d")
    booked.summary["converged"] = False
    warnings = [t.get_text() for t in null_figure(booked).axes[0].texts if t.get_gid() == "warning"]
    assert "observed fit NOT converged (iteration cap reached)" in warnings
    booked.summary["converged"] = True
    ax = fit_figures(booked)["m_coll"].axes[0]
    assert not [t for t in ax.texts if t.get_gid() == "warning" and "observed" in t.get_text()]


def test_history_spans_where_the_fits_end_up(results):
    booked = load_result(results / "1d")
    ax = history_figure(booked).axes[0]
    assert ax.get_yscale() == "linear"
    lo, hi = ax.get_ylim()
    t_null = booked.calibration.null.history_t
    q = np.nanpercentile(np.where(np.isfinite(t_null), t_null, np.nan), [16, 50, 84], axis=1)
    t_obs = booked.calibration.observed.history["t"]
    # what matters is on the axis: the final percentiles, the observed t and the dof
    assert lo <= min(q[0, -1], t_obs[-1]) and hi >= max(q[2, -1], t_obs[-1], booked.summary["dof"])
    # the first steps, orders of magnitude below, do not set the range: triangles mark them
    first = min(q[1].min(), t_obs.min())
    assert first < lo and hi - lo < 0.5 * (hi - first)
    assert _triangles(ax) == np.count_nonzero(q[1] < lo) + np.count_nonzero(t_obs < lo)


def test_diagnostic_at_its_floor_is_a_bound(results):
    booked = load_result(results / "1d")
    diag = booked.summary["diagnostics"][0]
    diag["p_value"] = 1 / (diag["n_null"] + 1)
    fig = plotting.diagnostics_figure(booked)
    texts = [t.get_text() for t in fig.axes[0].texts if t.get_gid() == "diagnostic_p"]
    assert texts[0] == f"p < {diag['p_value']:.2g}"
    diag["p_value"] = 2 / (diag["n_null"] + 1)  # one replica reached t: a value
    fig = plotting.diagnostics_figure(booked)
    texts = [t.get_text() for t in fig.axes[0].texts if t.get_gid() == "diagnostic_p"]
    assert texts[0] == f"p = {diag['p_value']:.3g}"


# ---------------------------------------------------------------------------------------
# content: processor output
# ---------------------------------------------------------------------------------------
def test_kinematics_pages(processed):
    figures = kinematics_figures(processed, variations=["nominal", "muon_scale_up1"])
    hists = read_hists(processed)
    for variation, panels in (("nominal", 2), ("muon_scale_up1", 3)):
        fig = figures[variation]
        axes = fig.axes
        assert len(axes) == panels * len(plotting.KINEMATICS)
        mains = axes[::panels]
        xlabels = [axes[k + panels - 1].get_xlabel() for k in range(0, len(axes), panels)]
        # which lepton, always
        for noun in ("leading-lepton $p_T$", "subleading-lepton $p_T$", r"electron $\eta$"):
            assert any(label.startswith(noun) for label in xlabels), (noun, xlabels)
        assert r"muon $\eta$" in xlabels
        for ax in mains:
            assert _label_texts(ax) == ["symnplm", "Simulation", "5 fb$^{-1}$ (13 TeV)"]
            assert _covered(ax, ax.get_legend()) == 0
        # x labels of the first row clear of the second row
        renderer = fig.canvas.get_renderer()
        for col in range(4):
            label = axes[(col + 1) * panels - 1].xaxis.label.get_window_extent(renderer)
            below = mains[4 + col].get_tightbbox(renderer)
            assert label.y0 > below.y1, (variation, col)
        # the emu/mue panel: fixed range, triangles for every ratio beyond it
        eta_panel = xlabels.index(r"electron $\eta$") * panels
        ax, rax = axes[eta_panel], axes[eta_panel + 1]
        assert rax.get_ylim() == pytest.approx(plotting.KINEMATICS_RATIO_RANGE)
        assert ax.get_xlim() == (-2.5, 2.5)
        a, b = (
            _background(hists["lepton_eta"], lepton="electron", variation=variation, category=c)
            for c in ("emu", "mue")
        )
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.where(b > 0, a / b, np.where(a > 0, np.inf, np.nan))
        assert _triangles(rax) == np.count_nonzero((r > 1.5) | (r < 0.5))
    # the variation page compares with nominal: var./nom. of each category
    axes = figures["muon_scale_up1"].axes
    vax = axes[2]  # m_coll, third panel
    assert vax.get_ylabel() == "var./nom."
    up = _background(hists["m_coll"], category="emu", variation="muon_scale_up1", rebin=2)
    nominal = _background(hists["m_coll"], category="emu", variation="nominal", rebin=2)
    stairs = [p for p in vax.patches if isinstance(p, StepPatch)]
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = np.nan_to_num(np.where(nominal > 0, up / nominal, np.nan), nan=1.0)
    np.testing.assert_allclose(stairs[0].get_data().values, expected)


def test_kinematics_luminosity_comes_from_the_manifest(processed, tmp_path):
    copy_dir = tmp_path / "processed"
    shutil.copytree(processed, copy_dir)
    manifest = json.loads((copy_dir / "manifest.json").read_text())
    manifest["config"]["luminosity_pb"] = 12_000.0
    (copy_dir / "manifest.json").write_text(json.dumps(manifest))
    fig = kinematics_figures(copy_dir, observables=["m_coll"])["nominal"]
    assert _label_texts(fig.axes[0])[-1] == "12 fb$^{-1}$ (13 TeV)"


def test_eta_histogram_edges_sit_on_detector_boundaries(processed):
    edges = read_hists(processed)["lepton_eta"].axes["eta"].edges
    np.testing.assert_allclose(edges, -edges[::-1])
    assert edges[-1] == 2.5
    for edge in (0.1, 1.37, 1.52, 2.3):
        assert np.isclose(edges, edge).any()
    np.testing.assert_allclose(edges[edges >= 0], ABS_ETA_EDGES)


# ---------------------------------------------------------------------------------------
# building blocks
# ---------------------------------------------------------------------------------------
def test_ratio_points_beyond_the_range_become_triangles_on_its_edge():
    _, rax = plt.subplots()
    edges = np.arange(7.0)
    r = np.array([1.0, 2.0, 0.2, np.inf, np.nan, 1.49])
    n = plotting.ratio_points(rax, edges, r, np.full(6, 0.1), (0.5, 1.5), label="A / B")
    assert n == _triangles(rax) == 3
    up = [line for line in rax.lines if line.get_gid() == OUT_OF_RANGE and line.get_marker() == "^"]
    down = [
        line for line in rax.lines if line.get_gid() == OUT_OF_RANGE and line.get_marker() == "v"
    ]
    assert list(up[0].get_xdata()) == [1.5, 3.5] and list(down[0].get_xdata()) == [2.5]
    assert 1.4 < up[0].get_ydata()[0] < 1.5 and 0.5 < down[0].get_ydata()[0] < 0.6
    assert rax.get_ylim() == (0.5, 1.5)


def test_ratio_of_weighted_histograms_by_hand():
    """mplhep's ratio with both uncertainties: bin 0 has A = 1 + 2 (Σw² = 5) over
    B = 2 (Σw² = 4); bin 1 is A alone (+inf: a triangle), bin 2 empty (NaN), bin 3 B alone."""
    a, b = (hist.Hist(hist.axis.Regular(4, 0, 4), storage=hist.storage.Weight()) for _ in "ab")
    a.fill([0.5, 0.5, 1.5], weight=[1.0, 2.0, 1.0])
    b.fill([0.5, 3.5], weight=[2.0, 3.0])
    r, err = plotting._ratio(a, b)
    np.testing.assert_allclose(r[[0, 3]], [1.5, 0.0])
    assert np.isposinf(r[1]) and np.isnan(r[2])
    # σ² = var_A / B² + var_B A² / B⁴ = 5/4 + 4 · 9/16
    np.testing.assert_allclose(err, [np.sqrt(5 / 4 + 4 * 9 / 16), 0.0, 0.0, 0.0])


def test_keep_clear_lifts_the_data_below_the_legend():
    fig, ax = plt.subplots(figsize=(6, 4))
    x = np.linspace(0, 10, 50)
    ax.plot(x, np.full_like(x, 1.0), "o", label="flat data")
    ax.set_ylim(0, 1.05)
    legend = ax.legend(loc="upper right", fontsize="large")
    fig.canvas.draw()
    assert _covered(ax, legend) > 0  # the premise: without room, the legend covers data
    plotting.keep_clear(ax, [legend], x, np.full_like(x, 1.0))
    fig.canvas.draw()
    assert _covered(ax, legend) == 0 and ax.get_ylim()[0] == 0


def test_scan_summary_draws_cells_with_p_one(tmp_path):
    """A cell whose observed t is below every null replica has p = 1, Z = -inf: drawn at
    the axis' left edge, not an error (nor a NaN axis)."""
    from symnplm.inference.lookelsewhere import global_significance
    from symnplm.plotting import plot_scan

    t_null = np.array([[1.0, 2.0, 3.0], [4.0, 2.0, 1.0]])  # 2 cells × 3 replicas
    significance = global_significance(np.array([-1.0, -1.0]), t_null)
    assert np.all(np.isneginf(significance.local_z)) and np.isneginf(significance.global_z)
    table = [
        {"region": r, "observable": "m_coll", "statistic": "symmetrized", "local_z": z,
         "local_p_is_bound": False}
        for r, z in zip(("a", "b"), significance.local_z)
    ]  # fmt: skip
    (path,) = plot_scan(table, significance, tmp_path / "summary", formats=("png",))
    assert path.stat().st_size > 5_000
