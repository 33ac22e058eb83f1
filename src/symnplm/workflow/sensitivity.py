"""Sensitivity scans: Z against the injected LFV branching ratio (Fig. 5 of arXiv:2401.09530).

For every branching ratio the expected A and B (weighted simulation with the signal
scaled to that BR) are turned into pseudo-experiments by thinning (event i kept with
probability w_i at the requested luminosity, :func:`symnplm.workflow.unweight`), one
per replica, and the test statistic is fitted on all of them as one batched program
(:func:`symnplm.inference.toy_null` with a generator). The BR = 0 pseudo-experiments
are the null: each t becomes an empirical p-value against them (p = (1 + #{t_0 ≥
t}) / (n_0 + 1), Sec. III E), and, beyond the reach of the null sample, a χ² p-value
with the degrees of freedom fitted to the null (the paper's extrapolation of Fig. 2).

Thinning needs w ≤ 1, i.e. simulation of at least the pseudo-experiments' luminosity
(``luminosity_fb``); two pseudo-experiments share a fraction ~w of their events, so
they are nearly independent only for simulation of much larger luminosity.

The ideal significance Z_id is Eq. (29) on binned m_coll templates of each category,
combined over emu and mue (q0 adds): the reach of an analysis that knows the signal
and background shapes exactly.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from symnplm.inference.calculators import toy_null
from symnplm.inference.ideal_significance import binned_ideal_significance
from symnplm.inference.significance import asymptotic_z, empirical_pvalue, fit_chi2_dof, p_to_z
from symnplm.inference.streams import STREAM_SENSITIVITY
from symnplm.io.files import write_json
from symnplm.io.provenance import provenance
from symnplm.io.samples import Sample
from symnplm.workflow.config import RunConfig
from symnplm.workflow.runs import build_test, prepare_samples, unweight

Progress = Callable[[int, int], None]


@dataclass
class SensitivityPoint:
    """Pseudo-experiments at one injected branching ratio."""

    branching_ratio: float
    t: np.ndarray
    z: np.ndarray
    z_chi2: np.ndarray
    z_ideal: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary with the median and 16/84% quantiles of Z."""
        # quantiles that are sample values: Z = -inf (t <= 0) must not become NaN
        q = lambda v: np.percentile(v, [16, 50, 84], method="inverted_cdf").tolist()  # noqa: E731
        return {
            "branching_ratio": self.branching_ratio,
            "t": self.t.tolist(),
            "z": self.z.tolist(),
            "z_chi2": self.z_chi2.tolist(),
            "median_t": float(np.median(self.t)),
            "z_quantiles": q(self.z),
            "z_chi2_quantiles": q(self.z_chi2),
            "z_ideal": self.z_ideal,
        }


def _weighted(cfg: RunConfig, br: float) -> RunConfig:
    inject = dataclasses.replace(cfg.inject, branching_ratio=br) if cfg.inject else None
    if inject is None and br > 0:
        from symnplm.workflow.config import InjectionSpec

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


def ideal_z(cfg: RunConfig, br: float, edges: np.ndarray) -> float:
    """Z_id of Eq. (29) on m_coll templates (``edges`` in 100 GeV), emu and mue combined.

    The signal template of a category is (background + signal at ``br``) - background,
    both from the weighted simulation; q0 = Z² adds over the two categories.
    """
    if br <= 0:
        return 0.0
    one_d = {"features": "m_coll", "scale": None, "unweight": "none"}
    background = prepare_samples(dataclasses.replace(cfg, inject=None, **one_d))
    total = prepare_samples(dataclasses.replace(_weighted(cfg, br), **one_d))
    z2 = 0.0
    for bkg, tot in zip(background, total):
        n_b = np.histogram(bkg.features[:, 0], edges, weights=bkg.weights)[0]
        n_s = np.histogram(tot.features[:, 0], edges, weights=tot.weights)[0] - n_b
        keep = n_b > 0
        z2 += binned_ideal_significance(n_b[keep], np.clip(n_s[keep], 0.0, None)) ** 2
    return float(np.sqrt(z2))


def sensitivity_scan(
    cfg: RunConfig,
    branching_ratios: Sequence[float],
    n_toys: int,
    *,
    n_null: int | None = None,
    batch_size: int | None = None,
    progress: Progress | None = None,
) -> tuple[np.ndarray, list[SensitivityPoint]]:
    """t and Z of pseudo-experiments for every branching ratio, and the null t values.

    Parameters
    ----------
    cfg
        The run description (input, samples, features, statistic, seed). ``inject``
        gives the signal datasets (default H→τe); its branching ratio is scanned.
    branching_ratios
        Values to inject (0 is added if missing: it is the null).
    n_toys
        Pseudo-experiments per branching ratio.
    n_null
        Pseudo-experiments at BR = 0 (default ``n_toys``).
    """
    brs = sorted({0.0, *(float(v) for v in branching_ratios)})
    n_null = n_null or n_toys
    edges = np.linspace(0.0, 5.0, 51)  # m_coll / 100 GeV, 10 GeV bins
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
        null = toy_null(
            test,
            n,
            generator=pseudo_experiments(a, b),
            seed=int(stream.generate_state(1)[0]),
            batch_size=batch_size,
        )
        t_by_br[br] = null.t
        done += n
        if progress is not None:
            progress(done, total)
    t0 = t_by_br[0.0]
    fit = fit_chi2_dof(t0, test.dof)
    points = []
    for br in brs:
        t = t_by_br[br]
        z = np.array([p_to_z(empirical_pvalue(v, t0)) for v in t])
        z_chi2 = np.asarray(asymptotic_z(t, fit.dof), dtype=np.float64)
        points.append(SensitivityPoint(br, t, z, z_chi2, ideal_z(cfg, br, edges)))
    return t0, points


def write_scan(
    directory: str | os.PathLike[str], cfg: RunConfig, points: list[SensitivityPoint], **extra: Any
) -> Path:
    """``sensitivity.json`` in ``directory``."""
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
