"""Objective with profiled nuisances: z = a·f(x) + log r(x; ν), plus Gaussian constraints.

A :class:`~symnplm.engine.objectives.NewtonObjective` with a runaway bound
(:class:`~symnplm.engine.objectives.RunawayBoundObjective`), so the engine's
optimisers (:func:`symnplm.engine.fit`) fit f and ν jointly, U units at once.

Two likelihoods share the construction, selected by ``link``:

``"extended"`` — NPLM with nuisances, the τ term of arXiv:2111.13633:
    L[f, ν] = Σ_R c (e^{f + log r} - 1) - Σ_D β (f + log r) + C(ν),
    i.e. :func:`~symnplm.engine.losses.extended_likelihood_loss` of z = f + log r.
``"crossentropy"`` — symmetrized test in the δ parametrisation (2401.09530
    Eqs. 33–34): each event of A ∪ B is labelled A with probability σ(z),
    z = 2f(x) + log r_A(x; ν) - log r_B(x; ν);
    i.e. :func:`~symnplm.engine.losses.cross_entropy_loss` of z.

The auxiliary term (arXiv:2111.13633) is
C(ν) = ½ Σ_j [(ν_j - ν̂_j)² - ν̂_j²] / σ_j², zero at ν = 0, so that the loss of
the central-value reference is 0 (extended) and τ, Δ are measured from R_0.

log r(x; ν) = Σ_{j,k} ν_j^k D_{j,k}(x) with the coefficient functions D evaluated
once on the events (:meth:`symnplm.systematics.NuisanceSet.coefficients`): the δ
networks are frozen, so ν enters polynomially and its derivatives are exact.

With ``model=None`` there is no f (the Δ term of arXiv:2111.13633: ν alone).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from symnplm.engine.losses import (
    cross_entropy_loss,
    extended_likelihood_floor,
    extended_likelihood_loss,
)
from symnplm.engine.objectives import (
    ExtendedLikelihoodObjective,
    Model,
    _max_data_f,
    _units,
    _widest,
)

__all__ = ["Link", "NuisanceObjective"]

Link = Literal["extended", "crossentropy"]
_SLOPE = {"extended": 1.0, "crossentropy": 2.0}  # z = a f + log r (Eq. 34: logit 2δ)


@dataclass
class NuisanceObjective:
    """Joint fit of f and ν (or of ν alone) with Gaussian auxiliary constraints.

    Parameters
    ----------
    model
        Function family of f, or ``None`` (fit ν only).
    x
        Events ``(N, d)`` shared by all units, or ``(U, N, d)``.
    coefficients
        D_{j,k}(x): ``(J, K, N)`` or ``(U, J, K, N)``.
    first, second
        ``"extended"``: reference coefficients c (scaled weights) and data weights β;
        ``"crossentropy"``: weights in A and in B. ``(N,)`` or ``(U, N)``.
    aux
        Auxiliary measurements ν̂, ``(U, J)``.
    sigma
        Prior widths σ, ``(J,)``.
    link
        ``"extended"`` or ``"crossentropy"``.
    offset
        Per-unit constant subtracted from the loss, ``(U,)`` (e.g. the cross-entropy
        of the symmetric null): the loss is then measured from the null, which the
        optimiser's relative stopping rule ``ftol·(1 + |L|)`` needs — the raw
        cross-entropy is of order N, and 10⁻⁴ N would stop fits far from converged.
    """

    model: Model | None
    x: torch.Tensor
    coefficients: torch.Tensor
    first: torch.Tensor
    second: torch.Tensor
    aux: torch.Tensor
    sigma: torch.Tensor
    link: Link = "extended"
    offset: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.link not in _SLOPE:
            raise ValueError(f"link must be 'extended' or 'crossentropy', got {self.link!r}")
        self.n_units = int(self.aux.shape[0])
        self.n_events = int(self.x.shape[-2])
        self.n_nuisances = int(self.coefficients.shape[-3])
        self.order = int(self.coefficients.shape[-2])
        if self.model is None and self.n_nuisances == 0:
            raise ValueError("nothing to fit: no function and no nuisance")
        if self.aux.shape[-1] != self.n_nuisances or self.sigma.shape != (self.n_nuisances,):
            raise ValueError(
                f"aux {tuple(self.aux.shape)} / sigma {tuple(self.sigma.shape)} do not match "
                f"{self.n_nuisances} nuisances"
            )
        self.slope = _SLOPE[self.link]
        k = torch.arange(1, self.order + 1, dtype=torch.float64)
        self._k = k.to(self.x.dtype).to(self.x.device)

    # -- layout ----------------------------------------------------------------------
    @property
    def n_model_tensors(self) -> int:
        """How many of a unit's parameter tensors belong to f."""
        return 0 if self.model is None else len(self.model.shapes)

    @property
    def shapes(self) -> list[tuple[int, ...]]:
        """f's shapes, then ν ``(J,)``."""
        f_shapes = [] if self.model is None else list(self.model.shapes)
        return f_shapes + ([(self.n_nuisances,)] if self.n_nuisances else [])

    @property
    def width(self) -> int:
        """Per-event work: f's widest layer plus the nuisance terms."""
        return (0 if self.model is None else _widest(self.model)) + max(1, self.n_nuisances)

    def split(self, params: list[torch.Tensor]) -> tuple[list[torch.Tensor], torch.Tensor | None]:
        """(f's parameters, ν ``(u, J)`` or None)."""
        k = self.n_model_tensors
        return list(params[:k]), (params[k] if self.n_nuisances else None)

    # -- pieces ----------------------------------------------------------------------
    def _weights(self, units, events) -> tuple[torch.Tensor, torch.Tensor]:
        return (
            _units(self.first, units, 2)[..., events],
            _units(self.second, units, 2)[..., events],
        )

    def _offset(
        self, nu: torch.Tensor | None, units, events, n_units: int, n_ev: int, derivatives: bool
    ):
        """log r ``(u, n)``; with ``derivatives`` also ∂/∂ν_j ``(u, n, J)`` and ∂²/∂ν_j²."""
        dtype = self.x.dtype
        if nu is None:
            zero = torch.zeros(n_units, n_ev, dtype=dtype, device=self.x.device)
            return (zero, None, None) if derivatives else zero
        coef = _units(self.coefficients, units, 4)[..., events]
        eq = "ujk,jkn->un" if coef.dim() == 3 else "ujk,ujkn->un"
        nu_w = nu.to(dtype)
        powers = nu_w[:, :, None] ** self._k  # (u, J, K)
        offset = torch.einsum(eq, powers, coef)
        if not derivatives:
            return offset
        eqj = "ujk,jkn->unj" if coef.dim() == 3 else "ujk,ujkn->unj"
        d1 = self._k * nu_w[:, :, None] ** (self._k - 1)
        d2 = self._k * (self._k - 1) * nu_w[:, :, None] ** (self._k - 2).clamp_min(0)
        return offset, torch.einsum(eqj, d1, coef), torch.einsum(eqj, d2, coef)

    def _aux_terms(self, nu: torch.Tensor | None, units, events: slice):
        """C(ν) - offset, ∂C/∂ν, ∂²C/∂ν² (diagonal), on the first event chunk only."""
        if (events.start or 0) != 0:
            return None
        if nu is None:
            if self.offset is None:
                return None
            off = -_units(self.offset, units, 1).to(torch.float64)
            return off, None, None
        nu64 = nu.to(torch.float64)
        aux = _units(self.aux, units, 2).to(torch.float64)
        inv = 1.0 / self.sigma.to(torch.float64) ** 2
        value = 0.5 * (((nu64 - aux) ** 2 - aux**2) * inv).sum(-1)
        if self.offset is not None:
            value = value - _units(self.offset, units, 1).to(torch.float64)
        return value, (nu64 - aux) * inv, inv.expand_as(nu64)

    def _data_loss(self, z: torch.Tensor, first: torch.Tensor, second: torch.Tensor):
        if self.link == "extended":
            return extended_likelihood_loss(z, first, second), _max_data_f(z.detach(), second)
        loss = cross_entropy_loss(z, first, second)
        return loss, torch.full_like(loss, -math.inf)

    # -- objective interface -------------------------------------------------------------
    def loss(
        self, params: list[torch.Tensor], units: torch.Tensor | None, events: slice
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss per unit and max z over data events (extended) / -inf (cross-entropy)."""
        p_f, nu = self.split(params)
        x = _units(self.x, units, 3)[..., events, :]
        first, second = self._weights(units, events)
        n_u = params[0].shape[0]
        z = self._offset(nu, units, events, n_u, x.shape[-2], derivatives=False)
        if self.model is not None:
            z = z + self.slope * self.model.forward(p_f, x)
        loss, zmax = self._data_loss(z, first, second)
        aux = self._aux_terms(nu, units, events)
        return (loss if aux is None else loss + aux[0]), zmax

    def _event_derivatives(self, z, first, second):
        """ℓ'(z) and ℓ''(z) per event."""
        if self.link == "extended":
            e = torch.broadcast_to(first, z.shape) * torch.exp(z)
            return e - second, e
        sp, sm = torch.sigmoid(z), torch.sigmoid(-z)
        return second * sp - first * sm, (first + second) * sp * sm

    def newton_terms(
        self,
        params: list[torch.Tensor],
        units: torch.Tensor | None,
        events: slice,
        exact: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Loss, max data z, gradient and Hessian in (θ_f, ν), float64.

        ∂z/∂θ = (a J_f, ∂log r/∂ν); Gauss–Newton part Jᵀ diag(ℓ'') J over both, plus
        with ``exact`` the curvature a Σ ℓ' ∇²f of f and Σ ℓ' ∂²log r/∂ν_j² of ν.
        """
        p_f, nu = self.split(params)
        x = _units(self.x, units, 3)[..., events, :]
        first, second = self._weights(units, events)
        n_u = params[0].shape[0]
        z, g_nu, h_nu = self._offset(nu, units, events, n_u, x.shape[-2], derivatives=True)
        blocks = []
        if self.model is not None:
            f, jac = self.model.jacobian(p_f, x)
            z = z + self.slope * f
            blocks.append(self.slope * jac)
        if g_nu is not None:
            blocks.append(g_nu)
        jz = torch.cat(blocks, dim=-1)
        loss, zmax = self._data_loss(z, first, second)
        d1, d2 = self._event_derivatives(z, first, second)
        d1 = torch.broadcast_to(d1, z.shape)
        d2 = torch.broadcast_to(d2, z.shape)
        grad = torch.bmm(d1.unsqueeze(1), jz).squeeze(1).to(torch.float64)
        hess = torch.bmm(jz.transpose(1, 2), d2.unsqueeze(-1) * jz).to(torch.float64)
        n_f = jz.shape[-1] - self.n_nuisances
        if exact and self.model is not None:
            curv = self.model.curvature(p_f, x, self.slope * d1)
            if curv is None:
                raise ValueError(
                    f"no analytic curvature for {self.model.describe()}; use hessian='gauss-newton'"
                )
            hess[:, :n_f, :n_f] += curv.to(torch.float64)
        if exact and h_nu is not None:
            idx = torch.arange(n_f, n_f + self.n_nuisances, device=hess.device)
            hess[:, idx, idx] += torch.einsum("un,unj->uj", d1, h_nu).to(torch.float64)
        aux = self._aux_terms(nu, units, events)
        if aux is not None:
            loss = loss + aux[0]
        if aux is not None and aux[1] is not None:
            idx = torch.arange(n_f, n_f + self.n_nuisances, device=hess.device)
            grad[:, n_f:] += aux[1]
            hess[:, idx, idx] += aux[2]
        return loss, zmax, grad, hess

    def clip_(self, params: list[torch.Tensor], bound: float, clip_biases: bool) -> None:
        """Weight clipping of f only: ν is constrained by its prior, never clipped."""
        if self.model is not None:
            self.model.clip_(self.split(params)[0], bound, clip_biases)

    def floor(self) -> torch.Tensor:
        """Lower bound of the loss: event-wise floor (extended) or 0, plus min C = -½ν̂²/σ²."""
        aux = -0.5 * (self.aux.to(torch.float64) ** 2 / self.sigma.to(torch.float64) ** 2).sum(-1)
        if self.offset is not None:
            aux = aux - self.offset.to(torch.float64)
        if self.link == "crossentropy":
            return aux
        first, second = torch.broadcast_tensors(
            torch.broadcast_to(self.first, (self.n_units, self.n_events)), self.second
        )
        return extended_likelihood_floor(first, second) + aux

    def max_log_ratio(self) -> torch.Tensor:
        """Runaway bound on z at data events: that of the nuisance-free NPLM objective."""
        if self.link == "crossentropy":
            return torch.full((self.n_units,), math.inf, dtype=torch.float64)
        ones = torch.ones(self.n_units, dtype=self.x.dtype, device=self.x.device)
        return ExtendedLikelihoodObjective(
            self.model, self.x, self.first, ones, self.second
        ).max_log_ratio()
