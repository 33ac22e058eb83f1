"""Reproduce the null distributions of 2401.09530 (Figs. 1, 2 bottom row, 7) on the toy model.

Toys: A and B drawn from b0 = e^{-x} with Poisson-fluctuated sizes (Sec. III A),
1-4-1 sigmoid networks, all toys of a configuration fitted as one batched program.
Writes ``<out>/<name>.json`` (t values, χ² dof fit, KS p-values, divergent
fraction, timing, seed, configuration, versions) and ``<name>.png``.

Examples
--------
Fig. 2 bottom row (N ≈ 1e4), converged damped-Newton fits::

    python benchmarks/paper_null.py --n-a 5000 --n-b 5000 --toys 300
    python benchmarks/paper_null.py --n-a 1000 --n-b 10000 --toys 300
    python benchmarks/paper_null.py --n-a 100 --n-b 10000 --toys 300

Fig. 1 (NPLM t_B(A) at N_A = N_B, with and without weight clipping)::

    python benchmarks/paper_null.py --statistic nplm --clip 9 --n-a 5000 --n-b 5000
    python benchmarks/paper_null.py --statistic nplm --n-a 5000 --n-b 5000

Fig. 7 (percentiles of t against Adam epochs)::

    python benchmarks/paper_null.py --optimizer adam --epochs 20000 --record-every 500 --toys 100
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from scipy import stats

from symnplm.engine import FitConfig
from symnplm.generation.toymodels import ToyModel
from symnplm.inference import NPLMTest, SymmetrizedTest, fit_chi2_dof, toy_null
from symnplm.io.files import atomic_path, write_json
from symnplm.io.provenance import provenance

PERCENTILES = (5, 16, 50, 84, 95)


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--statistic", choices=["symmetrized", "nplm"], default="symmetrized")
    p.add_argument("--n-a", type=float, default=5000)
    p.add_argument("--n-b", type=float, default=5000)
    p.add_argument("--toys", type=int, default=300)
    p.add_argument("--optimizer", choices=["adam", "newton"], default="newton")
    p.add_argument("--epochs", type=int, default=20_000)
    p.add_argument("--max-iter", type=int, default=300)
    p.add_argument("--record-every", type=int, default=None)
    p.add_argument("--clip", type=float, default=None)
    p.add_argument("--init", choices=["glorot", "null"], default="glorot")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--seed", type=int, default=2401)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/output/paper_null"))
    p.add_argument("--name", default=None)
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    record = args.record_every or (max(1, args.epochs // 40) if args.optimizer == "adam" else 10)
    fit = FitConfig(
        optimizer=args.optimizer,
        epochs=args.epochs,
        max_iter=args.max_iter,
        clip=args.clip,
        record_every=record,
    )
    test = (SymmetrizedTest if args.statistic == "symmetrized" else NPLMTest)(
        (1, 4, 1), fit=fit, init=args.init
    )
    model = ToyModel(args.n_a, args.n_b)
    name = args.name or (
        f"{args.statistic}_na{int(args.n_a)}_nb{int(args.n_b)}_{args.optimizer}"
        + (f"{args.epochs}" if args.optimizer == "adam" else f"{args.max_iter}")
        + (f"_clip{args.clip:g}" if args.clip else "")
    )
    start = time.perf_counter()
    null = toy_null(
        test,
        args.toys,
        generator=model,
        seed=args.seed,
        batch_size=args.batch_size or args.toys,
        progress=lambda done, total: print(
            f"  {done}/{total} toys, {time.perf_counter() - start:.0f} s", flush=True
        ),
    )
    seconds = time.perf_counter() - start
    finite = null.t[np.isfinite(null.t)]
    chi2 = fit_chi2_dof(null.t, test.dof) if finite.size > 1 else None
    summary = {
        "name": name,
        "statistic": args.statistic,
        "n_a": args.n_a,
        "n_b": args.n_b,
        "toys": args.toys,
        "dof_nominal": test.dof,
        "chi2_fit": chi2.to_dict() if chi2 else None,
        "ks_pvalue_chi2_nominal": chi2.ks_pvalue_nominal if chi2 else None,
        "divergent_fraction": null.divergent_fraction,
        "converged_fraction": float(np.mean(null.converged)),
        "t_mean": float(finite.mean()) if finite.size else None,
        "t_median": float(np.median(finite)) if finite.size else None,
        "t_percentiles": {p: float(np.percentile(finite, p)) for p in PERCENTILES}
        if finite.size
        else None,
        "chi2_percentiles": {p: float(stats.chi2(test.dof).ppf(p / 100)) for p in PERCENTILES},
        "seconds": seconds,
        "seed": args.seed,
        "config": test.config(),
        "provenance": provenance(),
        "t": null.t,
        "history_steps": null.history_steps,
        "history_percentiles": {
            p: np.nanpercentile(
                np.where(np.isfinite(null.history_t), null.history_t, np.nan), p, axis=1
            )
            for p in PERCENTILES
        }
        if null.history_t.size
        else {},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / f"{name}.json", summary)
    plot(summary, args.out / f"{name}.png")
    fitted = (
        f"fitted dof {chi2.dof:.2f} ± {chi2.dof_error:.2f}, "
        f"KS p vs χ²_{test.dof} = {chi2.ks_pvalue_nominal:.3g}"
    )
    print(
        f"{name}: {args.toys} toys in {seconds:.0f} s; {fitted if chi2 else ''}; "
        f"divergent {null.divergent_fraction:.1%}; median t {summary['t_median']}"
    )
    return summary


def replot(json_path: Path) -> None:
    """Redraw the figure of a stored summary."""
    from symnplm.io.files import read_json

    summary = read_json(json_path)
    summary["history_percentiles"] = {int(k): v for k, v in summary["history_percentiles"].items()}
    summary["chi2_percentiles"] = {int(k): v for k, v in summary["chi2_percentiles"].items()}
    plot(summary, json_path.with_suffix(".png"))


def plot(summary: dict, path: Path) -> None:
    """t histogram against χ²_dof, and (if recorded) percentiles against epochs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mplhep

    plt.style.use(mplhep.style.ATLAS)
    t = np.asarray(summary["t"], dtype=float)
    finite = t[np.isfinite(t)]
    dof = summary["dof_nominal"]
    has_history = bool(summary["history_percentiles"]) and summary["statistic"] == "symmetrized"
    fig, axes = plt.subplots(
        1, 2 if has_history else 1, figsize=(14 if has_history else 7, 6), squeeze=False
    )
    ax = axes[0, 0]
    hi = max(np.percentile(finite, 99.5) if finite.size else 3 * dof, 3 * dof)
    bins = np.linspace(0, hi, 40)
    counts, _, _ = ax.hist(
        finite,
        bins=bins,
        density=True,
        histtype="stepfilled",
        alpha=0.5,
        label=f"{len(finite)} toys",
    )
    grid = np.linspace(1e-3, hi, 400)
    ax.set_ylim(0, 1.4 * max(counts.max(initial=0), stats.chi2(dof).pdf(grid).max()))
    ax.plot(grid, stats.chi2(dof).pdf(grid), color="gray", lw=2, label=rf"$\chi^2_{{{dof}}}$")
    fit = summary["chi2_fit"]
    if fit:
        ax.plot(
            grid,
            stats.chi2(fit["dof"]).pdf(grid),
            "k--",
            label=rf"fit: $\chi^2_{{{fit['dof']:.1f}}}$",
        )
    lab = "t_{A+B}(A+B)" if summary["statistic"] == "symmetrized" else "t_B(A)"
    ax.set_xlabel(rf"${lab}$")
    ax.set_ylabel("density")
    div = summary["divergent_fraction"]
    title = f"N_A={summary['n_a']:g}, N_B={summary['n_b']:g}" + (
        f", {div:.1%} divergent" if div else ""
    )
    ax.set_title(title, fontsize=14)
    ax.legend(fontsize=12)
    if has_history:
        ax2 = axes[0, 1]
        steps = np.asarray(summary["history_steps"])
        for p, vals in summary["history_percentiles"].items():
            line = ax2.plot(steps, vals, label=f"{p}%")
            ax2.axhline(
                summary["chi2_percentiles"][p], ls="--", color=line[0].get_color(), alpha=0.7
            )
        ax2.set_xlabel(
            "Adam epoch" if summary["config"]["fit"]["optimizer"] == "adam" else "Newton iteration"
        )
        ax2.ticklabel_format(axis="x", style="plain")
        ax2.set_ylabel("percentiles of t")
        top = max(summary["chi2_percentiles"][95], np.nanmax(summary["history_percentiles"][95]))
        ax2.set_ylim(0, 1.3 * top)
        ax2.legend(fontsize=11, ncol=2)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    import sys

    if len(sys.argv) > 2 and sys.argv[1] == "--replot":
        for name in sys.argv[2:]:
            replot(Path(name))
    else:
        main()
