"""Figures of result directories and processor output (mplhep; the paper's figures as models).

* :func:`plot_null` — the null t distribution against χ²_dof, the observed t and its
  p and Z (Figs. 2 and 6 of arXiv:2401.09530).
* :func:`plot_fit` — A and B histograms of a tested feature with the fitted densities,
  and a ratio panel with the learned n_A/n_B (in 1D also e^δ̂(x) on a fine grid; in 5D,
  one projection per feature).
* :func:`plot_history` — percentiles of the null t against training steps (Fig. 7),
  with the observed fit's t.
* :func:`plot_diagnostics` — the binned G-tests of the result against their nulls:
  t of each with the null's 68/95 % range, and its p-value.
* :func:`plot_kinematics` — emu against mue per variation, with ratio panels (and, for
  a variation, its ratio to nominal).

Every physics figure carries the experiment label (``symnplm Simulation``), the
luminosity recorded with the data (fb⁻¹) and √s. Ratios and their uncertainties are
mplhep's (``mplhep.comp.get_comparison``); ratio points beyond a panel's range are drawn
as triangles on its edge. A p-value at the floor of its null (no replica reached t_obs)
is shown as a bound, ``p < 1/(n+1)``, ``Z > ...``, and an observed fit that did not
converge is flagged.

The ``*_figure``/``*_figures`` builders return matplotlib figures (for tests and
notebooks; close them with ``plt.close``); the ``plot_*`` functions write them to files
and return the paths. Nothing is shown on screen (the non-interactive Agg backend).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import matplotlib

__all__ = [
    "EXPERIMENT",
    "FORMATS",
    "KINEMATICS",
    "KINEMATICS_RATIO_RANGE",
    "LABEL_GID",
    "OUT_OF_RANGE",
    "WARNING_COLOR",
    "diagnostics_figure",
    "experiment_label",
    "fit_figures",
    "header",
    "history_figure",
    "history_range",
    "keep_clear",
    "kinematics_figures",
    "mark_out_of_range",
    "null_figure",
    "plot_closure",
    "plot_diagnostics",
    "plot_fit",
    "plot_history",
    "plot_kinematics",
    "plot_null",
    "plot_result",
    "plot_scan",
    "plot_sensitivity",
    "processed_luminosity_fb",
    "ratio_limits",
    "ratio_points",
    "result_luminosity_fb",
]

matplotlib.use("Agg")  # files only: safe on machines and workers without a display

import hist
import matplotlib.pyplot as plt
import mplhep as hep
import numpy as np
from matplotlib.artist import Artist
from matplotlib.font_manager import FontProperties
from matplotlib.legend import Legend
from matplotlib.text import Text
from scipy import stats

from symnplm.io.booking import (
    BookedResult,
    convergence_note,
    feature_label,
    format_p_z,
    load_result,
    p_value_is_bound,
    read_hists,
    result_p_is_bound,
)
from symnplm.io.files import atomic_path
from symnplm.physics.binning import nice_step
from symnplm.physics.lhc import SQRT_S_GEV

FORMATS: tuple[str, ...] = ("png",)
_STYLE = hep.style.ROOT
#: the experiment text of the label: this project, on simulation
EXPERIMENT = "symnplm"
#: gid of the experiment label's texts
LABEL_GID = "experiment-label"
#: gid of the triangles that mark ratio points beyond a panel's range
OUT_OF_RANGE = "out-of-range"
#: range of the emu/mue ratio panels of the kinematics pages (fixed: pages compare)
KINEMATICS_RATIO_RANGE: tuple[float, float] = (0.5, 1.5)


# ---------------------------------------------------------------------------------------
# building blocks
# ---------------------------------------------------------------------------------------
def _save(fig: plt.Figure, path: Path, formats: Sequence[str]) -> list[Path]:
    out = []
    for fmt in formats:
        target = path.with_suffix(f".{fmt}")
        with atomic_path(target) as tmp, plt.style.context(_STYLE):
            fig.savefig(tmp, format=fmt, bbox_inches="tight")
        out.append(target)
    plt.close(fig)
    return out


# Ratios: mplhep's "ratio" comparison (mplhep.comp.get_comparison) computes them with the
# uncertainties of both weighted histograms. Its plotter (mplhep.comp.comparison) is not
# used to draw them: it draws every point, those beyond the panel too (clipped, their
# error bars reaching into it), where these panels put a triangle on the edge instead;
# hist's plot_ratio takes the uncertainty from the numerator's counts alone.
def _ratio(num: hist.Hist, den: hist.Hist) -> tuple[np.ndarray, np.ndarray]:
    """num/den and its uncertainty (independent samples, weighted: from the stored
    variances, σ² = var_num / den² + var_den num² / den⁴).

    +inf where only den is 0 (a bin of the numerator alone: beyond any ratio range, so it
    is marked on the panel's edge), NaN where both are.
    """
    r, err, _ = hep.comp.get_comparison(num, den, "ratio")  # symmetric: err, err
    alone = np.where(num.values() > 0, np.inf, np.nan)
    r = np.where(den.values() == 0, alone, r)
    return r, np.nan_to_num(err, nan=0.0, posinf=0.0)


def result_luminosity_fb(summary: Mapping[str, Any]) -> float | None:
    """The luminosity (fb⁻¹) a result's samples were scaled to, from their provenance.

    ``None`` when the samples record none (parquet inputs, the toy model) or disagree.
    """
    values = {
        float(s["provenance"]["luminosity_fb"])
        for s in summary.get("samples", {}).values()
        if (s.get("provenance") or {}).get("luminosity_fb") is not None
    }
    return values.pop() if len(values) == 1 else None


def processed_luminosity_fb(manifest: Mapping[str, Any]) -> float | None:
    """The luminosity (fb⁻¹) a processor output was normalised to (its manifest)."""
    lumi_pb = manifest.get("config", {}).get("luminosity_pb")
    return None if lumi_pb is None else float(lumi_pb) / 1000.0


def experiment_label(
    ax: plt.Axes, luminosity_fb: float | None, fontsize: float | str = "small"
) -> list[Text]:
    """The label above the axes, in the style of ``mplhep.label``: **symnplm** *Simulation*
    on the left, ``L fb⁻¹ (√s TeV)`` on the right (no luminosity when unknown).

    Texts are chained by annotation, so no draw is needed to place them (mplhep's
    ``exp_label`` draws the whole figure twice per call: tens of seconds on a page of
    panels).

    Returns
    -------
    list of matplotlib.text.Text
        The experiment text, "Simulation" and the luminosity text (``gid``
        :data:`LABEL_GID`).
    """
    size = FontProperties(size=fontsize).get_size_in_points()
    exp = ax.text(
        0.0, 1.0, EXPERIMENT, transform=ax.transAxes, ha="left", va="bottom",
        fontsize=1.25 * size, fontweight="bold", gid=LABEL_GID,
    )  # fmt: skip
    sim = ax.annotate(
        "Simulation", xy=(1.0, 0.0), xycoords=exp, xytext=(0.3 * size, 0.0),
        textcoords="offset points", ha="left", va="bottom", fontsize=size,
        fontstyle="italic", gid=LABEL_GID,
    )  # fmt: skip
    energy = f"{SQRT_S_GEV / 1000.0:g} TeV"
    lumi_text = f"{luminosity_fb:g} fb$^{{-1}}$ ({energy})" if luminosity_fb else f"({energy})"
    lumi = ax.text(
        1.0, 1.0, lumi_text, transform=ax.transAxes, ha="right", va="bottom", fontsize=size,
        gid=LABEL_GID,
    )  # fmt: skip
    return [exp, sim, lumi]


#: colour of warnings (bounds, fits that did not converge)
WARNING_COLOR = "red"


def header(ax: plt.Axes, text: str, warnings: Iterable[str | None] = ()) -> list[Text]:
    """A small left title above the experiment label, and warnings in red above it.

    Returns
    -------
    list of matplotlib.text.Text
        The title, then one text per warning (``gid`` ``"warning"``).
    """
    label_size = max(
        (t.get_fontproperties().get_size_in_points() for t in ax.texts if t.get_gid() == LABEL_GID),
        default=12.0,
    )
    title = ax.set_title(text, loc="left", fontsize="x-small", pad=1.4 * label_size + 4)
    out, below = [title], title
    for note in warnings:
        if note:
            below = ax.annotate(
                note, xy=(0.0, 1.0), xycoords=below, xytext=(0.0, 2.0),
                textcoords="offset points", ha="left", va="bottom", fontsize="x-small",
                color=WARNING_COLOR, gid="warning",
            )  # fmt: skip
            out.append(below)
    return out


def _hist(obj: hist.Hist | float) -> hist.Hist:
    """A slice of a histogram that keeps an axis (hist types every slice as
    ``Hist | float``: the float is what a slice of single bins gives)."""
    if not isinstance(obj, hist.Hist):
        raise TypeError(f"expected a histogram, got the bin content {obj!r}")
    return obj


def _errors(h: hist.Hist) -> np.ndarray:
    """√variance of every bin (Σw² for Weight storage, counts for unweighted Double)."""
    variances = h.variances()
    if variances is None:  # Double storage filled with weights: variances unknown
        raise ValueError(f"histogram {h.name or h.axes[0].name!r} has no variances to draw")
    return np.sqrt(variances)


def _steps(edges: np.ndarray, top: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both corners of every bin at height ``top``: a histogram as points to keep clear."""
    return np.r_[edges[:-1], edges[1:]], np.r_[top, top]


def keep_clear(
    ax: plt.Axes,
    boxes: Iterable[Artist | None],
    x: np.ndarray,
    y: np.ndarray,
    pad: float = 0.03,
) -> None:
    """Raise the top of the y axis until no point (x, y) lies under a legend or text box.

    Parameters
    ----------
    ax
        Linear y axis; the boxes are anchored to the axes (``loc="upper ..."``), so their
        place in axes coordinates does not move when the y range grows.
    boxes
        Legends or anchored texts (``None`` is skipped).
    x, y
        Data coordinates of everything that must stay visible (points with their
        error bars, histogram steps, curves).
    pad
        Gap below a box, as a fraction of the axes height.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    bottom, top = ax.get_ylim()
    need = top
    for box in boxes:
        if box is None:
            continue
        bb = box.get_window_extent().transformed(ax.transAxes.inverted())
        corners = ax.transAxes.transform([(bb.x0, 0.0), (bb.x1, 0.0)])
        x0, x1 = sorted(ax.transData.inverted().transform(corners)[:, 0])
        under = (x >= x0) & (x <= x1)
        room = bb.y0 - pad
        if not under.any() or room < 0.2:  # nothing below, or a box too tall to clear
            continue
        need = max(need, bottom + (float(y[under].max()) - bottom) / room)
    ax.set_ylim(bottom, need)


def ratio_limits(r: np.ndarray, minimum: float = 0.1, maximum: float = 1.0) -> tuple[float, float]:
    """A symmetric range about 1 holding most ratio points: 1.5 × the 90th percentile of
    |r − 1|, rounded up to a round number and kept within [``minimum``, ``maximum``]."""
    finite = np.abs(r[np.isfinite(r)] - 1.0)
    span = 1.5 * float(np.percentile(finite, 90)) if finite.size else minimum
    span = min(max(nice_step(max(span, 1e-6)), minimum), maximum)
    return 1.0 - span, 1.0 + span


def mark_out_of_range(
    rax: plt.Axes,
    x: np.ndarray,
    r: np.ndarray,
    limits: tuple[float, float],
    color: str = "black",
    markersize: float = 7.0,
    label: str | None = None,
) -> int:
    """Triangles on the panel's edge where a ratio is beyond ``limits`` (▲ above, ▼ below).

    Returns
    -------
    int
        How many points were marked (the triangles have ``gid`` :data:`OUT_OF_RANGE`).
    """
    lo, hi = limits
    inset = 0.06 * (hi - lo)  # a marker's height inside the panel, not cut by the frame
    n = 0
    for beyond, y, marker in ((r > hi, hi - inset, "^"), (r < lo, lo + inset, "v")):
        if beyond.any():
            rax.plot(
                x[beyond],
                np.full(int(beyond.sum()), y),
                ls="none",
                marker=marker,
                color=color,
                markersize=markersize,
                gid=OUT_OF_RANGE,
                label=None if n else label,  # one legend entry for both directions
            )
            n += int(beyond.sum())
    return n


def ratio_points(
    rax: plt.Axes,
    edges: np.ndarray,
    r: np.ndarray,
    err: np.ndarray,
    limits: tuple[float, float],
    color: str = "black",
    label: str | None = None,
    markersize: float = 4.0,
) -> int:
    """Ratio points with error bars in ``limits``; the ones beyond, triangles on the edge.

    Returns
    -------
    int
        Points beyond the range (see :func:`mark_out_of_range`).
    """
    centers = 0.5 * (edges[1:] + edges[:-1])
    lo, hi = limits
    inside = np.isfinite(r) & (r >= lo) & (r <= hi)
    hep.histplot(
        np.where(inside, r, np.nan),
        edges,
        yerr=np.where(inside, err, 0.0),
        ax=rax,
        histtype="errorbar",
        color=color,
        marker="o",
        markersize=markersize,
        label=label,
    )
    rax.set_ylim(lo, hi)
    beyond = "beyond the axis" if label else None
    return mark_out_of_range(rax, centers, r, limits, color, markersize + 3, beyond)


def _per_width(edges: np.ndarray, label: str) -> tuple[np.ndarray, str]:
    """Factors turning counts into events per round width, and the y label to go with it.

    Uniform round bins give ``events / 10 GeV``; variable bins (η, with the crack) are
    normalised to a power of ten no wider than the narrowest bin, so that narrow bins do
    not look like dips.
    """
    widths = np.diff(edges)
    unit = re.search(r"\[(.+?)\]", label)
    unit_text = f" {unit.group(1)}" if unit else ""
    if np.allclose(widths, widths[0], rtol=1e-6):
        w = float(widths[0])
        if np.isclose(nice_step(w), w, rtol=1e-6):
            return np.ones_like(widths), f"events / {w:g}{unit_text}"
        return np.ones_like(widths), "events / bin"
    ref = 10.0 ** np.floor(np.log10(widths.min()) + 1e-9)  # a power of ten, at most the narrowest
    return ref / widths, f"events / {ref:g}{unit_text}"


# ---------------------------------------------------------------------------------------
# result directories
# ---------------------------------------------------------------------------------------
def _p_is_bound(booked: BookedResult) -> bool:
    return result_p_is_bound(booked.calibration)


def _fit_note(booked: BookedResult) -> str | None:
    s = booked.summary
    optimizer = (s.get("config") or {}).get("statistic", {}).get("optimizer")
    return convergence_note(bool(s.get("converged", True)), optimizer)


def _result_text(booked: BookedResult) -> str:
    s = booked.summary
    bound = _p_is_bound(booked)
    calib = s["calibration"] + (f", {s['n_null']} replicas" if s["n_null"] else "")
    if bound:
        calib += r", none reaching $t_{obs}$"
    features = booked.features
    tested = ", ".join(features) if len(features) <= 2 else f"{len(features)} features"
    # float(): JSON holds infinities (Z of p = 1) as strings
    return (
        f"{s['statistic']} test: {tested}\n"
        f"$t_{{obs}}$ = {float(s['t']):.2f}, dof = {s['dof']}\n"
        f"{format_p_z(s['p_value'], s['z'], bound)} ({calib})"
    )


def null_figure(booked: BookedResult) -> plt.Figure | None:
    """Null t distribution vs χ²_dof (and the fitted dof), the observed t, p and Z.

    ``None`` for an asymptotic calibration (no null histogram).
    """
    h = booked.hists.get("null_t")
    if h is None:
        return None
    s = booked.summary
    with plt.style.context(_STYLE):
        fig, ax = plt.subplots(figsize=(8, 6.5))
        counts = h.values()
        edges = h.axes[0].edges
        width = np.diff(edges)
        n = counts.sum() + h.values(flow=True)[-1]
        density = counts / (n * width)
        yerr = np.sqrt(counts) / (n * width)
        divergent = int(h.values(flow=True)[-1])
        not_converged = 0
        if booked.calibration.null is not None:
            not_converged = int(np.count_nonzero(~booked.calibration.null.converged))
        hep.histplot(
            density,
            edges,
            yerr=yerr,
            ax=ax,
            histtype="errorbar",
            color="black",
            label=f"null ({s['calibration']}, {s['n_null']})",
        )
        grid = np.linspace(edges[0], edges[-1], 400)[1:]
        curves = [stats.chi2.pdf(grid, s["dof"])]
        ax.plot(grid, curves[0], "C0-", label=rf"$\chi^2_{{{s['dof']}}}$")
        fit = s.get("chi2_fit")
        if fit:
            curves.append(stats.chi2.pdf(grid, fit["dof"]))
            ax.plot(grid, curves[-1], "C2--", label=rf"$\chi^2$ fit, dof = {fit['dof']:.1f}")
        t_obs = float(s["t"])
        extra: list[tuple[Artist, str]] = []
        if t_obs <= edges[-1]:
            ax.axvline(t_obs, color="C3", lw=2, label=r"$t_{obs}$")
        else:  # far beyond the null: an arrow on the end of the t axis says where
            (arrow,) = ax.plot(
                [1.0], [0.0], ls="none", marker=">", color="C3", markersize=14,
                transform=ax.transAxes, clip_on=False, gid="t_obs_beyond",
            )  # fmt: skip
            extra.append((arrow, rf"$t_{{obs}}$ = {t_obs:.4g}, beyond the axis"))
        warnings = [_fit_note(booked)]
        if divergent:
            warnings.append(f"{divergent} null fits diverged (overflow)")
        if not_converged:
            warnings.append(f"{not_converged} of {s['n_null']} null fits not converged")
        ax.set_xlabel("t")
        ax.set_ylabel("probability density")
        ax.set_xlim(edges[0], edges[-1])
        ax.set_ylim(0.0, None)
        experiment_label(ax, result_luminosity_fb(s))
        header(ax, _result_text(booked), warnings)
        handles, labels = ax.get_legend_handles_labels()
        # the legend away from t_obs: its line would cross it
        loc: Literal["upper left", "upper right"] = (
            "upper left" if t_obs > 0.5 * (edges[0] + edges[-1]) else "upper right"
        )
        legend = ax.legend(
            handles + [h for h, _ in extra], labels + [t for _, t in extra], loc=loc,
            fontsize="x-small",
        )  # fmt: skip
        fig.canvas.draw()
        xs, ys = _steps(edges, density + yerr)
        x = np.concatenate([xs, *[grid] * len(curves)])
        keep_clear(ax, [legend], x, np.concatenate([ys, *curves]))
        return fig


def fit_figures(booked: BookedResult) -> dict[str, plt.Figure]:
    """Per feature: A and B with the fitted densities; ratio panel with e^δ̂."""
    figures: dict[str, plt.Figure] = {}
    lumi = result_luminosity_fb(booked.summary)
    note = _fit_note(booked)
    for feature in booked.features:
        data = booked.hists.get(f"samples/{feature}")
        fit = booked.hists.get(f"fit/{feature}")
        if data is None:
            continue
        edges = data.axes[1].edges
        scale, ylabel = _per_width(edges, feature_label(feature))
        with plt.style.context(_STYLE):
            fig, (ax, rax) = plt.subplots(
                2, 1, figsize=(8, 8.5), sharex=True, gridspec_kw={"height_ratios": (3, 1)}
            )
            xs, ys = [], []
            for g, color in (("A", "C0"), ("B", "C3")):
                values = _hist(data[g, :]).values() * scale
                err = _errors(_hist(data[g, :])) * scale
                hep.histplot(
                    values,
                    edges,
                    yerr=err,
                    ax=ax,
                    histtype="errorbar",
                    color=color,
                    label=f"{g}: {booked.summary['samples'][g]['name']}",
                )
                x, y = _steps(edges, values + err)
                xs.append(x)
                ys.append(y)
                if fit is not None:
                    fitted = _hist(fit[g, :]).values() * scale
                    hep.histplot(fitted, edges, ax=ax, color=color, label=f"fitted $n_{g}$")
                    x, y = _steps(edges, fitted)
                    xs.append(x)
                    ys.append(y)
            ax.set_ylabel(ylabel)
            ax.set_xlim(edges[0], edges[-1])
            ax.set_ylim(0.0, None)
            experiment_label(ax, lumi)
            header(ax, _result_text(booked), [note])
            legend = ax.legend(loc="upper right", fontsize="x-small")
            r, err = _ratio(_hist(data["A", :]), _hist(data["B", :]))
            limits = ratio_limits(r)
            ratio_points(rax, edges, r, err, limits, label="A / B")
            if fit is not None:
                # the learned n_A/n_B projected on this feature: ratio of the fitted histograms
                with np.errstate(divide="ignore", invalid="ignore"):
                    learned = _hist(fit["A", :]).values() / _hist(fit["B", :]).values()
                rax.stairs(
                    np.nan_to_num(learned, nan=1.0),
                    edges,
                    color="C2",
                    lw=2,
                    baseline=None,
                    label=r"fitted $n_A/n_B$",
                )
            funcs = booked.hists.get("functions")
            if funcs is not None and len(booked.features) == 1:
                rax.plot(
                    funcs.axes[1].centers,
                    np.exp(_hist(funcs["log_ratio", :]).values()),
                    color="C2",
                    lw=1,
                    ls="--",
                    label=r"$e^{\hat\delta(x)}$",
                )
            rax.axhline(1.0, color="grey", lw=1)
            rax.set_ylabel("A / B")
            rax.set_xlabel(feature_label(feature))
            # beside the panel: inside, any place would cover ratio points
            rax.legend(fontsize="xx-small", loc="center left", bbox_to_anchor=(1.01, 0.5))
            fig.canvas.draw()
            keep_clear(ax, [legend], np.concatenate(xs), np.concatenate(ys))
            figures[feature] = fig
    return figures


def history_range(curves: Sequence[np.ndarray], dof: float) -> tuple[float, float]:
    """The t range of a training history that matters: where the curves end up.

    The first steps of a fit sit orders of magnitude below (t ≈ −10⁵ at Newton step 0);
    the range spans the second half of the steps (and 0 and the dof), with margins.
    """
    late = [c[len(c) // 2 :] for c in curves]
    values = np.concatenate([*late, [0.0, float(dof)]])
    values = values[np.isfinite(values)]
    lo, hi = float(values.min()), float(np.concatenate([*curves, values]).max())
    margin = 0.1 * (hi - lo) if hi > lo else 1.0
    return lo - margin, hi + margin


def history_figure(booked: BookedResult) -> plt.Figure | None:
    """Percentiles (16, 50, 84) of the null t against training steps (Fig. 7), and the
    observed fit's t; ``None`` without a recorded null history.

    The y axis spans the range where the fits end up (:func:`history_range`); steps
    below it are marked with triangles on the lower edge.
    """
    null = booked.calibration.null
    if null is None or null.history_t.size == 0 or len(null.history_steps) < 2:
        return None
    s = booked.summary
    with plt.style.context(_STYLE):
        fig, ax = plt.subplots(figsize=(8, 6.5))
        steps = null.history_steps
        q = np.nanpercentile(
            np.where(np.isfinite(null.history_t), null.history_t, np.nan), [16, 50, 84], axis=1
        )
        ax.fill_between(steps, q[0], q[2], color="C0", alpha=0.3, label="null: 16-84%")
        ax.plot(steps, q[1], "C0-", label="null: median")
        observed = booked.calibration.observed
        t_obs = (observed.history or {}).get("t")
        curves = [q[1]]
        lines = [(steps, q[1], "C0")]
        if t_obs is not None and len(t_obs) == len(observed.history_steps) > 1:
            t_obs = np.asarray(t_obs, dtype=float)
            ax.plot(observed.history_steps, t_obs, "C3-", lw=2, label=r"observed $t$")
            curves.append(t_obs)
            lines.append((observed.history_steps, t_obs, "C3"))
        ax.axhline(s["dof"], color="grey", ls="--", label="dof")
        limits = history_range([q[0], q[2], *curves[1:]], float(s["dof"]))
        ax.set_ylim(*limits)
        for x, y, color in lines:  # early steps far below the range
            mark_out_of_range(ax, np.asarray(x, dtype=float), y, limits, color)
        opt = s["config"]["statistic"]["optimizer"]
        ax.set_xlabel("Newton iteration" if opt == "newton" else "epoch")
        ax.set_ylabel("t")
        experiment_label(ax, result_luminosity_fb(s))
        header(ax, _result_text(booked), [_fit_note(booked)])
        first = float(np.nanmin(np.concatenate(curves)))
        if first < limits[0]:  # say what the triangles stand for
            ax.plot([], [], ls="none", marker="v", color="grey", label=f"below (to {first:.2g})")
        # the fits rise from below: the upper left is where the curves are not (yet)
        legend = ax.legend(loc="upper left", fontsize="x-small")
        fig.canvas.draw()
        x = np.concatenate([steps, steps, *(line[0] for line in lines)])
        y = np.concatenate([q[2], np.full(len(steps), s["dof"]), *(line[1] for line in lines)])
        keep_clear(ax, [legend], x, y)
        return fig


def diagnostics_figure(booked: BookedResult) -> plt.Figure | None:
    """Each binned diagnostic's t / dof against its null's mean ± 1σ and ± 2σ, with its p;
    ``None`` without diagnostics."""
    diags = booked.summary.get("diagnostics") or []
    if not diags:
        return None
    with plt.style.context(_STYLE):
        fig, ax = plt.subplots(figsize=(8, 0.6 * len(diags) + 2.5))
        y = np.arange(len(diags))[::-1]
        for yi, d in zip(y, diags):
            mean, std, dof = d["null_mean"], d["null_std"], max(d["dof"], 1)
            ax.fill_betweenx(
                [yi - 0.3, yi + 0.3],
                (mean - 2 * std) / dof,
                (mean + 2 * std) / dof,
                color="#ffdd57",
                lw=0,
            )
            ax.fill_betweenx(
                [yi - 0.3, yi + 0.3], (mean - std) / dof, (mean + std) / dof, color="#33bb55", lw=0
            )
            ax.plot([d["t"] / dof], [yi], "ko")
            bound = p_value_is_bound(d["p_value"], d.get("n_null", 0))
            ax.annotate(
                f"p {'<' if bound else '='} {d['p_value']:{'.2g' if bound else '.3g'}}",
                (1.0, yi),
                xycoords=("axes fraction", "data"),
                xytext=(4, 0),
                textcoords="offset points",
                va="center",
                fontsize="x-small",
                gid="diagnostic_p",
            )
        ax.set_yticks(y, [f"{d['name']} ({d['dof']})" for d in diags], fontsize="x-small")
        ax.set_ylim(-0.7, len(diags) - 0.3)
        ax.set_xlabel("binned G-test t / dof (null: 68 %, 95 %)")
        experiment_label(ax, result_luminosity_fb(booked.summary), fontsize="small")
        header(ax, _result_text(booked), [_fit_note(booked)])
        return fig


def plot_null(
    booked: BookedResult, directory: str | os.PathLike[str], formats: Sequence[str] = FORMATS
) -> list[Path]:
    """Write :func:`null_figure` (``null_t``); no files for an asymptotic calibration."""
    fig = null_figure(booked)
    return [] if fig is None else _save(fig, Path(directory) / "null_t", formats)


def plot_fit(
    booked: BookedResult, directory: str | os.PathLike[str], formats: Sequence[str] = FORMATS
) -> list[Path]:
    """Write :func:`fit_figures` (``fit_<feature>``)."""
    paths: list[Path] = []
    for feature, fig in fit_figures(booked).items():
        paths += _save(fig, Path(directory) / f"fit_{feature}", formats)
    return paths


def plot_history(
    booked: BookedResult, directory: str | os.PathLike[str], formats: Sequence[str] = FORMATS
) -> list[Path]:
    """Write :func:`history_figure` (``t_vs_steps``)."""
    fig = history_figure(booked)
    return [] if fig is None else _save(fig, Path(directory) / "t_vs_steps", formats)


def plot_diagnostics(
    booked: BookedResult, directory: str | os.PathLike[str], formats: Sequence[str] = FORMATS
) -> list[Path]:
    """Write :func:`diagnostics_figure` (``diagnostics``)."""
    fig = diagnostics_figure(booked)
    return [] if fig is None else _save(fig, Path(directory) / "diagnostics", formats)


def plot_result(
    result_dir: str | os.PathLike[str],
    directory: str | os.PathLike[str] | None = None,
    formats: Sequence[str] = FORMATS,
) -> list[Path]:
    """Every figure of a result directory (default into ``RESULT/figures``)."""
    booked = load_result(result_dir)
    out = Path(directory) if directory is not None else Path(result_dir) / "figures"
    out.mkdir(parents=True, exist_ok=True)
    return (
        plot_null(booked, out, formats)
        + plot_fit(booked, out, formats)
        + plot_history(booked, out, formats)
        + plot_diagnostics(booked, out, formats)
    )


# ---------------------------------------------------------------------------------------
# processor output
# ---------------------------------------------------------------------------------------
#: ``histogram`` or ``histogram:lepton`` (lepton: leading, subleading, electron, muon)
KINEMATICS: tuple[str, ...] = (
    "m_coll",
    "m_ll",
    "met",
    "dphi",
    "lepton_pt:leading",
    "lepton_pt:subleading",
    "lepton_eta:electron",
    "lepton_eta:muon",
)
_LEPTON_NOUNS = {"leading": "leading-lepton", "subleading": "subleading-lepton"}


def _project(
    h: hist.Hist, datasets: Sequence[str], category: str, variation: str, lepton: str
) -> hist.Hist:
    """Sum over ``datasets`` of one category and variation (and lepton, where split)."""
    sel: dict[int | str, str] = {"category": category, "variation": variation}
    if "lepton" in h.axes.name:
        sel["lepton"] = lepton
    h = _hist(h[sel])
    parts = [_hist(h[{"dataset": d}]) for d in datasets if d in h.axes["dataset"]]
    if not parts:
        raise KeyError(f"none of the datasets {list(datasets)} is in the histograms")
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    return total


def _observable(spec: str, hists: Mapping[str, hist.Hist]) -> tuple[str, str] | None:
    """(histogram, lepton) of ``histogram[:lepton]``; ``None`` if the histogram is absent."""
    name, _, lepton = spec.partition(":")
    if name not in hists:
        return None
    return name, lepton or "leading"


def _x_label(h: hist.Hist, lepton: str, split: bool) -> str:
    """The axis label, saying which lepton for the per-lepton histograms."""
    label = h.axes[-1].label
    return f"{_LEPTON_NOUNS.get(lepton, lepton)} {label}" if split else label


def _variation_limits(ratios: Sequence[np.ndarray], nominal: np.ndarray) -> tuple[float, float]:
    """A round symmetric range about 1 holding a variation's ratio to nominal in every bin
    with at least 0.5 % of the events (sparse tail bins get triangles instead)."""
    busy = nominal >= 0.005 * max(float(nominal.sum()), 1e-12)
    spans = [np.abs(r[busy & np.isfinite(r)] - 1.0) for r in ratios]
    top = max((float(s.max()) for s in spans if s.size), default=0.0)
    span = min(max(nice_step(max(1.2 * top, 1e-6)), 0.01), 0.5)
    return 1.0 - span, 1.0 + span


def kinematics_figures(
    processed: str | os.PathLike[str],
    *,
    variations: Sequence[str] | None = None,
    datasets: Sequence[str] | None = None,
    observables: Sequence[str] = KINEMATICS,
    categories: tuple[str, str] = ("emu", "mue"),
) -> dict[str, plt.Figure]:
    """emu vs mue of the processor histograms (``hists.json``), one figure per variation.

    Every observable has a panel of the two categories and their ratio; for a variation
    other than ``nominal``, also the ratio of each category to its nominal (the nominal
    drawn as dashed lines in the upper panel).

    Parameters
    ----------
    processed
        Output directory of ``symnplm process``.
    variations
        Default ``["nominal"]``.
    datasets
        Summed datasets; default every non-signal dataset of the manifest.
    observables
        ``histogram`` or ``histogram:lepton`` (:data:`KINEMATICS`).
    categories
        The two categories compared (numerator first).

    Returns
    -------
    dict
        variation -> figure.
    """
    from symnplm.io.filesets import is_signal
    from symnplm.io.samples import read_manifest

    processed = Path(processed)
    manifest = read_manifest(processed)
    hists = read_hists(processed)
    lumi = processed_luminosity_fb(manifest)
    fileset = manifest.get("fileset", {})
    datasets = list(datasets or [d for d, e in fileset.items() if not is_signal(e["metadata"])])
    variations = list(variations or ["nominal"])
    panels = [o for o in (_observable(spec, hists) for spec in observables) if o is not None]
    ncols = min(4, len(panels))
    nrows = -(-len(panels) // ncols)
    figures: dict[str, plt.Figure] = {}
    for variation in variations:
        compare = variation != "nominal"
        heights = (3, 1, 1) if compare else (3, 1)
        with plt.style.context(_STYLE):
            fig = plt.figure(
                figsize=(5.5 * ncols, (7.5 if compare else 6.5) * nrows), layout="constrained"
            )
            fig.suptitle(f"{categories[0]} vs {categories[1]}: {variation}", fontsize="medium")
            # one grid, len(heights) rows per observable: constrained layout leaves room
            # for every x label (mplhep labels cannot live in subfigures)
            grid = fig.add_gridspec(len(heights) * nrows, ncols, height_ratios=heights * nrows)
            clear: list[tuple[plt.Axes, Legend, np.ndarray, np.ndarray]] = []
            for k, (name, lepton) in enumerate(panels):
                row, col = len(heights) * (k // ncols), k % ncols
                ax = fig.add_subplot(grid[row, col])
                axes = [ax] + [
                    fig.add_subplot(grid[row + i, col], sharex=ax) for i in range(1, len(heights))
                ]
                for a in axes[:-1]:
                    a.tick_params(labelbottom=False)
                rax = axes[1]
                h = hists[name]
                hs = [_project(h, datasets, c, variation, lepton) for c in categories]
                noms = [_project(h, datasets, c, "nominal", lepton) for c in categories]
                if hs[0].axes[0].size >= 50:  # 100 bins are too fine for a ratio panel
                    hs = [_hist(x[:: hist.rebin(2)]) for x in hs]
                    noms = [_hist(x[:: hist.rebin(2)]) for x in noms]
                edges = hs[0].axes[0].edges
                xlabel = _x_label(h, lepton, "lepton" in h.axes.name)
                scale, ylabel = _per_width(edges, xlabel)
                xs, ys = [], []
                for hc, nom, c, color in zip(hs, noms, categories, ("C0", "C3")):
                    values = hc.values() * scale
                    err = _errors(hc) * scale
                    hep.histplot(
                        values, edges, yerr=err, ax=ax, histtype="errorbar", color=color,
                        label=c, markersize=3,
                    )  # fmt: skip
                    x, y = _steps(edges, values + err)
                    xs.append(x)
                    ys.append(y)
                    if compare:
                        hep.histplot(
                            nom.values() * scale, edges, ax=ax, color=color, ls="--", lw=1,
                            label=f"{c} nominal", edges=False,
                        )  # fmt: skip
                        x, y = _steps(edges, nom.values() * scale)
                        xs.append(x)
                        ys.append(y)
                ax.set_ylabel(ylabel, fontsize="small")
                ax.set_xlim(edges[0], edges[-1])
                ax.set_ylim(0.0, None)
                experiment_label(ax, lumi, fontsize=13)
                legend = ax.legend(fontsize="x-small", loc="upper right", ncol=2 if compare else 1)
                clear.append((ax, legend, np.concatenate(xs), np.concatenate(ys)))
                r, err = _ratio(hs[0], hs[1])
                ratio_points(rax, edges, r, err, KINEMATICS_RATIO_RANGE, markersize=3)
                rax.axhline(1.0, color="grey", lw=1)
                rax.set_ylabel(f"{categories[0]}/{categories[1]}", fontsize="x-small")
                if compare:
                    vax = axes[2]
                    with np.errstate(divide="ignore", invalid="ignore"):
                        shifts = [
                            np.where(nom.values() > 0, hc.values() / nom.values(), np.nan)
                            for hc, nom in zip(hs, noms)
                        ]
                    limits = _variation_limits(shifts, noms[0].values() + noms[1].values())
                    for shift, c, color in zip(shifts, categories, ("C0", "C3")):
                        vax.stairs(np.nan_to_num(shift, nan=1.0), edges, color=color, lw=1.5,
                                   baseline=None, label=c)  # fmt: skip
                        centers = 0.5 * (edges[1:] + edges[:-1])
                        mark_out_of_range(vax, centers, shift, limits, color, 6)
                    vax.set_ylim(*limits)
                    vax.axhline(1.0, color="grey", lw=1)
                    vax.set_ylabel("var./nom.", fontsize="x-small")
                axes[-1].set_xlabel(xlabel, fontsize="small")
                for a in axes:
                    a.tick_params(labelsize="x-small")
            fig.canvas.draw()  # constrained layout sets the sizes the boxes are measured in
            for ax, legend, x, y in clear:
                keep_clear(ax, [legend], x, y)
            figures[variation] = fig
    return figures


def plot_kinematics(
    processed: str | os.PathLike[str],
    directory: str | os.PathLike[str],
    *,
    variations: Sequence[str] | None = None,
    datasets: Sequence[str] | None = None,
    observables: Sequence[str] = KINEMATICS,
    categories: tuple[str, str] = ("emu", "mue"),
    formats: Sequence[str] = FORMATS,
) -> list[Path]:
    """Write :func:`kinematics_figures` (``kinematics_<variation>``) into ``directory``."""
    figures = kinematics_figures(
        processed,
        variations=variations,
        datasets=datasets,
        observables=observables,
        categories=categories,
    )
    out = Path(directory)
    paths: list[Path] = []
    for variation, fig in figures.items():
        paths += _save(fig, out / f"kinematics_{variation}", formats)
    return paths


def plot_sensitivity(
    scan: dict, directory: str | os.PathLike[str], formats: Sequence[str] = FORMATS
) -> list[Path]:
    """Z against the injected branching ratio (Fig. 5) and median Z against Z_id (Fig. 4).

    ``scan`` is the content of ``sensitivity.json``
    (:func:`symnplm.workflow.sensitivity.write_scan`); a scan of several luminosities
    (``--protocol bootstrap``) has one curve per luminosity in each figure.
    """
    default_lumi = (scan.get("config") or {}).get("luminosity_fb")
    groups: dict[float | None, list[dict]] = {}
    for p in scan["points"]:
        groups.setdefault(p.get("luminosity_fb", default_lumi), []).append(p)

    def curves(points: list[dict]) -> tuple[np.ndarray, ...]:
        # dtype=float also parses the "inf" strings that JSON files hold for infinities
        br = np.array([p["branching_ratio"] for p in points], dtype=float)
        # Z < 0 (t below the null median, p > 1/2) is drawn as 0
        zq = np.clip(np.array([p["z_chi2_quantiles"] for p in points], dtype=float), 0, None)
        ze = np.clip(np.array([p["z_quantiles"] for p in points], dtype=float), 0, None)
        zid = np.array([p["z_ideal"] for p in points], dtype=float)
        return br, zq, ze, zid

    several = len(groups) > 1
    label_lumi = None if several else next(iter(groups))

    def tag(lumi: float | None) -> str:
        return f", {lumi:g} fb$^{{-1}}$" if several and lumi is not None else ""

    styles = {
        "band": "16-84%",
        "chi2": r"median Z ($\chi^2$ fitted to the null)",
        "empirical": "median Z (empirical, capped by the null size)",
        "ideal": r"$Z_{id}$ (Eq. 29)",
    }
    out = Path(directory)
    paths: list[Path] = []
    with plt.style.context(_STYLE):
        fig, ax = plt.subplots(figsize=(8, 6))
        experiment_label(ax, label_lumi)
        xs, ys = [], []
        for k, points in enumerate(groups.values()):
            br, zq, ze, zid = curves(points)
            # several luminosities: a colour each, the quantities told apart by line style
            # in a key of their own (four entries per luminosity would bury the figure)
            c, c_emp, c_id = (f"C{k}",) * 3 if several else ("C0", "C1", "k")
            label = (lambda _key: None) if several else styles.get
            ax.fill_between(br, zq[:, 0], zq[:, 2], color=c, alpha=0.3, label=label("band"))
            ax.plot(br, zq[:, 1], f"{c}o-", label=label("chi2"))
            ax.plot(br, ze[:, 1], f"{c_emp}s--", label=label("empirical"))
            ax.plot(br, zid, f"{c_id}:", label=label("ideal"))
            block = np.c_[zq, ze[:, 1], zid]
            xs.append(np.repeat(br, block.shape[1]))
            ys.append(block.ravel())
        handles = None
        if several:
            from matplotlib.lines import Line2D
            from matplotlib.patches import Patch

            handles = [
                Line2D([], [], color=f"C{k}", lw=3, label=f"{lumi:g} fb$^{{-1}}$")
                for k, lumi in enumerate(groups)
            ] + [
                Patch(color="0.5", alpha=0.3, label=styles["band"]),
                Line2D([], [], color="0.3", marker="o", ls="-", label=styles["chi2"]),
                Line2D([], [], color="0.3", marker="s", ls="--", label=styles["empirical"]),
                Line2D([], [], color="0.3", ls=":", label=styles["ideal"]),
            ]
        ax.set_xlabel("injected branching ratio")
        ax.set_ylabel("Z")
        legend = ax.legend(
            handles=handles, fontsize="x-small", loc="upper left", bbox_to_anchor=(0.04, 0.97)
        )
        fig.canvas.draw()
        keep_clear(ax, [legend], np.concatenate(xs), np.concatenate(ys))
        paths += _save(fig, out / "z_vs_br", formats)
        fig, ax = plt.subplots(figsize=(7, 7))
        experiment_label(ax, label_lumi, fontsize="small")
        ends = [1.0]
        for k, (lumi, points) in enumerate(groups.items()):
            _, zq, _, zid = curves(points)
            ax.errorbar(
                zid,
                zq[:, 1],
                yerr=[zq[:, 1] - zq[:, 0], zq[:, 2] - zq[:, 1]],
                fmt=f"C{k}o",
                label=f"median Z, 16-84%{tag(lumi)}",
            )
            ends += [*zid, *zq[:, 2]]
        reach = np.array(ends)
        top = float(np.max(reach[np.isfinite(reach)])) * 1.1
        ax.plot([0, top], [0, top], "k:", label=r"$Z = Z_{id}$")
        ax.set_xlim(0, top)
        ax.set_ylim(0, top)
        ax.set_xlabel(r"$Z_{id}$")
        ax.set_ylabel("median Z")
        ax.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(0.04, 0.97))
        paths += _save(fig, out / "z_vs_zid", formats)
    return paths


# ---------------------------------------------------------------------------------------
# closure studies
# ---------------------------------------------------------------------------------------
def plot_closure(
    summary: dict, directory: str | os.PathLike[str], formats: Sequence[str] = FORMATS
) -> list[Path]:
    """Figures of a closure study (:mod:`symnplm.workflow.closure`).

    Per observable, ``closure_<observable>``: the pseudo-experiments' p-values (left;
    flat under the null, with the binomial ±1σ band) and their t against the null of
    relabelled pseudo-experiments (right), with and without the efficiency map.
    ``closure_diagnostics``: the rate of p < 0.05 of every binned diagnostic.
    """
    directory = Path(directory)
    variants = summary["variants"]
    observables = sorted({o for v in variants.values() for o in v})
    paths: list[Path] = []
    colors = {"corrected": "C0", "uncorrected": "C3"}
    for obs in observables:
        with plt.style.context(_STYLE):
            fig, (ax, tax) = plt.subplots(1, 2, figsize=(14, 6))
            bins = np.linspace(0, 1, 21)
            # step tops per panel, kept clear of the legends
            tops: dict[plt.Axes, list[np.ndarray]] = {ax: [], tax: []}
            for label, v in variants.items():
                if obs not in v:
                    continue
                pe = v[obs]["pseudo_experiments"]["test"]
                counts, _ = np.histogram(pe["p_values"], bins)
                tops[ax].append(np.c_[_steps(bins, counts)])
                hep.histplot(
                    counts, bins, ax=ax, color=colors.get(label, "k"),
                    label=f"{label}: KS p = {pe['ks_uniform_p']:.2g},\n"
                    f"rate(p<0.05) = {pe['rate_p_below_0.05']:.3f}",
                )  # fmt: skip
                t_edges = np.histogram_bin_edges(np.r_[pe["t"], pe["t_null"]], 30)
                for values in (pe["t"], pe["t_null"]):
                    tops[tax].append(np.c_[_steps(t_edges, np.histogram(values, t_edges)[0])])
                hep.histplot(
                    np.histogram(pe["t"], t_edges)[0], t_edges, ax=tax,
                    color=colors.get(label, "k"), label=f"{label}: PEs",
                )  # fmt: skip
                hep.histplot(
                    np.histogram(pe["t_null"], t_edges)[0], t_edges, ax=tax, ls="--",
                    color=colors.get(label, "k"), label=f"{label}: relabelled PEs (null)",
                )  # fmt: skip
            n = next(iter(variants.values()))[obs]["pseudo_experiments"]["test"]["n"]
            expected = n / (len(bins) - 1)
            ax.axhspan(expected - np.sqrt(expected), expected + np.sqrt(expected), color="grey",
                       alpha=0.3, label="uniform ± 1σ")  # fmt: skip
            tops[ax].append(np.c_[_steps(bins[[0, -1]], np.array([expected + np.sqrt(expected)]))])
            ax.set_xlabel("p-value of a pseudo-experiment")
            ax.set_ylabel("pseudo-experiments")
            lumi = next(iter(variants.values()))[obs]["pseudo_experiments"]["luminosity_fb"]
            for a in (ax, tax):
                experiment_label(a, lumi, fontsize=16)
            header(ax, f"{obs}: {n} SM pseudo-experiments")
            tax.set_xlabel("t")
            tax.set_ylabel("pseudo-experiments")
            legends = {a: a.legend(fontsize="xx-small", loc="upper right") for a in (ax, tax)}
            fig.canvas.draw()
            for a, legend in legends.items():
                a.set_ylim(0.0, None)
                xy = np.concatenate(tops[a])
                keep_clear(a, [legend], xy[:, 0], xy[:, 1])
            paths += _save(fig, directory / f"closure_{obs}", formats)
    with plt.style.context(_STYLE):
        first = next(iter(variants.values()))
        names = list(first[observables[0]]["pseudo_experiments"]["diagnostics"])
        fig, ax = plt.subplots(figsize=(9, 0.5 * len(names) + 2))
        y = np.arange(len(names))[::-1]
        for k, (label, v) in enumerate(variants.items()):
            diag = v[observables[0]]["pseudo_experiments"]["diagnostics"]
            rates = [diag[name]["rate_p_below_0.05"] for name in names]
            ax.plot(rates, y + 0.15 * (k - 0.5), "o", color=colors.get(label, "k"), label=label)
        sigma = first[observables[0]]["pseudo_experiments"]["diagnostics"][names[0]]["rate_sigma"]
        ax.axvspan(0.05 - 2 * sigma, 0.05 + 2 * sigma, color="grey", alpha=0.3, label="5 % ± 2σ")
        ax.set_yticks(y, names, fontsize="x-small")
        ax.set_xlabel("rate of p < 0.05 over pseudo-experiments (binned G-tests)")
        ax.legend(fontsize="x-small")
        pes = first[observables[0]]["pseudo_experiments"]
        experiment_label(ax, pes.get("luminosity_fb"), fontsize=16)
        paths += _save(fig, directory / "closure_diagnostics", formats)
    return paths


def plot_scan(
    table: Sequence[dict],
    significance: Any,
    path: str | os.PathLike[str],
    luminosity_fb: float | None = None,
    formats: Sequence[str] = FORMATS,
) -> list[Path]:
    """Local Z of every cell of a region scan, the global Z marked.

    ``table`` holds the rows of :meth:`symnplm.workflow.scan.ScanResult.table`
    (region, observable, statistic, local_z, local_p_is_bound); ``significance`` the
    scan's :class:`~symnplm.inference.lookelsewhere.GlobalSignificance`. A local Z at
    the permutation floor is a lower bound and drawn as a right-pointing triangle; a Z
    below the axis (down to -inf at p = 1) is drawn at its left edge as a left-pointing
    one.
    """
    labels = [f"{r['region']} · {r['observable']} · {r['statistic']}" for r in table]
    z = np.array([r["local_z"] for r in table], dtype=float)
    bound = np.array([r["local_p_is_bound"] for r in table], dtype=bool)
    z_floor = -1.5  # Z < -1.5 (p > 0.93) says only "nothing here"
    below = z < z_floor
    z = np.where(below, z_floor, z)
    statistics = list(dict.fromkeys(r["statistic"] for r in table))
    colours = {s: f"C{k}" for k, s in enumerate(statistics)}
    with plt.style.context(_STYLE):
        fig, ax = plt.subplots(figsize=(9, 0.32 * len(table) + 2.2))
        y = np.arange(len(table))[::-1]
        for s in statistics:
            sel = np.array([r["statistic"] == s for r in table])
            plain = sel & ~bound & ~below
            ax.scatter(z[plain], y[plain], color=colours[s], label=s, zorder=3)
            ax.scatter(z[sel & bound], y[sel & bound], color=colours[s], marker=">", zorder=3)
            ax.scatter(z[sel & below], y[sel & below], color=colours[s], marker="<", zorder=3)
        global_z = max(float(significance.global_z), z_floor)
        ax.axvline(global_z, color="k", ls="--", label="global Z")
        for level in (2, 3):
            ax.axvline(level, color="0.8", lw=0.8, zorder=0)
        ax.set_yticks(y, labels, fontsize=9)
        ax.set_xlabel("local Z (triangles: lower bounds at the permutation floor)", fontsize=14)
        ax.tick_params(axis="y", which="minor", left=False, right=False)
        finite = z[np.isfinite(z)]
        high = float(finite.max()) if finite.size else 0.0
        ax.set_xlim(min(-0.5, float(z.min()) - 0.3), max(3.5, high + 0.5))
        g = significance
        experiment_label(ax, luminosity_fb)
        unconverged = sum(not r.get("converged", True) for r in table)
        header(
            ax,
            f"{g.n_cells} cells, {g.n_replicas} joint permutations: global "
            f"{'p ≤' if g.global_bound else 'p ='} {g.global_p:.3g} "
            f"(Z {'≥' if g.global_bound else '='} {g.global_z:.2f}), "
            f"trial factor {g.trial_factor:.1f}",
            [f"{unconverged} observed fit(s) not converged" if unconverged else None],
        )
        ax.legend(loc="lower right", fontsize=9, frameon=True)
        return _save(fig, Path(path), formats)
