"""Sensitivity scans: Z against the injected LFV branching ratio (Figs. 4–5 of arXiv:2401.09530).

Two protocols turn the processed simulation into replicas of the experiment; both fit
every replica of one (luminosity, BR) as one batched program
(:func:`symnplm.inference.toy_null` with a generator) and treat them alike afterwards.

``"pseudo-data"`` (the default)
    For every branching ratio the expected A and B (weighted simulation of the two
    categories, the signal scaled to that BR and added to both) are turned into
    pseudo-experiments by thinning (event i kept with probability w_i at the requested
    luminosity, :func:`symnplm.workflow.unweight`). Thinning needs w ≤ 1, i.e.
    simulation of at least the pseudo-experiments' luminosity (``luminosity_fb``); two
    pseudo-experiments share a fraction ~w of their events, so they are nearly
    independent only for simulation of much larger luminosity.

``"bootstrap"`` (the paper's protocol, arXiv:2401.09530 Sec. V B)
    One Standard-Model **pool**: every selected event of the background datasets, both
    categories (emu and mue) together, weighted at the processed luminosity L_proc.
    A and B are bootstrapped from it, an event drawn with probability ∝ its weight
    (the simulation is weighted, w ≈ 1), each with a Poisson-fluctuated size of mean
    N_b(L) = Σw_pool / 2 × L / L_proc — the pool holds two categories, so one sample's
    expectation is half of it. The H→τe **signal template** (the signal datasets'
    events, both categories, weights rescaled from the simulated ``lfv_branching_ratio``
    to the injected BR) is bootstrapped into **A only**, Poisson(N_s(BR, L)) events
    with N_s = Σw_signal(BR) × L / L_proc. A and B are therefore identically
    distributed under the null whatever the detector's e/μ asymmetry, and the signal
    is the only difference. Several luminosities run in one call, each with its own
    null.

``"lfuv"`` (the e-mu vs mu-e test)
    The bootstrap from the same pool of both categories, with the signal where the
    detector puts it: A (emu) gets the signal template's emu events, B (mue) its mue
    events, and each sample expects its own category's background, Σw_category × L /
    L_proc. The backgrounds of A and B come from one pool on purpose: a finite
    simulation's emu and mue events differ by their own statistical fluctuations, which
    replicas drawn at a luminosity comparable to the simulation's would all see as one
    fixed difference (two halves of the same emu events, 10 fb⁻¹ each, bootstrapped at
    10 fb⁻¹: binned η_lead test median t 56 against 17 for the pooled null). Whether
    the corrected categories agree is the closure study's question; this protocol asks
    how large an e/μ asymmetry of the signal the test sees.

For all three, the BR = 0 replicas (of the same luminosity) are the null: each t becomes an
empirical p-value against them (p = (1 + #{t_0 ≥ t}) / (n_0 + 1), Sec. III E), and,
beyond the reach of the null sample, a χ² p-value with the degrees of freedom fitted to
the null (the paper's extrapolation of Fig. 2). Points report the median Z and the
16–84 % band.

The ideal significance Z_id is Eq. (29) (:func:`binned_ideal_significance`) on binned
m_coll templates: the reach of an analysis that knows the signal and background shapes
exactly. For ``"pseudo-data"`` it is combined over emu and mue (q0 adds); for
``"bootstrap"`` the templates are those the replicas are drawn from (background: the
pool at L for one sample, N_b(L); signal: the template at BR and L).

:func:`reach` interpolates the BR at which the median Z reaches 2 or 3 (and
:func:`write_reach` writes the table next to ``sensitivity.json``).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from symnplm.exceptions import ConfigError
from symnplm.inference.calculators import ToyGenerator, toy_null
from symnplm.inference.ideal_significance import binned_ideal_significance
from symnplm.inference.significance import asymptotic_z, empirical_pvalue, fit_chi2_dof, p_to_z
from symnplm.inference.streams import STREAM_SENSITIVITY, STREAM_SENSITIVITY_BOOTSTRAP
from symnplm.inference.test_statistics import TwoSampleTest
from symnplm.io.files import atomic_path, write_json
from symnplm.io.provenance import provenance
from symnplm.io.samples import Sample, read_manifest
from symnplm.workflow.config import InjectionSpec, RunConfig
from symnplm.workflow.runs import build_test, load_inputs, prepare_samples, unweight

__all__ = [
    "MIN_EXPECTED_EVENTS",
    "PAIRINGS",
    "PROTOCOLS",
    "PROTOCOL_PAIRING",
    "REACH_TARGETS",
    "ZID_EDGES_GEV",
    "BootstrapModel",
    "Progress",
    "SensitivityPoint",
    "bootstrap_experiments",
    "bootstrap_model",
    "bootstrap_scan",
    "bootstrap_settings",
    "ideal_z",
    "pseudo_experiments",
    "reach",
    "reach_table",
    "replica_stream",
    "sensitivity_scan",
    "write_reach",
    "write_scan",
]

Progress = Callable[[int, int], None]

#: how A and B are drawn (see the module docstring)
PROTOCOLS = ("pseudo-data", "bootstrap", "lfuv")
#: the bootstrap protocols' pairing of A and B (:class:`BootstrapModel`)
PROTOCOL_PAIRING = {"bootstrap": "pooled", "lfuv": "by-category"}
#: m_coll bins of the Z_id templates, in GeV (10 GeV wide up to 500 GeV)
ZID_EDGES_GEV = np.linspace(0.0, 500.0, 51)
#: median Z of the reach table
REACH_TARGETS = (2.0, 3.0)
#: fewer expected events per sample than this is not a two-sample test worth fitting
MIN_EXPECTED_EVENTS = 10.0


def _quantiles(v: np.ndarray) -> list[float]:
    """16, 50, 84 % quantiles that are sample values: Z = -inf (t ≤ 0) must not become NaN."""
    return np.percentile(v, [16, 50, 84], method="inverted_cdf").tolist()


@dataclass
class SensitivityPoint:
    """Replicas at one injected branching ratio (and luminosity)."""

    branching_ratio: float
    t: np.ndarray
    z: np.ndarray
    z_chi2: np.ndarray
    z_ideal: float
    luminosity_fb: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary with the median and 16/84% quantiles of Z."""
        return {
            "branching_ratio": self.branching_ratio,
            "luminosity_fb": self.luminosity_fb,
            "t": self.t.tolist(),
            "z": self.z.tolist(),
            "z_chi2": self.z_chi2.tolist(),
            "median_t": float(np.median(self.t)),
            "z_quantiles": _quantiles(self.z),
            "z_chi2_quantiles": _quantiles(self.z_chi2),
            "z_ideal": self.z_ideal,
        }


# ---------------------------------------------------------------------------------------
# shared by the protocols
# ---------------------------------------------------------------------------------------
def _branching_ratios(values: Sequence[float]) -> list[float]:
    """Sorted distinct BRs with 0 (the null) added."""
    brs = sorted({0.0, *(float(v) for v in values)})
    if brs[0] < 0:
        raise ValueError(f"branching ratios must be >= 0, got {brs[0]}")
    return brs


def _replicas(
    test: TwoSampleTest,
    generator: ToyGenerator,
    n: int,
    stream: np.random.SeedSequence,
    batch_size: int | None,
    progress: Progress | None,
) -> np.ndarray:
    """t of ``n`` replicas of ``generator``, fitted in batches, seeded by ``stream``.

    Replica r draws its data from ``(seed, STREAM_TOYS, r)`` and its network
    initialisation from ``(seed, r + 1)``, with ``seed`` from ``stream``
    (:func:`symnplm.inference.toy_null`): a replica does not depend on the batching.
    """
    null = toy_null(
        test,
        n,
        generator=generator,
        seed=int(stream.generate_state(1)[0]),
        batch_size=batch_size,
        progress=progress,
    )
    return null.t


def _bootstrap_replicas(
    test: TwoSampleTest,
    model: BootstrapModel,
    luminosity_fb: float,
    branching_ratio: float,
    n: int,
    stream: np.random.SeedSequence,
    batch_size: int | None,
    progress: Progress | None,
) -> np.ndarray:
    """:func:`_replicas` of ``model``'s bootstrap replicas at (L, BR)."""
    generator = model.experiments(luminosity_fb, branching_ratio)
    return _replicas(test, generator, n, stream, batch_size, progress)


def _points(
    t_by_br: Mapping[float, np.ndarray],
    dof: float,
    z_ideal: Callable[[float], float],
    luminosity_fb: float | None = None,
) -> list[SensitivityPoint]:
    """Z of every replica against the BR = 0 replicas (empirical, and χ² fitted to them)."""
    t0 = t_by_br[0.0]
    fit = fit_chi2_dof(t0, dof)
    points = []
    for br in sorted(t_by_br):
        t = t_by_br[br]
        z = np.array([p_to_z(empirical_pvalue(v, t0)) for v in t])
        z_chi2 = np.asarray(asymptotic_z(t, fit.dof), dtype=np.float64)
        points.append(SensitivityPoint(br, t, z, z_chi2, z_ideal(br), luminosity_fb))
    return points


def _z_id(templates: Sequence[tuple[np.ndarray, np.ndarray]]) -> float:
    """Eq. (29) on binned (background, signal) templates, q0 = Z² added over them.

    Bins without background are left out: Eq. (29) is infinite there, a statement on
    the template's statistics rather than on the analysis.
    """
    z2 = 0.0
    for n_b, n_s in templates:
        keep = n_b > 0
        z2 += binned_ideal_significance(n_b[keep], np.clip(n_s[keep], 0.0, None)) ** 2
    return float(np.sqrt(z2))


# ---------------------------------------------------------------------------------------
# protocol "pseudo-data"
# ---------------------------------------------------------------------------------------
def _weighted(cfg: RunConfig, br: float) -> RunConfig:
    inject = dataclasses.replace(cfg.inject, branching_ratio=br) if cfg.inject else None
    if inject is None and br > 0:
        inject = InjectionSpec(branching_ratio=br)
    return dataclasses.replace(cfg, unweight="none", inject=inject)


def pseudo_experiments(
    a: Sample, b: Sample
) -> Callable[[np.random.Generator], tuple[Sample, Sample]]:
    """A generator ``rng -> (A, B)`` of unit-weight pseudo-experiments of the expectation."""
    for s in (a, b):  # fail now, naming the sample, rather than in a dask worker
        if s.weights.max() > 1:
            unweight(s, np.random.default_rng(0), "thin")

    def generate(rng: np.random.Generator) -> tuple[Sample, Sample]:
        return unweight(a, rng, "thin", "A"), unweight(b, rng, "thin", "B")

    return generate


def _on_m_coll(cfg: RunConfig) -> RunConfig:
    """``cfg`` on unscaled m_coll with the simulation's weights (the Z_id templates)."""
    return dataclasses.replace(cfg, features="m_coll", scale=None, unweight="none")


def ideal_z(cfg: RunConfig, br: float, edges: np.ndarray) -> float:
    """Z_id of Eq. (29) on m_coll templates (``edges`` in 100 GeV), emu and mue combined.

    The signal template of a category is (background + signal at ``br``) - background,
    both from the weighted simulation; q0 = Z² adds over the two categories.
    """
    if br <= 0:
        return 0.0
    background = prepare_samples(_on_m_coll(dataclasses.replace(cfg, inject=None)))
    total = prepare_samples(_on_m_coll(_weighted(cfg, br)))
    templates = []
    for bkg, tot in zip(background, total):
        n_b = np.histogram(bkg.features[:, 0], edges, weights=bkg.weights)[0]
        n_s = np.histogram(tot.features[:, 0], edges, weights=tot.weights)[0] - n_b
        templates.append((n_b, n_s))
    return _z_id(templates)


def sensitivity_scan(
    cfg: RunConfig,
    branching_ratios: Sequence[float],
    n_toys: int,
    *,
    n_null: int | None = None,
    batch_size: int | None = None,
    progress: Progress | None = None,
    protocol: str = "pseudo-data",
    luminosities: Sequence[float] | None = None,
) -> tuple[Any, list[SensitivityPoint]]:
    """t and Z of replicas for every branching ratio, and the null t values.

    Parameters
    ----------
    cfg
        The run description (input, samples, features, statistic, seed). ``inject``
        gives the signal datasets (default H→τe); its branching ratio is scanned.
    branching_ratios
        Values to inject (0 is added if missing: it is the null).
    n_toys
        Replicas per branching ratio.
    n_null
        Replicas at BR = 0 (default ``n_toys``).
    batch_size
        Replicas per batched fit (default: bounded by memory).
    progress
        ``progress(done, total)`` after every batch.
    protocol
        ``"pseudo-data"`` (thinned simulation at ``cfg.luminosity_fb``),
        ``"bootstrap"`` (the paper's, :func:`bootstrap_scan`) or ``"lfuv"`` (the
        bootstrap with A and B from their own categories).
    luminosities
        ``"bootstrap"`` and ``"lfuv"``: luminosities in fb⁻¹, each with its own null.

    Returns
    -------
    null, points
        ``"pseudo-data"``: the BR = 0 t values (an array) and one point per BR;
        ``"bootstrap"``, ``"lfuv"``: a dict luminosity → null t values and one point
        per (luminosity, BR).
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    if protocol in ("bootstrap", "lfuv"):
        return bootstrap_scan(
            cfg,
            branching_ratios,
            n_toys,
            luminosities=luminosities,
            n_null=n_null,
            batch_size=batch_size,
            progress=progress,
            model=bootstrap_model(cfg, PROTOCOL_PAIRING[protocol]),
        )
    if luminosities:
        raise ValueError(
            "the pseudo-data protocol scans one luminosity (luminosity_fb / --luminosity-fb); "
            "several luminosities need the bootstrap protocol"
        )
    brs = _branching_ratios(branching_ratios)
    n_null = n_null or n_toys
    edges = np.linspace(0.0, 5.0, 51)  # m_coll / 100 GeV: ZID_EDGES_GEV in the engine's units
    t_by_br: dict[float, np.ndarray] = {}
    test = None
    total = n_null + n_toys * (len(brs) - 1)
    done = 0
    for k, br in enumerate(brs):
        a, b = prepare_samples(_weighted(cfg, br))
        test = test or build_test(cfg.statistic, a, b)
        n = n_null if br == 0 else n_toys
        # each BR its own seed stream (k), every pseudo-experiment its own replica id
        stream = np.random.SeedSequence(cfg.seed, spawn_key=(STREAM_SENSITIVITY, k))
        t_by_br[br] = _replicas(
            test, pseudo_experiments(a, b), n, stream, batch_size, _offset(progress, done, total)
        )
        done += n
    assert test is not None
    points = _points(t_by_br, test.dof, lambda br: ideal_z(cfg, br, edges), cfg.luminosity_fb)
    return t_by_br[0.0], points


def _offset(progress: Progress | None, done: int, total: int) -> Progress | None:
    """``progress`` of one job's batches as part of the whole scan."""
    if progress is None:
        return None
    return lambda k, _n: progress(done + k, total)


# ---------------------------------------------------------------------------------------
# protocol "bootstrap" (arXiv:2401.09530 Sec. V B)
# ---------------------------------------------------------------------------------------
def _cdf(sample: Sample) -> np.ndarray:
    """Cumulative weights of ``sample``, for draws with probability ∝ w."""
    w = sample.weights
    if np.any(w < 0):
        i = int(np.argmax(w < 0))
        raise ValueError(
            f"sample {sample.name!r}: a weighted bootstrap draws events with probability "
            f"∝ w, so weights must be >= 0 ({w[i]:.4g} at event {i})"
        )
    return np.cumsum(w)


def _draw(cdf: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """``k`` event indices drawn with replacement, event i with probability w_i / Σw."""
    # zero-weight events span an empty interval of the CDF and are never drawn;
    # the clip guards u·Σw rounding up to Σw
    idx = np.searchsorted(cdf, rng.random(k) * cdf[-1], side="right")
    return np.minimum(idx, len(cdf) - 1)


def bootstrap_experiments(
    pool: Sample,
    n_background: float,
    signal: Sample | None = None,
    n_signal: float = 0.0,
    *,
    pool_b: Sample | None = None,
    n_background_b: float | None = None,
    signal_b: Sample | None = None,
    n_signal_b: float = 0.0,
) -> Callable[[np.random.Generator], tuple[Sample, Sample]]:
    """A generator ``rng -> (A, B)`` of bootstrap replicas (arXiv:2401.09530 Sec. V B).

    A holds Poisson(``n_background``) events of ``pool`` and Poisson(``n_signal``) of
    ``signal``; B holds Poisson(``n_background_b``) events of ``pool_b`` and
    Poisson(``n_signal_b``) of ``signal_b``. By default B is drawn from A's pool with
    A's expectation and gets no signal: the paper's protocol. Events are drawn with
    replacement, with probability ∝ weight (a weighted bootstrap), and enter with unit
    weight, so that the expected count of a region of A is its expectation at the
    luminosity the counts stand for.

    Parameters
    ----------
    pool, pool_b
        Background events of A and of B (weights ≥ 0; only their ratios matter).
    n_background, n_background_b
        Expected background events of A and of B.
    signal, signal_b
        Signal events (weights ≥ 0) of A and of B.
    n_signal, n_signal_b
        Expected signal events of A and of B.

    Notes
    -----
    The draws of one replica, in order: the sizes (A's background, B's, A's signal,
    then B's signal if B has one) from one ``rng.poisson`` call, then the events in the
    same order.
    """
    pool_b = pool if pool_b is None else pool_b
    n_background_b = n_background if n_background_b is None else n_background_b
    for n in (n_background, n_background_b):
        if n < MIN_EXPECTED_EVENTS:
            raise ValueError(
                f"{n:.3g} expected background events per sample: too few for a "
                f"two-sample test (need >= {MIN_EXPECTED_EVENTS:g}; raise the luminosity)"
            )
    for name, n, s in (("n_signal", n_signal, signal), ("n_signal_b", n_signal_b, signal_b)):
        if n < 0 or (n > 0 and s is None):
            raise ValueError(f"{name} must be >= 0 with a signal sample, got {n}")
    for s in (pool_b, signal, signal_b):
        if s is not None and s.names != pool.names:
            raise ValueError(f"{s.name} features {s.names} differ from the pool's {pool.names}")
    cdf_a, cdf_b = _cdf(pool), (_cdf(pool) if pool_b is pool else _cdf(pool_b))
    cdf_sa = _cdf(signal) if signal is not None and n_signal > 0 else None
    cdf_sb = _cdf(signal_b) if signal_b is not None and n_signal_b > 0 else None
    means = [n_background, n_background_b, n_signal] + ([n_signal_b] if cdf_sb is not None else [])

    def generate(rng: np.random.Generator) -> tuple[Sample, Sample]:
        k = rng.poisson(means)
        x_a = pool.features[_draw(cdf_a, int(k[0]), rng)]
        x_b = pool_b.features[_draw(cdf_b, int(k[1]), rng)]
        if cdf_sa is not None and k[2] > 0:
            assert signal is not None
            x_a = np.concatenate([x_a, signal.features[_draw(cdf_sa, int(k[2]), rng)]])
        if cdf_sb is not None and k[3] > 0:
            assert signal_b is not None
            x_b = np.concatenate([x_b, signal_b.features[_draw(cdf_sb, int(k[3]), rng)]])
        if len(x_a) == 0 or len(x_b) == 0:  # P ≈ e^-N_b: the guard above makes it ~never
            raise ValueError(
                f"a replica drew an empty sample (N_b = {min(n_background, n_background_b):.3g})"
            )
        return Sample(x_a, None, pool.names, name="A"), Sample(x_b, None, pool.names, name="B")

    return generate


#: how the bootstrap protocols pair A and B (see :class:`BootstrapModel`)
PAIRINGS = ("pooled", "by-category")


@dataclass(frozen=True)
class BootstrapModel:
    """What the bootstrap protocols draw from: the SM pool and the signal template.

    Attributes
    ----------
    pool
        Background events of the pooled categories (features as the engine sees them),
        weighted at ``luminosity_fb``; A's category first (``split[0]`` events), then
        B's.
    signal
        Signal events of the same categories, weighted **per unit branching ratio** at
        ``luminosity_fb`` (the simulated weights divided by ``lfv_branching_ratio``);
        A's category first (``split[1]`` events), then B's.
    luminosity_fb
        L_proc: the luminosity the weights stand for (the processed sample's).
    pool_m_coll, signal_m_coll
        m_coll of the same events in GeV, for the Z_id templates.
    description
        Datasets, categories, event counts and Σw (recorded in the results).
    categories
        Categories pooled (emu and mue: 2): with ``"pooled"`` one sample expects
        1/categories of the pool.
    pairing
        How A and B are drawn; both draw their background from the whole pool.
        ``"pooled"`` (arXiv:2401.09530 Sec. V B): each sample expects the pool /
        categories, the signal (all of it) goes into A only. ``"by-category"`` (the
        LFUV test): each sample expects its own category's Σw, and gets the signal
        events of its category.
    split
        (A's pool events, A's signal events): where B's category starts (``None``
        when a = b, one category).
    """

    pool: Sample
    signal: Sample
    luminosity_fb: float
    pool_m_coll: np.ndarray
    signal_m_coll: np.ndarray
    description: dict[str, Any] = field(default_factory=dict)
    categories: int = 2
    pairing: str = "pooled"
    split: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.pairing not in PAIRINGS:
            raise ValueError(f"pairing must be one of {PAIRINGS}, got {self.pairing!r}")
        if self.pairing == "by-category" and self.split is None:
            raise ValueError("pairing 'by-category' needs split = (A's pool events, A's signal)")

    def _rows(self, sample: str) -> tuple[slice, slice]:
        """(pool rows, signal rows) of the category of sample ``"a"`` or ``"b"``."""
        assert self.split is not None
        n_pool, n_signal = self.split
        if sample == "a":
            return slice(None, n_pool), slice(None, n_signal)
        return slice(n_pool, None), slice(n_signal, None)

    def _signal_of(self, sample: str) -> Sample:
        """The signal events of the category of sample ``"a"`` or ``"b"``."""
        rows = np.arange(len(self.signal))[self._rows(sample)[1]]
        return self.signal.take(rows, f"{sample.upper()} signal")

    def _scale(self, luminosity_fb: float) -> float:
        return luminosity_fb / self.luminosity_fb

    def expected_background(self, luminosity_fb: float, sample: str = "a") -> float:
        """N_b(L): expected background events of sample ``"a"`` or ``"b"`` at L (with
        ``"pooled"`` both expect the pool / categories)."""
        if self.pairing == "pooled":
            return self.pool.sum_weights / self.categories * self._scale(luminosity_fb)
        rows = self._rows(sample)[0]
        return float(self.pool.weights[rows].sum()) * self._scale(luminosity_fb)

    def expected_signal(
        self, luminosity_fb: float, branching_ratio: float, sample: str = "a"
    ) -> float:
        """N_s(BR, L): expected signal events of sample ``"a"`` (``"pooled"``: all of the
        signal) or ``"b"`` (``"pooled"``: none)."""
        if self.pairing == "pooled":
            total = self.signal.sum_weights if sample == "a" else 0.0
        else:
            total = float(self.signal.weights[self._rows(sample)[1]].sum())
        return total * branching_ratio * self._scale(luminosity_fb)

    def experiments(
        self, luminosity_fb: float, branching_ratio: float
    ) -> Callable[[np.random.Generator], tuple[Sample, Sample]]:
        """The replica generator at (L, BR) (:func:`bootstrap_experiments`)."""
        signal = branching_ratio > 0
        if self.pairing == "pooled":
            return bootstrap_experiments(
                self.pool,
                self.expected_background(luminosity_fb),
                self.signal if signal else None,
                self.expected_signal(luminosity_fb, branching_ratio),
            )
        return bootstrap_experiments(
            self.pool,
            self.expected_background(luminosity_fb, "a"),
            self._signal_of("a") if signal else None,
            self.expected_signal(luminosity_fb, branching_ratio, "a"),
            n_background_b=self.expected_background(luminosity_fb, "b"),
            signal_b=self._signal_of("b") if signal else None,
            n_signal_b=self.expected_signal(luminosity_fb, branching_ratio, "b"),
        )

    def ideal_z(self, luminosity_fb: float, branching_ratio: float) -> float:
        """Z_id of Eq. (29) with the templates the replicas are drawn from, at (L, BR);
        with ``"by-category"``, each category's signal over its own background, q0 = Z²
        added over the two."""
        if branching_ratio <= 0:
            return 0.0
        f = self._scale(luminosity_fb)

        def hist(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
            return np.histogram(values, ZID_EDGES_GEV, weights=weights)[0]

        if self.pairing == "pooled":
            n_b = hist(self.pool_m_coll, self.pool.weights) * f / self.categories
            n_s = hist(self.signal_m_coll, self.signal.weights) * f * branching_ratio
            return _z_id([(n_b, n_s)])
        templates = []
        for pool_sel, signal_sel in (self._rows("a"), self._rows("b")):
            n_b = hist(self.pool_m_coll[pool_sel], self.pool.weights[pool_sel]) * f
            n_s = hist(self.signal_m_coll[signal_sel], self.signal.weights[signal_sel])
            templates.append((n_b, n_s * f * branching_ratio))
        return _z_id(templates)


def _processed_luminosity_fb(manifest: Mapping[str, Any], loaded: float | None) -> float:
    """The luminosity the loaded weights stand for: the fileset's background luminosity,
    else the processor's (weights are then left as processed)."""
    if loaded is not None:
        return float(loaded)
    lumi_pb = manifest.get("config", {}).get("luminosity_pb")
    if not lumi_pb:
        raise ConfigError(
            "input: the processed output records no luminosity (fileset luminosity_fb or "
            "config.luminosity_pb), so the expected counts of the bootstrap are unknown"
        )
    return float(lumi_pb) / 1000.0


def bootstrap_model(cfg: RunConfig, pairing: str = "pooled") -> BootstrapModel:
    """The pool and the signal template of ``cfg.input`` at its processed luminosity.

    The pool holds ``cfg.a.datasets`` in ``cfg.a.category`` and ``cfg.b.datasets`` in
    ``cfg.b.category`` (default: every background dataset, emu and mue, each sample
    expecting half of it; with both categories ``emu`` the pool is the electron-leading
    events alone, as in arXiv:2401.09530 Sec. V B, and each sample expects all of it); the signal
    template ``cfg.inject.datasets`` (default H→τe, ggF and VBF) in the same two
    categories, each dataset rescaled from its ``lfv_branching_ratio`` to BR = 1.
    The weights are those of the processed output (efficiency map applied).

    ``pairing`` is that of :class:`BootstrapModel`: ``"by-category"`` (the LFUV test,
    each sample with its own category's signal) needs two different categories.
    """
    if pairing not in PAIRINGS:
        raise ValueError(f"pairing must be one of {PAIRINGS}, got {pairing!r}")
    if pairing == "by-category" and cfg.a.category == cfg.b.category:
        raise ConfigError(
            f"a.category and b.category are both {cfg.a.category!r}: the LFUV protocol "
            "compares two categories (e.g. emu against mue)"
        )
    if cfg.source != "processed" or cfg.input is None:
        raise ConfigError("the bootstrap protocol needs a processor output (input / --input)")
    manifest = read_manifest(cfg.input)
    fileset = manifest.get("fileset", {})
    # the weights at the processed luminosity; one column more for the Z_id templates
    base = dataclasses.replace(
        cfg,
        luminosity_fb=None,
        unweight="none",
        inject=None,
        diagnostics=["m_coll"],
        map_uncertainty=False,
        nuisances=[],
    )

    # a = b (e.g. both emu, the paper's electron-leading pool): that category once
    single = cfg.a.category == cfg.b.category and cfg.a.datasets == cfg.b.datasets

    def load(spec: RunConfig) -> tuple[list[Sample], list[np.ndarray], float | None]:
        inputs = load_inputs(spec)
        assert inputs.columns_a is not None and inputs.columns_b is not None
        m_coll = [inputs.columns_a.column("m_coll"), inputs.columns_b.column("m_coll")]
        parts = [inputs.a, inputs.b]
        lumi = inputs.columns_a.provenance.get("luminosity_fb")
        return (parts[:1], m_coll[:1], lumi) if single else (parts, m_coll, lumi)

    pool_parts, pool_m, loaded_lumi = load(base)
    lumi = _processed_luminosity_fb(manifest, loaded_lumi)
    inject = cfg.inject or InjectionSpec()
    # per category (A's, then B's, or the one of a = b), each a list over datasets
    signal_parts: list[list[Sample]] = [[], []]
    signal_m: list[list[np.ndarray]] = [[], []]
    per_dataset = {}
    for d in inject.datasets:
        if d not in fileset:
            raise ConfigError(
                f"inject.datasets: {d!r} is not a dataset of {cfg.input} (datasets: "
                f"{sorted(fileset)}); name the signal with --inject-datasets"
            )
        ref = fileset[d].get("metadata", {}).get("lfv_branching_ratio")
        if not ref:
            raise ConfigError(
                f"inject.datasets: {d!r} in {cfg.input} has no lfv_branching_ratio metadata "
                "to rescale"
            )
        one = dataclasses.replace(
            base,
            a=dataclasses.replace(cfg.a, datasets=[d]),
            b=dataclasses.replace(cfg.b, datasets=[d]),
        )
        parts, m_coll, _ = load(one)
        for k, (part, m) in enumerate(zip(parts, m_coll)):
            signal_parts[k].append(part.scaled(1.0 / float(ref)))
            signal_m[k].append(m)
        per_dataset[d] = {
            "lfv_branching_ratio": float(ref),
            "events": [len(s) for s in parts],
            "sum_weights_per_unit_br": [s.sum_weights / float(ref) for s in parts],
        }
    pool = Sample.concatenate(pool_parts, name="pool")
    signal = Sample.concatenate([s for parts in signal_parts for s in parts], name="signal")
    n_signal_a = sum(len(s) for s in signal_parts[0])
    description = {
        "luminosity_processed_fb": lumi,
        "pairing": pairing,
        "categories": [cfg.a.category, cfg.b.category],
        "pool": {
            "datasets": pool_parts[0].provenance.get("datasets"),
            "events": len(pool),
            "sum_weights": pool.sum_weights,
            "max_weight": float(pool.weights.max()),
            # by-category pairing: each sample expects its own category's Σw
            **(
                {
                    "by_category": {
                        spec.category: {"events": len(part), "sum_weights": part.sum_weights}
                        for spec, part in zip((cfg.a, cfg.b), pool_parts)
                    }
                }
                if pairing == "by-category"
                else {}
            ),
        },
        "signal": {
            "datasets": per_dataset,
            "events": len(signal),
            "sum_weights_per_unit_br": signal.sum_weights,
        },
    }
    return BootstrapModel(
        pool,
        signal,
        lumi,
        np.concatenate(pool_m),
        np.concatenate([m for ms in signal_m for m in ms]),
        description,
        categories=1 if single else 2,
        pairing=pairing,
        split=None if single else (len(pool_parts[0]), n_signal_a),
    )


def _value_key(value: float) -> int:
    """A seed-stream key for a float: its IEEE-754 bits, exact and independent of which
    other values the scan holds (adding a BR leaves the others' replicas unchanged)."""
    return int(np.float64(value).view(np.uint64))


def replica_stream(
    seed: int, luminosity_fb: float, branching_ratio: float
) -> np.random.SeedSequence:
    """The seed stream of the bootstrap replicas at (L, BR)."""
    key = (STREAM_SENSITIVITY_BOOTSTRAP, _value_key(luminosity_fb), _value_key(branching_ratio))
    return np.random.SeedSequence(int(seed), spawn_key=key)


def _checkpointed(
    directory: Path | None,
    key: dict[str, Any],
    compute: Callable[[], np.ndarray],
) -> np.ndarray:
    """``compute()``, or the t values a previous run stored for the same ``key``.

    A study of thousands of replicas runs for hours: every finished (L, BR) is kept, so
    that rerunning the command after an interruption fits only what is missing. A file
    whose key differs (other configuration, seed or count) is recomputed.
    """
    if directory is None:
        return compute()
    # repr: the shortest text that gives the float back, so two values never share a file
    name = f"L{key['luminosity_fb']!r}_BR{key['branching_ratio']!r}.npz"
    path = directory / name
    text = json.dumps(key, sort_keys=True, default=str)
    if path.exists():
        with np.load(path) as stored:
            if str(stored["key"]) == text:
                return np.array(stored["t"])
    t = compute()
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, t=t, key=np.array(text))
    return t


def bootstrap_scan(
    cfg: RunConfig,
    branching_ratios: Sequence[float],
    n_toys: int,
    *,
    luminosities: Sequence[float] | None = None,
    n_null: int | None = None,
    batch_size: int | None = None,
    progress: Progress | None = None,
    model: BootstrapModel | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
) -> tuple[dict[float, np.ndarray], list[SensitivityPoint]]:
    """The paper's sensitivity protocol (arXiv:2401.09530 Sec. V B, Figs. 4–5).

    Parameters
    ----------
    cfg
        Input (a processor output), samples (categories, datasets of the pool),
        features (default m_coll), statistic (default the 1-4-1 symmetrized test) and
        seed; ``inject.datasets`` names the signal template.
    branching_ratios
        Values to inject into A (0 is added: the null of each luminosity).
    n_toys
        Replicas per (luminosity, BR > 0); the paper uses ≥ 100.
    luminosities
        In fb⁻¹, each with its own null (default: ``cfg.luminosity_fb``, else the
        processed luminosity).
    n_null
        Replicas at BR = 0 per luminosity (default ``n_toys``; the paper uses ≥ 1000).
    batch_size
        Replicas per batched fit (default: bounded by memory).
    progress
        ``progress(done, total)`` after every batch.
    model
        The pool and signal template (default :func:`bootstrap_model` of ``cfg``).
    checkpoint
        Directory keeping the t values of every finished (L, BR), reused when the same
        scan is rerun.

    Returns
    -------
    nulls, points
        Luminosity → BR = 0 t values, and one point per (luminosity, BR), luminosities
        in the given order and BRs increasing.
    """
    model = model if model is not None else bootstrap_model(cfg)
    lumis = [float(v) for v in (luminosities or [cfg.luminosity_fb or model.luminosity_fb])]
    if any(v <= 0 for v in lumis) or len(set(lumis)) != len(lumis):
        raise ValueError(f"luminosities must be distinct and > 0, got {lumis}")
    brs = _branching_ratios(branching_ratios)
    n_null = n_null or n_toys
    for lumi in lumis:  # before hours of fitting: every luminosity must be testable
        model.experiments(lumi, 0.0)
    test = build_test(cfg.statistic, model.pool, model.pool)
    directory = Path(checkpoint) if checkpoint is not None else None
    # what the replicas of a checkpoint depend on, besides (L, BR, n)
    common = {
        "seed": cfg.seed,
        "stream": STREAM_SENSITIVITY_BOOTSTRAP,
        "config": {k: v for k, v in cfg.to_dict().items() if k not in ("output", "calibration")},
        "pool": {
            k: model.description.get(k) for k in ("luminosity_processed_fb", "pool", "signal")
        },
    }
    total = len(lumis) * (n_null + n_toys * (len(brs) - 1))
    done = 0
    nulls: dict[float, np.ndarray] = {}
    points: list[SensitivityPoint] = []
    for lumi in lumis:
        t_by_br: dict[float, np.ndarray] = {}
        for br in brs:
            n = n_null if br == 0 else n_toys
            key = {**common, "luminosity_fb": lumi, "branching_ratio": br, "n": n}
            # the generator is made only when the checkpoint lacks (L, BR)
            compute = functools.partial(
                _bootstrap_replicas,
                test,
                model,
                lumi,
                br,
                n,
                replica_stream(cfg.seed, lumi, br),
                batch_size,
                _offset(progress, done, total),
            )
            t_by_br[br] = _checkpointed(directory, key, compute)
            done += n
            if progress is not None:
                progress(done, total)
        nulls[lumi] = t_by_br[0.0]
        points += _points(t_by_br, test.dof, functools.partial(model.ideal_z, lumi), lumi)
    return nulls, points


def bootstrap_settings(
    model: BootstrapModel,
    luminosities: Sequence[float],
    branching_ratios: Sequence[float],
    n_toys: int,
    n_null: int,
) -> dict[str, Any]:
    """What ``sensitivity.json`` records of a bootstrap scan: pool, template, expected counts."""
    brs = _branching_ratios(branching_ratios)
    by_category = model.pairing == "by-category"
    return {
        **model.description,
        "background_per_sample": (
            "sum_weights(category of the sample) * L / luminosity_processed_fb"
            if by_category
            else f"sum_weights(pool) / {model.categories} * L / luminosity_processed_fb"
        ),
        "replicas": {"null": n_null, "per_branching_ratio": n_toys},
        "seed_stream": {
            "stream": STREAM_SENSITIVITY_BOOTSTRAP,
            "key": "(stream, float64 bits of L, float64 bits of BR)",
        },
        "expected": [
            {
                "luminosity_fb": float(lumi),
                "background_per_sample": model.expected_background(lumi),
                "signal_in_a": {f"{br:g}": model.expected_signal(lumi, br) for br in brs},
                **(
                    {
                        "background_b": model.expected_background(lumi, "b"),
                        "signal_in_b": {
                            f"{br:g}": model.expected_signal(lumi, br, "b") for br in brs
                        },
                    }
                    if by_category
                    else {}
                ),
            }
            for lumi in luminosities
        ],
    }


# ---------------------------------------------------------------------------------------
# reach: the BR at which the median Z reaches 2 (3)
# ---------------------------------------------------------------------------------------
def _crossing(
    branching_ratios: Sequence[float], median_z: Sequence[float], target: float
) -> tuple[float | None, str]:
    """(BR, status) of :func:`reach`; status ``"interpolated"``, ``"not reached"`` or
    ``"below range"`` (already above ``target`` at the smallest BR > 0)."""
    br = np.asarray(branching_ratios, dtype=np.float64)
    z = np.asarray(median_z, dtype=np.float64)
    if br.shape != z.shape:
        raise ValueError(f"{br.size} branching ratios for {z.size} Z values")
    if np.isnan(z).any():
        raise ValueError("NaN among the median Z values")
    order = np.argsort(br)
    br, z = br[order], z[order]
    keep = br > 0  # log BR: the null point has none
    br, z = br[keep], z[keep]
    if br.size == 0:
        return None, "not reached"
    # the median Z grows with BR in expectation; the running maximum takes out the
    # replicas' noise, so that the reach is the first BR where the median gets there
    env = np.maximum.accumulate(np.maximum(z, 0.0))
    above = np.flatnonzero(env >= target)
    if above.size == 0:
        return None, "not reached"
    i = int(above[0])
    if i == 0:
        return (float(br[0]), "interpolated") if env[0] == target else (None, "below range")
    lb0, lb1 = np.log(br[i - 1]), np.log(br[i])
    z0, z1 = env[i - 1], env[i]
    if z0 > 0 and np.isfinite(z1):
        # straight in (log BR, log Z): exact for a power law Z = c·BR^k
        frac = (np.log(target) - np.log(z0)) / (np.log(z1) - np.log(z0))
    else:  # from Z = 0 (or to Z = inf) log Z has no line: straight in (log BR, Z)
        frac = 0.0 if not np.isfinite(z1) else (target - z0) / (z1 - z0)
    return float(np.exp(lb0 + frac * (lb1 - lb0))), "interpolated"


def reach(
    branching_ratios: Sequence[float], median_z: Sequence[float], target: float = 2.0
) -> float | None:
    """The branching ratio at which the median Z reaches ``target``.

    Monotone interpolation in log BR: the median Z is made non-decreasing in BR (its
    running maximum), and the first bracketing pair of points is joined by a straight
    line in (log BR, log Z) — exact for Z ∝ BR^k, e.g. Z = c·BR gives target / c —
    or in (log BR, Z) from a point at Z ≤ 0. BR = 0 points are ignored.

    Parameters
    ----------
    branching_ratios, median_z
        The scan's points (any order).
    target
        The median Z to reach.

    Returns
    -------
    float or None
        ``None`` if the median Z stays below ``target`` over the scanned BRs, or is
        already above it at the smallest BR > 0 (the crossing is not bracketed).

    Examples
    --------
    >>> round(reach([0.01, 0.02, 0.04], [1.0, 2.5, 4.0], 2.0), 4)  # 0.01 · 2^(ln 2 / ln 2.5)
    0.0169
    """
    return _crossing(branching_ratios, median_z, target)[0]


def reach_table(
    points: Sequence[SensitivityPoint], targets: Sequence[float] = REACH_TARGETS
) -> list[dict[str, Any]]:
    """One row per (luminosity, target Z): the BR reached by the empirical median Z, by
    the χ²-extrapolated median Z and by Z_id (Eq. 29), with their statuses.

    A status is ``"interpolated"``, ``"not reached"`` (above the largest BR scanned),
    ``"below range"`` (reached at the smallest BR > 0 already) or, for the empirical Z,
    ``"beyond the null"``: a target above the Z of p = 1/(n_0 + 1), which no replica can
    reach against n_0 null replicas (the χ² extrapolation is the answer there).
    """
    by_lumi: dict[float | None, list[SensitivityPoint]] = {}
    for p in points:
        by_lumi.setdefault(p.luminosity_fb, []).append(p)
    rows = []
    for lumi, pts in by_lumi.items():
        brs = [p.branching_ratio for p in pts]
        curves = {
            "empirical": [_quantiles(p.z)[1] for p in pts],
            "chi2": [_quantiles(p.z_chi2)[1] for p in pts],
            "ideal": [p.z_ideal for p in pts],
        }
        # the empirical Z cannot exceed that of p = 1 / (n_0 + 1)
        null = next((p for p in pts if p.branching_ratio == 0), None)
        cap = float(p_to_z(1.0 / (len(null.t) + 1))) if null is not None else None
        for target in targets:
            row: dict[str, Any] = {"luminosity_fb": lumi, "z": float(target)}
            for name, z in curves.items():
                row[f"br_{name}"], row[f"status_{name}"] = _crossing(brs, z, target)
            if cap is not None and target > cap:
                row["br_empirical"], row["status_empirical"] = None, "beyond the null"
            row["empirical_z_cap"] = cap
            row["scanned"] = [min(b for b in brs if b > 0), max(brs)] if max(brs) > 0 else None
            rows.append(row)
    return rows


def _cell(row: dict[str, Any], name: str) -> str:
    value, status = row[f"br_{name}"], row[f"status_{name}"]
    if status == "beyond the null":
        return f"n/a (Z ≤ {row['empirical_z_cap']:.2f})"
    if value is not None:
        return f"{value:.3g}"
    lo, hi = row["scanned"] or (float("nan"), float("nan"))
    return f"< {lo:g}" if status == "below range" else f"> {hi:g}"


def write_reach(
    directory: str | os.PathLike[str],
    points: Sequence[SensitivityPoint],
    targets: Sequence[float] = REACH_TARGETS,
) -> tuple[Path, Path]:
    """``reach.json`` and ``reach.md`` in ``directory`` (next to ``sensitivity.json``)."""
    rows = reach_table(points, targets)
    out = Path(directory)
    json_path = write_json(
        out / "reach.json",
        {
            "kind": "symnplm-sensitivity-reach",
            "method": "median Z made non-decreasing in BR, then straight in (log BR, log Z)",
            "rows": rows,
        },
    )
    lines = [
        "| L [fb⁻¹] | median Z | BR (empirical Z) | BR (χ²-extrapolated Z) | BR (Z_id, Eq. 29) |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        lumi = "—" if row["luminosity_fb"] is None else f"{row['luminosity_fb']:g}"
        cells = " | ".join(_cell(row, name) for name in ("empirical", "chi2", "ideal"))
        lines.append(f"| {lumi} | {row['z']:g} | {cells} |")
    md_path = out / "reach.md"
    with atomic_path(md_path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return json_path, md_path


# ---------------------------------------------------------------------------------------
# output
# ---------------------------------------------------------------------------------------
def write_scan(
    directory: str | os.PathLike[str], cfg: RunConfig, points: list[SensitivityPoint], **extra: Any
) -> Path:
    """``sensitivity.json`` in ``directory`` (``extra``: e.g. protocol, luminosities)."""
    path = Path(directory) / "sensitivity.json"
    write_json(
        path,
        {
            "kind": "symnplm-sensitivity",
            "points": [p.to_dict() for p in points],
            "config": cfg.to_dict(),
            "seed": cfg.seed,
            "provenance": provenance(),
            **extra,
        },
    )
    return path
