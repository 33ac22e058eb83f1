"""SM closure of the emu-vs-mue test: null-compatible on Standard-Model samples, any detector.

Given two independent Standard-Model productions with the same detector — the *test*
production (optionally with LFV signal datasets) and the *calibration* production
(another seed) — :func:`run_closure`

1. processes both with the symmetric ``lfuv`` selection and measures the
   efficiency-ratio map R^ε = ε_μ/ε_e on the background of each
   (:mod:`symnplm.physics.efficiency`): the detector's efficiencies are never read
   from its configuration;
2. processes each production again with the map measured on the *other* one (so both
   serve as test samples, each corrected by an independent map), and keeps the
   uncorrected outputs for comparison;
3. runs the full test on each whole sample, m_coll and 5D, permutation-calibrated with
   the map's uncertainty redrawn per permutation, with the binned diagnostics;
4. splits each sample into ``splits`` disjoint pseudo-experiments (PEs) at random
   (every event in exactly one; simulated events are independent, so are the PEs),
   tests each, and tests ``relabellings`` relabellings of each (with the map's
   uncertainty redrawn): the relabellings of all PEs form the null against which every
   PE gets a p-value.
   Calibrated means: the PE p-values are uniform (KS test), their rate below 0.05 is
   5 %, and the observed t's follow the null's distribution (two-sample KS). The same
   for every binned diagnostic. The PEs of one sample share its map, whose error is
   small against theirs (a fraction ~1/splits of the map's sample);
5. injects H→τe at the given branching ratios into PEs thinned from the test sample
   at L_signal (event i kept with probability w_i L_signal / L_sample) and reports the
   median Z against the null of relabelled SM PEs thinned the same way.

Everything is seeded (``seed``); the PEs and relabellings of a batch are replicas of
one batched fit (:func:`symnplm.inference.calculators.pairs_batch`). Output:
``closure.json`` and figures in the output directory.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from symnplm.inference.calculators import pairs_batch, relabel
from symnplm.inference.diagnostics import DiagnosticBinning
from symnplm.inference.significance import empirical_pvalue, p_to_z
from symnplm.inference.streams import (
    STREAM_CLOSURE_RELABEL,
    STREAM_CLOSURE_SIGNAL,
    STREAM_CLOSURE_SIGNAL_NULL,
    STREAM_CLOSURE_SPLIT,
    replica_rng,
    stream_rng,
)
from symnplm.io.files import write_json
from symnplm.io.provenance import provenance
from symnplm.io.samples import Sample
from symnplm.workflow.config import InjectionSpec, RunConfig, StatisticSpec

__all__ = ["ClosureSettings", "run_closure"]

#: the two productions, each tested with the map of the other
SOURCES = ("test", "calibration")


@dataclass
class ClosureSettings:
    """What :func:`run_closure` does (defaults: the closure study of the documentation)."""

    test: Path
    calibration: Path
    outdir: Path
    observables: tuple[str, ...] = ("m_coll", "5d")
    splits: int = 50
    #: relabellings of every PE in the null (their pool sets each PE's p-value)
    relabellings: int = 20
    signal_luminosity_fb: float = 10.0
    signal_pseudo_experiments: int = 50
    branching_ratios: tuple[float, ...] = (0.01, 0.005)
    signal_datasets: tuple[str, ...] = ("ggh_htaue", "vbfh_htaue")
    full_permutations: int = 100
    max_iter: int = StatisticSpec.max_iter
    workers: int = 2
    batch_size: int = 25
    seed: int = 1
    uncorrected: bool = True
    #: bin edges of the efficiency map (``None``: the defaults of symnplm.physics.efficiency)
    map_pt_edges: tuple[float, ...] | None = None
    map_eta_edges: tuple[float, ...] | None = None
    quiet: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------
# processing
# ---------------------------------------------------------------------------------------
def _process(fileset: Path, out: Path, client: Any, efficiency: Path | None, quiet: bool) -> Path:
    """Processor output of ``fileset`` (reused if complete with the same configuration)."""
    from symnplm.io.filesets import background_luminosity_fb, load_fileset
    from symnplm.processors.emu import EMuProcessor
    from symnplm.processors.runner import process_once

    lumi_fb = background_luminosity_fb(load_fileset(fileset))
    if lumi_fb is None:
        raise ValueError(f"{fileset}: the background datasets record no luminosity_fb")
    proc = EMuProcessor(luminosity_fb=lumi_fb, efficiency=efficiency)
    process_once(fileset, out, proc, executor="dask", client=client, status=not quiet)
    return out


def _measure_map(processed: Path, path: Path, settings: ClosureSettings) -> Path:
    """The map of ``processed``'s background, written to ``path``."""
    from symnplm.io.filesets import is_signal
    from symnplm.io.samples import read_manifest
    from symnplm.processors.efficiency_map import measure_from_output

    fileset = read_manifest(processed)["fileset"]
    background = sorted(d for d, e in fileset.items() if not is_signal(e["metadata"]))
    measure_from_output(
        processed,
        background,
        seed=settings.seed,
        pt_edges=settings.map_pt_edges,
        abseta_edges=settings.map_eta_edges,
    ).write(path)
    return path


# ---------------------------------------------------------------------------------------
# pseudo-experiments
# ---------------------------------------------------------------------------------------
def _processed(cfg: RunConfig) -> Path:
    """The processor output that ``cfg`` (made by :func:`_config`) reads."""
    if cfg.input is None:
        raise ValueError("the closure study reads processor output: the run has no input")
    return Path(cfg.input)


@dataclass
class _Pool:
    """The weighted emu and mue samples of a processed production, with every column."""

    cfg: RunConfig
    a: Sample  # columns, weights w = w_mc · R(electron)
    b: Sample
    ratio_a: np.ndarray  # R at the electron of each event (1 without a map)
    ratio_b: np.ndarray
    luminosity_fb: float

    @classmethod
    def load(cls, cfg: RunConfig) -> _Pool:
        from symnplm.io.samples import efficiency_map_path
        from symnplm.physics.efficiency import EfficiencyRatio
        from symnplm.workflow.runs import load_inputs

        # the whole sample's own reweighting uncertainty is not needed: each PE gets its own
        inputs = load_inputs(dataclasses.replace(cfg, map_uncertainty=False))
        assert inputs.columns_a is not None and inputs.columns_b is not None
        path = efficiency_map_path(_processed(cfg))
        emap = EfficiencyRatio.read(path) if path is not None else None

        def ratio(s: Sample) -> np.ndarray:
            return np.ones(len(s)) if emap is None else emap(s.column("pt_e"), s.column("eta_e"))

        a, b = inputs.columns_a, inputs.columns_b
        lumi = float(a.provenance["luminosity_fb"])
        return cls(cfg, a, b, ratio(a), ratio(b), lumi)

    def split(self, splits: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """Disjoint random groups of the events of A and of B: (index in A, index in B)."""
        rng = stream_rng(seed, STREAM_CLOSURE_SPLIT)
        group_a = rng.permutation(len(self.a)) % splits
        group_b = rng.permutation(len(self.b)) % splits
        return [(np.flatnonzero(group_a == k), np.flatnonzero(group_b == k)) for k in range(splits)]

    def part(self, index_a: np.ndarray, index_b: np.ndarray) -> tuple[Sample, Sample]:
        """The events ``index_a`` of A and ``index_b`` of B, with their weights."""
        return self.a.take(index_a, "A"), self.b.take(index_b, "B")

    def thinned(self, rng: np.random.Generator, luminosity_fb: float) -> tuple[Sample, Sample]:
        """A PE at ``luminosity_fb``: event i kept with probability w_mc,i L / L_sample,
        then weighted by R at its electron (data-like events, corrected)."""
        f = luminosity_fb / self.luminosity_fb
        out = []
        for s, r in ((self.a, self.ratio_a), (self.b, self.ratio_b)):
            p = f * s.weights / r
            if np.any(p > 1):
                raise ValueError(
                    f"pseudo-experiments at {luminosity_fb} fb^-1 need weights w·L/L_sample <= 1 "
                    f"(max {p.max():.3g}): generate more simulation or lower the luminosity"
                )
            keep = rng.random(len(p)) < p
            out.append(Sample(s.features[keep], r[keep], s.names, {}, s.name))
        return out[0], out[1]

    def relabelled(self, a: Sample, b: Sample, rng: np.random.Generator) -> tuple[Sample, Sample]:
        """One relabelling of A ∪ B, the map's uncertainty redrawn (a null replica)."""
        from symnplm.workflow.runs import map_uncertainty

        pooled = Sample.concatenate([a, b])
        wa, wb = relabel(pooled.weights, len(a), rng, map_uncertainty(self.cfg, a, b))
        in_a, in_b = wa > 0, wb > 0
        return (
            Sample(pooled.features[in_a], wa[in_a], pooled.names, {}, "A"),
            Sample(pooled.features[in_b], wb[in_b], pooled.names, {}, "B"),
        )


def _engine(cfg: RunConfig, s: Sample) -> Sample:
    """The engine's view of a column sample: the features, scaled."""
    from symnplm.workflow.runs import scale_features

    return scale_features(s.select(list(cfg.feature_names)), cfg)


def _fit_all(
    test: Any, cfg: RunConfig, pairs: Sequence[tuple[Sample, Sample]], seed: int, batch: int
) -> np.ndarray:
    """t of every (A, B) column-sample pair, in batched fits of ``batch`` replicas."""
    t = []
    for start in range(0, len(pairs), batch):
        chunk = [(_engine(cfg, a), _engine(cfg, b)) for a, b in pairs[start : start + batch]]
        t.append(pairs_batch(test, chunk, seed, range(start, start + len(chunk))).t)
    return np.concatenate(t)


def _uniformity(t_obs: np.ndarray, t_null: np.ndarray) -> dict[str, Any]:
    """p-values of t_obs against the pooled null, their KS test, the rate below 0.05."""
    p = np.array([empirical_pvalue(t, t_null) for t in t_obs])
    n = len(p)
    return {
        "n": n,
        "p_values": p.tolist(),
        "ks_uniform_p": float(stats.kstest(p, "uniform").pvalue),
        "ks_two_sample_p": float(stats.ks_2samp(t_obs, t_null).pvalue),
        "rate_p_below_0.05": float(np.mean(p < 0.05)),
        "rate_sigma": float(np.sqrt(0.05 * 0.95 / n)),
        "t_obs_median": float(np.median(t_obs)),
        "t_null_median": float(np.median(t_null)),
    }


def _split_campaign(
    pool: _Pool, test: Any, settings: ClosureSettings, binnings: Sequence[DiagnosticBinning]
) -> dict[str, Any]:
    """t and diagnostics of the disjoint PEs of one sample and of one relabelling of each."""
    seed, r = settings.seed, settings.relabellings
    observed = [pool.part(ia, ib) for ia, ib in pool.split(settings.splits, seed)]
    null = [
        pool.relabelled(a, b, replica_rng(seed, STREAM_CLOSURE_RELABEL, k * r + j))
        for k, (a, b) in enumerate(observed)
        for j in range(r)
    ]
    out: dict[str, Any] = {
        "t": _fit_all(test, pool.cfg, observed, seed, settings.batch_size),
        "t_null": _fit_all(test, pool.cfg, null, seed, settings.batch_size),
        "g": {d.name: np.array([d.statistic(a, b) for a, b in observed]) for d in binnings},
        "g_null": {d.name: np.array([d.statistic(a, b) for a, b in null]) for d in binnings},
        "events": [[len(a), len(b)] for a, b in observed],
    }
    return out


# ---------------------------------------------------------------------------------------
# the study
# ---------------------------------------------------------------------------------------
def _config(settings: ClosureSettings, processed: Path, observable: str, out: Path) -> RunConfig:
    from symnplm.workflow.runs import emu_vs_mue

    return emu_vs_mue(
        processed,
        observable,
        permutations=settings.full_permutations,
        max_iter=settings.max_iter,
        seed=settings.seed,
        output=out,
        batch_size=settings.batch_size,
        workers=settings.workers,
    )


def _full(cfg: RunConfig, client: Any) -> tuple[dict[str, Any], Any]:
    """The full-sample test of ``cfg`` (figures in its result directory)."""
    from symnplm import plotting
    from symnplm.workflow import runs as workflow

    start = time.perf_counter()
    full = workflow.run(cfg, client=client)
    if full.directory is not None:  # _config always gives an output
        plotting.plot_result(full.directory)
    summary = {
        "t": full.result.t,
        "dof": full.result.dof,
        "p_value": full.result.p_value,
        "z": full.result.z,
        "n_permutations": len(full.result.null) if full.result.null is not None else 0,
        "events": [len(full.a), len(full.b)],
        "diagnostics": [d.to_dict() for d in full.diagnostics],
        "seconds": time.perf_counter() - start,
    }
    return summary, full


def _variant(
    settings: ClosureSettings,
    processed: dict[str, Path],
    label: str,
    client: Any,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Full tests, split PEs and (corrected only) signal PEs for every observable."""
    from symnplm.workflow import runs as workflow

    result: dict[str, Any] = {}
    # every observable sees the same PEs and relabellings: their diagnostics are computed once
    pe_diagnostics: dict[str, Any] | None = None
    for observable in settings.observables:
        entry: dict[str, Any] = {"full": {}, "pseudo_experiments": {"by_sample": {}}}
        t_obs, t_null = [], []
        g_obs: dict[str, list[np.ndarray]] = {}
        g_null: dict[str, list[np.ndarray]] = {}
        test = test_cfg = test_pool = None
        for source in SOURCES:
            out = settings.outdir / label / observable / source
            cfg = _config(settings, processed[source], observable, out)
            entry["full"][source], full = _full(cfg, client)
            f = entry["full"][source]
            log(
                f"{label}/{observable}/{source}: whole sample t = {f['t']:.2f}, "
                f"p = {f['p_value']:.3g}; smallest binned p = "
                f"{min(d['p_value'] for d in f['diagnostics']):.3g}"
            )
            pool = _Pool.load(dataclasses.replace(cfg, output=None))
            test = workflow.build_test(cfg.statistic, full.a, full.b)
            binnings = [] if pe_diagnostics is not None else [
                DiagnosticBinning.quantiles(name, cols, pool.a, pool.b)
                for name, cols in workflow.DIAGNOSTICS.items()
            ]  # fmt: skip
            start = time.perf_counter()
            pe = _split_campaign(pool, test, settings, binnings)
            entry["pseudo_experiments"]["by_sample"][source] = {
                "luminosity_fb": pool.luminosity_fb / settings.splits,
                "events": pe["events"],
                "test": _uniformity(pe["t"], pe["t_null"]),
                "seconds": time.perf_counter() - start,
            }
            t_obs.append(pe["t"])
            t_null.append(pe["t_null"])
            for name in pe["g"]:
                g_obs.setdefault(name, []).append(pe["g"][name])
                g_null.setdefault(name, []).append(pe["g_null"][name])
            if source == "test":
                test_cfg, test_pool = cfg, pool
        t, tn = np.concatenate(t_obs), np.concatenate(t_null)
        if pe_diagnostics is None:
            pe_diagnostics = {
                k: _uniformity(np.concatenate(g_obs[k]), np.concatenate(g_null[k])) for k in g_obs
            }
        lumi = entry["pseudo_experiments"]["by_sample"]["test"]["luminosity_fb"]
        entry["pseudo_experiments"] |= {
            "splits": settings.splits,
            "luminosity_fb": lumi,
            "test": _uniformity(t, tn) | {"t": t.tolist(), "t_null": tn.tolist()},
            "diagnostics": pe_diagnostics,
        }
        u = entry["pseudo_experiments"]["test"]
        log(
            f"{label}/{observable}: {u['n']} disjoint PEs of {lumi:.2g} fb^-1: "
            f"KS p = {u['ks_uniform_p']:.3g}, rate(p < 0.05) = {u['rate_p_below_0.05']:.3f}"
        )
        if label == "corrected" and settings.branching_ratios:
            assert test_cfg is not None and test_pool is not None
            entry["signal"] = _signal(settings, test_pool, test_cfg, test, log, observable)
        result[observable] = entry
    return result


def _signal(
    settings: ClosureSettings, pool: _Pool, cfg: RunConfig, test: Any, log: Callable, obs: str
) -> dict[str, Any]:
    """Median Z of PEs with H→τe injected, against relabelled SM PEs at the same luminosity."""
    from symnplm.io.samples import read_manifest

    present = set(read_manifest(_processed(cfg))["fileset"])
    datasets = [d for d in settings.signal_datasets if d in present]
    if not datasets:
        raise ValueError(
            f"none of the signal datasets {list(settings.signal_datasets)} is in {cfg.input}; "
            "give --signal-datasets or --brs without values"
        )
    n, lumi, seed = settings.signal_pseudo_experiments, settings.signal_luminosity_fb, settings.seed

    def thinned(p: _Pool, stream: int) -> list[tuple[Sample, Sample]]:
        return [p.thinned(replica_rng(seed, stream, k), lumi) for k in range(n)]

    null = [
        pool.relabelled(a, b, replica_rng(seed, STREAM_CLOSURE_SIGNAL_NULL, k))
        for k, (a, b) in enumerate(thinned(pool, STREAM_CLOSURE_SIGNAL_NULL))
    ]
    t_null = _fit_all(test, cfg, null, seed, settings.batch_size)
    out: dict[str, Any] = {"luminosity_fb": lumi, "n_null": n, "datasets": datasets, "points": []}
    for br in settings.branching_ratios:
        inject = InjectionSpec(branching_ratio=br, datasets=datasets)
        signal_pool = _Pool.load(dataclasses.replace(cfg, inject=inject, output=None))
        t = _fit_all(
            test, cfg, thinned(signal_pool, STREAM_CLOSURE_SIGNAL), seed, settings.batch_size
        )
        z = np.array([p_to_z(empirical_pvalue(v, t_null)) for v in t])
        q = np.percentile(z, [16, 50, 84], method="inverted_cdf").tolist()
        out["points"].append(
            {"branching_ratio": br, "t": t.tolist(), "z": z.tolist(), "z_quantiles": q}
        )
        log(f"corrected/{obs}: BR = {br:g} at {lumi:g} fb^-1: median Z = {q[1]:.2f}")
    return out


def run_closure(settings: ClosureSettings, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the closure study (module docstring); writes ``closure.json`` and figures."""
    from symnplm import plotting
    from symnplm.workflow.cluster import dask_client

    if settings.splits < 2:
        raise ValueError(f"splits must be >= 2, got {settings.splits}")
    out = settings.outdir
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    summary: dict[str, Any] = {
        "kind": "symnplm-closure",
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(settings).items()},
        "seed": settings.seed,
        "provenance": provenance(),
        "variants": {},
    }
    filesets = {"test": settings.test, "calibration": settings.calibration}
    with dask_client(settings.workers) as client:
        raw = {
            s: _process(filesets[s], out / f"{s}_uncorrected", client, None, settings.quiet)
            for s in SOURCES
        }
        # each production is corrected with the map of the other one
        maps = {
            s: _measure_map(raw[s], out / f"efficiency_map_{s}.json", settings) for s in SOURCES
        }
        log(f"efficiency maps measured on {settings.test} and {settings.calibration}")
        other = dict(zip(SOURCES, reversed(SOURCES)))
        corrected = {
            s: _process(filesets[s], out / f"{s}_corrected", client, maps[other[s]], settings.quiet)
            for s in SOURCES
        }
        variants = {"corrected": corrected}
        if settings.uncorrected:
            variants["uncorrected"] = raw
        for label, processed in variants.items():
            summary["variants"][label] = _variant(settings, processed, label, client, log)
    summary["seconds"] = time.perf_counter() - start
    write_json(out / "closure.json", summary)
    plotting.plot_closure(summary, out)
    return summary
