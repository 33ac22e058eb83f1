"""Nuisance-aware test statistics t = τ - Δ: NPLM and symmetrized.

arXiv:2111.13633 ("Learning new physics from an imperfect machine", the τ and Δ terms):

    t(D, A) = 2 log [max_{w,ν} L(H_{w,ν}|D) L(ν|A) / max_ν L(R_ν|D) L(ν|A)] = τ - Δ,
    τ = -2 min_{w,ν} L[f, ν],        Δ = -2 min_ν L[ν],

both measured from the central-value reference R_0 (ν = 0), with
n(x|H_{w,ν}) = n(x|R_0) r(x;ν) e^{f(x;w)} and Gaussian auxiliary constraints on ν
(:mod:`.objectives`). Since R_ν ⊂ H_{w,ν} (f ≡ 0), t ≥ 0 at the global optima; the
default fits make it exact: Δ is fitted first, one τ start is its optimum with
f ≡ 0 (``"null"``), the damped Newton optimiser only accepts steps that lower the
loss, and τ keeps the best of its starts. A Glorot start (``"glorot"``, fitted in
the same batch) finds the better optima that Newton misses from f ≡ 0.

Symmetrized extension (2401.09530 Sec. V B names it as future work): A and B
differ under the SM by known detector effects, n_B(x)/n_A(x) ∝ r_B(x;ν)/r_A(x;ν).
With the observed A ∪ B as the reference, the common part of n_A and n_B is
saturated (Eq. 21) under both hypotheses, so only the A/B assignment carries
information and the test is the cross-entropy statistic of Eqs. (33)–(34) with the
logit shifted by the asymmetry, z = 2f(x) + log r_A(x;ν) - log r_B(x;ν):

* H0 (Δ): f constant (the free ratio r of Eq. 18), ν constrained;
* H1 (τ): f a network, ν constrained.

With no nuisance it reduces to :class:`symnplm.inference.CrossEntropyTest`.
Toys, permutations and ν̂ of every replica are units of one batched fit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from symnplm.engine import BinwiseFunction, FitConfig
from symnplm.engine import fit as run_fit
from symnplm.engine.losses import null_cross_entropy
from symnplm.inference.test_statistics import BatchFit, NetworkTest, ReplicaBatch
from symnplm.systematics.nuisances import NuisanceSet
from symnplm.systematics.objectives import Link, NuisanceObjective

__all__ = ["CONSTANT", "NuisanceNPLMTest", "NuisanceSymmetrizedTest"]

#: f ≡ constant for every event (one bin that catches everything): the null's free ratio.
CONSTANT = BinwiseFunction((0.0, 1.0))


class _NuisanceTest(NetworkTest):
    """Shared machinery: nuisances, auxiliary values, the Δ fit and the τ fit."""

    link: Link = "extended"

    def __init__(
        self,
        nuisances: NuisanceSet,
        architecture: Sequence[int] = (1, 4, 1),
        *,
        delta_fit: FitConfig | None = None,
        starts: Sequence[str] = ("null", "glorot"),
        **kwargs: Any,
    ) -> None:
        if "init" in kwargs or "n_starts" in kwargs:
            raise TypeError("nuisance tests take starts=(...) instead of init or n_starts")
        kwargs.setdefault("fit", FitConfig(optimizer="newton", dtype="float64"))
        super().__init__(architecture, init="glorot", **kwargs)
        if not isinstance(nuisances, NuisanceSet):
            raise TypeError(f"nuisances must be a NuisanceSet, got {type(nuisances).__name__}")
        starts = tuple(starts)
        if not starts or any(s not in ("null", "glorot") for s in starts):
            raise ValueError(
                f"starts must be a non-empty sequence of 'null'/'glorot', got {starts}"
            )
        self.starts = starts
        self.nuisances = nuisances
        # Δ in the τ fit's precision and device: τ starts from Δ's optimum, and the
        # same arithmetic makes t = τ - Δ ≥ 0 hold to rounding.
        self.delta_fit = delta_fit or replace(
            self.fit_config, optimizer="newton", warmup_epochs=0, clip=None, max_iter=100
        )

    def config(self) -> dict[str, Any]:
        """Adds the nuisances and the Δ fit settings."""
        return {
            # their starts are the kinds listed, not NetworkTest's n_starts initialisations
            **{k: v for k, v in super().config().items() if k not in ("init", "n_starts")},
            "starts": list(self.starts),
            "nuisances": self.nuisances.describe(),
            "delta_fit": self.delta_fit.to_dict(),
        }

    def check_input(self, batch: ReplicaBatch) -> None:
        """Feature dimension and names must match the network and the δ functions."""
        super().check_input(batch)
        self.nuisances.check_features(batch.names)

    # -- helpers ----------------------------------------------------------------------
    def _aux(self, n_replicas: int, aux: np.ndarray | None) -> np.ndarray:
        j = len(self.nuisances)
        if aux is None:
            return np.broadcast_to(np.asarray(self.nuisances.aux), (n_replicas, j)).copy()
        aux = np.asarray(aux, dtype=np.float64)
        if aux.ndim == 1:
            aux = np.broadcast_to(aux, (n_replicas, j))
        if aux.shape != (n_replicas, j):
            raise ValueError(
                f"aux must have shape ({n_replicas}, {j}) for nuisances "
                f"{list(self.nuisances.names)}, got {aux.shape}"
            )
        if not np.all(np.isfinite(aux)):
            raise ValueError("auxiliary measurements ν̂ must be finite")
        return aux

    def _objective(
        self,
        model,
        cfg: FitConfig,
        batch: ReplicaBatch,
        coef: np.ndarray,
        first: np.ndarray,
        second: np.ndarray,
        aux: np.ndarray,
        offset: np.ndarray,
        copies: int = 1,
    ) -> NuisanceObjective:
        """The objective of R replicas, each ``copies`` times (one unit per τ start)."""

        def t(a: np.ndarray, unit_dims: int | None = None) -> torch.Tensor:
            if unit_dims is not None and a.ndim == unit_dims and copies > 1:
                a = np.concatenate([a] * copies)  # per-replica arrays: one copy per start
            return torch.as_tensor(
                np.ascontiguousarray(a), dtype=cfg.torch_dtype, device=cfg.device
            )

        return NuisanceObjective(
            model,
            t(batch.x, 3),
            t(coef, 4),
            t(self._shared_or_full(first), 2),
            t(self._shared_or_full(second), 2),
            t(aux, 2),
            t(np.asarray(self.nuisances.sigma)),
            self.link,
            t(offset, 1).to(torch.float64),
        )

    def _nu_start(self, n: int, cfg: FitConfig) -> list[torch.Tensor]:
        j = len(self.nuisances)
        return [torch.zeros((n, j), dtype=cfg.torch_dtype, device=cfg.device)] if j else []

    def _nu_parts(self, label: str, nu: np.ndarray | None) -> dict[str, np.ndarray]:
        if nu is None:
            return {}
        return {f"{label}[{name}]": nu[:, j] for j, name in enumerate(self.nuisances.names)}

    def _two_fits(
        self,
        batch: ReplicaBatch,
        seed: int,
        replica_ids: Sequence[int],
        aux: np.ndarray | None,
        first: np.ndarray,
        second: np.ndarray,
        null_model,
        null_start: list[torch.Tensor],
        loss_ref: np.ndarray,
        keep_functions: bool,
        constant: bool,
        log_ratio_constant: np.ndarray,
    ) -> BatchFit:
        """Fit Δ (``null_model`` + ν), then τ (f + ν) from Δ's optimum; t = τ - Δ."""
        self.check_input(batch)
        r = batch.n_replicas
        aux = self._aux(r, aux)
        coef = self.nuisances.coefficients(batch.x)
        j = len(self.nuisances)
        # -- Δ: the reference family alone
        if null_model is None and j == 0:
            loss_delta, nu_delta, delta_seconds = np.zeros(r), None, 0.0
            null_params: list[torch.Tensor] = []
        else:
            obj0 = self._objective(
                null_model, self.delta_fit, batch, coef, first, second, aux, loss_ref
            )
            res0 = run_fit(obj0, null_start + self._nu_start(r, self.delta_fit), self.delta_fit)
            loss_delta, delta_seconds = res0.loss, res0.seconds
            null_params, nu0 = obj0.split(res0.params)
            nu_delta = None if nu0 is None else nu0.numpy().astype(np.float64)
        # -- τ: f and ν from every start (units of one batched fit), ν = ν_Δ. The "null"
        # start is f ≡ 0 (+ Δ's constant), i.e. Δ's optimum, so the best start has
        # τ ≥ Δ; "glorot" starts escape the flat region around f ≡ 0, where Newton
        # often stops at a poor local optimum.
        cfg = self.fit_config
        n_starts = len(self.starts)
        per_start = []
        for k, start in enumerate(self.starts):
            init = self._init(seed, replica_ids, k, zero_output=start == "null")
            if constant:
                # Δ's constant on top: the output bias of an MLP, every bin of a bin-wise f
                c = null_params[0][:, :1].to(dtype=cfg.torch_dtype, device=cfg.device)
                init[-1] = init[-1] + c.expand_as(init[-1])
            if nu_delta is not None:
                init.append(torch.as_tensor(nu_delta, dtype=cfg.torch_dtype, device=cfg.device))
            per_start.append(init)
        init = [torch.cat(ps) for ps in zip(*per_start)]
        obj1 = self._objective(
            self.model, cfg, batch, coef, first, second, aux, loss_ref, copies=n_starts
        )
        res1 = run_fit(obj1, init, cfg)
        # per replica, the start with the lowest loss (diverged fits never win)
        losses = np.where(res1.diverged, np.inf, res1.loss).reshape(n_starts, r)
        best = np.argmin(losses, axis=0)
        pick = best * r + np.arange(r)
        if not np.isfinite(losses.min(axis=0)).all():
            pick = np.where(np.isfinite(losses.min(axis=0)), pick, np.arange(r))
        res1 = replace(
            res1,
            params=[p[torch.as_tensor(pick)] for p in res1.params],
            loss=res1.loss[pick],
            diverged=res1.diverged[pick],
            converged=res1.converged[pick],
            history_loss=res1.history_loss[:, pick],
        )
        p_f, nu1 = obj1.split(res1.params)
        nu_tau = None if nu1 is None else nu1.numpy().astype(np.float64)
        # the objectives subtract loss_ref: their losses are measured from the reference
        tau = -2 * res1.loss
        delta = -2 * np.asarray(loss_delta)
        parts = {
            "tau": tau,
            "delta": delta,
            **self._nu_parts("nu_tau", nu_tau),
            **self._nu_parts("nu_delta", nu_delta),
            "tau_start": best.astype(np.float64),
        }
        out = self._finish(
            res1,
            tau - delta,
            parts,
            {"t": -2 * res1.history_loss - delta[None, :], "tau": -2 * res1.history_loss},
            res1.diverged,
            res1.converged,
        )
        out["seconds"] += delta_seconds
        functions: dict[str, list[np.ndarray]] = {}
        if keep_functions:
            functions["f"] = [p.numpy() for p in p_f]
            if nu_tau is not None:
                functions["nu"] = [nu_tau]
        return BatchFit(
            **out,
            functions=functions,
            # log(n_A/n_B) = terms + constant + log r(x; ν_τ) (ν in functions["nu"])
            log_ratio_terms=[[2.0 if self.link == "crossentropy" else 1.0, "f"]],
            log_ratio_constant=log_ratio_constant,
        )


class NuisanceNPLMTest(_NuisanceTest):
    """NPLM with nuisances, t = τ - Δ (arXiv:2111.13633): A the data, B the central reference.

    L[f, ν] = Σ_{x∈B} c (e^{f + log r(x;ν)} - 1) - Σ_{x∈A} (f + log r(x;ν)) + C(ν),
    c = (N(R_0) / Ñ_B) w: the reference is normalised to the *expected* yield, so a
    normalisation nuisance is measured by the data (Δ) and not absorbed by Ñ_A.

    Parameters
    ----------
    nuisances
        The nuisances and their constraints (learned δ, analytic normalisation).
    architecture, activation, model, fit
        See :class:`symnplm.inference.NetworkTest`; default fit: Newton in float64.
        Weight clipping (``FitConfig(clip=…)``) is the NPLM convention.
    starts
        Initialisations of the τ fit, fitted as units of one batch; τ keeps the best
        per replica. ``"null"``: f ≡ 0 at Δ's optimum (guarantees t ≥ 0);
        ``"glorot"``: Glorot-uniform f (finds the optima Newton misses from f ≡ 0).
    n_expected
        N(R_0), the expected data yield at ν = 0; ``None``: the reference's Ñ_B
        (weights already normalised to the expectation).
    delta_fit
        Settings of the Δ fit (default: Newton, τ's precision, no clipping).
    """

    statistic = "nplm-nuisance"
    link: Link = "extended"

    def __init__(
        self,
        nuisances: NuisanceSet,
        architecture: Sequence[int] = (1, 4, 1),
        *,
        n_expected: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(nuisances, architecture, **kwargs)
        if n_expected is not None and not n_expected > 0:
            raise ValueError(f"n_expected must be positive, got {n_expected}")
        self.n_expected = n_expected

    @property
    def dof(self) -> int:
        """All parameters of f (the normalisation is fixed to its expectation, App. B)."""
        return self.n_parameters

    def config(self) -> dict[str, Any]:
        """Adds N(R_0)."""
        return {**super().config(), "n_expected": self.n_expected}

    def fit_batch(
        self,
        batch: ReplicaBatch,
        seed: int,
        replica_ids: Sequence[int],
        keep_functions: bool = False,
        aux: np.ndarray | None = None,
    ) -> BatchFit:
        """τ, Δ and t = τ - Δ for every replica.

        Parameters
        ----------
        batch
            Data (A) and reference (B) weights per replica.
        seed, replica_ids
            Network initialisation seeds derive from (seed, replica id).
        keep_functions
            Return the fitted f and ν.
        aux
            Auxiliary measurements ν̂ per replica ``(R, J)`` (toys draw them around the
            true ν*, arXiv:2111.13633); default the nuisance set's ``aux``.
        """
        n_exp = self.n_expected if self.n_expected else batch.sum_b
        scale = np.broadcast_to(n_exp, (batch.n_replicas,)) / batch.sum_b
        ref = batch.weight_b * scale[:, None]
        return self._two_fits(
            batch,
            seed,
            replica_ids,
            aux,
            ref,
            batch.weight_a,
            null_model=None,
            null_start=[],
            loss_ref=np.zeros(batch.n_replicas),
            keep_functions=keep_functions,
            constant=False,
            log_ratio_constant=np.log(scale),
        )


class NuisanceSymmetrizedTest(_NuisanceTest):
    """Symmetrized test absorbing known A/B asymmetries, t = τ - Δ (cross-entropy form).

    Each event of A ∪ B is assigned to A with probability σ(z),
    z = 2f(x) + Σ_j Σ_k ν_j^k D_{jk}(x), D = δ^A - δ^B
    (:class:`~symnplm.systematics.nuisances.AsymmetryNuisance`). H0: f constant;
    H1: f a network; ν constrained in both. τ and Δ are measured from the symmetric
    null (z = log Ñ_A/Ñ_B, ν = 0), so with no nuisance τ is the statistic of
    Eq. (34) and Δ = 0. dof = parameters - 1.

    Parameters
    ----------
    nuisances
        Asymmetry nuisances (or any nuisance, read as acting on log n_A/n_B).
    **kwargs
        See :class:`NuisanceNPLMTest` (no ``n_expected``: the ratio floats, Eq. 18).
    """

    statistic = "symmetrized-nuisance"
    link: Link = "crossentropy"

    @property
    def dof(self) -> int:
        """Parameters - 1 (the constant of the null)."""
        return self.n_parameters - 1

    def fit_batch(
        self,
        batch: ReplicaBatch,
        seed: int,
        replica_ids: Sequence[int],
        keep_functions: bool = False,
        aux: np.ndarray | None = None,
    ) -> BatchFit:
        """τ, Δ and t = τ - Δ for every replica (see :meth:`NuisanceNPLMTest.fit_batch`)."""
        na, nb = batch.sum_a, batch.sum_b
        loss_ref = null_cross_entropy(torch.as_tensor(na), torch.as_tensor(nb)).numpy()
        const = 0.5 * np.log(na / nb)  # z = 2f: the symmetric null
        cfg = self.delta_fit
        start = [torch.as_tensor(const[:, None], dtype=cfg.torch_dtype, device=cfg.device)]
        return self._two_fits(
            batch,
            seed,
            replica_ids,
            aux,
            batch.weight_a,
            batch.weight_b,
            null_model=CONSTANT,
            null_start=start,
            loss_ref=loss_ref,
            keep_functions=keep_functions,
            constant=True,
            log_ratio_constant=np.zeros(batch.n_replicas),
        )
