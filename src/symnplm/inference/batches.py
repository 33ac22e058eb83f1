"""The unit of work of every statistic: R two-sample problems, their fitted t, the interface.

A :class:`ReplicaBatch` holds R two-sample problems over the same event layout,
each event carrying a weight in A and a weight in B. The observed test is R = 1
with the events of A (weight in A) followed by those of B (weight in B); a
permutation relabels the weights; a Poisson-bootstrap toy redraws them; generator
toys carry their own events per replica (zero-padded). A statistic, a
:class:`TwoSampleTest` (implementations in :mod:`symnplm.inference.test_statistics`),
solves all R problems by one batched fit and returns a :class:`BatchFit`; its
:meth:`TwoSampleTest.fit` is the observed test, a batch of one.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from symnplm.inference.results import TestResult
from symnplm.io.provenance import provenance
from symnplm.io.samples import Sample, as_sample

__all__ = ["BatchFit", "ReplicaBatch", "TwoSampleTest"]


@dataclass
class ReplicaBatch:
    """R two-sample problems sharing an event layout.

    Attributes
    ----------
    x
        Events: ``(N, d)`` shared by all replicas, or ``(R, N, d)``.
    weight_a, weight_b
        Each event's weight in sample A and in sample B, ``(R, N)``. Zero means
        "not in this sample" (also used for padding).
    names
        Feature names.
    """

    x: np.ndarray
    weight_a: np.ndarray
    weight_b: np.ndarray
    names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.x = np.asarray(self.x, dtype=np.float64)
        if self.x.ndim == 1:
            self.x = self.x[:, None]
        self.weight_a = np.atleast_2d(np.asarray(self.weight_a, dtype=np.float64))
        self.weight_b = np.atleast_2d(np.asarray(self.weight_b, dtype=np.float64))
        if self.weight_a.shape != self.weight_b.shape:
            raise ValueError(
                f"weight_a {self.weight_a.shape} and weight_b {self.weight_b.shape} differ"
            )
        r, n = self.weight_a.shape
        if (
            self.x.ndim not in (2, 3)
            or self.x.shape[-2] != n
            or (self.x.ndim == 3 and self.x.shape[0] != r)
        ):
            raise ValueError(
                f"events of shape {self.x.shape} do not match weights of shape {(r, n)}"
            )
        if not np.all(np.isfinite(self.x)):
            raise ValueError("events contain non-finite feature values")
        for label, w in (("A", self.weight_a), ("B", self.weight_b)):
            tot = w.sum(axis=1)
            if not np.all(tot > 0):
                bad = int(np.argmin(tot))
                raise ValueError(
                    f"sample {label} has total weight {tot[bad]} in replica {bad}; must be positive"
                )

    @property
    def n_replicas(self) -> int:
        """R."""
        return self.weight_a.shape[0]

    @property
    def dim(self) -> int:
        """Feature dimension d."""
        return self.x.shape[-1]

    @property
    def sum_a(self) -> np.ndarray:
        """Ñ_A per replica."""
        return self.weight_a.sum(axis=1)

    @property
    def sum_b(self) -> np.ndarray:
        """Ñ_B per replica."""
        return self.weight_b.sum(axis=1)

    def repeated(self, copies: int) -> ReplicaBatch:
        """The R problems ``copies`` times over, copy-major: replica c·R + r is problem r.

        The layout of a fit started from several points (one copy per start); shared
        events stay shared.
        """
        if copies == 1:
            return self
        x = self.x if self.x.ndim == 2 else np.tile(self.x, (copies, 1, 1))
        tile = (copies, 1)
        return ReplicaBatch(
            x, np.tile(self.weight_a, tile), np.tile(self.weight_b, tile), self.names
        )

    def merged(self) -> ReplicaBatch:
        """The same problems on the distinct events, in canonical (sorted) order.

        Every loss is linear in the per-event weights and f depends on x only, so
        events with identical features can be merged by summing their weights
        (bootstrapped samples have many), and events in neither sample dropped. The
        sorted order makes the layout independent of which sample came first, so a
        fit of A is the same computation whether A is called A or B: swapping the
        samples swaps the fits exactly.
        """
        if self.x.ndim != 2:
            return self
        used = (self.weight_a != 0).any(axis=0) | (self.weight_b != 0).any(axis=0)
        x, wa, wb = self.x[used], self.weight_a[:, used], self.weight_b[:, used]
        ux, inverse = np.unique(x, axis=0, return_inverse=True)
        inverse = inverse.ravel()
        r, k = wa.shape[0], ux.shape[0]
        flat = (np.arange(r)[:, None] * k + inverse[None, :]).ravel()
        wa = np.bincount(flat, weights=wa.ravel(), minlength=r * k).reshape(r, k)
        wb = np.bincount(flat, weights=wb.ravel(), minlength=r * k).reshape(r, k)
        return ReplicaBatch(ux, wa, wb, self.names)

    @classmethod
    def from_samples(cls, a: Sample, b: Sample) -> ReplicaBatch:
        """The observed problem, R = 1 (merged: see :meth:`merged`)."""
        if a.dim != b.dim:
            raise ValueError(
                "samples have different feature dimensions: "
                f"{a.name!r} d={a.dim}, {b.name!r} d={b.dim}"
            )
        if a.names != b.names:
            raise ValueError(
                f"samples have different features: {a.name!r} {a.names}, {b.name!r} {b.names}"
            )
        x = np.concatenate([a.features, b.features])
        wa = np.concatenate([a.weights, np.zeros(len(b))])
        wb = np.concatenate([np.zeros(len(a)), b.weights])
        return cls(x, wa[None], wb[None], a.names).merged()


@dataclass
class BatchFit:
    """t for every replica of a batch, with diagnostics.

    Attributes
    ----------
    t
        The statistic per replica, ``(R,)``; ``+inf`` for diverged fits.
    parts
        Named contributions to t (e.g. ``t_A``, ``t_B`` of the symmetrized test).
    diverged, converged
        Per replica.
    history_steps, history
        Recorded steps ``(K,)`` and the statistic(s) at those steps, ``(K, R)`` each.
    functions
        Fitted parameters per function name (``f``, ``g``, ``delta``, …), each a list
        of tensors with leading dimension R; empty unless asked for.
    log_ratio_terms, log_ratio_constant
        log(n_A/n_B)(x) = Σ coefficient × function(x) + constant (per replica).
    seconds, data_passes
        Cost of the fit.
    """

    t: np.ndarray
    parts: dict[str, np.ndarray]
    diverged: np.ndarray
    converged: np.ndarray
    history_steps: np.ndarray
    history: dict[str, np.ndarray]
    functions: dict[str, list[np.ndarray]] = field(default_factory=dict)
    log_ratio_terms: list[list[Any]] = field(default_factory=list)
    log_ratio_constant: np.ndarray = field(default_factory=lambda: np.zeros(0))
    seconds: float = 0.0
    data_passes: int = 0


class TwoSampleTest(ABC):
    """A test statistic t for "are A and B drawn from one distribution?"."""

    #: name of the statistic (a class constant, but for the binned test, which names its kind)
    statistic: str = ""

    @property
    @abstractmethod
    def dof(self) -> int:
        """Degrees of freedom of the asymptotic χ² (Wilks/Wald)."""

    @property
    @abstractmethod
    def n_parameters(self) -> int:
        """Free parameters of the alternative's function(s) per sample."""

    @abstractmethod
    def model_description(self) -> dict[str, Any]:
        """JSON-able description of the fitted function family."""

    @abstractmethod
    def config(self) -> dict[str, Any]:
        """JSON-able configuration."""

    @abstractmethod
    def fit_batch(
        self,
        batch: ReplicaBatch,
        seed: int,
        replica_ids: Sequence[int],
        keep_functions: bool = False,
    ) -> BatchFit:
        """t for every replica of ``batch``; networks seeded from (seed, replica id)."""

    @abstractmethod
    def check_input(self, batch: ReplicaBatch) -> None:
        """Raise ``ValueError`` if the batch does not fit this statistic."""

    def fit(self, a: Sample | np.ndarray, b: Sample | np.ndarray, *, seed: int = 0) -> TestResult:
        """The observed test statistic for samples A and B.

        Parameters
        ----------
        a, b
            Samples (or arrays ``(N,)`` / ``(N, d)``, unit weights).
        seed
            Seed of the network initialisation.
        """
        a, b = as_sample(a, "A"), as_sample(b, "B")
        batch = ReplicaBatch.from_samples(a, b)
        self.check_input(batch)
        start = time.perf_counter()
        out = self.fit_batch(batch, seed, [0], keep_functions=True)
        seconds = time.perf_counter() - start
        return TestResult(
            statistic=self.statistic,
            t=float(out.t[0]),
            parts={k: float(v[0]) for k, v in out.parts.items()},
            dof=self.dof,
            n_parameters=self.n_parameters,
            diverged=bool(out.diverged[0]),
            converged=bool(out.converged[0]),
            functions={k: [np.asarray(p[0]) for p in v] for k, v in out.functions.items()},
            log_ratio={"terms": out.log_ratio_terms, "constant": float(out.log_ratio_constant[0])},
            model=self.model_description(),
            history_steps=out.history_steps,
            history={k: v[:, 0] for k, v in out.history.items()},
            samples={
                "A": {
                    "name": a.name,
                    "n_events": len(a),
                    "sum_weights": a.sum_weights,
                    "provenance": a.provenance,
                },
                "B": {
                    "name": b.name,
                    "n_events": len(b),
                    "sum_weights": b.sum_weights,
                    "provenance": b.provenance,
                },
                "features": list(a.names),
            },
            seed=int(seed),
            config=self.config(),
            provenance=provenance(),
            seconds=seconds,
        )
