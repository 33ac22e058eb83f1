"""Figures of result directories and processor output (mplhep; the paper's figures as models).

* :func:`plot_null` — the null t distribution against χ²_dof, the observed t and its
  p and Z (Figs. 2 and 6 of arXiv:2401.09530).
* :func:`plot_fit` — A and B histograms of a tested feature with the fitted densities,
  and a ratio panel with the learned n_A/n_B (in 1D also e^δ̂(x) on a fine grid; in 5D,
  one projection per feature).
* :func:`plot_history` — percentiles of the null t against training steps (Fig. 7).
* :func:`plot_diagnostics` — the binned G-tests of the result against their nulls:
  t of each with the null's 68/95 % range, and its p-value.
* :func:`plot_kinematics` — emu against mue per variation, with ratio panels.

Every function writes files and returns their paths; nothing is shown on screen
(the non-interactive Agg backend is used).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: safe on machines and workers without a display

import hist
import matplotlib.pyplot as plt
import mplhep as hep
import numpy as np
from scipy import stats

from symnplm.io.booking import BookedResult, feature_label, load_result, read_hists
from symnplm.io.files import atomic_path

FORMATS: tuple[str, ...] = ("png",)
_STYLE = hep.style.ROOT


def _save(fig: plt.Figure, path: Path, formats: Sequence[str]) -> list[Path]:
    out = []
    for fmt in formats:
        target = path.with_suffix(f".{fmt}")
        with atomic_path(target) as tmp:
            fig.savefig(tmp, format=fmt, bbox_inches="tight")
        out.append(target)
    plt.close(fig)
    return out


def _ratio(num: np.ndarray, den: np.ndarray, var_num: np.ndarray, var_den: np.ndarray):
    """num/den and its uncertainty (independent samples); NaN where den is 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(den > 0, num / den, np.nan)
        err = r * np.sqrt(var_num / num**2 + var_den / den**2)
    return r, np.nan_to_num(err, nan=0.0)


def _result_text(booked: BookedResult) -> str:
    s = booked.summary
    calib = s["calibration"] + (f", {s['n_null']} replicas" if s["n_null"] else "")
    # float(): JSON holds infinities (Z of p = 1) as strings
    return (
        f"{s['statistic']} ({', '.join(booked.features)})\n"
        f"$t_{{obs}}$ = {float(s['t']):.2f}, dof = {s['dof']}\n"
        f"p = {float(s['p_value']):.3g}, Z = {float(s['z']):.2f} ({calib})"
    )


def plot_null(
    booked: BookedResult, directory: str | os.PathLike[str], formats: Sequence[str] = FORMATS
) -> list[Path]:
    """Null t distribution vs χ²_dof (and the fitted dof), the observed t, p and Z."""
    h = booked.hists.get("null_t")
    if h is None:
        return []
    s = booked.summary
    with plt.style.context(_STYLE):
        fig, ax = plt.subplots(figsize=(8, 6))
        counts = h.values()
        edges = h.axes[0].edges
        width = np.diff(edges)
        n = counts.sum() + h.values(flow=True)[-1]
        density = counts / (n * width)
        hep.histplot(
            density,
            edges,
            yerr=np.sqrt(counts) / (n * width),
            ax=ax,
            histtype="errorbar",
            color="black",
            label=f"null ({s['calibration']}, {s['n_null']})",
        )
        grid = np.linspace(edges[0], edges[-1], 400)[1:]
        ax.plot(grid, stats.chi2.pdf(grid, s["dof"]), "C0-", label=rf"$\chi^2_{{{s['dof']}}}$")
        fit = s.get("chi2_fit")
        if fit:
            ax.plot(
                grid,
                stats.chi2.pdf(grid, fit["dof"]),
                "C2--",
                label=rf"$\chi^2$ fit, dof = {fit['dof']:.1f}",
            )
        if s["t"] <= edges[-1]:
            ax.axvline(s["t"], color="C3", lw=2, label=r"$t_{obs}$")
        else:  # far beyond the null: an arrow at the edge says where
            ax.annotate(
                rf"$t_{{obs}}$ = {s['t']:.4g} $\rightarrow$",
                xy=(0.98, 0.08),
                xycoords="axes fraction",
                ha="right",
                color="C3",
                fontsize="small",
            )
        ax.set_xlabel("t")
        ax.set_ylabel("probability density")
        ax.set_xlim(edges[0], edges[-1])
        ax.legend(loc="best", fontsize="x-small")
        ax.set_title(_result_text(booked), fontsize="x-small", loc="left")
        return _save(fig, Path(directory) / "null_t", formats)


def plot_fit(
    booked: BookedResult, directory: str | os.PathLike[str], formats: Sequence[str] = FORMATS
) -> list[Path]:
    """Per feature: A and B with the fitted densities; ratio panel with e^δ̂."""
    paths: list[Path] = []
    for feature in booked.features:
        data = booked.hists.get(f"samples/{feature}")
        fit = booked.hists.get(f"fit/{feature}")
        if data is None:
            continue
        edges = data.axes[1].edges
        with plt.style.context(_STYLE):
            fig, (ax, rax) = plt.subplots(
                2, 1, figsize=(8, 8), sharex=True, gridspec_kw={"height_ratios": (3, 1)}
            )
            for g, color in (("A", "C0"), ("B", "C3")):
                hep.histplot(
                    data[g, :].values(),
                    edges,
                    yerr=np.sqrt(data[g, :].variances()),
                    ax=ax,
                    histtype="errorbar",
                    color=color,
                    label=f"{g}: {booked.summary['samples'][g]['name']}",
                )
                if fit is not None:
                    hep.histplot(
                        fit[g, :].values(), edges, ax=ax, color=color, label=f"fitted $n_{g}$"
                    )
            ax.set_ylabel("events / bin")
            ax.legend(fontsize="small")
            ax.set_title(_result_text(booked), fontsize="x-small", loc="left")
            r, err = _ratio(
                data["A", :].values(),
                data["B", :].values(),
                data["A", :].variances(),
                data["B", :].variances(),
            )
            hep.histplot(
                r, edges, yerr=err, ax=rax, histtype="errorbar", color="black", label="A / B"
            )
            if fit is not None:
                # the learned n_A/n_B projected on this feature: ratio of the fitted histograms
                with np.errstate(divide="ignore", invalid="ignore"):
                    learned = fit["A", :].values() / fit["B", :].values()
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
                    np.exp(funcs["log_ratio", :].values()),
                    color="C2",
                    lw=1,
                    ls="--",
                    label=r"$e^{\hat\delta(x)}$",
                )
            rax.axhline(1.0, color="grey", lw=1)
            rax.set_ylabel("A / B")
            rax.set_xlabel(feature_label(feature))
            finite = r[np.isfinite(r)]
            if finite.size:
                span = max(0.1, float(np.nanpercentile(np.abs(finite - 1), 90)) * 1.5)
                rax.set_ylim(1 - span, 1 + span)
            rax.legend(fontsize="xx-small", ncol=3, loc="lower left")
            paths += _save(fig, Path(directory) / f"fit_{feature}", formats)
    return paths


def plot_history(
    booked: BookedResult, directory: str | os.PathLike[str], formats: Sequence[str] = FORMATS
) -> list[Path]:
    """Percentiles (16, 50, 84) of the null t against training steps (Fig. 7)."""
    null = booked.calibration.null
    if null is None or null.history_t.size == 0 or len(null.history_steps) < 2:
        return []
    with plt.style.context(_STYLE):
        fig, ax = plt.subplots(figsize=(8, 6))
        steps = null.history_steps
        q = np.nanpercentile(
            np.where(np.isfinite(null.history_t), null.history_t, np.nan), [16, 50, 84], axis=1
        )
        ax.fill_between(steps, q[0], q[2], color="C0", alpha=0.3, label="16-84%")
        ax.plot(steps, q[1], "C0-", label="median")
        ax.axhline(booked.summary["dof"], color="grey", ls="--", label="dof")
        opt = booked.summary["config"]["statistic"]["optimizer"]
        ax.set_xlabel("Newton iteration" if opt == "newton" else "epoch")
        ax.set_ylabel("null t")
        ax.legend(fontsize="small")
        return _save(fig, Path(directory) / "t_vs_steps", formats)


def plot_diagnostics(
    booked: BookedResult, directory: str | os.PathLike[str], formats: Sequence[str] = FORMATS
) -> list[Path]:
    """Each binned diagnostic's t / dof against its null's mean ± 1σ and ± 2σ, with its p."""
    diags = booked.summary.get("diagnostics") or []
    if not diags:
        return []
    with plt.style.context(_STYLE):
        fig, ax = plt.subplots(figsize=(8, 0.6 * len(diags) + 2.0))
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
            ax.annotate(
                f"p = {d['p_value']:.3g}",
                (1.0, yi),
                xycoords=("axes fraction", "data"),
                xytext=(4, 0),
                textcoords="offset points",
                va="center",
                fontsize="x-small",
            )
        ax.set_yticks(y, [f"{d['name']} ({d['dof']})" for d in diags], fontsize="x-small")
        ax.set_xlabel("binned G-test t / dof (null: 68 %, 95 %)")
        ax.set_title(_result_text(booked), fontsize="x-small", loc="left")
        return _save(fig, Path(directory) / "diagnostics", formats)


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
KINEMATICS: tuple[str, ...] = ("m_coll", "m_ll", "met", "dphi", "lepton_pt", "lepton_eta")


def _project(h: hist.Hist, datasets: Sequence[str], category: str, variation: str) -> hist.Hist:
    """Sum over ``datasets`` of one category and variation, leading lepton where split."""
    sel: dict[str, object] = {"category": category, "variation": variation}
    if "lepton" in h.axes.name:
        sel["lepton"] = "leading"
    h = h[sel]
    parts = [h[{"dataset": d}] for d in datasets if d in h.axes["dataset"]]
    if not parts:
        raise KeyError(f"none of the datasets {list(datasets)} is in the histograms")
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    return total


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
    """emu vs mue of the processor histograms (``hists.json``), one figure per variation.

    ``datasets`` default: every non-signal dataset of the manifest.
    """
    from symnplm.io.filesets import is_signal
    from symnplm.io.samples import read_manifest

    processed = Path(processed)
    manifest = read_manifest(processed)
    hists = read_hists(processed)
    fileset = manifest.get("fileset", {})
    datasets = list(datasets or [d for d, e in fileset.items() if not is_signal(e["metadata"])])
    variations = list(variations or ["nominal"])
    out = Path(directory)
    paths: list[Path] = []
    names = [o for o in observables if o in hists]
    ncols = min(3, len(names))
    nrows = -(-len(names) // ncols)
    for variation in variations:
        with plt.style.context(_STYLE):
            fig, axes = plt.subplots(
                2 * nrows,
                ncols,
                figsize=(5.5 * ncols, 6.5 * nrows),
                gridspec_kw={"height_ratios": (3, 1) * nrows, "hspace": 0.3},
                squeeze=False,
            )
            for k, name in enumerate(names):
                row, col = 2 * (k // ncols), k % ncols
                ax, rax = axes[row, col], axes[row + 1, col]
                rax.sharex(ax)
                ax.tick_params(labelbottom=False)
                hs = [_project(hists[name], datasets, c, variation) for c in categories]
                if hs[0].axes[0].size >= 50:  # 100 bins are too fine for a ratio panel
                    hs = [h[:: hist.rebin(2)] for h in hs]
                edges = hs[0].axes[0].edges
                for h, c, color in zip(hs, categories, ("C0", "C3")):
                    hep.histplot(
                        h.values(),
                        edges,
                        yerr=np.sqrt(h.variances()),
                        ax=ax,
                        histtype="errorbar",
                        color=color,
                        label=c,
                        markersize=3,
                    )
                r, err = _ratio(
                    hs[0].values(), hs[1].values(), hs[0].variances(), hs[1].variances()
                )
                hep.histplot(
                    r, edges, yerr=err, ax=rax, histtype="errorbar", color="black", markersize=3
                )
                rax.axhline(1.0, color="grey", lw=1)
                rax.set_ylim(0.5, 1.5)
                rax.set_xlabel(hs[0].axes[0].label, fontsize="small")
                rax.set_ylabel(f"{categories[0]}/{categories[1]}", fontsize="x-small")
                ax.set_ylabel("events / bin", fontsize="small")
                ax.legend(fontsize="small", title=variation, title_fontsize="x-small")
            for k in range(len(names), nrows * ncols):  # unused panels
                row, col = 2 * (k // ncols), k % ncols
                axes[row, col].set_visible(False)
                axes[row + 1, col].set_visible(False)
            paths += _save(fig, out / f"kinematics_{variation}", formats)
    return paths


def plot_sensitivity(
    scan: dict, directory: str | os.PathLike[str], formats: Sequence[str] = FORMATS
) -> list[Path]:
    """Z against the injected branching ratio (Fig. 5) and median Z against Z_id (Fig. 4).

    ``scan`` is the content of ``sensitivity.json``
    (:func:`symnplm.workflow.sensitivity.write_scan`).
    """
    points = scan["points"]
    # dtype=float also parses the "inf" strings that JSON files hold for infinities
    br = np.array([p["branching_ratio"] for p in points], dtype=float)
    # Z < 0 (t below the null median, p > 1/2) is drawn as 0
    zq = np.clip(np.array([p["z_chi2_quantiles"] for p in points], dtype=float), 0, None)
    ze = np.clip(np.array([p["z_quantiles"] for p in points], dtype=float), 0, None)
    zid = np.array([p["z_ideal"] for p in points], dtype=float)
    out = Path(directory)
    paths: list[Path] = []
    with plt.style.context(_STYLE):
        fig, ax = plt.subplots(figsize=(8, 6))
        ax.fill_between(br, zq[:, 0], zq[:, 2], color="C0", alpha=0.3, label="16-84%")
        ax.plot(br, zq[:, 1], "C0o-", label=r"median Z ($\chi^2$ fitted to the null)")
        ax.plot(br, ze[:, 1], "C1s--", label="median Z (empirical, capped by the null size)")
        ax.plot(br, zid, "k:", label=r"$Z_{id}$ (Eq. 29)")
        ax.set_xlabel("injected branching ratio")
        ax.set_ylabel("Z")
        ax.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(0.04, 0.97))
        paths += _save(fig, out / "z_vs_br", formats)
        fig, ax = plt.subplots(figsize=(7, 7))
        ax.errorbar(
            zid,
            zq[:, 1],
            yerr=[zq[:, 1] - zq[:, 0], zq[:, 2] - zq[:, 1]],
            fmt="C0o",
            label="median Z, 16-84%",
        )
        top = float(np.nanmax(np.r_[zid, zq[:, 2], 1.0][np.isfinite(np.r_[zid, zq[:, 2], 1.0])]))
        top *= 1.1
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
            for label, v in variants.items():
                if obs not in v:
                    continue
                pe = v[obs]["pseudo_experiments"]["test"]
                counts, _ = np.histogram(pe["p_values"], bins)
                hep.histplot(
                    counts, bins, ax=ax, color=colors.get(label, "k"),
                    label=f"{label}: KS p = {pe['ks_uniform_p']:.2g}, "
                    f"rate(p<0.05) = {pe['rate_p_below_0.05']:.3f}",
                )  # fmt: skip
                t_edges = np.histogram_bin_edges(np.r_[pe["t"], pe["t_null"]], 30)
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
            ax.set_xlabel("p-value of a pseudo-experiment")
            ax.set_ylabel("pseudo-experiments")
            ax.legend(fontsize="x-small")
            lumi = next(iter(variants.values()))[obs]["pseudo_experiments"]["luminosity_fb"]
            ax.set_title(f"{obs}: {n} SM pseudo-experiments at {lumi:g} fb$^{{-1}}$",
                         fontsize="small", loc="left")  # fmt: skip
            tax.set_xlabel("t")
            tax.set_ylabel("pseudo-experiments")
            tax.legend(fontsize="x-small")
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
        paths += _save(fig, directory / "closure_diagnostics", formats)
    return paths


def plot_scan(
    table: Sequence[dict], significance: object, path: str | os.PathLike[str], formats=FORMATS
) -> list[Path]:
    """Local Z of every cell of a region scan, the global Z marked.

    ``table`` holds the rows of :meth:`symnplm.workflow.scan.ScanResult.table`
    (region, observable, statistic, local_z, local_p_is_bound); ``significance`` the
    scan's :class:`~symnplm.inference.lookelsewhere.GlobalSignificance`. A local Z at
    the permutation floor is a lower bound and drawn as a right-pointing triangle.
    """
    labels = [f"{r['region']} · {r['observable']} · {r['statistic']}" for r in table]
    z = np.array([r["local_z"] for r in table], dtype=float)
    bound = np.array([r["local_p_is_bound"] for r in table], dtype=bool)
    statistics = list(dict.fromkeys(r["statistic"] for r in table))
    colours = {s: f"C{k}" for k, s in enumerate(statistics)}
    with plt.style.context(_STYLE):
        fig, ax = plt.subplots(figsize=(9, 0.32 * len(table) + 2.2))
        y = np.arange(len(table))[::-1]
        for s in statistics:
            sel = np.array([r["statistic"] == s for r in table])
            ax.scatter(z[sel & ~bound], y[sel & ~bound], color=colours[s], label=s, zorder=3)
            ax.scatter(z[sel & bound], y[sel & bound], color=colours[s], marker=">", zorder=3)
        ax.axvline(significance.global_z, color="k", ls="--", label="global Z")
        for level in (2, 3):
            ax.axvline(level, color="0.8", lw=0.8, zorder=0)
        ax.set_yticks(y, labels, fontsize=9)
        ax.set_xlabel("local Z (triangles: lower bounds at the permutation floor)", fontsize=14)
        ax.tick_params(axis="y", which="minor", left=False, right=False)
        ax.set_xlim(min(-0.5, float(np.nanmin(z)) - 0.3), max(3.5, float(np.nanmax(z)) + 0.5))
        g = significance
        ax.set_title(
            f"{g.n_cells} cells, {g.n_replicas} joint permutations: global p = "
            f"{'≤ ' if g.global_bound else ''}{g.global_p:.3g} (Z = {g.global_z:.2f}), "
            f"trial factor {g.trial_factor:.1f}",
            fontsize=11,
        )
        ax.legend(loc="lower right", fontsize=9, frameon=True)
        return _save(fig, Path(path), formats)
