"""Validation of the nuisance-aware tests on one-dimensional toys.

Two studies, each writing ``<out>/<study>.json`` (every t, τ, Δ and fitted ν, the
summary, seeds, configuration, versions) and ``<out>/<study>.png``:

``nplm`` — the validation of the (τ - Δ) procedure of arXiv:2111.13633. Reference R_0: b0 = e^{-x}
    (N_R events, weighted to N_D expected); nuisances: a momentum scale
    x → x e^{σ_s ν} whose δ_1, δ_2 are *learned* from scaled copies of a b0 sample
    (:func:`symnplm.systematics.learn_deltas`) and an analytic normalisation. Toy data
    are drawn at ν* = 0, +1, -1 (both nuisances) with auxiliary measurements
    ν̂ ~ N(ν*, 1). The t = τ - Δ distributions at ν* = ±1 must be compatible with
    the one at ν* = 0 (KS p), while τ alone is shifted.

``symmetrized`` — A (``emu``-like) against B (``mue``-like) with a detector
    asymmetry on B: e/μ momentum-scale difference and efficiency-ratio shape
    (both learned from varied B samples) and efficiency-ratio normalisation
    (analytic), :class:`symnplm.systematics.toys.AsymmetryToy`. Cases (a) no
    asymmetry, (b) asymmetry at ν* within the prior, (c) (b) plus an LFV-like
    Gaussian signal in A at m_coll = 125 GeV; each with and without nuisances.
    p-values from the null toys of the same statistic (ν* = 0, ν̂ ~ N(0, 1)):
    empirical, and from a χ² with the dof fitted to the null.

This is a toy-level construction (1D, analytic samples): generating
detector-level samples with the e/μ knobs of :mod:`symnplm.generation` for
hundreds of toys is far slower than this study's budget.

Every toy of a configuration is a replica of one batched fit (batches of
``--batch`` toys), never a Python loop of trainings.

Examples
--------
::

    OMP_NUM_THREADS=1 python benchmarks/systematics_validation.py --study all
    python benchmarks/systematics_validation.py --study nplm --toys 200
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import stats

from symnplm.engine import FitConfig
from symnplm.inference.significance import asymptotic_pvalue, empirical_pvalue, fit_chi2_dof
from symnplm.inference.test_statistics import BatchFit, ReplicaBatch
from symnplm.io.files import atomic_path, write_json
from symnplm.io.provenance import provenance
from symnplm.systematics import (
    AsymmetryNuisance,
    NormalisationNuisance,
    NuisanceNPLMTest,
    NuisanceSet,
    NuisanceSymmetrizedTest,
    learn_deltas,
)
from symnplm.systematics.toys import (
    AsymmetryToy,
    ExponentialNuisanceToy,
    efficiency_variations,
    scale_log_ratio,
    scale_variations,
)

OUT = Path(__file__).resolve().parent / "output" / "systematics"
NEWTON = FitConfig(optimizer="newton", dtype="float64", max_iter=200)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--study", choices=["nplm", "symmetrized", "all"], default="all")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--batch", type=int, default=50, help="toys per batched fit")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=OUT)
    g = p.add_argument_group("nplm study")
    g.add_argument("--toys", type=int, default=100, help="toys per ν*")
    g.add_argument("--n-data", type=float, default=2000)
    g.add_argument("--n-ref", type=int, default=10_000)
    g.add_argument("--scale-sigma", type=float, default=0.05)
    g.add_argument("--norm-sigma", type=float, default=0.05)
    g.add_argument("--clip", type=float, default=9.0)
    g = p.add_argument_group("symmetrized study")
    g.add_argument("--null-toys", type=int, default=150)
    g.add_argument("--case-toys", type=int, default=60)
    g.add_argument("--n-ab", type=float, default=10_000, help="expected events of A and of B")
    g.add_argument("--asym-scale-sigma", type=float, default=0.03)
    g.add_argument("--asym-eff-sigma", type=float, default=0.08)
    g.add_argument("--asym-norm-sigma", type=float, default=0.02)
    g.add_argument("--nu-true", type=float, default=1.5, help="ν* of the asymmetry, in σ")
    g.add_argument("--signal", type=float, default=300, help="LFV-like signal events in A")
    return p.parse_args(argv)


def rng_for(seed: int, *key: int) -> np.random.Generator:
    """An independent stream per (study, case)."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def pad(pairs: list[tuple[np.ndarray, np.ndarray]], names: tuple[str, ...]) -> ReplicaBatch:
    """Per-replica events: A's then B's, zero-padded (zero weight = absent)."""
    r, n = len(pairs), max(len(a) + len(b) for a, b in pairs)
    x, wa, wb = np.zeros((r, n, 1)), np.zeros((r, n)), np.zeros((r, n))
    for i, (a, b) in enumerate(pairs):
        x[i, : len(a) + len(b), 0] = np.concatenate([a, b])
        wa[i, : len(a)] = 1.0
        wb[i, len(a) : len(a) + len(b)] = 1.0
    return ReplicaBatch(x, wa, wb, names)


def run_batches(
    test: Any,
    make_pairs: Callable[[int], list[tuple[np.ndarray, np.ndarray]]],
    aux: np.ndarray,
    n_toys: int,
    batch: int,
    seed: int,
) -> dict[str, np.ndarray]:
    """Fit ``n_toys`` toys in batches; return t, τ, Δ and the fitted ν per toy."""
    parts: dict[str, list[np.ndarray]] = {}
    for start in range(0, n_toys, batch):
        ids = list(range(start, min(n_toys, start + batch)))
        b = pad(make_pairs(len(ids)), ("x",))
        out: BatchFit = test.fit_batch(b, seed, ids, aux=aux[ids])
        for k, v in {"t": out.t, "converged": out.converged, **out.parts}.items():
            parts.setdefault(k, []).append(np.asarray(v))
    return {k: np.concatenate(v) for k, v in parts.items()}


def percentiles(t: np.ndarray) -> dict[str, float]:
    return {f"p{q}": float(np.percentile(t, q)) for q in (16, 50, 84)}


# ---------------------------------------------------------------------------------------
# study 1: NPLM, t = τ - Δ independent of the true nuisance value
# ---------------------------------------------------------------------------------------
def study_nplm(args: argparse.Namespace) -> dict[str, Any]:
    t0 = time.perf_counter()
    learned = learn_deltas(
        scale_variations(rng_for(args.seed, 1, 0), 100_000, args.scale_sigma), order=2, seed=1
    )
    grid = np.linspace(0.05, 4.0, 80)[:, None]
    ns = NuisanceSet((learned, NormalisationNuisance("norm", args.norm_sigma)), features=("x",))
    toy = ExponentialNuisanceToy(args.n_data, args.scale_sigma, args.norm_sigma)
    ref = rng_for(args.seed, 1, 1).exponential(size=args.n_ref)
    test = NuisanceNPLMTest(
        ns,
        (1, 4, 1),
        n_expected=args.n_data,
        fit=FitConfig(**{**NEWTON.to_dict(), "clip": args.clip}),
    )
    results: dict[str, Any] = {}
    for case, nu_star in enumerate((0.0, 1.0, -1.0)):
        rng = rng_for(args.seed, 1, 2 + case)
        aux = rng.normal(nu_star, 1.0, size=(args.toys, 2))  # ν̂ ~ N(ν*, σ = 1)

        def make(n: int, rng=rng, nu_star=nu_star) -> list[tuple[np.ndarray, np.ndarray]]:
            return [(toy.draw(rng, nu_star, nu_star), ref) for _ in range(n)]

        start = time.perf_counter()
        res = run_batches(test, make, aux, args.toys, args.batch, args.seed + case)
        res["aux"] = aux
        res["seconds"] = time.perf_counter() - start
        results[f"{nu_star:+g}"] = res
        print(
            f"nplm ν*={nu_star:+g}: median t {np.median(res['t']):.2f} "
            f"τ {np.median(res['tau']):.2f}  ({res['seconds']:.0f} s)",
            flush=True,
        )
    null = results["+0"]
    summary = {}
    for key, res in results.items():
        summary[key] = {
            "median_t": float(np.median(res["t"])),
            "median_tau": float(np.median(res["tau"])),
            "median_delta": float(np.median(res["delta"])),
            "t_percentiles": percentiles(res["t"]),
            "tau_percentiles": percentiles(res["tau"]),
            "ks_p_t_vs_nominal": float(stats.ks_2samp(res["t"], null["t"]).pvalue),
            "ks_p_tau_vs_nominal": float(stats.ks_2samp(res["tau"], null["tau"]).pvalue),
            "mean_nu_delta": {n: float(np.mean(res[f"nu_delta[{n}]"])) for n in ns.names},
            "min_t": float(np.min(res["t"])),
            "converged_fraction": float(np.mean(res["converged"])),
            "n_toys": len(res["t"]),
        }
    chi2 = fit_chi2_dof(null["t"], nominal_dof=test.dof)
    delta_quality = {
        f"{nu:+g}": float(
            np.max(
                np.abs(
                    learned.log_ratio(grid, nu) - scale_log_ratio(grid[:, 0], nu, args.scale_sigma)
                )
            )
        )
        for nu in (-2, -1, 1, 2)
    }
    payload = {
        "study": "nplm",
        "summary": summary,
        "null_chi2_fit": chi2.to_dict(),
        "learned_scale_max_abs_log_r_error_on_[0.05,4]": delta_quality,
        "toys": {k: {n: np.asarray(v).tolist() for n, v in r.items()} for k, r in results.items()},
        "config": {
            **{k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "test": test.config(),
            "learned_nuisance": learned.describe(),
        },
        "seed": args.seed,
        "seconds": time.perf_counter() - t0,
        "provenance": provenance(),
    }
    write_json(args.out / "nplm.json", payload)
    plot_nplm(results, learned, args, args.out / "nplm.png")
    return payload


def plot_nplm(results: dict, learned, args: argparse.Namespace, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    hi = max(np.percentile(r["tau"], 99) for r in results.values())
    bins = np.linspace(0, hi, 35)
    null = results["+0"]
    for ax, key, label in ((axes[0], "tau", "τ"), (axes[1], "t", "t = τ − Δ")):
        for nu, res in results.items():
            ks = stats.ks_2samp(res[key], null[key]).pvalue
            ax.hist(
                res[key],
                bins=bins,
                histtype="step",
                density=True,
                lw=1.5,
                label=f"ν* = {nu}σ: median {np.median(res[key]):.1f}, KS p vs ν*=0 {ks:.2g}",
            )
        ax.set_xlabel(label)
        ax.set_ylabel("density")
        ax.legend(fontsize=8)
    axes[0].set_title("τ alone (nuisances fitted, not subtracted)")
    axes[1].set_title("t = τ − Δ")
    x = np.linspace(0.05, 4.0, 200)
    for nu in (-2, -1, 1, 2):
        line = axes[2].plot(x, learned.log_ratio(x[:, None], nu), label=f"learned ν = {nu:+d}")
        axes[2].plot(
            x, scale_log_ratio(x, nu, args.scale_sigma), ls="--", color=line[0].get_color()
        )
    axes[2].set_xlabel("x")
    axes[2].set_ylabel("log r(x; ν)")
    axes[2].set_title("momentum scale: learned (solid) vs exact (dashed)")
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------------------------
# study 2: symmetrized test absorbing a detector asymmetry
# ---------------------------------------------------------------------------------------
CASES = {
    "null": {"asymmetry": False, "signal": False},
    "a": {"asymmetry": False, "signal": False},
    "b": {"asymmetry": True, "signal": False},
    "c": {"asymmetry": True, "signal": True},
}
CASE_LABELS = {
    "a": "(a) no asymmetry",
    "b": "(b) detector asymmetry only",
    "c": "(c) asymmetry + LFV-like signal",
}


def study_symmetrized(args: argparse.Namespace) -> dict[str, Any]:
    t0 = time.perf_counter()
    toy = AsymmetryToy(
        args.n_ab,
        args.n_ab,
        scale_sigma=args.asym_scale_sigma,
        eff_sigma=args.asym_eff_sigma,
        norm_sigma=args.asym_norm_sigma,
        signal_events=args.signal,
    )
    scale = learn_deltas(
        scale_variations(rng_for(args.seed, 2, 0), 100_000, args.asym_scale_sigma, source="scale"),
        seed=2,
    )
    eff = learn_deltas(
        efficiency_variations(
            rng_for(args.seed, 2, 1),
            200_000,
            args.asym_eff_sigma,
            eff0=toy.eff0,
            source="eff_shape",
        ),
        seed=3,
    )
    norm = NormalisationNuisance("eff_norm", args.asym_norm_sigma)
    with_nu = NuisanceSet(
        tuple(AsymmetryNuisance(n.name, on_b=n) for n in (scale, eff, norm)), features=("x",)
    )
    statistics = {
        "with": NuisanceSymmetrizedTest(with_nu, (1, 4, 1), fit=NEWTON),
        "without": NuisanceSymmetrizedTest(NuisanceSet((), features=("x",)), (1, 4, 1), fit=NEWTON),
    }
    nu_star = np.array([args.nu_true, args.nu_true, 1.0])
    results: dict[str, dict[str, Any]] = {}
    for i_case, (case, spec) in enumerate(CASES.items()):
        n_toys = args.null_toys if case == "null" else args.case_toys
        truth = nu_star if spec["asymmetry"] else np.zeros(3)
        rng_aux = rng_for(args.seed, 2, 10 + i_case)
        aux = rng_aux.normal(truth, 1.0, size=(n_toys, 3))
        results[case] = {"aux": aux, "nu_star": truth}
        for name, test in statistics.items():
            # the same toys for both statistics: one generator per case, re-seeded
            rng = rng_for(args.seed, 2, 20 + i_case)

            def make(n: int, rng=rng, truth=truth, spec=spec) -> list:
                return [toy.draw(rng, *truth, with_signal=spec["signal"]) for _ in range(n)]

            j = len(test.nuisances)
            start = time.perf_counter()
            res = run_batches(test, make, aux[:, :j], n_toys, args.batch, args.seed + i_case)
            res["seconds"] = time.perf_counter() - start
            results[case][name] = res
            print(
                f"symmetrized {case} {name}: median t {np.median(res['t']):.2f} "
                f"({res['seconds']:.0f} s)",
                flush=True,
            )
    table = {}
    for name, test in statistics.items():
        null_t = results["null"][name]["t"]
        chi2 = fit_chi2_dof(null_t, nominal_dof=test.dof)
        table[name] = {"null_chi2_fit": chi2.to_dict(), "null_median_t": float(np.median(null_t))}
        for case in ("a", "b", "c"):
            t = results[case][name]["t"]
            p_emp = np.array([empirical_pvalue(v, null_t) for v in t])
            p_chi2 = np.asarray(asymptotic_pvalue(t, chi2.dof))
            table[name][case] = {
                "median_t": float(np.median(t)),
                "median_p_empirical": float(np.median(p_emp)),
                "median_p_chi2_fitted_dof": float(np.median(p_chi2)),
                "rejection_rate_p<0.05": float(np.mean(p_emp < 0.05)),
                "rejection_rate_p<0.01": float(np.mean(p_emp < 0.01)),
                "empirical_p_floor": 1.0 / (len(null_t) + 1),
                "converged_fraction": float(np.mean(results[case][name]["converged"])),
            }
            if name == "with":
                table[name][case]["mean_nu_delta"] = {
                    n: float(np.mean(results[case][name][f"nu_delta[{n}]"])) for n in with_nu.names
                }
    payload = {
        "study": "symmetrized",
        "table": table,
        "cases": {k: v for k, v in CASE_LABELS.items()},
        "toys": {
            case: {
                k: (
                    {n: np.asarray(a).tolist() for n, a in v.items()}
                    if isinstance(v, dict)
                    else np.asarray(v).tolist()
                )
                for k, v in r.items()
            }
            for case, r in results.items()
        },
        "config": {
            **{k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "toy": toy.describe(),
            "nu_star_b_c": nu_star.tolist(),
            "tests": {k: v.config() for k, v in statistics.items()},
            "learned_nuisances": {n.name: n.describe() for n in (scale, eff)},
        },
        "seed": args.seed,
        "seconds": time.perf_counter() - t0,
        "provenance": provenance(),
    }
    write_json(args.out / "symmetrized.json", payload)
    plot_symmetrized(results, table, args.out / "symmetrized.png")
    return payload


def plot_symmetrized(results: dict, table: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), sharey=True)
    for ax, name in zip(axes, ("without", "with")):
        hi = max(np.percentile(results[c][name]["t"], 98) for c in results)
        bins = np.linspace(0, hi, 40)
        ax.hist(results["null"][name]["t"], bins=bins, density=True, color="0.8", label="null toys")
        for case in ("a", "b", "c"):
            row = table[name][case]
            ax.hist(
                results[case][name]["t"],
                bins=bins,
                density=True,
                histtype="step",
                lw=1.5,
                label=f"{CASE_LABELS[case]}: median p {row['median_p_empirical']:.3g}",
            )
        ax.set_title(f"symmetrized t {name} detector nuisances")
        ax.set_xlabel("t")
        ax.legend(fontsize=8)
    axes[0].set_ylabel("density")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.study in ("nplm", "all"):
        study_nplm(args)
    if args.study in ("symmetrized", "all"):
        study_symmetrized(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
