"""Binned diagnostics: G-tests of A against B per feature, that a network cannot hide.

A network-based t can miss an asymmetry that its function family does not resolve
(a narrow window in η, a step at a detector boundary): a p-value that is large for
that reason is not evidence of symmetry. Every emu-vs-mue result therefore carries
binned symmetrized statistics (the G-test of the 2×K table of A and B weights,
:class:`~symnplm.inference.binned.BinnedTest`) of each feature and of
feature pairs (e.g. (η_lead, η_sub)), each calibrated with the same kind of null as
the network: relabellings of A ∪ B (Sec. III E of arXiv:2401.09530), with the
uncertainty of a label-dependent reweighting redrawn in every replica
(:mod:`symnplm.inference.reweighting`). Bins are quantiles of the pooled sample, so
every bin is populated.

>>> import numpy as np
>>> from symnplm.io.samples import Sample
>>> rng = np.random.default_rng(1)
>>> a = Sample(rng.normal(size=(2000, 2)), names=("x", "y"))
>>> b = Sample(rng.normal(size=(2000, 2)), names=("x", "y"))
>>> [d.name for d in binned_diagnostics(a, b, {"x": ("x",), "x:y": ("x", "y")}, n=20)]
['x', 'x:y']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from symnplm.inference.batches import ReplicaBatch
from symnplm.inference.binned import BinnedTest
from symnplm.inference.calculators import permutation_weights
from symnplm.inference.reweighting import ReweightingUncertainty
from symnplm.inference.significance import asymptotic_pvalue, empirical_pvalue, p_to_z
from symnplm.io.samples import Sample

__all__ = ["BinnedDiagnostic", "DiagnosticBinning", "binned_diagnostics"]

#: Quantile bins of a one-feature diagnostic and per axis of a two-feature one.
BINS_1D = 20
BINS_2D = 8


@dataclass(frozen=True)
class BinnedDiagnostic:
    """One binned G-test of A against B, with its null from relabellings.

    Attributes
    ----------
    name
        ``feature`` or ``feature1:feature2``.
    features
        The feature(s) binned.
    edges
        Bin edges per feature (in the samples' units).
    t
        The G statistic (symmetrized binned t).
    dof
        Bins − 1.
    null_mean, null_std
        Mean and standard deviation of t over the null replicas.
    p_value, z
        Empirical p-value against the null replicas, and its Z.
    p_asymptotic
        χ²_dof p-value (exact only for unit weights and large counts).
    n_null
        Null replicas.
    """

    name: str
    features: tuple[str, ...]
    edges: tuple[tuple[float, ...], ...]
    t: float
    dof: int
    null_mean: float
    null_std: float
    p_value: float
    z: float
    p_asymptotic: float
    n_null: int

    @property
    def pull(self) -> float:
        """(t − null mean) / null standard deviation."""
        return (self.t - self.null_mean) / self.null_std if self.null_std > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-able, with the pull."""
        return {
            **asdict(self),
            "features": list(self.features),
            "edges": [list(e) for e in self.edges],
            "pull": self.pull,
        }


@dataclass(frozen=True)
class DiagnosticBinning:
    """Bins of a diagnostic: one or two features, edges per feature.

    The bins of a two-feature diagnostic are the cells of the grid, numbered row-major.
    """

    name: str
    features: tuple[str, ...]
    edges: tuple[np.ndarray, ...]

    @classmethod
    def quantiles(
        cls, name: str, features: Sequence[str], a: Sample, b: Sample, bins: int | None = None
    ) -> DiagnosticBinning:
        """Quantile edges of ``features`` on A ∪ B (every bin populated)."""
        if not 1 <= len(features) <= 2:
            raise ValueError(f"a diagnostic bins one or two features, got {list(features)}")
        bins = bins or (BINS_1D if len(features) == 1 else BINS_2D)
        pooled = Sample.concatenate([a, b])
        edges = []
        for f in features:
            e = np.unique(np.quantile(pooled.column(f), np.linspace(0, 1, bins + 1)))
            if e.size < 2:
                raise ValueError(f"diagnostic of {f!r}: the feature takes a single value")
            edges.append(e)
        return cls(name, tuple(features), tuple(edges))

    @property
    def shape(self) -> tuple[int, ...]:
        """Bins per feature."""
        return tuple(e.size - 1 for e in self.edges)

    @property
    def n_bins(self) -> int:
        """All bins."""
        return int(np.prod(self.shape))

    def index(self, sample: Sample) -> np.ndarray:
        """Flat bin of every event (outside the edges: the edge bins)."""
        per_feature = tuple(
            np.clip(np.searchsorted(e, sample.column(f), side="right") - 1, 0, e.size - 2)
            for f, e in zip(self.features, self.edges)
        )
        return np.ravel_multi_index(per_feature, self.shape)

    def test(self) -> BinnedTest:
        """The binned statistic on the flat bin index."""
        return BinnedTest(np.arange(self.n_bins + 1) - 0.5)

    def statistic(self, a: Sample, b: Sample) -> float:
        """The observed G statistic of A against B."""
        x = np.concatenate([self.index(a), self.index(b)]).astype(np.float64)
        wa = np.r_[a.weights, np.zeros(len(b))]
        wb = np.r_[np.zeros(len(a)), b.weights]
        return float(self.test().fit_batch(ReplicaBatch(x, wa, wb), 0, [0]).t[0])


def binned_diagnostics(
    a: Sample,
    b: Sample,
    specs: Mapping[str, Sequence[str]],
    *,
    n: int = 200,
    seed: int = 0,
    reweighting: ReweightingUncertainty | None = None,
    batch_size: int = 50,
) -> list[BinnedDiagnostic]:
    """G-tests of A against B for every ``name: features`` in ``specs`` (module docstring).

    Parameters
    ----------
    a, b
        Samples holding (at least) the features of ``specs``.
    specs
        Diagnostic name → one or two feature names.
    n
        Null relabellings (those of the permutation stream of ``seed``: the same as a
        network test's permutation null with that seed).
    seed
        Seed of the relabellings and of the reweighting draws.
    reweighting
        Uncertainty of label-dependent weights of A ∪ B, redrawn per replica.
    batch_size
        Replicas histogrammed at once (memory: replicas × events).
    """
    if n < 1:
        raise ValueError(f"need at least one null replica, got {n}")
    binnings = [DiagnosticBinning.quantiles(name, f, a, b) for name, f in specs.items()]
    pooled = Sample.concatenate([a, b])
    index = {d.name: d.index(pooled).astype(np.float64) for d in binnings}
    null: dict[str, list[np.ndarray]] = {d.name: [] for d in binnings}
    for start in range(0, n, batch_size):
        ids = list(range(start, min(start + batch_size, n)))
        # one relabelling of A ∪ B per replica, shared by all diagnostics
        wa, wb = permutation_weights(pooled.weights, len(a), seed, ids, reweighting)
        for d in binnings:
            null[d.name].append(
                d.test().fit_batch(ReplicaBatch(index[d.name], wa, wb), seed, ids).t
            )
    out = []
    for d in binnings:
        t = d.statistic(a, b)
        t_null = np.concatenate(null[d.name])
        p = empirical_pvalue(t, t_null)
        out.append(
            BinnedDiagnostic(
                name=d.name,
                features=d.features,
                edges=tuple(tuple(float(x) for x in e) for e in d.edges),
                t=t,
                dof=d.n_bins - 1,
                null_mean=float(np.mean(t_null)),
                null_std=float(np.std(t_null, ddof=1)) if t_null.size > 1 else 0.0,
                p_value=float(p),
                z=float(p_to_z(p)),
                p_asymptotic=float(asymptotic_pvalue(t, d.n_bins - 1)),
                n_null=int(t_null.size),
            )
        )
    return out
