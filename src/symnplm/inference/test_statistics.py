"""Two-sample test statistics: NPLM, symmetrized, cross-entropy and binned.

Equation numbers refer to arXiv:2401.09530. Like pyhf's ``infer`` module, a test
statistic here only *computes t*; turning t into a p-value is the job of the
calculators in :mod:`symnplm.inference.calculators`, so every statistic can be
calibrated by χ² asymptotics, permutations or toys.

Every statistic is a :class:`~symnplm.inference.batches.TwoSampleTest`: it works on
a :class:`~symnplm.inference.batches.ReplicaBatch` of R two-sample problems (the
observed test, permutations, toys) and solves all R by one batched fit, returning a
:class:`~symnplm.inference.batches.BatchFit`. The network statistics live here and
share one sequence (:meth:`NetworkTest.fit_batch`: check the batch, build the
objective, fit, read off t); each defines only its objective and how t follows
from the fitted losses. The analytic binned statistic lives in
:mod:`symnplm.inference.binned`. All of these names are importable from here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Generic, TypeVar

import numpy as np
import torch

from symnplm.engine import (
    MLP,
    CrossEntropyObjective,
    ExtendedLikelihoodObjective,
    FitConfig,
    FitResult,
    SigmaDeltaObjective,
)
from symnplm.engine import fit as run_fit
from symnplm.engine.objectives import Model, Objective
from symnplm.inference.batches import BatchFit, ReplicaBatch, TwoSampleTest
from symnplm.inference.binned import BinnedTest, quantile_edges
from symnplm.inference.streams import STREAM_INIT, stream_seeds

#: the objective a network statistic builds for a batch
ObjectiveT = TypeVar("ObjectiveT", bound=Objective)


# ---------------------------------------------------------------------------------------
# network-based statistics
# ---------------------------------------------------------------------------------------
@dataclass
class ReplicaStatistic:
    """t of every replica as read off the fitted units, before divergence is applied.

    Attributes
    ----------
    t, parts
        The statistic and its named contributions, ``(R,)`` each.
    history
        The statistic(s) at the recorded steps, ``(K, R)`` each.
    diverged, converged
        Per replica (a replica fitted as several units combines their flags).
    functions
        Fitted parameters per function name, leading dimension R.
    log_ratio_terms, log_ratio_constant
        log(n_A/n_B)(x) = Σ coefficient × function(x) + constant (per replica).
    """

    t: np.ndarray
    history: dict[str, np.ndarray]
    diverged: np.ndarray
    converged: np.ndarray
    functions: dict[str, list[np.ndarray]]
    log_ratio_terms: list[list[Any]]
    log_ratio_constant: np.ndarray
    parts: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def single(
        cls,
        res: FitResult,
        t: np.ndarray,
        history: np.ndarray,
        functions: dict[str, list[np.ndarray]],
        log_ratio_terms: list[list[Any]],
        log_ratio_constant: np.ndarray,
    ) -> ReplicaStatistic:
        """A statistic with one unit per replica: its flags are the unit's."""
        return cls(
            t=t,
            history={"t": history},
            diverged=res.diverged,
            converged=res.converged,
            functions=functions,
            log_ratio_terms=log_ratio_terms,
            log_ratio_constant=log_ratio_constant,
        )


class NetworkTest(TwoSampleTest, Generic[ObjectiveT]):
    """Shared machinery of the statistics whose alternative is a fitted function family.

    :meth:`fit_batch` checks the batch, builds the objective and the start of every
    unit (:meth:`_objective`), runs one batched fit and reads t off the fitted losses
    (:meth:`_statistic`); a statistic defines those two steps.

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
    n_starts
        Starting points of every fit (default 1). A network's likelihood has many local
        maxima, and which one a fit reaches depends on where it starts: on one e-mu
        sample the observed t of a 1-4-1 fit ranged from 11 to 29 over eight
        initialisations. With ``n_starts = k`` every function is fitted from k
        initialisations in the same batch (k times the units, so about k times the
        cost) and keeps the best, so t approaches the maximum the statistic is defined
        by. Observation and null replicas are fitted alike, so the calibration stays
        exact whatever k; a larger k makes t depend less on the seed. Start 0 is the
        single start's initialisation.
    """

    def __init__(
        self,
        architecture: Sequence[int] = (1, 4, 1),
        *,
        activation: str = "sigmoid",
        model: Model | None = None,
        fit: FitConfig | None = None,
        init: str = "glorot",
        n_starts: int = 1,
    ) -> None:
        self.model: Model = model if model is not None else MLP(tuple(architecture), activation)
        self.fit_config = fit or FitConfig()
        if init not in ("glorot", "null"):
            raise ValueError(f"init must be 'glorot' or 'null', got {init!r}")
        self.init = init
        if (
            isinstance(n_starts, bool)
            or not isinstance(n_starts, (int, np.integer))
            or n_starts < 1
        ):
            raise ValueError(f"n_starts must be a positive integer, got {n_starts!r}")
        self.n_starts = int(n_starts)

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
            "n_starts": self.n_starts,
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

    def fit_batch(
        self,
        batch: ReplicaBatch,
        seed: int,
        replica_ids: Sequence[int],
        keep_functions: bool = False,
    ) -> BatchFit:
        """t for every replica: check the batch, build the objective, fit it, read off t.

        With several :attr:`n_starts` the problems are repeated once per start in one
        batch, and every fitted function keeps its best start.
        """
        self.check_input(batch)
        objective, init = self._objective(batch.repeated(self.n_starts), seed, replica_ids)
        res = run_fit(objective, init, self.fit_config)
        res = res.best_of_starts(batch.n_replicas, self.n_starts)
        out = self._statistic(batch, objective, res)
        return BatchFit(
            **self._finish(res, out.t, out.parts, out.history, out.diverged, out.converged),
            functions=out.functions if keep_functions else {},
            log_ratio_terms=out.log_ratio_terms,
            log_ratio_constant=out.log_ratio_constant,
        )

    # -- what a statistic defines (those that override fit_batch need not) ---------------
    def _objective(
        self, batch: ReplicaBatch, seed: int, replica_ids: Sequence[int]
    ) -> tuple[ObjectiveT, list[torch.Tensor]]:
        """The objective of the batch's units and their initial parameters."""
        raise NotImplementedError(f"{type(self).__name__} defines no objective")

    def _statistic(
        self, batch: ReplicaBatch, objective: ObjectiveT, res: FitResult
    ) -> ReplicaStatistic:
        """t of every replica from the fit of ``objective``."""
        raise NotImplementedError(f"{type(self).__name__} defines no statistic")

    # -- helpers -------------------------------------------------------------------------
    def _tensor(self, arr: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(
            arr, dtype=self.fit_config.torch_dtype, device=self.fit_config.device
        )

    def _init(
        self, seed: int, replica_ids: Sequence[int], k: int = 0, zero_output: bool = False
    ) -> list[torch.Tensor]:
        """Initial parameters of ``replica_ids`` for every start, start-major."""
        seeds = [
            s
            for start in range(self.n_starts)
            for s in stream_seeds(seed, STREAM_INIT, replica_ids, k, start)
        ]
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
        res: FitResult,
        t: np.ndarray,
        parts: dict[str, np.ndarray],
        hist: dict[str, np.ndarray],
        diverged: np.ndarray,
        converged: np.ndarray,
    ) -> dict[str, Any]:
        """The fields of a :class:`BatchFit` but the functions: t = +inf where diverged."""
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


class NPLMTest(NetworkTest[ExtendedLikelihoodObjective]):
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

    def _n_a(self, batch: ReplicaBatch) -> np.ndarray:
        """N_A(H0) per replica."""
        if self.n_a_expected:
            return np.full(batch.n_replicas, self.n_a_expected)
        return batch.sum_a

    def _objective(
        self, batch: ReplicaBatch, seed: int, replica_ids: Sequence[int]
    ) -> tuple[ExtendedLikelihoodObjective, list[torch.Tensor]]:
        """f of every replica: A the data, B the reference scaled to N_A(H0)."""
        scale = self._n_a(batch) / batch.sum_b
        obj = ExtendedLikelihoodObjective(
            self.model,
            self._events(batch),
            self._tensor(self._shared_or_full(batch.weight_b)),
            torch.as_tensor(
                scale, dtype=self.fit_config.torch_dtype, device=self.fit_config.device
            ),
            self._tensor(batch.weight_a),
        )
        return obj, self._init(seed, replica_ids, 0)

    def _statistic(
        self, batch: ReplicaBatch, objective: ExtendedLikelihoodObjective, res: FitResult
    ) -> ReplicaStatistic:
        """t = -2 min L."""
        return ReplicaStatistic.single(
            res,
            -2 * res.loss,
            -2 * res.history_loss,
            functions={"f": [p.numpy() for p in res.params]},
            log_ratio_terms=[[1.0, "f"]],
            log_ratio_constant=np.log(self._n_a(batch) / batch.sum_b),
        )


class SymmetrizedTest(NetworkTest[ExtendedLikelihoodObjective | SigmaDeltaObjective]):
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

    def _objective(
        self, batch: ReplicaBatch, seed: int, replica_ids: Sequence[int]
    ) -> tuple[ExtendedLikelihoodObjective | SigmaDeltaObjective, list[torch.Tensor]]:
        """f and g as 2R units (units r and R + r: replica r), or (Σ, δ) as R units."""
        if self.parametrization == "sigma_delta":
            sd = SigmaDeltaObjective(
                self.model,
                self._events(batch),
                self._tensor(batch.weight_a),
                self._tensor(batch.weight_b),
            )
            # δ starts at 0: A <-> B maps (Σ, δ) -> (Σ, -δ), and a symmetric start keeps
            # the fit equivariant, so t is symmetric under the swap.
            init = self._init(seed, replica_ids, 0) + self._init(
                seed, replica_ids, 1, zero_output=True
            )
            return sd, init
        n = batch.sum_a + batch.sum_b
        p_a, p_b = batch.sum_a / n, batch.sum_b / n
        ref = self._shared_or_full(batch.weight_a + batch.weight_b)
        ref_t = self._tensor(ref) if ref.ndim == 1 else self._tensor(np.concatenate([ref, ref]))
        fg = ExtendedLikelihoodObjective(
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
        start = self._init(seed, replica_ids)
        return fg, [torch.cat([p, p]) for p in start]

    def _statistic(
        self,
        batch: ReplicaBatch,
        objective: ExtendedLikelihoodObjective | SigmaDeltaObjective,
        res: FitResult,
    ) -> ReplicaStatistic:
        """t = t_A + t_B = -2 (min L_f + min L_g), or -2 min L of the joint (Σ, δ) fit."""
        if self.parametrization == "sigma_delta":
            k = len(self.model.shapes)
            return ReplicaStatistic.single(
                res,
                -2 * res.loss,
                -2 * res.history_loss,
                functions={
                    "sigma": [p.numpy() for p in res.params[:k]],
                    "delta": [p.numpy() for p in res.params[k:]],
                },
                log_ratio_terms=[[2.0, "delta"]],
                log_ratio_constant=np.zeros(batch.n_replicas),
            )
        r = batch.n_replicas
        t_a, t_b = -2 * res.loss[:r], -2 * res.loss[r:]
        h_a, h_b = -2 * res.history_loss[:, :r], -2 * res.history_loss[:, r:]
        return ReplicaStatistic(
            t=t_a + t_b,
            parts={"t_A": t_a, "t_B": t_b},
            history={"t": h_a + h_b, "t_A": h_a, "t_B": h_b},
            diverged=res.diverged[:r] | res.diverged[r:],
            converged=res.converged[:r] & res.converged[r:],
            functions={
                "f": [p[:r].numpy() for p in res.params],
                "g": [p[r:].numpy() for p in res.params],
            },
            log_ratio_terms=[[1.0, "f"], [-1.0, "g"]],
            log_ratio_constant=np.log(batch.sum_a / batch.sum_b),
        )


class CrossEntropyTest(NetworkTest[CrossEntropyObjective]):
    """Cross-entropy statistic t^δ_{A+B}(A+B), Eq. (34).

    Labels each event A or B with probability σ(2δ(x)); the null is δ constant at
    the observed fractions. dof = parameters - 1. Bounded: never diverges.
    """

    statistic = "crossentropy"

    @property
    def dof(self) -> int:
        """Parameters - 1 (the constant δ of the null)."""
        return self.n_parameters - 1

    def _objective(
        self, batch: ReplicaBatch, seed: int, replica_ids: Sequence[int]
    ) -> tuple[CrossEntropyObjective, list[torch.Tensor]]:
        """δ of every replica."""
        obj = CrossEntropyObjective(
            self.model,
            self._events(batch),
            self._tensor(batch.weight_a),
            self._tensor(batch.weight_b),
        )
        # δ starts at 0 so that the fit is equivariant under A <-> B (δ -> -δ).
        return obj, self._init(seed, replica_ids, zero_output=True)

    def _statistic(
        self, batch: ReplicaBatch, objective: CrossEntropyObjective, res: FitResult
    ) -> ReplicaStatistic:
        """t = 2 (loss of the null - min loss)."""
        # the objective holds every start's copy of the replicas; the first R are theirs
        loss_null = objective.reference_loss().numpy()[: batch.n_replicas]
        return ReplicaStatistic.single(
            res,
            2 * (loss_null - res.loss),
            2 * (loss_null[None, :] - res.history_loss),
            functions={"delta": [p.numpy() for p in res.params]},
            log_ratio_terms=[[2.0, "delta"]],
            log_ratio_constant=np.zeros(batch.n_replicas),
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
    "ReplicaStatistic",
    "SymmetrizedTest",
    "TwoSampleTest",
    "quantile_edges",
    "stream_seeds",
]
