"""Converged Newton against long fixed-epoch Adam on the same null permutations.

How does the damped-Newton maximum compare with the paper's 5×10^5-epoch Adam
(arXiv:2401.09530 Sec. III C, App. D)? Both fit the symmetrized statistic t_{A+B}(A+B)
(Eq. 23) of the *same* permutations of one null sample (the exponential toy b0 of
Sec. III A, 1-4-1 sigmoid networks, Glorot initialisation from the same seeds), so the
comparison is permutation by permutation. Adam records t every ``--record-every``
epochs (the percentiles-vs-epochs curve of Fig. 7).

Writes ``<out>/newton_vs_adam[-tag].json`` (both t arrays, χ² dof fits, KS p-values,
percentiles vs epochs, passes over the data, timings, seed, configuration, versions)
and a figure ``.png``.

Usage::

    python -m benchmarks.newton_vs_adam --events 1e4 --permutations 100 --epochs 500000
    python -m benchmarks.newton_vs_adam --events 2e3 --permutations 20 --epochs 2000 --tag smoke
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats

from benchmarks._common import (
    OUTPUT_DIR,
    add_common_arguments,
    count,
    describe_machine,
    machine_info,
    new_parser,
    set_threads,
    write_result,
)

PERCENTILES = (5, 16, 50, 84, 95)


def null_summary(t: np.ndarray) -> dict[str, Any]:
    """Percentiles, fitted χ² dof and KS p against that χ² (finite t only)."""
    from symnplm.inference import fit_chi2_dof

    finite = t[np.isfinite(t)]
    fit = fit_chi2_dof(finite, nominal_dof=12)
    return {
        "n": int(t.size),
        "n_finite": int(finite.size),
        "percentiles": dict(zip(map(str, PERCENTILES), np.percentile(finite, PERCENTILES))),
        "dof": fit.dof,
        "dof_error": fit.dof_error,
        "ks_p_fitted_chi2": fit.ks_pvalue,
        "ks_p_chi2_12": fit.ks_pvalue_nominal,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Both campaigns, the comparison and the figure."""
    from symnplm.engine import FitConfig
    from symnplm.generation.toymodels import ToyModel
    from symnplm.inference import SymmetrizedTest, permutation_null

    threads = set_threads(args.threads)
    machine = machine_info()
    half = args.events / 2
    a, b = ToyModel(half, half, poisson=False)(np.random.default_rng(args.seed))
    configs = {
        "newton": FitConfig(optimizer="newton", max_iter=args.max_iter, backend=args.backend),
        "adam": FitConfig(
            optimizer="adam", epochs=args.epochs, record_every=args.record_every, backend="auto"
        ),
    }
    nulls, seconds = {}, {}
    for name, cfg in configs.items():
        test = SymmetrizedTest((1, 4, 1), fit=cfg)
        start = time.perf_counter()
        nulls[name] = permutation_null(
            test, a, b, args.permutations, seed=args.seed, batch_size=args.permutations
        )
        seconds[name] = time.perf_counter() - start
        print(f"{name}: {seconds[name]:.1f} s, median t {np.median(nulls[name].t):.3f}", flush=True)
    tn, ta = nulls["newton"].t, nulls["adam"].t
    both = np.isfinite(tn) & np.isfinite(ta)
    diff = tn[both] - ta[both]
    steps = nulls["adam"].history_steps
    hist = nulls["adam"].history_t
    payload = {
        "configuration": {
            "statistic": "symmetrized t_{A+B}(A+B), Eq. 23",
            "architecture": [1, 4, 1],
            "n_a": len(a),
            "n_b": len(b),
            "permutations": args.permutations,
            "seed": args.seed,
            "newton": vars(configs["newton"]) | {"betas": None},
            "adam": vars(configs["adam"]) | {"betas": list(configs["adam"].betas)},
        },
        "threads": threads,
        "seconds": seconds,
        "speedup_newton_over_adam": seconds["adam"] / seconds["newton"],
        "newton": null_summary(tn) | {"t": tn.tolist()},
        "adam": null_summary(ta) | {"t": ta.tolist()},
        "difference_newton_minus_adam": {
            "median": float(np.median(diff)),
            "percentiles": dict(zip(map(str, PERCENTILES), np.percentile(diff, PERCENTILES))),
            "fraction_newton_higher": float(np.mean(diff > 0)),
            "spearman": float(stats.spearmanr(tn[both], ta[both]).statistic),
        },
        "adam_vs_epochs": {
            "epochs": steps.tolist(),
            "percentiles": {str(q): np.percentile(hist, q, axis=1).tolist() for q in PERCENTILES},
        },
    }
    figure(payload, args)
    write_result("newton_vs_adam", payload, args, machine)
    print(describe_machine(machine))
    for name in ("newton", "adam"):
        s = payload[name]
        print(
            f"{name:6s}: dof {s['dof']:.2f} ± {s['dof_error']:.2f}, median t "
            f"{s['percentiles']['50']:.2f}, {seconds[name]:.0f} s"
        )
    d = payload["difference_newton_minus_adam"]
    print(
        f"t_newton - t_adam: median {d['median']:.2f}, Newton higher in "
        f"{100 * d['fraction_newton_higher']:.0f} % (Spearman {d['spearman']:.2f})"
    )
    return payload


def figure(payload: dict[str, Any], args: argparse.Namespace) -> None:
    """Left: t_Newton vs t_Adam per permutation; right: Adam percentiles vs epochs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.stats import chi2

    from symnplm.io.files import atomic_path

    if args.no_write:
        return
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.5))
    tn, ta = np.asarray(payload["newton"]["t"]), np.asarray(payload["adam"]["t"])
    ax1.scatter(ta, tn, s=8)
    hi = np.nanmax(np.where(np.isfinite(tn), tn, np.nan))
    ax1.plot([0, hi], [0, hi], "k--", lw=1, label="t_Newton = t_Adam")
    ax1.set_xlabel(f"t, Adam {args.epochs:.0e} epochs")
    ax1.set_ylabel("t, damped Newton (converged)")
    ax1.legend()
    ev = payload["adam_vs_epochs"]
    for q, values in ev["percentiles"].items():
        (line,) = ax2.plot(ev["epochs"], values, label=f"Adam {q}%")
        ax2.axhline(payload["newton"]["percentiles"][q], color=line.get_color(), ls=":")
        ax2.axhline(chi2.ppf(int(q) / 100, 12), color=line.get_color(), ls="--", lw=0.7)
    ax2.set_xscale("log")
    # early epochs start far below zero (Glorot initialisation); show the approach
    ax2.set_ylim(-2, 1.3 * max(payload["newton"]["percentiles"]["95"], chi2.ppf(0.95, 12)))
    ax2.set_xlabel("Adam epochs")
    ax2.set_ylabel("t percentiles (dotted: Newton, dashed: χ²₁₂)")
    ax2.legend(fontsize=7)
    fig.suptitle(
        f"symmetrized 1-4-1, N_A = N_B = {payload['configuration']['n_a']}, "
        f"{payload['configuration']['permutations']} permutations"
    )
    fig.tight_layout()
    stem = f"newton_vs_adam-{args.tag}" if args.tag else "newton_vs_adam"
    with atomic_path(args.output_dir / f"{stem}.png") as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def parser() -> argparse.ArgumentParser:
    """Command-line options (defaults: the issue-6 study)."""
    p = new_parser(__doc__)
    p.add_argument("--events", type=count, default=10_000, help="events in A ∪ B")
    p.add_argument("--permutations", type=count, default=100)
    p.add_argument("--epochs", type=count, default=500_000, help="Adam epochs")
    p.add_argument("--record-every", type=count, default=5000)
    p.add_argument("--max-iter", type=int, default=300, help="Newton iterations")
    p.add_argument("--backend", choices=("auto", "eager", "compiled", "inductor"), default="auto")
    add_common_arguments(p)
    p.set_defaults(output_dir=OUTPUT_DIR)
    return p


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Entry point."""
    return run(parser().parse_args(argv))


if __name__ == "__main__":
    main()
