"""SM closure of the emu-vs-mue test: null-compatible on Standard-Model samples, any detector.

Given a Standard-Model production (optionally with LFV signal datasets) and an
*independent* production with the same detector (another seed: the "calibration"
sample that stands in for a control region or tag-and-probe), :func:`run_closure`

1. processes the calibration sample with the symmetric ``lfuv`` selection and
   measures the efficiency-ratio map R^ε = ε_μ/ε_e on its background
   (:mod:`symnplm.physics.efficiency`) — the detector's efficiencies are never read
   from its configuration;
2. processes the test sample with the map (and, for comparison, without it);
3. runs the full test on the whole test sample, m_coll and 5D, permutation-calibrated
   with the map's uncertainty redrawn per permutation, with the binned diagnostics;
4. draws pseudo-experiments (PEs) from the test sample by thinning to a luminosity
   L_PE ≪ L_sample (event i kept with probability w_i L_PE / L_sample; two PEs share a
   fraction ~L_PE/L_sample of their events), tests each, and tests one relabelling of
   each (with the map's uncertainty redrawn): the relabellings of all PEs form the
   null, against which every PE gets a p-value. Calibrated means: the PE p-values are
   uniform (KS test), their rate below 0.05 is 5 %, and the observed t's follow the
   null's distribution (two-sample KS). The same is done for every binned diagnostic;
5. injects H→τe at the given branching ratios into PEs at L_signal and reports the
   median Z against the null of relabelled SM PEs at the same luminosity.

Everything is seeded (``seed``); every PE and relabelling is a replica of one batched
fit (:func:`symnplm.inference.toy_null` with a generator). Output: ``closure.json``
and figures in the output directory.
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

from symnplm.config import InjectionSpec, RunConfig
from symnplm.fileio import write_json
from symnplm.inference.calculators import STREAM_TOYS, relabel, replica_rng, toy_null
from symnplm.inference.diagnostics import DiagnosticBinning
from symnplm.inference.significance import empirical_pvalue, p_to_z
from symnplm.provenance import provenance
from symnplm.samples import Sample

__all__ = ["ClosureSettings", "run_closure"]

#: seed streams of the closure (beyond those of the calibration machinery)
_STREAM_PE, _STREAM_SIGNAL, _STREAM_SIGNAL_NULL = 11, 12, 13


@dataclass
class ClosureSettings:
    """What :func:`run_closure` does (defaults: the closure study of the documentation)."""

    test: Path
    calibration: Path
    outdir: Path
    observables: tuple[str, ...] = ("m_coll", "5d")
    pseudo_experiments: int = 200
    pe_luminosity_fb: float = 2.0
    signal_luminosity_fb: float = 10.0
    signal_pseudo_experiments: int = 50
    branching_ratios: tuple[float, ...] = (0.01, 0.005)
    signal_datasets: tuple[str, ...] = ("ggh_htaue", "vbfh_htaue")
    full_permutations: int = 100
    max_iter: int = 50
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
    import hashlib
    import json

    from symnplm.fileio import read_json
    from symnplm.processors.emu import EMuProcessor
    from symnplm.processors.inputs import background_luminosity_fb, load_fileset
    from symnplm.processors.runner import process_fileset

    lumi_fb = background_luminosity_fb(load_fileset(fileset))
    if lumi_fb is None:
        raise ValueError(f"{fileset}: the background datasets record no luminosity_fb")
    proc = EMuProcessor(luminosity=1000.0 * lumi_fb, efficiency=efficiency)
    key = hashlib.sha256(
        json.dumps([str(fileset.resolve()), proc.config()], sort_keys=True, default=str).encode()
    ).hexdigest()[:16]
    marker = out / "closure.json"
    if (out / "manifest.json").exists() and marker.exists() and read_json(marker)["key"] == key:
        return out
    process_fileset(fileset, out, proc, executor="dask", client=client, status=not quiet)
    write_json(marker, {"key": key})
    return out


def _measure_map(calibration: Path, path: Path, settings: ClosureSettings) -> Path:
    from symnplm.processors.efficiency_map import measure_from_output
    from symnplm.processors.inputs import is_signal
    from symnplm.samples import read_manifest

    fileset = read_manifest(calibration)["fileset"]
    background = sorted(d for d, e in fileset.items() if not is_signal(e["metadata"]))
    measure_from_output(
        calibration,
        background,
        seed=settings.seed,
        pt_edges=settings.map_pt_edges,
        abseta_edges=settings.map_eta_edges,
    ).write(path)
    return path


# ---------------------------------------------------------------------------------------
# pseudo-experiments
# ---------------------------------------------------------------------------------------
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
        from symnplm.physics.efficiency import EfficiencyRatio
        from symnplm.samples import read_manifest
        from symnplm.workflow import load_inputs

        # the full sample's own reweighting uncertainty is not needed: each PE gets its own
        inputs = load_inputs(dataclasses.replace(cfg, map_uncertainty=False))
        assert inputs.columns_a is not None and inputs.columns_b is not None
        manifest = read_manifest(cfg.input)
        name = manifest.get("efficiency_map")

        def ratio(s: Sample) -> np.ndarray:
            if not name:
                return np.ones(len(s))
            emap = EfficiencyRatio.read(Path(cfg.input) / name)
            return emap(s.column("pt_e"), s.column("eta_e"))

        lumi = inputs.columns_a.provenance["luminosity_fb"]
        a, b = inputs.columns_a, inputs.columns_b
        return cls(cfg, a, b, ratio(a), ratio(b), float(lumi))

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

    def reweighting(self, a: Sample, b: Sample) -> Any:
        from symnplm.workflow import map_uncertainty

        return map_uncertainty(self.cfg, a, b)


def _relabelled(
    pool: _Pool, a: Sample, b: Sample, rng: np.random.Generator
) -> tuple[Sample, Sample]:
    """One relabelling of A ∪ B, the map's uncertainty redrawn (a null replica)."""
    pooled = Sample.concatenate([a, b])
    wa, wb = relabel(pooled.weights, len(a), rng, pool.reweighting(a, b))
    in_a, in_b = wa > 0, wb > 0
    return (
        Sample(pooled.features[in_a], wa[in_a], pooled.names, {}, "A"),
        Sample(pooled.features[in_b], wb[in_b], pooled.names, {}, "B"),
    )


def _engine(cfg: RunConfig, s: Sample) -> Sample:
    """The engine's view of a column sample: the features, scaled."""
    from symnplm.workflow import scale_features

    return scale_features(s.select(list(cfg.feature_names)), cfg)


def _uniformity(t_obs: np.ndarray, t_null: np.ndarray) -> dict[str, Any]:
    """p-values of t_obs against the pooled null, their KS test, the rate below 0.05."""
    p = np.array([empirical_pvalue(t, t_null) for t in t_obs])
    n = len(p)
    rate = float(np.mean(p < 0.05))
    return {
        "n": n,
        "p_values": p.tolist(),
        "ks_uniform_p": float(stats.kstest(p, "uniform").pvalue),
        "ks_two_sample_p": float(stats.ks_2samp(t_obs, t_null).pvalue),
        "rate_p_below_0.05": rate,
        "rate_sigma": float(np.sqrt(0.05 * 0.95 / n)),
        "t_obs_median": float(np.median(t_obs)),
        "t_null_median": float(np.median(t_null)),
    }


def _pe_campaign(
    pool: _Pool,
    cfg: RunConfig,
    test: Any,
    n: int,
    luminosity_fb: float,
    stream: int,
    settings: ClosureSettings,
    binnings: Sequence[DiagnosticBinning],
    relabelled: bool,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """t of ``n`` PEs (or of one relabelling of each), and their diagnostics' G."""
    seed = int(np.random.SeedSequence(settings.seed, spawn_key=(stream,)).generate_state(1)[0])

    def columns(rng: np.random.Generator) -> tuple[Sample, Sample]:
        a, b = pool.thinned(rng, luminosity_fb)
        return _relabelled(pool, a, b, rng) if relabelled else (a, b)

    def generate(rng: np.random.Generator) -> tuple[Sample, Sample]:
        a, b = columns(rng)
        return _engine(cfg, a), _engine(cfg, b)

    null = toy_null(test, n, generator=generate, seed=seed, batch_size=settings.batch_size)
    diag: dict[str, list[float]] = {d.name: [] for d in binnings}
    for rid in range(n):  # the same PEs again (same seeds): cheap histograms
        a, b = columns(replica_rng(seed, STREAM_TOYS, rid))
        for d in binnings:
            diag[d.name].append(d.statistic(a, b))
    return null.t, {k: np.asarray(v) for k, v in diag.items()}


# ---------------------------------------------------------------------------------------
# the study
# ---------------------------------------------------------------------------------------
def _config(settings: ClosureSettings, processed: Path, observable: str, out: Path) -> RunConfig:
    from symnplm.workflow import emu_vs_mue

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


def _variant(
    settings: ClosureSettings, processed: Path, label: str, client: Any, log: Callable
) -> dict[str, Any]:
    """Full test, SM PEs and (corrected only) signal PEs for every observable."""
    from symnplm import plotting, workflow

    result: dict[str, Any] = {}
    for observable in settings.observables:
        out = settings.outdir / label / observable
        cfg = _config(settings, processed, observable, out / "full")
        start = time.perf_counter()
        full = workflow.run(cfg, client=client)
        plotting.plot_result(cfg.output)
        entry: dict[str, Any] = {
            "full": {
                "t": full.result.t,
                "dof": full.result.dof,
                "p_value": full.result.p_value,
                "z": full.result.z,
                "n_permutations": settings.full_permutations,
                "events": [len(full.a), len(full.b)],
                "diagnostics": [d.to_dict() for d in full.diagnostics],
                "seconds": time.perf_counter() - start,
            }
        }
        log(
            f"{label}/{observable}: full sample t = {full.result.t:.2f}, "
            f"p = {full.result.p_value:.3g}; smallest binned p = "
            f"{min(d.p_value for d in full.diagnostics):.3g}"
        )
        pool = _Pool.load(dataclasses.replace(cfg, output=None))
        test = workflow.build_test(cfg.statistic, full.a, full.b)
        binnings = [
            DiagnosticBinning.quantiles(name, cols, pool.a, pool.b)
            for name, cols in workflow.DIAGNOSTICS.items()
        ]
        start = time.perf_counter()
        campaign = (pool, cfg, test, settings.pseudo_experiments, settings.pe_luminosity_fb)
        t_obs, g_obs = _pe_campaign(*campaign, _STREAM_PE, settings, binnings, relabelled=False)
        t_null, g_null = _pe_campaign(*campaign, _STREAM_PE, settings, binnings, relabelled=True)
        entry["pseudo_experiments"] = {
            "luminosity_fb": settings.pe_luminosity_fb,
            "sample_luminosity_fb": pool.luminosity_fb,
            "shared_fraction": settings.pe_luminosity_fb / pool.luminosity_fb,
            "test": _uniformity(t_obs, t_null) | {"t": t_obs.tolist(), "t_null": t_null.tolist()},
            "diagnostics": {k: _uniformity(g_obs[k], g_null[k]) for k in g_obs},
            "seconds": time.perf_counter() - start,
        }
        u = entry["pseudo_experiments"]["test"]
        log(
            f"{label}/{observable}: {settings.pseudo_experiments} PEs at "
            f"{settings.pe_luminosity_fb:g} fb^-1: KS p = {u['ks_uniform_p']:.3g}, "
            f"rate(p < 0.05) = {u['rate_p_below_0.05']:.3f}"
        )
        if label == "corrected" and settings.branching_ratios:
            entry["signal"] = _signal(settings, pool, cfg, test, log, observable)
        result[observable] = entry
    return result


def _signal(
    settings: ClosureSettings, pool: _Pool, cfg: RunConfig, test: Any, log: Callable, obs: str
) -> dict[str, Any]:
    """Median Z of PEs with H→τe injected, against relabelled SM PEs at the same luminosity."""
    from symnplm.samples import read_manifest

    present = set(read_manifest(cfg.input)["fileset"])
    datasets = [d for d in settings.signal_datasets if d in present]
    if not datasets:
        raise ValueError(
            f"none of the signal datasets {list(settings.signal_datasets)} is in {cfg.input}; "
            "give --signal-datasets or --brs without values"
        )
    n, lumi = settings.signal_pseudo_experiments, settings.signal_luminosity_fb
    campaign = (pool, cfg, test, n, lumi)
    t_null, _ = _pe_campaign(*campaign, _STREAM_SIGNAL_NULL, settings, [], relabelled=True)
    out: dict[str, Any] = {"luminosity_fb": lumi, "n_null": n, "datasets": datasets, "points": []}
    for br in settings.branching_ratios:
        inject = InjectionSpec(branching_ratio=br, datasets=datasets)
        signal_pool = _Pool.load(dataclasses.replace(cfg, inject=inject, output=None))
        t, _ = _pe_campaign(
            signal_pool, cfg, test, n, lumi, _STREAM_SIGNAL, settings, [], relabelled=False
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
    from symnplm.campaign import dask_client

    settings.outdir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    summary: dict[str, Any] = {
        "kind": "symnplm-closure",
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(settings).items()},
        "seed": settings.seed,
        "provenance": provenance(),
        "variants": {},
    }
    with dask_client(settings.workers) as client:
        calibration = _process(
            settings.calibration, settings.outdir / "calibration", client, None, settings.quiet
        )
        emap = _measure_map(calibration, settings.outdir / "efficiency_map.json", settings)
        log(f"efficiency map measured on {settings.calibration}: {emap}")
        variants = {"corrected": emap}
        if settings.uncorrected:
            variants["uncorrected"] = None
        for label, efficiency in variants.items():
            processed = _process(
                settings.test, settings.outdir / f"test_{label}", client, efficiency, settings.quiet
            )
            summary["variants"][label] = _variant(settings, processed, label, client, log)
    summary["seconds"] = time.perf_counter() - start
    write_json(settings.outdir / "closure.json", summary)
    plotting.plot_closure(summary, settings.outdir)
    return summary
