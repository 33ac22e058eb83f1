"""Calibration: from an observed t to a p-value, behind one call (:func:`calibrate`).

* ``"asymptotic"`` — Wilks/Wald: t ~ χ²_dof under the null (dof from the statistic).
* ``"permutations"`` — Sec. III E: pool A ∪ B and relabel it keeping Ñ_A and Ñ_B
  event counts; every relabelling is equally likely under the null, whatever the
  common density. p = (1 + #{t_perm ≥ t_obs}) / (n_perm + 1).
* ``"toys"`` — the null from new datasets: a Poisson bootstrap of the pooled sample
  (each pooled event enters A and B with independent Poisson(Ñ_A/Ñ), Poisson(Ñ_B/Ñ)
  multiplicities, so sizes fluctuate as in Sec. III A), or any generator of (A, B).

Weights that depend on an event's label and carry an uncertainty (an efficiency map
measured elsewhere, :mod:`symnplm.inference.reweighting`) are redrawn in every
permutation and bootstrap replica (``reweighting=``).

All replicas of a batch are one batched fit (never a Python loop of trainings).
Every replica's randomness — labels, toy data, network initialisation — derives
from (seed, stream, replica id) alone, never from the batching, so a campaign can
be cut into batches, distributed and resumed batch by batch. For a fixed batch
size the values are bit-identical run to run; across batch sizes, Adam fits are
too, while Newton paths may pick up last-bit rounding differences (vectorised
transcendental functions round differently at the tail of a tensor) that a
non-convex fit can amplify.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np

from symnplm.inference.batches import ReplicaBatch, TwoSampleTest
from symnplm.inference.progress import ProgressLine
from symnplm.inference.results import CalibrationResult, NullDistribution, TestResult
from symnplm.inference.reweighting import ReweightingUncertainty
from symnplm.inference.significance import (
    asymptotic_pvalue,
    asymptotic_z,
    empirical_pvalue,
    fit_chi2_dof,
    p_to_z,
)
from symnplm.inference.streams import (
    STREAM_PERMUTATION,
    STREAM_REWEIGHTING,
    STREAM_SCAN,
    STREAM_TOYS,
    replica_rng,
)
from symnplm.io.samples import Sample, as_sample

__all__ = [
    "DEFAULT_BATCH_ELEMENTS",
    "METHODS",
    "Progress",
    "ToyGenerator",
    "bootstrap_batch",
    "calibrate",
    "calibrated",
    "default_batch_size",
    "generator_batch",
    "joint_permutation_labels",
    "labelled_batch",
    "pairs_batch",
    "permutation_batch",
    "permutation_null",
    "permutation_weights",
    "relabel",
    "toy_null",
]

#: memory bound of one batch: replicas × events (each weight array is this many floats)
DEFAULT_BATCH_ELEMENTS = 1 << 25

ToyGenerator = Callable[[np.random.Generator], tuple[Sample | np.ndarray, Sample | np.ndarray]]
Progress = Callable[[int, int], None]


def default_batch_size(n_events: int, n_total: int) -> int:
    """Replicas per batch so that a batch's weight arrays stay ≲ 128 MB each."""
    return max(1, min(int(n_total), DEFAULT_BATCH_ELEMENTS // max(1, int(n_events))))


def _pool(a: Sample, b: Sample) -> tuple[np.ndarray, np.ndarray]:
    if a.names != b.names:
        raise ValueError(f"samples have different features: {a.names} and {b.names}")
    return np.concatenate([a.features, b.features]), np.concatenate([a.weights, b.weights])


# ---------------------------------------------------------------------------------------
# batches (the unit of work of a campaign)
# ---------------------------------------------------------------------------------------
def _label_weights(
    w: np.ndarray,
    in_a: np.ndarray,
    in_b: np.ndarray,
    seed: int,
    replica_ids: Sequence[int],
    reweighting: ReweightingUncertainty | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Weights in A and in B of every replica, with the reweighting redrawn per replica."""
    wa, wb = w * in_a, w * in_b
    if reweighting is not None:
        for row, rid in enumerate(replica_ids):
            _reweight(wa[row], wb[row], reweighting, replica_rng(seed, STREAM_REWEIGHTING, rid))
    return wa, wb


def _reweight(
    wa: np.ndarray, wb: np.ndarray, reweighting: ReweightingUncertainty, rng: np.random.Generator
) -> None:
    """Multiply one replica's weights in place by a draw of the reweighting's factors."""
    if len(reweighting) != len(wa):
        raise ValueError(
            f"the reweighting uncertainty covers {len(reweighting)} events, the pooled "
            f"sample has {len(wa)}"
        )
    fa, fb = reweighting.factors(rng)
    wa *= fa
    wb *= fb


def relabel(
    w: np.ndarray,
    n_a: int,
    rng: np.random.Generator,
    reweighting: ReweightingUncertainty | None = None,
    reweighting_rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One relabelling of pooled events ``w``: ``n_a`` of them to A, at random (Sec. III E).

    Returns the weights in A and in B; the reweighting, if any, is drawn from
    ``reweighting_rng`` (default: ``rng``, after the labels).
    """
    is_a = np.zeros(len(w), dtype=bool)
    is_a[rng.permutation(len(w))[:n_a]] = True
    wa, wb = w * is_a, w * ~is_a
    if reweighting is not None:
        _reweight(wa, wb, reweighting, reweighting_rng or rng)
    return wa, wb


def permutation_weights(
    w: np.ndarray,
    n_a: int,
    seed: int,
    replica_ids: Sequence[int],
    reweighting: ReweightingUncertainty | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Weights in A and in B, ``(R, N)``, of pooled events ``w`` under permutations ``replica_ids``.

    The labels of replica r come from stream ``STREAM_PERMUTATION`` and its reweighting
    draw from ``STREAM_REWEIGHTING``, so the labels are those of the plain permutation
    null whether or not a reweighting is redrawn.
    """
    rows = [
        relabel(
            w,
            n_a,
            replica_rng(seed, STREAM_PERMUTATION, rid),
            reweighting,
            replica_rng(seed, STREAM_REWEIGHTING, rid),
        )
        for rid in replica_ids
    ]
    return np.stack([r[0] for r in rows]), np.stack([r[1] for r in rows])


def permutation_batch(
    test: TwoSampleTest,
    a: Sample,
    b: Sample,
    seed: int,
    replica_ids: Sequence[int],
    reweighting: ReweightingUncertainty | None = None,
) -> NullDistribution:
    """Fit the permutations ``replica_ids`` of A ∪ B (A keeps its event count)."""
    x, w = _pool(a, b)
    wa, wb = permutation_weights(w, len(a), seed, replica_ids, reweighting)
    return _run(test, ReplicaBatch(x, wa, wb, a.names).merged(), seed, replica_ids, "permutations")


def joint_permutation_labels(
    n_events: int, n_a: int, seed: int, replica_ids: Sequence[int]
) -> np.ndarray:
    """(R, N) booleans, True for A: one relabelling per replica of all pooled events.

    A scan gives every cell the columns of its own events under the *same* relabelling
    (stream ``STREAM_SCAN``), so that the null ensemble keeps the correlations between
    overlapping cells (:mod:`symnplm.inference.lookelsewhere`).
    """
    labels = np.zeros((len(replica_ids), int(n_events)), dtype=bool)
    for row, rid in enumerate(replica_ids):
        labels[row, replica_rng(seed, STREAM_SCAN, rid).permutation(int(n_events))[:n_a]] = True
    return labels


def labelled_batch(
    test: TwoSampleTest,
    x: np.ndarray,
    w: np.ndarray,
    in_a: np.ndarray,
    seed: int,
    replica_ids: Sequence[int],
    names: Sequence[str] = (),
    reweighting: ReweightingUncertainty | None = None,
) -> NullDistribution:
    """Fit events ``x`` with weights ``w`` labelled A where ``in_a`` (R, N) is true.

    The reweighting, if any, is redrawn per replica from ``STREAM_REWEIGHTING`` as in
    :func:`permutation_batch`.
    """
    in_a = np.atleast_2d(in_a)
    wa, wb = _label_weights(w, in_a, ~in_a, seed, replica_ids, reweighting)
    batch = ReplicaBatch(x, wa, wb, tuple(names)).merged()
    return _run(test, batch, seed, replica_ids, "permutations")


def bootstrap_batch(
    test: TwoSampleTest,
    a: Sample,
    b: Sample,
    seed: int,
    replica_ids: Sequence[int],
    reweighting: ReweightingUncertainty | None = None,
) -> NullDistribution:
    """Poisson-bootstrap null toys from the pooled sample A ∪ B."""
    x, w = _pool(a, b)
    lam_a = a.sum_weights / (a.sum_weights + b.sum_weights)
    ka = np.empty((len(replica_ids), len(w)))
    kb = np.empty_like(ka)
    for row, rid in enumerate(replica_ids):
        rng = replica_rng(seed, STREAM_TOYS, rid)
        ka[row] = rng.poisson(lam_a, size=len(w))
        kb[row] = rng.poisson(1 - lam_a, size=len(w))
    wa, wb = _label_weights(w, ka, kb, seed, replica_ids, reweighting)
    return _run(test, ReplicaBatch(x, wa, wb, a.names).merged(), seed, replica_ids, "toys")


def generator_batch(
    test: TwoSampleTest, generator: ToyGenerator, seed: int, replica_ids: Sequence[int]
) -> NullDistribution:
    """Toys (A, B) drawn by ``generator(rng)``, zero-padded to a common length."""
    pairs = [generator(replica_rng(seed, STREAM_TOYS, rid)) for rid in replica_ids]
    return pairs_batch(test, pairs, seed, replica_ids)


def pairs_batch(
    test: TwoSampleTest,
    pairs: Sequence[tuple[Sample | np.ndarray, Sample | np.ndarray]],
    seed: int,
    replica_ids: Sequence[int],
    method: str = "toys",
) -> NullDistribution:
    """One batched fit of given samples (A, B), one pair per replica, zero-padded."""
    samples = [(as_sample(pa, "A"), as_sample(pb, "B")) for pa, pb in pairs]
    n_max = max(len(pa) + len(pb) for pa, pb in samples)
    d = samples[0][0].dim
    x = np.zeros((len(samples), n_max, d))
    wa = np.zeros((len(samples), n_max))
    wb = np.zeros_like(wa)
    for row, (pa, pb) in enumerate(samples):
        na, nb = len(pa), len(pb)
        x[row, : na + nb] = np.concatenate([pa.features, pb.features])
        wa[row, :na] = pa.weights
        wb[row, na : na + nb] = pb.weights
    return _run(test, ReplicaBatch(x, wa, wb, samples[0][0].names), seed, replica_ids, method)


def _run(
    test: TwoSampleTest, batch: ReplicaBatch, seed: int, replica_ids: Sequence[int], method: str
) -> NullDistribution:
    ids = np.asarray(replica_ids, dtype=np.int64)
    start = time.perf_counter()
    # Network initialisations of null replica i use id i + 1; id 0 is the observed fit.
    out = test.fit_batch(batch, seed, list(ids + 1))
    return NullDistribution(
        method=method,
        t=out.t,
        diverged=out.diverged,
        converged=out.converged,
        seed=int(seed),
        replica_ids=ids,
        history_steps=out.history_steps,
        history_t=out.history.get("t", np.zeros((0, len(ids)))),
        parts=out.parts,
        config=test.config(),
        seconds=time.perf_counter() - start,
    )


# ---------------------------------------------------------------------------------------
# campaigns
# ---------------------------------------------------------------------------------------
def _campaign(
    run_batch: Callable[[Sequence[int]], NullDistribution],
    n: int,
    batch_size: int,
    progress: Progress | None,
) -> NullDistribution:
    if n < 1:
        raise ValueError(f"need at least one null replica, got {n}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    parts = []
    for start in range(0, n, batch_size):
        parts.append(run_batch(range(start, min(start + batch_size, n))))
        if progress is not None:
            progress(min(start + batch_size, n), n)
    return NullDistribution.concatenate(parts)


def permutation_null(
    test: TwoSampleTest,
    a: Sample | np.ndarray,
    b: Sample | np.ndarray,
    n_permutations: int,
    *,
    seed: int = 0,
    batch_size: int | None = None,
    progress: Progress | None = None,
    reweighting: ReweightingUncertainty | None = None,
) -> NullDistribution:
    """Null distribution of ``test`` from ``n_permutations`` relabellings of A ∪ B (Sec. III E)."""
    a, b = as_sample(a, "A"), as_sample(b, "B")
    bs = batch_size or default_batch_size(len(a) + len(b), n_permutations)
    return _campaign(
        lambda ids: permutation_batch(test, a, b, seed, ids, reweighting),
        n_permutations,
        bs,
        progress,
    )


def toy_null(
    test: TwoSampleTest,
    n_toys: int,
    *,
    a: Sample | np.ndarray | None = None,
    b: Sample | np.ndarray | None = None,
    generator: ToyGenerator | None = None,
    seed: int = 0,
    batch_size: int | None = None,
    progress: Progress | None = None,
    reweighting: ReweightingUncertainty | None = None,
) -> NullDistribution:
    """Null distribution from toys: a generator of (A, B), or a Poisson bootstrap of A ∪ B."""
    if generator is not None:
        if reweighting is not None:
            raise ValueError("a toy generator draws its own samples: no reweighting to redraw")
        if batch_size is None:
            probe_a, probe_b = (as_sample(s) for s in generator(replica_rng(seed, STREAM_TOYS, 0)))
            batch_size = default_batch_size(2 * (len(probe_a) + len(probe_b)), n_toys)
        return _campaign(
            lambda ids: generator_batch(test, generator, seed, ids), n_toys, batch_size, progress
        )
    if a is None or b is None:
        raise ValueError("toy_null needs either a generator or the samples a and b to bootstrap")
    a, b = as_sample(a, "A"), as_sample(b, "B")
    bs = batch_size or default_batch_size(len(a) + len(b), n_toys)
    return _campaign(
        lambda ids: bootstrap_batch(test, a, b, seed, ids, reweighting), n_toys, bs, progress
    )


METHODS = ("asymptotic", "permutations", "toys")


def calibrate(
    test: TwoSampleTest,
    a: Sample | np.ndarray,
    b: Sample | np.ndarray,
    *,
    method: str = "asymptotic",
    n: int | None = None,
    seed: int = 0,
    generator: ToyGenerator | None = None,
    batch_size: int | None = None,
    observed: TestResult | None = None,
    progress: Progress | bool | None = None,
    reweighting: ReweightingUncertainty | None = None,
) -> CalibrationResult:
    """Observed t with its p-value and Z.

    Parameters
    ----------
    test
        The statistic (e.g. :class:`~symnplm.inference.SymmetrizedTest`).
    a, b
        The samples.
    method
        ``"asymptotic"``, ``"permutations"`` or ``"toys"``.
    n
        Number of permutations / toys (required for those methods).
    seed
        Seeds the observed fit and every null replica.
    generator
        For ``"toys"``: a callable ``rng -> (A, B)``; default Poisson bootstrap of A ∪ B.
    batch_size
        Replicas per batched fit (default: bounded by memory).
    observed
        A result of ``test.fit(a, b)`` to reuse instead of refitting.
    progress
        Called as ``progress(done, total)`` after each batch; ``True`` draws a line with
        the replicas done and an ETA on standard error
        (:class:`~symnplm.inference.progress.ProgressLine`).
    reweighting
        Uncertainty of label-dependent weights, redrawn in every null replica
        (:mod:`symnplm.inference.reweighting`); not for the asymptotic method.
    """
    if method not in METHODS:
        raise ValueError(f"unknown calibration method {method!r}; choose from {METHODS}")
    report = ProgressLine(method) if progress is True else progress or None
    a, b = as_sample(a, "A"), as_sample(b, "B")
    obs = observed if observed is not None else test.fit(a, b, seed=seed)
    if method == "asymptotic":
        if reweighting is not None:
            raise ValueError("the asymptotic calibration cannot include a reweighting uncertainty")
        return CalibrationResult(
            obs,
            method,
            float(asymptotic_pvalue(obs.t, obs.dof)),
            float(asymptotic_z(obs.t, obs.dof)),
        )
    if n is None or n < 1:
        raise ValueError(f"method {method!r} needs the number of replicas n >= 1, got {n}")
    if method == "permutations":
        null = permutation_null(
            test,
            a,
            b,
            n,
            seed=seed,
            batch_size=batch_size,
            progress=report,
            reweighting=reweighting,
        )
    else:
        null = toy_null(
            test,
            n,
            a=a,
            b=b,
            generator=generator,
            seed=seed,
            batch_size=batch_size,
            progress=report,
            reweighting=reweighting,
        )
    return calibrated(obs, null)


def calibrated(observed: TestResult, null: NullDistribution) -> CalibrationResult:
    """Combine an observed result and a null distribution into p, Z and a χ² dof fit."""
    p = empirical_pvalue(observed.t, null.t)
    try:
        chi2 = fit_chi2_dof(null.t, observed.dof)
    except ValueError:  # fewer than two finite null values
        chi2 = None
    return CalibrationResult(observed, null.method, p, float(p_to_z(p)), null, chi2)
