"""Two-sample test statistics: NPLM, symmetrized, cross-entropy and binned.

Equation numbers refer to arXiv:2401.09530. Like pyhf's ``infer`` module, a test
statistic here only *computes t*; turning t into a p-value is the job of the
calculators in :mod:`symnplm.inference.calculators`, so every statistic can be
calibrated by χ² asymptotics, permutations or toys.

Every statistic works on a :class:`ReplicaBatch`: R two-sample problems over the
same event layout, each event carrying a weight in A and a weight in B. The
observed test is R = 1 with the events of A (weight in A) followed by those of B
(weight in B); a permutation relabels the weights; a Poisson-bootstrap toy redraws
them; generator toys carry their own events per replica (zero-padded). All R
problems are solved by one batched fit.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import numpy as np
import torch

from symnplm.engine import (
    MLP,
    BinwiseFunction,
    CrossEntropyObjective,
    ExtendedLikelihoodObjective,
    FitConfig,
    SigmaDeltaObjective,
)
from symnplm.engine import fit as run_fit
from symnplm.inference.results import TestResult
from symnplm.inference.streams import STREAM_INIT, stream_seeds
from symnplm.io.provenance import provenance
from symnplm.io.samples import Sample, as_sample


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
    """t for every replica of a batch, with diagnostics."""

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

    statistic: ClassVar[str] = ""

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


# ---------------------------------------------------------------------------------------
# network-based statistics
# ---------------------------------------------------------------------------------------
class NetworkTest(TwoSampleTest):
    """Shared machinery of the statistics whose alternative is a fitted function family.

    Parameters
    ----------
    architecture
        Network layer sizes, e.g. ``(1, 4, 1)`` (the paper's) or ``(5, 5, 5, 5, 1)``.
    activation
        Hidden-layer activation (sigmoid, Eq. 12).
    model
        A function family overriding ``architecture`` (e.g. :class:`BinwiseFunction`).
    fit
        Optimiser settings (:class:`symnplm.engine.FitConfig`): Adam epochs, Newton,
        weight clipping, precision, device.
    init
        ``"glorot"``: Glorot-uniform kernels everywhere, the Keras default of the NPLM
        reference code and of the paper (f ≠ 0 at the start, t starts negative).
        ``"null"``: the output layer starts at zero, so every fit starts at the null
        hypothesis f = 0 (t = 0); Newton only accepts steps that lower the loss, so
        its t is then ≥ 0 by construction. Antisymmetric functions (δ) always start
        at zero.
    """

    def __init__(
        self,
        architecture: Sequence[int] = (1, 4, 1),
        *,
        activation: str = "sigmoid",
        model: MLP | BinwiseFunction | None = None,
        fit: FitConfig | None = None,
        init: str = "glorot",
    ) -> None:
        self.model = model if model is not None else MLP(tuple(architecture), activation)
        self.fit_config = fit or FitConfig()
        if init not in ("glorot", "null"):
            raise ValueError(f"init must be 'glorot' or 'null', got {init!r}")
        self.init = init

    @property
    def n_parameters(self) -> int:
        """Parameters of one fitted function (13 for 1-4-1)."""
        return self.model.n_parameters

    def model_description(self) -> dict[str, Any]:
        """The function family."""
        return self.model.describe()

    def config(self) -> dict[str, Any]:
        """Statistic, model and optimiser settings."""
        return {
            "statistic": self.statistic,
            "model": self.model.describe(),
            "init": self.init,
            "fit": self.fit_config.to_dict(),
        }

    def with_fit(self, **changes: Any) -> NetworkTest:
        """A copy with some optimiser settings changed (e.g. ``epochs=1000``)."""
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        new.fit_config = replace(self.fit_config, **changes)
        return new

    def check_input(self, batch: ReplicaBatch) -> None:
        """Feature dimension must match the network input; weights must be non-negative.

        A negative weight (NLO simulation) makes the likelihood unbounded: the fit
        would follow the negative events to t → ∞ without any sign of divergence.
        """
        if batch.dim != self.model.input_dim:
            raise ValueError(
                f"samples have {batch.dim} feature(s) {list(batch.names)}, "
                f"but the {self.statistic} model expects {self.model.input_dim} "
                f"(architecture {self.model.describe()})"
            )
        for label, w in (("A", batch.weight_a), ("B", batch.weight_b)):
            negative = w < 0
            if np.any(negative):
                raise ValueError(
                    f"sample {label} has {int(negative.sum())} event(s) with a negative weight "
                    f"(smallest {w.min():.4g}): the {self.statistic} fit needs non-negative "
                    "weights (its likelihood is unbounded otherwise). Use simulation with "
                    "positive weights, or the binned test on bins with positive sums"
                )

    # -- helpers -------------------------------------------------------------------------
    def _tensor(self, arr: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(
            arr, dtype=self.fit_config.torch_dtype, device=self.fit_config.device
        )

    def _init(
        self, seed: int, replica_ids: Sequence[int], k: int = 0, zero_output: bool = False
    ) -> list[torch.Tensor]:
        seeds = stream_seeds(seed, STREAM_INIT, replica_ids, k)
        return self.model.init(
            seeds,
            dtype=self.fit_config.torch_dtype,
            device=self.fit_config.device,
            zero_output=zero_output or self.init == "null",
        )

    def _events(self, batch: ReplicaBatch, copies: int = 1) -> torch.Tensor:
        x = self._tensor(batch.x)
        if x.dim() == 3 and copies > 1:
            x = x.repeat(copies, 1, 1)
        return x

    @staticmethod
    def _shared_or_full(w: np.ndarray) -> np.ndarray:
        """Collapse ``(R, N)`` to ``(N,)`` when all rows are equal (permutations)."""
        return w[0] if w.shape[0] > 1 and np.all(w == w[0]) else w

    def _finish(
        self,
        res,
        t: np.ndarray,
        parts: dict[str, np.ndarray],
        hist: dict[str, np.ndarray],
        diverged,
        converged,
    ) -> dict:
        t = np.where(diverged, np.inf, t)
        parts = {k: np.where(diverged, np.inf, v) for k, v in parts.items()}
        return {
            "t": t,
            "parts": parts,
            "diverged": np.asarray(diverged, dtype=bool),
            "converged": np.asarray(converged, dtype=bool),
            "history_steps": res.history_steps,
            "history": hist,
            "seconds": res.seconds,
            "data_passes": res.data_passes,
        }


class NPLMTest(NetworkTest):
    """NPLM t_B(A), Eq. (11): A is the data, B the reference.

    L[f] = (N_A/Ñ_B) Σ_{x∈B} w (e^{f} - 1) - Σ_{x∈A} w f, t = -2 min L.

    Parameters
    ----------
    n_a_expected
        N_A(H0): ``None`` uses the observed Ñ_A (dof = parameters - 1, Sec. III B,
        12 for 1-4-1); a number fixes it to an expectation (dof = parameters, App. B).
    **kwargs
        See :class:`NetworkTest`. The NPLM convention is weight clipping (e.g.
        ``FitConfig(clip=9)``); without it the fit can diverge (Sec. II A 2), which is
        reported as t = +inf with ``diverged=True``.
    """

    statistic = "nplm"

    def __init__(
        self,
        architecture: Sequence[int] = (1, 4, 1),
        *,
        n_a_expected: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(architecture, **kwargs)
        if n_a_expected is not None and not n_a_expected > 0:
            raise ValueError(f"n_a_expected must be positive, got {n_a_expected}")
        self.n_a_expected = n_a_expected

    @property
    def dof(self) -> int:
        """Parameters - 1 with the observed N_A, parameters with a fixed expectation."""
        return self.n_parameters - (0 if self.n_a_expected else 1)

    def config(self) -> dict[str, Any]:
        """Adds N_A(H0)."""
        return {**super().config(), "n_a_expected": self.n_a_expected}

    def fit_batch(
        self,
        batch: ReplicaBatch,
        seed: int,
        replica_ids: Sequence[int],
        keep_functions: bool = False,
    ) -> BatchFit:
        """Fit f for every replica."""
        self.check_input(batch)
        n_a = np.full(batch.n_replicas, self.n_a_expected) if self.n_a_expected else batch.sum_a
        scale = n_a / batch.sum_b
        obj = ExtendedLikelihoodObjective(
            self.model,
            self._events(batch),
            self._tensor(self._shared_or_full(batch.weight_b)),
            torch.as_tensor(
                scale, dtype=self.fit_config.torch_dtype, device=self.fit_config.device
            ),
            self._tensor(batch.weight_a),
        )
        res = run_fit(obj, self._init(seed, replica_ids, 0), self.fit_config)
        t = -2 * res.loss
        out = self._finish(res, t, {}, {"t": -2 * res.history_loss}, res.diverged, res.converged)
        return BatchFit(
            **out,
            functions={"f": [p.numpy() for p in res.params]} if keep_functions else {},
            log_ratio_terms=[[1.0, "f"]],
            log_ratio_constant=np.log(n_a / batch.sum_b),
        )


class SymmetrizedTest(NetworkTest):
    """Symmetrized t_{A+B}(A+B) = t_{A+B}(A) + t_{A+B}(B), Eqs. (22)–(24).

    The reference is the observed union A ∪ B; f fits A against it and g fits B
    (Eqs. 23, 24). The null maximum is analytic, h = 0 and r = 0 (Eq. 21), so
    dof = parameters - 1 (12 for 1-4-1, Sec. III B). The loss is bounded below: the
    fit cannot diverge and needs no weight clipping (Sec. II B).

    Parameters
    ----------
    parametrization
        ``"fg"``: two independent functions f and g (the main text; fitted as 2R
        independent units). ``"sigma_delta"``: the symmetric/antisymmetric parts
        Σ and δ of Eqs. (31)–(33), fitted jointly.
    **kwargs
        See :class:`NetworkTest`.
    """

    statistic = "symmetrized"

    def __init__(
        self, architecture: Sequence[int] = (1, 4, 1), *, parametrization: str = "fg", **kwargs: Any
    ) -> None:
        super().__init__(architecture, **kwargs)
        if parametrization not in ("fg", "sigma_delta"):
            raise ValueError(
                f"parametrization must be 'fg' or 'sigma_delta', got {parametrization!r}"
            )
        self.parametrization = parametrization

    @property
    def dof(self) -> int:
        """Parameters - 1 (Sec. III B)."""
        return self.n_parameters - 1

    def config(self) -> dict[str, Any]:
        """Adds the parametrisation."""
        return {**super().config(), "parametrization": self.parametrization}

    def fit_batch(
        self,
        batch: ReplicaBatch,
        seed: int,
        replica_ids: Sequence[int],
        keep_functions: bool = False,
    ) -> BatchFit:
        """Fit f and g (or Σ and δ) for every replica."""
        self.check_input(batch)
        if self.parametrization == "sigma_delta":
            return self._fit_sigma_delta(batch, seed, replica_ids, keep_functions)
        r = batch.n_replicas
        n = batch.sum_a + batch.sum_b
        p_a, p_b = batch.sum_a / n, batch.sum_b / n
        ref = self._shared_or_full(batch.weight_a + batch.weight_b)
        ref_t = self._tensor(ref) if ref.ndim == 1 else self._tensor(np.concatenate([ref, ref]))
        obj = ExtendedLikelihoodObjective(
            self.model,
            self._events(batch, copies=2),
            ref_t,
            torch.as_tensor(
                np.concatenate([p_a, p_b]),
                dtype=self.fit_config.torch_dtype,
                device=self.fit_config.device,
            ),
            self._tensor(np.concatenate([batch.weight_a, batch.weight_b])),
        )
        # f and g start from the same initialisation: swapping A and B then swaps the
        # two fits exactly, so t_{A+B}(A+B) is symmetric under A <-> B (Sec. IV A).
        init = self._init(seed, replica_ids)
        res = run_fit(obj, [torch.cat([p, p]) for p in init], self.fit_config)
        t_a, t_b = -2 * res.loss[:r], -2 * res.loss[r:]
        h_a, h_b = -2 * res.history_loss[:, :r], -2 * res.history_loss[:, r:]
        diverged = res.diverged[:r] | res.diverged[r:]
        converged = res.converged[:r] & res.converged[r:]
        out = self._finish(
            res,
            t_a + t_b,
            {"t_A": t_a, "t_B": t_b},
            {"t": h_a + h_b, "t_A": h_a, "t_B": h_b},
            diverged,
            converged,
        )
        functions = (
            {"f": [p[:r].numpy() for p in res.params], "g": [p[r:].numpy() for p in res.params]}
            if keep_functions
            else {}
        )
        return BatchFit(
            **out,
            functions=functions,
            log_ratio_terms=[[1.0, "f"], [-1.0, "g"]],
            log_ratio_constant=np.log(batch.sum_a / batch.sum_b),
        )

    def _fit_sigma_delta(
        self, batch: ReplicaBatch, seed: int, replica_ids: Sequence[int], keep_functions: bool
    ) -> BatchFit:
        obj = SigmaDeltaObjective(
            self.model,
            self._events(batch),
            self._tensor(batch.weight_a),
            self._tensor(batch.weight_b),
        )
        # δ starts at 0: A <-> B maps (Σ, δ) -> (Σ, -δ), and a symmetric start keeps
        # the fit equivariant, so t is symmetric under the swap.
        init = self._init(seed, replica_ids, 0) + self._init(seed, replica_ids, 1, zero_output=True)
        res = run_fit(obj, init, self.fit_config)
        k = len(self.model.shapes)
        out = self._finish(
            res, -2 * res.loss, {}, {"t": -2 * res.history_loss}, res.diverged, res.converged
        )
        functions = (
            {
                "sigma": [p.numpy() for p in res.params[:k]],
                "delta": [p.numpy() for p in res.params[k:]],
            }
            if keep_functions
            else {}
        )
        return BatchFit(
            **out,
            functions=functions,
            log_ratio_terms=[[2.0, "delta"]],
            log_ratio_constant=np.zeros(batch.n_replicas),
        )


class CrossEntropyTest(NetworkTest):
    """Cross-entropy statistic t^δ_{A+B}(A+B), Eq. (34).

    Labels each event A or B with probability σ(2δ(x)); the null is δ constant at
    the observed fractions. dof = parameters - 1. Bounded: never diverges.
    """

    statistic = "crossentropy"

    @property
    def dof(self) -> int:
        """Parameters - 1 (the constant δ of the null)."""
        return self.n_parameters - 1

    def fit_batch(
        self,
        batch: ReplicaBatch,
        seed: int,
        replica_ids: Sequence[int],
        keep_functions: bool = False,
    ) -> BatchFit:
        """Fit δ for every replica."""
        self.check_input(batch)
        obj = CrossEntropyObjective(
            self.model,
            self._events(batch),
            self._tensor(batch.weight_a),
            self._tensor(batch.weight_b),
        )
        # δ starts at 0 so that the fit is equivariant under A <-> B (δ -> -δ).
        res = run_fit(obj, self._init(seed, replica_ids, zero_output=True), self.fit_config)
        loss_null = obj.reference_loss().numpy()
        t = 2 * (loss_null - res.loss)
        out = self._finish(
            res,
            t,
            {},
            {"t": 2 * (loss_null[None, :] - res.history_loss)},
            res.diverged,
            res.converged,
        )
        return BatchFit(
            **out,
            functions={"delta": [p.numpy() for p in res.params]} if keep_functions else {},
            log_ratio_terms=[[2.0, "delta"]],
            log_ratio_constant=np.zeros(batch.n_replicas),
        )


# ---------------------------------------------------------------------------------------
# binned statistic: analytic maximum
# ---------------------------------------------------------------------------------------
def quantile_edges(sample: Sample | np.ndarray, n_bins: int) -> np.ndarray:
    """Bin edges with equal (unweighted) population of ``sample``'s first feature."""
    s = as_sample(sample)
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    edges = np.quantile(s.features[:, 0], np.linspace(0, 1, n_bins + 1))
    edges = np.unique(edges)
    if edges.size < 2:
        raise ValueError("cannot build bins: the feature takes a single value")
    return edges


def _xlogx_ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a log(a/b) with 0 log 0 = 0 and a log(a/0) = +inf."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(a > 0, a * np.log(np.where(a > 0, a, 1.0) / b), 0.0)


class BinnedTest(TwoSampleTest):
    """Bin-wise statistic: f piecewise constant on bins, maximised analytically.

    For each bin k with data weight β_k and reference coefficient c_k the loss term
    c_k(e^{f_k} - 1) - β_k f_k is minimised at e^{f_k} = β_k / c_k, giving
    t = 2 Σ_k [β_k log(β_k / c_k) - β_k + c_k]. For the symmetrized statistic this is
    the G-test of the 2×K table of A and B counts (the same value as the binned
    cross-entropy statistic); for NPLM it diverges if A populates a bin B leaves empty.

    Parameters
    ----------
    edges
        Bin edges of the (one-dimensional) observable; under/overflow go to the edge bins.
    statistic
        ``"symmetrized"`` (Eq. 22 with bin-wise f, g) or ``"nplm"`` (Eq. 11).
    n_a_expected
        For ``"nplm"``: fixed N_A(H0) (see :class:`NPLMTest`).
    """

    def __init__(
        self,
        edges: Sequence[float] | np.ndarray,
        statistic: str = "symmetrized",
        n_a_expected: float | None = None,
    ) -> None:
        self.binning = BinwiseFunction(tuple(np.asarray(edges, dtype=np.float64)))
        if statistic not in ("symmetrized", "nplm"):
            raise ValueError(f"binned statistic must be 'symmetrized' or 'nplm', got {statistic!r}")
        if n_a_expected is not None and statistic != "nplm":
            raise ValueError("n_a_expected applies to the nplm statistic only")
        self.kind = statistic
        self.n_a_expected = n_a_expected
        self.statistic = f"binned-{statistic}"

    @property
    def edges(self) -> np.ndarray:
        """Bin edges."""
        return np.asarray(self.binning.edges)

    @property
    def n_parameters(self) -> int:
        """One value per bin."""
        return self.binning.n_bins

    @property
    def dof(self) -> int:
        """K - 1 (K for NPLM with a fixed expectation)."""
        return self.n_parameters - (0 if (self.kind == "nplm" and self.n_a_expected) else 1)

    def model_description(self) -> dict[str, Any]:
        """The binning."""
        return self.binning.describe()

    def config(self) -> dict[str, Any]:
        """Statistic and binning."""
        return {
            "statistic": self.statistic,
            "model": self.binning.describe(),
            "n_a_expected": self.n_a_expected,
        }

    def check_input(self, batch: ReplicaBatch) -> None:
        """One-dimensional observable only."""
        if batch.dim != 1:
            raise ValueError(
                "the binned test needs a one-dimensional observable, "
                f"got {batch.dim} features {list(batch.names)}"
            )

    def histograms(self, batch: ReplicaBatch) -> tuple[np.ndarray, np.ndarray]:
        """Weighted A and B histograms per replica, ``(R, K)`` each."""
        k = self.binning.n_bins
        idx = self.binning.bin_index(torch.as_tensor(batch.x)).numpy()
        idx = np.broadcast_to(idx, batch.weight_a.shape)
        flat = (np.arange(batch.n_replicas)[:, None] * k + idx).ravel()
        size = batch.n_replicas * k
        ha = np.bincount(flat, weights=batch.weight_a.ravel(), minlength=size).reshape(-1, k)
        hb = np.bincount(flat, weights=batch.weight_b.ravel(), minlength=size).reshape(-1, k)
        for label, h in (("A", ha), ("B", hb)):
            if np.any(h < 0):
                r, b = np.argwhere(h < 0)[0]
                raise ValueError(
                    f"bin {b} of sample {label} has negative total weight "
                    f"{h[r, b]:.4g} (replica {r})"
                )
        return ha, hb

    @staticmethod
    def _one_sided(beta: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(t, f) of one extended-likelihood fit with bin-wise f."""
        t = 2 * (_xlogx_ratio(beta, c) - beta + c).sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            f = np.log(beta / c)
        return t, f

    def fit_batch(
        self,
        batch: ReplicaBatch,
        seed: int,
        replica_ids: Sequence[int],
        keep_functions: bool = False,
    ) -> BatchFit:
        """Analytic maximum for every replica (``seed`` is unused: nothing is random)."""
        self.check_input(batch)
        start = time.perf_counter()
        ha, hb = self.histograms(batch)
        na, nb = ha.sum(1, keepdims=True), hb.sum(1, keepdims=True)
        empty_steps = np.zeros(0, dtype=np.int64)
        if self.kind == "symmetrized":
            n = na + nb
            t_a, f = self._one_sided(ha, (na / n) * (ha + hb))
            t_b, g = self._one_sided(hb, (nb / n) * (ha + hb))
            t = t_a + t_b
            diverged = ~np.isfinite(t)
            return BatchFit(
                t=t,
                parts={"t_A": t_a, "t_B": t_b},
                diverged=diverged,
                converged=~diverged,
                history_steps=empty_steps,
                history={},
                functions={"f": [f], "g": [g]} if keep_functions else {},
                log_ratio_terms=[[1.0, "f"], [-1.0, "g"]],
                log_ratio_constant=np.log(na[:, 0] / nb[:, 0]),
                seconds=time.perf_counter() - start,
            )
        n_a = np.full_like(na, self.n_a_expected) if self.n_a_expected else na
        t, f = self._one_sided(ha, (n_a / nb) * hb)
        diverged = ~np.isfinite(t)
        return BatchFit(
            t=np.where(diverged, np.inf, t),
            parts={},
            diverged=diverged,
            converged=~diverged,
            history_steps=empty_steps,
            history={},
            functions={"f": [f]} if keep_functions else {},
            log_ratio_terms=[[1.0, "f"]],
            log_ratio_constant=np.log(n_a[:, 0] / nb[:, 0]),
            seconds=time.perf_counter() - start,
        )


STATISTICS: dict[str, type[TwoSampleTest]] = {
    "nplm": NPLMTest,
    "symmetrized": SymmetrizedTest,
    "crossentropy": CrossEntropyTest,
    "binned": BinnedTest,
}

__all__ = [
    "STATISTICS",
    "BatchFit",
    "BinnedTest",
    "CrossEntropyTest",
    "NPLMTest",
    "NetworkTest",
    "ReplicaBatch",
    "SymmetrizedTest",
    "TwoSampleTest",
    "quantile_edges",
    "stream_seeds",
]
