"""From a run description to a result directory: samples → test → calibration → booking.

:func:`prepare_samples` assembles A and B (processor output, parquet files or the toy
model), :func:`build_test` the statistic, and :func:`run` does the whole chain: the
observed fit here, the null replicas as a resumable :mod:`~symnplm.workflow.campaign` on a
dask cluster, then :func:`symnplm.io.booking.write_result`.

Every result on processor output carries binned diagnostics (G-tests per feature and
in the (η_lead, η_sub) plane, :mod:`symnplm.inference.diagnostics`) calibrated like the
test; when the processor applied an efficiency map, its bin-by-bin uncertainty is
redrawn in every null replica (:mod:`symnplm.inference.reweighting`).

Result directory (``cfg.output``)::

    run.json             t, p, Z, dof, diagnostics, configuration, seed, versions, timing
    config.yaml          the run description (``symnplm test --config`` reruns it)
    result.json, arrays.npz   the CalibrationResult (fitted parameters, null t values)
    hists.json           hist objects (see symnplm.io.booking)
    hists.root           the same histograms as ROOT TH1D/TH2D/TProfile (uproot)
    campaign/            one file per finished batch of null replicas
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from symnplm.engine import FitConfig
from symnplm.inference.calculators import calibrated
from symnplm.inference.diagnostics import BinnedDiagnostic, binned_diagnostics
from symnplm.inference.results import CalibrationResult
from symnplm.inference.reweighting import ReweightingUncertainty
from symnplm.inference.significance import asymptotic_pvalue, asymptotic_z
from symnplm.inference.streams import STREAM_NUISANCE, STREAM_UNWEIGHT, stream_rng, stream_seeds
from symnplm.inference.test_statistics import (
    BinnedTest,
    CrossEntropyTest,
    NPLMTest,
    SymmetrizedTest,
    TwoSampleTest,
    quantile_edges,
)
from symnplm.io.files import check_writable_directory
from symnplm.io.filesets import background_luminosity_fb, is_mc, is_signal
from symnplm.io.samples import (
    MANIFEST_NAME,
    Sample,
    efficiency_map_path,
    load_sample,
    read_manifest,
)
from symnplm.workflow.config import ConfigError, RunConfig, StatisticSpec

if TYPE_CHECKING:
    from symnplm.physics.efficiency import EfficiencyRatio
    from symnplm.systematics import NuisanceSet

__all__ = [
    "DIAGNOSTICS",
    "DIAGNOSTIC_REPLICAS",
    "NPLM_REFERENCE_RATIO",
    "UNWEIGHT_METHODS",
    "Progress",
    "RunInputs",
    "RunOutcome",
    "build_test",
    "emu_vs_mue",
    "learn_nuisances",
    "load_inputs",
    "load_processed",
    "map_reweighting",
    "map_uncertainty",
    "prepare_samples",
    "reference_note",
    "run",
    "scale_features",
    "unweight",
]

#: null replicas of the binned diagnostics when the test is not calibrated by permutations
DIAGNOSTIC_REPLICAS = 200


# ---------------------------------------------------------------------------------------
# samples
# ---------------------------------------------------------------------------------------
#: Binned diagnostics of every result whose samples have the columns (name -> columns).
DIAGNOSTICS: dict[str, tuple[str, ...]] = {
    "m_coll": ("m_coll",),
    "pt_lead": ("pt_lead",),
    "eta_lead": ("eta_lead",),
    "pt_sublead": ("pt_sublead",),
    "eta_sublead": ("eta_sublead",),
    "dphi": ("dphi",),
    "eta_lead:eta_sublead": ("eta_lead", "eta_sublead"),
}
#: Lepton columns that locate the electron of an event in an efficiency map.
_LEPTON_COLUMNS = ("pt_lead", "eta_lead", "pt_sublead", "eta_sublead", "pt_e", "eta_e")
UNWEIGHT_METHODS = ("none", "thin")


def unweight(
    sample: Sample, rng: np.random.Generator, method: str = "thin", name: str | None = None
) -> Sample:
    """Pseudo-data with unit weights from a weighted simulated sample, by thinning.

    Event i is kept with probability w_i (and then has weight 1): the kept count of a
    region has mean Σw and variance Σw(1 − w) + Σw² = Σw over simulated samples, as
    data would (Poisson). Duplicating events (k_i ~ Poisson(w_i)) would add the
    simulation's own fluctuation to the Poisson one (variance Σw + Σw²), which no
    permutation null contains. Thinning needs w ≤ 1, i.e. simulation of at least the
    pseudo-data's luminosity; independent pseudo-experiments need much more (two
    thinnings share a fraction ~w of their events).

    Parameters
    ----------
    sample
        Weighted events with 0 ≤ w ≤ 1.
    rng
        Random generator (explicit, so pseudo-data are reproducible).
    method
        ``"thin"`` (``"none"`` returns the sample unchanged).

    Raises
    ------
    ValueError
        A negative weight, or a weight above 1, naming the sample.
    """
    if method == "none":
        return sample
    if method != "thin":
        raise ValueError(
            f"unweighting method must be one of {UNWEIGHT_METHODS}, got {method!r} (duplicating "
            "simulated events, e.g. Poisson(w) copies, is not honest pseudo-data)"
        )
    w = sample.weights
    if np.any(w < 0):
        i = int(np.argmax(w < 0))
        raise ValueError(
            f"sample {sample.name!r}: cannot thin a negative weight ({w[i]:.4g} at event {i}; "
            f"{int(np.sum(w < 0))} negative in all): pseudo-data need non-negative weights"
        )
    if np.any(w > 1):
        raise ValueError(
            f"sample {sample.name!r}: weights up to {w.max():.4g} exceed 1, so the simulation "
            "has less luminosity than the pseudo-data; thin to a lower luminosity "
            f"(luminosity_fb ≲ current / {w.max():.3g}) or keep the weights (unweight: none)"
        )
    keep = rng.random(w.size) < w
    if not keep.any():
        raise ValueError(f"sample {sample.name!r}: thinning left no event (Σw = {w.sum():.3g})")
    prov = {**sample.provenance, "unweighted": {"method": method, "sum_weights": float(w.sum())}}
    return Sample(sample.features[keep], None, sample.names, prov, name or sample.name)


def _input(cfg: RunConfig) -> str:
    """The processor output a run reads (``input``), which its source requires."""
    if cfg.input is None:
        raise ConfigError("input: the output directory of `symnplm process` is required")
    return cfg.input


def _path(cfg: RunConfig, which: str) -> str:
    """The parquet file of sample ``which`` of a parquet run."""
    path = getattr(cfg, which).path
    if path is None:
        raise ConfigError(f"{which}.path: the parquet file of sample {which.upper()} is required")
    return str(path)


def _refuse_data_with_simulation(
    manifest: dict[str, Any], datasets: Sequence[str], which: str, where: Any
) -> None:
    """A default sample summing data and simulation is neither: ask for its datasets.

    What counts is how the processor weighted each dataset (``weighting``: "1 (data)"
    for data), which also covers datasets whose metadata says neither.
    """
    weighting = manifest.get("weighting", {})
    fileset = manifest.get("fileset", {})

    def is_data(d: str) -> bool:
        if d in weighting:
            return "1 (data)" in weighting[d]
        return not is_mc(fileset.get(d, {}).get("metadata", {}))

    data = [d for d in datasets if is_data(d)]
    simulation = [d for d in datasets if not is_data(d)]
    if data and simulation:
        raise ConfigError(
            f"{which}.datasets: {where} holds data {data} and simulation {simulation}, which "
            f"the default sample would add up; name the datasets of each sample "
            f"({which}.datasets, --{which}-datasets)"
        )


def _processed_sample(
    cfg: RunConfig, which: str, rng: np.random.Generator, columns: Sequence[str]
) -> Sample:
    spec = getattr(cfg, which)
    processed = _input(cfg)
    manifest = read_manifest(processed)
    fileset = manifest.get("fileset", {})
    lumi_pb = manifest.get("config", {}).get("luminosity_pb")
    target_fb = cfg.luminosity_fb or background_luminosity_fb(fileset)
    datasets = spec.datasets or sorted(
        d for d, e in fileset.items() if not is_signal(e.get("metadata", {}))
    )
    if not datasets:
        raise ConfigError(f"{which}.datasets: {cfg.input} has no non-signal dataset; name them")
    if spec.datasets is None:
        _refuse_data_with_simulation(manifest, datasets, which, cfg.input)
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
        s = load_sample(processed, d, spec.category, spec.variation, list(columns))
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
    return unweight(sample, rng, cfg.unweight)


def scale_features(sample: Sample, cfg: RunConfig) -> Sample:
    """The sample's features multiplied by ``cfg.feature_scale()`` (recorded)."""
    factors = {**{f: 1.0 for f in sample.names}, **cfg.feature_scale()}
    scale = np.array([factors[f] for f in sample.names])
    if np.all(scale == 1.0):
        return sample
    return Sample(
        sample.features * scale,
        sample.weights,
        sample.names,
        {**sample.provenance, "feature_scale": dict(zip(sample.names, scale.tolist()))},
        sample.name,
    )


@dataclass
class RunInputs:
    """The samples of a run, as the engine sees them and with every column loaded.

    Attributes
    ----------
    a, b
        The features of the test, scaled (e.g. GeV → 100 GeV).
    columns_a, columns_b
        The same events and weights with every loaded column in its own units (the
        features, the diagnostics' and the leptons' columns); ``None`` for the toy model.
    reweighting
        The efficiency map's uncertainty for the pooled A ∪ B, redrawn in every null
        replica; ``None`` without a map (or with ``map_uncertainty: false``).
    """

    a: Sample
    b: Sample
    columns_a: Sample | None = None
    columns_b: Sample | None = None
    reweighting: ReweightingUncertainty | None = None

    def diagnostic_specs(self, cfg: RunConfig) -> dict[str, tuple[str, ...]]:
        """The diagnostics of ``cfg`` (default :data:`DIAGNOSTICS`) the columns allow."""
        if self.columns_a is None:
            return {}
        have = set(self.columns_a.names)
        if cfg.diagnostics is None:
            return {k: v for k, v in DIAGNOSTICS.items() if set(v) <= have}
        specs = {name: tuple(name.split(":")) for name in cfg.diagnostics}
        for name, cols in specs.items():
            missing = [c for c in cols if c not in have]
            if missing:
                raise ConfigError(f"diagnostics: {name!r} needs column(s) {missing} not loaded")
        return specs


def _electron_roles(cfg: RunConfig) -> tuple[str, str]:
    """Which lepton is the electron of an event labelled A, and labelled B.

    For emu against mue the label decides it (emu: the leading lepton); for any
    other split it is the event's own electron, whatever the label.
    """
    roles = {"emu": "lead", "mue": "sublead"}
    a, b = cfg.a.category, cfg.b.category
    if a is not None and b is not None and {a, b} == set(roles):
        return roles[a], roles[b]
    return "e", "e"


def map_uncertainty(
    cfg: RunConfig, columns_a: Sample, columns_b: Sample
) -> ReweightingUncertainty | None:
    """The processed output's efficiency-map uncertainty for A ∪ B (``None`` if none).

    ``columns_a`` / ``columns_b`` must hold the lepton columns (pt/eta of lead, sublead
    and electron).
    """
    from symnplm.physics.efficiency import EfficiencyRatio

    path = efficiency_map_path(_input(cfg)) if cfg.map_uncertainty else None
    if path is None:
        return None
    ratio = EfficiencyRatio.read(path)
    return map_reweighting(ratio, columns_a, columns_b, _electron_roles(cfg))


def map_reweighting(
    ratio: EfficiencyRatio, columns_a: Sample, columns_b: Sample, roles: tuple[str, str]
) -> ReweightingUncertainty | None:
    """The uncertainty of ``ratio`` applied at lepton ``roles[0]`` in A and ``roles[1]`` in B.

    ``None`` for a map without (binned) uncertainties: nothing to propagate.
    """
    binned = ratio.bins()
    if binned is None or not np.any(binned[3] > 0):
        return None
    pooled = Sample.concatenate([columns_a, columns_b])

    def bins(role: str) -> np.ndarray:
        return ratio.bin_index(pooled.column(f"pt_{role}"), pooled.column(f"eta_{role}"))

    return ReweightingUncertainty(bins(roles[0]), bins(roles[1]), binned[3].ravel(), ratio.source)


def load_inputs(cfg: RunConfig) -> RunInputs:
    """A and B with every column the run needs (features, diagnostics, leptons).

    Randomness (thinning, toy model) comes from ``(cfg.seed, STREAM_UNWEIGHT)`` only.
    """
    rng = stream_rng(cfg.seed, STREAM_UNWEIGHT)
    if cfg.source == "toy":
        from symnplm.generation.toymodels import ToyModel

        toy = cfg.toy
        return RunInputs(*ToyModel(toy.n_a, toy.n_b, toy.signal, toy.n_signal)(rng))
    if cfg.source == "parquet":
        # without explicit features a parquet sample brings all its columns
        wanted = None if cfg.features is None else list(cfg.feature_names)
        a = unweight(Sample.from_parquet(_path(cfg, "a"), None, "A"), rng, cfg.unweight)
        b = unweight(Sample.from_parquet(_path(cfg, "b"), None, "B"), rng, cfg.unweight)
        features = wanted or [n for n in a.names if n in b.names]
        missing = [f for f in features if f not in a.names or f not in b.names]
        if missing:
            raise KeyError(
                f"features {missing} are not columns of both {cfg.a.path} and {cfg.b.path}"
            )
        common = [n for n in a.names if n in b.names]
        columns_a, columns_b = a.select(common), b.select(common)
        reweighting = None
    else:
        wanted = [*cfg.feature_names, *_diagnostic_columns(cfg)]
        columns_a, columns_b, reweighting = load_processed(cfg, wanted, rng)
        features = list(cfg.feature_names)
    a = scale_features(columns_a.select(features), cfg)
    b = scale_features(columns_b.select(features), cfg)
    return RunInputs(a, b, columns_a, columns_b, reweighting)


def load_processed(
    cfg: RunConfig, columns: Sequence[str], rng: np.random.Generator | None = None
) -> tuple[Sample, Sample, ReweightingUncertainty | None]:
    """A and B from ``cfg.input`` with ``columns`` (and the leptons'), in their own units.

    Returns the two samples and the efficiency map's uncertainty for A ∪ B (``None``
    without a map). Thinning, if asked, draws from ``rng`` (default: the run's
    ``STREAM_UNWEIGHT``).
    """
    rng = stream_rng(cfg.seed, STREAM_UNWEIGHT) if rng is None else rng
    wanted = list(dict.fromkeys([*columns, *_LEPTON_COLUMNS]))
    columns_a = _processed_sample(cfg, "a", rng, wanted)
    columns_b = _processed_sample(cfg, "b", rng, wanted)
    return columns_a, columns_b, map_uncertainty(cfg, columns_a, columns_b)


def _diagnostic_columns(cfg: RunConfig) -> list[str]:
    names = DIAGNOSTICS if cfg.diagnostics is None else cfg.diagnostics
    return [c for name in names for c in name.split(":")]


def prepare_samples(cfg: RunConfig) -> tuple[Sample, Sample]:
    """A and B as the engine sees them (features scaled, pseudo-data if asked)."""
    inputs = load_inputs(cfg)
    return inputs.a, inputs.b


def emu_vs_mue(
    processed: str | os.PathLike[str],
    observable: str,
    *,
    permutations: int,
    max_iter: int,
    seed: int,
    output: str | os.PathLike[str] | None = None,
    batch_size: int | None = None,
    workers: int = 1,
    scheduler: str | None = None,
    inject_br: float = 0.0,
) -> RunConfig:
    """The standard emu-vs-mue run: symmetrized test (Newton), permutation-calibrated.

    ``observable`` is ``"m_coll"`` (1-4-1 network) or ``"5d"`` (the five two-body
    features, 5-4-1); the weights are used as they are (no pseudo-data), and the
    processed output's efficiency map, if any, has its uncertainty redrawn per permutation.
    """
    from symnplm.workflow.config import CalibrationSpec, InjectionSpec, StatisticSpec

    if observable not in ("m_coll", "5d"):
        raise ConfigError(f"observable must be 'm_coll' or '5d', got {observable!r}")
    return RunConfig(
        input=str(processed),
        features=observable,
        unweight="none",
        inject=InjectionSpec(branching_ratio=inject_br) if inject_br else None,
        statistic=StatisticSpec(
            method="symmetrized", optimizer="newton", max_iter=max_iter, record_every=5
        ),
        calibration=CalibrationSpec(
            method="permutations",
            n=permutations,
            batch_size=batch_size,
            workers=workers,
            scheduler=scheduler,
        ),
        seed=seed,
        output=None if output is None else str(output),
    )


# ---------------------------------------------------------------------------------------
# statistic
# ---------------------------------------------------------------------------------------
def build_test(
    spec: StatisticSpec,
    a: Sample,
    b: Sample,
    nuisances: NuisanceSet | None = None,
    *,
    key: str = "statistic",
) -> TwoSampleTest:
    """The statistic of ``spec`` for samples with ``a.dim`` features.

    The default architecture is (d, 4, 1), the paper's 1-4-1 in one dimension. With
    ``nuisances`` the symmetrized statistic profiles them (t = τ − Δ). ``key`` names
    ``spec`` in errors (its place in the run or scan file).
    """
    if spec.method == "binned":
        return BinnedTest(_equal_population_edges(spec.bins, a, b, key))
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
    if nuisances is not None:
        from symnplm.systematics import NuisanceSymmetrizedTest

        if spec.n_starts != 1:
            raise ConfigError(
                f"{key}.n_starts: the nuisance-profiled test starts from the null and one "
                "initialisation; n_starts must be 1"
            )
        return NuisanceSymmetrizedTest(nuisances, arch, fit=fit)
    cls = {"symmetrized": SymmetrizedTest, "nplm": NPLMTest, "crossentropy": CrossEntropyTest}[
        spec.method
    ]
    return cls(arch, fit=fit, n_starts=spec.n_starts)


def _equal_population_edges(bins: int, a: Sample, b: Sample, key: str) -> np.ndarray:
    """``bins`` edges of equal pooled population; refused where they cannot all be distinct.

    More bins than events, or a feature whose quantiles coincide (a discrete one), would
    silently give fewer bins, and fewer degrees of freedom, than asked for.
    """
    pooled = Sample.concatenate([a, b])
    if bins > len(pooled):
        raise ConfigError(f"{key}.bins: {bins} bins for {len(pooled)} events of A and B")
    edges = quantile_edges(pooled, bins)
    if edges.size - 1 < bins:
        raise ConfigError(
            f"{key}.bins: {pooled.names[0]} has {edges.size} distinct quantile edges, so at "
            f"most {edges.size - 1} bins of equal population, not {bins} (a discrete feature?)"
        )
    return edges


#: NPLM's reference should outnumber the data (arXiv:1806.02350 uses N_R = 5 N_A)
NPLM_REFERENCE_RATIO = 5.0


def reference_note(method: str, a: Sample, b: Sample) -> str | None:
    """A warning when NPLM's reference B has fewer than :data:`NPLM_REFERENCE_RATIO` × A's events.

    NPLM compares A with the density of B; with a reference smaller than the data, t
    measures how poorly B covers A's events (a reference of 10 events against 10⁵
    gives an enormous t under the null), so the asymptotic p-value means nothing and
    even a calibrated one has little power. The symmetrized test has no reference.
    """
    if method != "nplm" or len(b) >= NPLM_REFERENCE_RATIO * len(a):
        return None
    return (
        f"the NPLM reference B has {len(b)} events against {len(a)} in A: a reference "
        f"should hold at least {NPLM_REFERENCE_RATIO:g}x the data (arXiv:1806.02350), else t "
        "measures B's coverage of A, not a difference; use a larger B or the symmetrized test"
    )


def _variation_sample(cfg: RunConfig, which: str, variation: str) -> Sample:
    """The background of sample ``which`` at ``variation``, weighted, features scaled."""
    spec = dataclasses.replace(getattr(cfg, which), variation=variation)
    plain = dataclasses.replace(cfg, inject=None, unweight="none", **{which: spec})
    rng = np.random.default_rng(0)  # unused: no thinning
    sample = _processed_sample(plain, which, rng, list(cfg.feature_names))
    return scale_features(sample, cfg)


def learn_nuisances(cfg: RunConfig) -> NuisanceSet | None:
    """The detector nuisances of ``cfg.nuisances``, learned on A's and B's variation samples.

    For every source, δ_k(x) of A and of B (order 2 with ±1σ and ±2σ samples, else 1) are
    learned from the processor's ``<source>_up{k}`` / ``_down{k}`` samples of the
    background (:func:`symnplm.systematics.learn_deltas`); the test sees their difference
    (:class:`~symnplm.systematics.AsymmetryNuisance`).
    """
    if not cfg.nuisances:
        return None
    from symnplm.physics.variations import variation_name
    from symnplm.systematics import AsymmetryNuisance, NuisanceSet, VariationSet, learn_deltas

    available = {s["variation"] for s in read_manifest(_input(cfg))["samples"]}
    nominal = {which: _variation_sample(cfg, which, "nominal") for which in ("a", "b")}
    items = []
    for k, source in enumerate(cfg.nuisances):
        nus = [nu for j in (1, 2) for nu in (j, -j) if variation_name(source, nu) in available]
        if not {1, -1} <= set(nus):
            raise ConfigError(
                f"nuisances: {cfg.input} has no {variation_name(source, 1)} / "
                f"{variation_name(source, -1)} samples (variations: {sorted(available)})"
            )
        sides = {}
        for which in ("a", "b"):
            varied: dict[float, Sample] = {
                nu: _variation_sample(cfg, which, variation_name(source, nu)) for nu in nus
            }
            sides[which] = learn_deltas(
                VariationSet(source, nominal[which], varied),
                order=2 if len(nus) >= 4 else 1,
                # one stream per source (the entropy of a SeedSequence is its seed alone,
                # which gave every source the same seed)
                seed=stream_seeds(cfg.seed, STREAM_NUISANCE, [k])[0] % 2**31,
            )
        items.append(AsymmetryNuisance(source, on_a=sides["a"], on_b=sides["b"]))
    return NuisanceSet(tuple(items), features=tuple(cfg.feature_names))


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
    diagnostics: list[BinnedDiagnostic]
    notes: list[str]


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
        :class:`~symnplm.workflow.campaign.CampaignIncomplete` (used to test resumption).
    """
    from symnplm.io import booking
    from symnplm.workflow.campaign import Campaign

    if cfg.output is not None:
        try:
            check_writable_directory(cfg.output)
        except OSError as err:
            raise ConfigError(f"output: {err}") from None
    if cfg.output is not None and (Path(cfg.output) / MANIFEST_NAME).exists():
        raise ConfigError(
            f"output: {cfg.output} holds a processor output (e.g. the input); write the result "
            "elsewhere"
        )
    timing: dict[str, float] = {}
    notes: list[str] = []
    start = time.perf_counter()
    inputs = load_inputs(cfg)
    a, b = inputs.a, inputs.b
    test = build_test(cfg.statistic, a, b, learn_nuisances(cfg))
    timing["samples_s"] = time.perf_counter() - start
    note = reference_note(cfg.statistic.method, a, b)
    if note is not None:
        notes.append(note)
    out = Path(cfg.output) if cfg.output is not None else None

    t0 = time.perf_counter()
    observed = test.fit(a, b, seed=cfg.seed)
    timing["observed_fit_s"] = time.perf_counter() - t0

    cal = cfg.calibration
    t0 = time.perf_counter()
    if cal.method == "asymptotic":
        if cfg.source != "toy":
            notes.append(
                "asymptotic p-value on real samples: the chi2 is not the null of t here (nor "
                "does it include the efficiency map's uncertainty); calibrate with "
                "permutations before believing a small p"
            )
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
            method=str(cal.method),
            n=int(cal.n or 0),  # >= 1 for these methods (RunConfig checks it)
            seed=cfg.seed,
            batch_size=cal.batch_size,
            reweighting=inputs.reweighting,
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

    t0 = time.perf_counter()
    specs = inputs.diagnostic_specs(cfg)
    diagnostics = []
    if specs:
        assert inputs.columns_a is not None and inputs.columns_b is not None
        diagnostics = binned_diagnostics(
            inputs.columns_a,
            inputs.columns_b,
            specs,
            n=cal.n if cal.method == "permutations" and cal.n else DIAGNOSTIC_REPLICAS,
            seed=cfg.seed,
            reweighting=inputs.reweighting,
        )
    timing["diagnostics_s"] = time.perf_counter() - t0
    timing["total_s"] = time.perf_counter() - start
    if out is not None:
        from symnplm.workflow.config import dump_yaml

        # nothing of this run is written before it has finished (a campaign of another
        # run in ``out`` is refused untouched); run.json goes first, so the directory
        # never shows a finished run beside this one's configuration
        (out / booking.RUN_JSON).unlink(missing_ok=True)
        dump_yaml(cfg, out / "config.yaml")
        booking.write_result(out, cfg, result, a, b, timing, diagnostics, inputs.reweighting, notes)
    return RunOutcome(cfg, a, b, result, timing, out, diagnostics, notes)
