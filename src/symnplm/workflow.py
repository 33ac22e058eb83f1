"""From a run description to a result directory: samples → test → calibration → booking.

:func:`prepare_samples` assembles A and B (processor output, parquet files or the toy
model), :func:`build_test` the statistic, and :func:`run` does the whole chain: the
observed fit here, the null replicas as a resumable :mod:`~symnplm.campaign` on a
dask cluster, then :func:`symnplm.booking.write_result`.

Result directory (``cfg.output``)::

    run.json             t, p, Z, dof, configuration, seed, versions, timing
    config.yaml          the run description (``symnplm test --config`` reruns it)
    result.json, arrays.npz   the CalibrationResult (fitted parameters, null t values)
    hists.pkl            hist objects (see symnplm.booking)
    campaign/            one file per finished batch of null replicas
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from symnplm.config import ConfigError, RunConfig, StatisticSpec
from symnplm.engine import FitConfig
from symnplm.inference.calculators import calibrated
from symnplm.inference.results import CalibrationResult
from symnplm.inference.significance import asymptotic_pvalue, asymptotic_z
from symnplm.inference.test_statistics import (
    BinnedTest,
    CrossEntropyTest,
    NPLMTest,
    SymmetrizedTest,
    TwoSampleTest,
    quantile_edges,
)
from symnplm.processors.inputs import background_luminosity_fb, is_signal
from symnplm.samples import Sample, load_sample, read_manifest

#: seed stream of the unweighting (streams 0-2 are network inits, permutations, toys)
STREAM_UNWEIGHT = 3


# ---------------------------------------------------------------------------------------
# samples
# ---------------------------------------------------------------------------------------
def unweight(
    sample: Sample, rng: np.random.Generator, method: str = "poisson", name: str | None = None
) -> Sample:
    """Pseudo-data with unit weights from a weighted sample.

    Parameters
    ----------
    sample
        Weighted events (non-negative weights).
    rng
        Random generator (explicit, so pseudo-data are reproducible).
    method
        ``"poisson"``: event i appears k_i ~ Poisson(w_i) times, so counts fluctuate as
        in data (E[k] = w, Var[k] = w). ``"accept-reject"``: k_i = ⌊w_i⌋ plus one with
        probability w_i - ⌊w_i⌋ (for w ≤ 1 the usual accept-reject with acceptance w).

    Returns
    -------
    Sample
        Events repeated k_i times, unit weights; the provenance records the method.
    """
    w = sample.weights
    if np.any(w < 0):
        i = int(np.argmax(w < 0))
        raise ValueError(
            f"sample {sample.name!r}: cannot unweight a negative weight ({w[i]} at event {i})"
        )
    if method == "poisson":
        k = rng.poisson(w)
    elif method == "accept-reject":
        base = np.floor(w)
        k = base.astype(np.int64) + (rng.random(w.size) < (w - base))
    else:
        raise ValueError(f"unweighting method must be 'poisson' or 'accept-reject', got {method!r}")
    index = np.repeat(np.arange(len(sample)), k)
    if index.size == 0:
        raise ValueError(f"sample {sample.name!r}: unweighting left no event (Σw = {w.sum():.3g})")
    prov = {**sample.provenance, "unweighted": {"method": method, "sum_weights": float(w.sum())}}
    return Sample(sample.features[index], None, sample.names, prov, name or sample.name)


def _processed_sample(cfg: RunConfig, which: str, rng: np.random.Generator) -> Sample:
    spec = getattr(cfg, which)
    manifest = read_manifest(cfg.input)
    fileset = manifest.get("fileset", {})
    lumi_pb = manifest.get("config", {}).get("luminosity_pb")
    target_fb = cfg.luminosity_fb or background_luminosity_fb(fileset)
    datasets = spec.datasets or sorted(
        d for d, e in fileset.items() if not is_signal(e.get("metadata", {}))
    )
    if not datasets:
        raise ConfigError(f"{which}.datasets: {cfg.input} has no non-signal dataset; name them")
    factors = dict.fromkeys(datasets, 1.0)
    if cfg.inject is not None and cfg.inject.branching_ratio > 0:
        for d in cfg.inject.datasets:
            meta = fileset.get(d, {}).get("metadata", {})
            ref = meta.get("lfv_branching_ratio")
            if not ref:
                raise ConfigError(
                    f"inject.datasets: {d!r} in {cfg.input} has no lfv_branching_ratio metadata "
                    "to rescale"
                )
            factors[d] = factors.get(d, 0.0) + cfg.inject.branching_ratio / float(ref)
    parts = []
    for d, factor in factors.items():
        meta = fileset.get(d, {}).get("metadata", {})
        # simulation (xsec in the metadata) was normalised to the processor's luminosity
        if target_fb is not None and lumi_pb and "xsec" in meta:
            factor *= target_fb * 1000.0 / float(lumi_pb)
        s = load_sample(cfg.input, d, spec.category, spec.variation, list(cfg.feature_names))
        parts.append(s.scaled(factor) if factor != 1.0 else s)
    sample = Sample.concatenate(parts, name=f"{spec.category}/{spec.variation}")
    prov = {
        "input": str(cfg.input),
        "datasets": list(factors),
        "weight_factors": factors,
        "category": spec.category,
        "variation": spec.variation,
        "luminosity_fb": target_fb,
    }
    sample = Sample(sample.features, sample.weights, sample.names, prov, sample.name)
    if cfg.unweight != "none":
        sample = unweight(sample, rng, cfg.unweight)
    return sample


def prepare_samples(cfg: RunConfig) -> tuple[Sample, Sample]:
    """A and B as the engine sees them (features scaled, pseudo-data if asked).

    Randomness (unweighting, toy model) comes from ``(cfg.seed, STREAM_UNWEIGHT)`` only.
    """
    rng = np.random.default_rng(np.random.SeedSequence(cfg.seed, spawn_key=(STREAM_UNWEIGHT,)))
    if cfg.source == "toy":
        from symnplm.toymodels import ToyModel

        toy = cfg.toy
        return ToyModel(toy.n_a, toy.n_b, toy.signal, toy.n_signal)(rng)
    if cfg.source == "parquet":
        # without explicit features a parquet sample brings all its columns
        wanted = None if cfg.features is None else list(cfg.feature_names)
        a = Sample.from_parquet(cfg.a.path, wanted, "A")
        b = Sample.from_parquet(cfg.b.path, wanted, "B")
        if cfg.unweight != "none":
            a, b = unweight(a, rng, cfg.unweight), unweight(b, rng, cfg.unweight)
    else:
        a = _processed_sample(cfg, "a", rng)
        b = _processed_sample(cfg, "b", rng)
    names = list(a.names)
    factors = {**{f: 1.0 for f in names}, **cfg.feature_scale()}
    scale = np.array([factors[f] for f in names])
    if np.any(scale != 1.0):
        a, b = (
            Sample(
                s.features * scale,
                s.weights,
                s.names,
                {**s.provenance, "feature_scale": dict(zip(names, scale.tolist()))},
                s.name,
            )
            for s in (a, b)
        )
    return a, b


# ---------------------------------------------------------------------------------------
# statistic
# ---------------------------------------------------------------------------------------
def build_test(spec: StatisticSpec, a: Sample, b: Sample) -> TwoSampleTest:
    """The statistic of ``spec`` for samples with ``a.dim`` features.

    The default architecture is (d, 4, 1), the paper's 1-4-1 in one dimension.
    """
    if spec.method == "binned":
        return BinnedTest(quantile_edges(Sample.concatenate([a, b]), spec.bins))
    fit = FitConfig(
        optimizer=spec.optimizer,
        epochs=spec.epochs,
        max_iter=spec.max_iter,
        clip=spec.clip,
        record_every=spec.record_every,
        dtype=spec.dtype,
        device=spec.device,
    )
    arch = tuple(spec.architecture) if spec.architecture else (a.dim, 4, 1)
    if arch[0] != a.dim:
        raise ConfigError(
            f"statistic.architecture: input layer {arch[0]} but {a.dim} feature(s) {a.names}"
        )
    cls = {"symmetrized": SymmetrizedTest, "nplm": NPLMTest, "crossentropy": CrossEntropyTest}[
        spec.method
    ]
    return cls(arch, fit=fit)


# ---------------------------------------------------------------------------------------
# the chain
# ---------------------------------------------------------------------------------------
Progress = Callable[[int, int], None]


@dataclass
class RunOutcome:
    """What :func:`run` produced."""

    config: RunConfig
    a: Sample
    b: Sample
    result: CalibrationResult
    timing: dict[str, float]
    directory: Path | None


def run(
    cfg: RunConfig,
    *,
    client: Any = None,
    progress: Progress | None = None,
    max_batches: int | None = None,
) -> RunOutcome:
    """Run the test described by ``cfg`` and (if ``cfg.output``) write its result directory.

    Parameters
    ----------
    cfg
        The run description.
    client
        A ``distributed.Client`` for the null campaign; default: one made from
        ``cfg.calibration`` (local cluster or ``scheduler``).
    progress
        ``progress(done, total)`` after every finished batch.
    max_batches
        Compute at most this many new batches, then stop with
        :class:`~symnplm.campaign.CampaignIncomplete` (used to test resumption).
    """
    from symnplm import booking
    from symnplm.campaign import Campaign

    timing: dict[str, float] = {}
    start = time.perf_counter()
    a, b = prepare_samples(cfg)
    test = build_test(cfg.statistic, a, b)
    timing["samples_s"] = time.perf_counter() - start
    out = Path(cfg.output) if cfg.output is not None else None
    if out is not None:
        from symnplm.config import dump_yaml

        dump_yaml(cfg, out / "config.yaml")

    t0 = time.perf_counter()
    observed = test.fit(a, b, seed=cfg.seed)
    timing["observed_fit_s"] = time.perf_counter() - t0

    cal = cfg.calibration
    t0 = time.perf_counter()
    if cal.method == "asymptotic":
        result = CalibrationResult(
            observed,
            "asymptotic",
            float(asymptotic_pvalue(observed.t, observed.dof)),
            float(asymptotic_z(observed.t, observed.dof)),
        )
    else:
        campaign = Campaign(
            out / "campaign" if out is not None else None,
            test,
            a,
            b,
            method=cal.method,
            n=int(cal.n),
            seed=cfg.seed,
            batch_size=cal.batch_size,
        )
        null = campaign.run(
            client=client,
            workers=cal.workers,
            scheduler=cal.scheduler,
            progress=progress,
            max_batches=max_batches,
        )
        result = calibrated(observed, null)
    timing["calibration_s"] = time.perf_counter() - t0
    timing["total_s"] = time.perf_counter() - start
    if out is not None:
        booking.write_result(out, cfg, result, a, b, timing)
    return RunOutcome(cfg, a, b, result, timing, out)
