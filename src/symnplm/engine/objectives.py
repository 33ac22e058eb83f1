"""Objectives: a model, events and per-event coefficients, for U independent fit units.

An objective is what the optimisers in :mod:`symnplm.engine.fitting` minimise:
``loss(params, units, events) -> (loss per unit, max f over data events per unit)``
for a subset of units (the optimisers drop converged or diverged units) and a slice
of events (memory stays bounded by processing events in chunks; the losses are sums
over events, so chunk contributions simply add).

A *unit* is one independent minimisation with its own parameters: one NPLM fit,
one of the two functions f or g of a symmetrized fit, or one (Σ, δ) pair.

The protocols write down what the fitter calls: every objective is an
:class:`Objective`; Newton needs a :class:`NewtonObjective`; the fused kernels serve
a :class:`KernelObjective` whose model is a :class:`KernelModel`; divergence
detection uses :class:`RunawayBoundObjective` and the stopping rule
:class:`ReferenceLossObjective` where an objective is one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch

from symnplm.engine.losses import (
    cross_entropy_loss,
    extended_likelihood_floor,
    extended_likelihood_loss,
    null_cross_entropy,
)

__all__ = [
    "CrossEntropyObjective",
    "ExtendedLikelihoodObjective",
    "Index",
    "KernelModel",
    "KernelObjective",
    "Model",
    "NewtonObjective",
    "Objective",
    "ReferenceLossObjective",
    "RunawayBoundObjective",
    "SigmaDeltaObjective",
]

Index = torch.Tensor | None


def _units(t: torch.Tensor, units: Index, per_unit_dims: int) -> torch.Tensor:
    """Select ``units`` along dim 0 when ``t`` has a unit axis (``t.dim() == per_unit_dims``)."""
    if units is None or t.dim() < per_unit_dims:
        return t
    return t.index_select(0, units)


class Model(Protocol):
    """A replicated function family, as the objectives and statistics use it (see :mod:`.models`).

    Parameters are a list of tensors whose leading dimension is the replica (unit)
    index, in the order of :attr:`shapes`; :class:`.models.MLP` and
    :class:`.models.BinwiseFunction` implement it.
    """

    @property
    def shapes(self) -> list[tuple[int, ...]]:
        """Per-replica parameter shapes."""
        ...

    @property
    def n_parameters(self) -> int:
        """Free parameters of one replica."""
        ...

    @property
    def input_dim(self) -> int:
        """Dimension d of the feature space."""
        ...

    def init(
        self,
        seeds: Sequence[int],
        dtype: torch.dtype = ...,
        device: torch.device | str = ...,
        zero_output: bool = ...,
    ) -> list[torch.Tensor]:
        """Parameters of ``len(seeds)`` replicas, each from its own seed."""
        ...

    def forward(self, params: Sequence[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """f of every replica on every event, ``(R, N)``."""
        ...

    def jacobian(
        self, params: Sequence[torch.Tensor], x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """f ``(R, N)`` and its per-event gradient in the flattened parameters ``(R, N, P)``."""
        ...

    def curvature(
        self, params: Sequence[torch.Tensor], x: torch.Tensor, r: torch.Tensor
    ) -> torch.Tensor | None:
        """Σ_i r_i ∇²f(x_i), ``(R, P, P)``, or ``None`` where there is no analytic form."""
        ...

    def clip_(
        self, params: Sequence[torch.Tensor], bound: float, clip_biases: bool = False
    ) -> None:
        """Clip parameters in place to [-bound, bound]."""
        ...

    def describe(self) -> dict[str, Any]:
        """JSON-able description."""
        ...


@runtime_checkable
class KernelModel(Model, Protocol):
    """A model the fused kernels can evaluate: a fully connected network (:class:`.models.MLP`).

    The kernels of :mod:`.kernels` and :mod:`.native` are written for this
    architecture and activation; other families take the eager path.
    """

    @property
    def architecture(self) -> tuple[int, ...]:
        """Layer sizes, input first."""
        ...

    @property
    def activation(self) -> str:
        """Hidden-layer activation, a key of :data:`.models.ACTIVATIONS`."""
        ...


class Objective(Protocol):
    """What both optimisers of :func:`symnplm.engine.fit` call: the loss of U units.

    Optional capabilities are the protocols below; the fitter checks them with
    ``isinstance`` and uses them where present.
    """

    n_units: int
    n_events: int

    @property
    def shapes(self) -> list[tuple[int, ...]]:
        """Per-unit parameter shapes."""
        ...

    @property
    def width(self) -> int:
        """Per-event work in units of a layer width (sizes the event chunks)."""
        ...

    def loss(
        self, params: list[torch.Tensor], units: Index, events: slice
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss per unit and max f over data events (``-inf`` where not meaningful)."""
        ...

    def clip_(self, params: list[torch.Tensor], bound: float, clip_biases: bool) -> None:
        """Weight clipping, in place."""
        ...

    def floor(self) -> torch.Tensor:
        """Lower bound of each unit's loss (``-inf``: the fit can diverge)."""
        ...


@runtime_checkable
class NewtonObjective(Objective, Protocol):
    """An objective with analytic second-order terms: what ``optimizer="newton"`` needs."""

    def newton_terms(
        self, params: list[torch.Tensor], units: Index, events: slice, exact: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Loss, max data f, gradient ``(u, P)`` and Hessian ``(u, P, P)`` (float64).

        ``exact=False`` asks for the Gauss–Newton Hessian Jᵀ diag(ℓ'') J.
        """
        ...


@runtime_checkable
class KernelObjective(Objective, Protocol):
    """An objective whose loss the fused kernels (:mod:`.kernels`, :mod:`.native`) compute.

    The kernels take two per-event coefficient arrays ``c1``, ``c2`` whose meaning
    is fixed by :attr:`kernel_loss` (``"extended"``: reference coefficient and data
    weight; ``"crossentropy"``: weights in A and in B).
    """

    model: Model

    @property
    def kernel_loss(self) -> str | None:
        """Loss family of the kernels, or ``None`` where the model is no :class:`KernelModel`."""
        ...

    def kernel_inputs(self, units: Index, events: slice) -> tuple[torch.Tensor, ...]:
        """``(x, c1, c2)`` of ``units`` on ``events`` (copied, for ``torch.compile``)."""
        ...

    def kernel_operands(self, events: slice) -> tuple[torch.Tensor | None, ...]:
        """``(x, c1, c2, per-unit scale of c1 or None)`` of every unit, uncopied (native)."""
        ...


@runtime_checkable
class RunawayBoundObjective(Objective, Protocol):
    """An objective whose loss is unbounded below, with the f beyond which a fit ran away."""

    def max_log_ratio(self) -> torch.Tensor:
        """Per unit, the largest f a data event can take at a stationary point (+inf: none)."""
        ...


@runtime_checkable
class ReferenceLossObjective(Objective, Protocol):
    """An objective whose null (best constant) loss is not zero: progress is judged from it."""

    def reference_loss(self) -> torch.Tensor:
        """Loss of the null per unit (float64, on the CPU)."""
        ...


def _widest(model: Model) -> int:
    return max((s[0] for s in model.shapes), default=1)


def _second_order(
    model: Model,
    params: list[torch.Tensor],
    x: torch.Tensor,
    jac: torch.Tensor,
    r: torch.Tensor,
    q: torch.Tensor,
    exact: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradient Jᵀr and Hessian Jᵀ diag(q) J (+ Σ r ∇²f if ``exact``) of Σ_i ℓ(f_i).

    ``r = ℓ'(f)``, ``q = ℓ''(f)`` per event. Products are batched matrix products in
    the working precision, returned in float64.
    """
    grad = torch.bmm(r.unsqueeze(1), jac).squeeze(1)
    hess = torch.bmm(jac.transpose(1, 2), q.unsqueeze(-1) * jac)
    if exact:
        curv = model.curvature(params, x, r)
        if curv is None:
            raise ValueError(
                f"no analytic curvature for {model.describe()}; use hessian='gauss-newton'"
            )
        hess = hess + curv
    return grad.to(torch.float64), hess.to(torch.float64)


def _max_data_f(f: torch.Tensor, data: torch.Tensor) -> torch.Tensor:
    """max over events with data weight > 0 of f (``-inf`` where there is none)."""
    data = torch.broadcast_to(data, f.shape)
    return torch.where(data > 0, f, torch.full_like(f, -torch.inf)).amax(dim=-1).to(torch.float64)


@dataclass
class ExtendedLikelihoodObjective:
    """Minimise Eq. (*) of :mod:`.losses`: ``Σ s_u r_i (e^f - 1) - Σ β_ui f`` per unit u.

    Parameters
    ----------
    model
        Replicated function family.
    x
        Events, ``(N, d)`` shared by all units or ``(U, N, d)``.
    ref_weight
        Reference weights r, ``(N,)`` or ``(U, N)``.
    ref_scale
        Per-unit normalisation s_u, ``(U,)`` (e.g. N_A/Ñ_B for NPLM).
    data_weight
        Data weights β, ``(U, N)`` or ``(N,)``.
    """

    model: Model
    x: torch.Tensor
    ref_weight: torch.Tensor
    ref_scale: torch.Tensor
    data_weight: torch.Tensor

    def __post_init__(self) -> None:
        self.n_units = int(self.ref_scale.shape[0])
        self.n_events = int(self.x.shape[-2])

    @property
    def shapes(self) -> list[tuple[int, ...]]:
        """Per-unit parameter shapes."""
        return self.model.shapes

    @property
    def width(self) -> int:
        """Widest layer (for the memory budget of event chunks)."""
        return _widest(self.model)

    def coefficients(self, units: Index, events: slice) -> tuple[torch.Tensor, torch.Tensor]:
        """(reference coefficient c = s·r, data weight β) for the given units and events."""
        r = _units(self.ref_weight, units, 2)[..., events]
        s = _units(self.ref_scale, units, 1)
        beta = _units(self.data_weight, units, 2)[..., events]
        ref = s[:, None] * r if r.dim() == 2 else s[:, None] * r[None, :]
        return ref, beta

    def loss(
        self, params: list[torch.Tensor], units: Index, events: slice
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss and max data-event output for ``units`` on ``events``."""
        x = _units(self.x, units, 3)[..., events, :]
        f = self.model.forward(params, x)
        ref, beta = self.coefficients(units, events)
        return extended_likelihood_loss(f, ref, beta), _max_data_f(f.detach(), beta)

    @property
    def kernel_loss(self) -> str | None:
        """Loss family of the fused kernels (:mod:`.kernels`), for MLPs."""
        return "extended" if isinstance(self.model, KernelModel) else None

    def kernel_inputs(self, units: Index, events: slice) -> tuple[torch.Tensor, ...]:
        """(x, c, β) for the fused kernel."""
        x = _units(self.x, units, 3)[..., events, :]
        return (x, *self.coefficients(units, events))

    def kernel_operands(self, events: slice) -> tuple[torch.Tensor, ...]:
        """(x, r, β, s) of every unit, uncopied, for the native kernels (c = s·r)."""
        return (
            self.x[..., events, :],
            self.ref_weight[..., events],
            self.data_weight[..., events],
            self.ref_scale,
        )

    def newton_terms(
        self, params: list[torch.Tensor], units: Index, events: slice, exact: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Loss, max data f, gradient ``(u, P)`` and Hessian ``(u, P, P)`` (float64)."""
        x = _units(self.x, units, 3)[..., events, :]
        f, jac = self.model.jacobian(params, x)
        ref, beta = self.coefficients(units, events)
        ref = torch.broadcast_to(ref, f.shape)
        e = ref * torch.exp(f)
        loss = extended_likelihood_loss(f, ref, beta)
        grad, hess = _second_order(self.model, params, x, jac, e - beta, e, exact)
        return loss, _max_data_f(f, beta), grad, hess

    def clip_(self, params: list[torch.Tensor], bound: float, clip_biases: bool) -> None:
        """Weight clipping of the underlying model."""
        self.model.clip_(params, bound, clip_biases)

    def _event_chunks(self) -> list[slice]:
        # whole-sample set-up sums (floor, bound) in float64, a few MB at a time
        size = max(1, (1 << 20) // self.n_units)
        return [slice(i, i + size) for i in range(0, self.n_events, size)]

    def floor(self) -> torch.Tensor:
        """Event-by-event lower bound of each unit's loss (``-inf`` ⇒ the fit can diverge)."""
        floors = (
            extended_likelihood_floor(*self.coefficients(None, ev)) for ev in self._event_chunks()
        )
        return sum(floors, torch.zeros((), dtype=torch.float64, device=self.x.device))

    def max_log_ratio(self) -> torch.Tensor:
        """Largest f a data event can take at a stationary point, per unit (+inf if bounded).

        At a stationary point Σ c e^f = Σ β (the output bias is free), so no reference
        event can carry c e^f > Σ β. If f exceeds log(Σβ / min c) + 2 at a data event,
        the network has grown a spike between reference events: the runaway of the
        unbounded NPLM loss (Sec. II A 2). Losses with a finite floor cannot run away.
        """
        min_c = torch.full((self.n_units,), torch.inf, dtype=torch.float64)
        total = torch.zeros(self.n_units, dtype=torch.float64)
        # the floor is -inf exactly where a data event has no reference weight
        unbounded = torch.zeros(self.n_units, dtype=torch.bool)
        for ev in self._event_chunks():
            ref, beta = torch.broadcast_tensors(*self.coefficients(None, ev))
            positive = torch.where(ref > 0, ref, torch.full_like(ref, torch.inf))
            min_c = torch.minimum(min_c, positive.amin(-1).cpu().to(torch.float64))
            total += beta.sum(-1, dtype=torch.float64).cpu()
            unbounded |= ((ref <= 0) & (beta > 0)).any(-1).cpu()
        bound = torch.log(total / min_c) + 2.0
        return torch.where(unbounded, bound, torch.full_like(bound, torch.inf))


@dataclass
class SigmaDeltaObjective:
    """Symmetrized likelihood in the Σ/δ parametrisation, Eqs. (31)–(33).

    Two networks per unit, Σ(x) and δ(x), with f' = Σ + δ and g' = Σ - δ, where
    f' = f + log(Ñ_A/Ñ) and g' = g + log(Ñ_B/Ñ). The loss is that of Eq. (22) in
    terms of f and g, but the fits of f and g are no longer independent.
    Parameters of a unit are the Σ tensors followed by the δ tensors.
    """

    model: Model
    x: torch.Tensor
    weight_a: torch.Tensor
    weight_b: torch.Tensor

    def __post_init__(self) -> None:
        wa = torch.broadcast_to(
            self.weight_a, torch.broadcast_shapes(self.weight_a.shape, self.weight_b.shape)
        )
        wb = torch.broadcast_to(self.weight_b, wa.shape)
        if wa.dim() == 1:
            wa, wb = wa[None], wb[None]
        self.weight_a, self.weight_b = wa, wb
        self.n_units = int(wa.shape[0])
        self.n_events = int(self.x.shape[-2])
        na = wa.sum(-1, dtype=torch.float64)
        nb = wb.sum(-1, dtype=torch.float64)
        self.log_pa = torch.log(na / (na + nb)).to(wa.dtype)
        self.log_pb = torch.log(nb / (na + nb)).to(wa.dtype)

    @property
    def shapes(self) -> list[tuple[int, ...]]:
        """Σ shapes followed by δ shapes."""
        return self.model.shapes + self.model.shapes

    @property
    def width(self) -> int:
        """Two networks are evaluated per unit."""
        return 2 * _widest(self.model)

    def split(self, params: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """(Σ parameters, δ parameters)."""
        k = len(self.model.shapes)
        return list(params[:k]), list(params[k:])

    def loss(
        self, params: list[torch.Tensor], units: Index, events: slice
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Σ/δ loss and max of f over A events for ``units`` on ``events``."""
        x = _units(self.x, units, 3)[..., events, :]
        p_sigma, p_delta = self.split(params)
        sigma = self.model.forward(p_sigma, x)
        delta = self.model.forward(p_delta, x)
        wa = _units(self.weight_a, units, 2)[..., events]
        wb = _units(self.weight_b, units, 2)[..., events]
        la = _units(self.log_pa, units, 1)[:, None]
        lb = _units(self.log_pb, units, 1)[:, None]
        f = sigma + delta - la
        g = sigma - delta - lb
        ref = wa + wb
        loss = extended_likelihood_loss(f, la.exp() * ref, wa) + extended_likelihood_loss(
            g, lb.exp() * ref, wb
        )
        return loss, _max_data_f(f.detach(), wa)

    def newton_terms(
        self, params: list[torch.Tensor], units: Index, events: slice, exact: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Loss, max f over A events, gradient and Hessian in (θ_Σ, θ_δ).

        With ∂f = (J_Σ, J_δ) and ∂g = (J_Σ, -J_δ), the chain rule gives
        gradient (J_Σᵀ(r_f + r_g), J_δᵀ(r_f - r_g)) and the Gauss–Newton blocks
        J_Σᵀ(q_f + q_g)J_Σ, J_Σᵀ(q_f - q_g)J_δ, J_δᵀ(q_f + q_g)J_δ.
        """
        x = _units(self.x, units, 3)[..., events, :]
        p_sigma, p_delta = self.split(params)
        sigma, j_s = self.model.jacobian(p_sigma, x)
        delta, j_d = self.model.jacobian(p_delta, x)
        wa = torch.broadcast_to(_units(self.weight_a, units, 2)[..., events], sigma.shape)
        wb = torch.broadcast_to(_units(self.weight_b, units, 2)[..., events], sigma.shape)
        la = _units(self.log_pa, units, 1)[:, None]
        lb = _units(self.log_pb, units, 1)[:, None]
        f = sigma + delta - la
        g = sigma - delta - lb
        ref = wa + wb
        ef = la.exp() * ref * torch.exp(f)
        eg = lb.exp() * ref * torch.exp(g)
        loss = extended_likelihood_loss(f, la.exp() * ref, wa) + extended_likelihood_loss(
            g, lb.exp() * ref, wb
        )
        r_f, r_g = ef - wa, eg - wb
        g_s, h_ss = _second_order(self.model, p_sigma, x, j_s, r_f + r_g, ef + eg, exact)
        g_d, h_dd = _second_order(self.model, p_delta, x, j_d, r_f - r_g, ef + eg, exact)
        h_sd = torch.bmm(j_s.transpose(1, 2), (ef - eg).unsqueeze(-1) * j_d).to(torch.float64)
        grad = torch.cat([g_s, g_d], dim=1)
        hess = torch.cat(
            [torch.cat([h_ss, h_sd], 2), torch.cat([h_sd.transpose(1, 2), h_dd], 2)], 1
        )
        return loss, _max_data_f(f, wa), grad, hess

    def clip_(self, params: list[torch.Tensor], bound: float, clip_biases: bool) -> None:
        """Clip both networks."""
        p_sigma, p_delta = self.split(params)
        self.model.clip_(p_sigma, bound, clip_biases)
        self.model.clip_(p_delta, bound, clip_biases)

    def floor(self) -> torch.Tensor:
        """Finite: every data event is a reference event (A ∪ B)."""
        ref = self.weight_a + self.weight_b
        return extended_likelihood_floor(
            self.log_pa.exp()[:, None] * ref, self.weight_a
        ) + extended_likelihood_floor(self.log_pb.exp()[:, None] * ref, self.weight_b)


@dataclass
class CrossEntropyObjective:
    """Cross-entropy of labelling events A or B with probability σ(2δ(x)), Eq. (34).

    The network output is δ(x); the logit is z = 2δ.
    """

    model: Model
    x: torch.Tensor
    weight_a: torch.Tensor
    weight_b: torch.Tensor

    def __post_init__(self) -> None:
        wa = torch.broadcast_to(
            self.weight_a, torch.broadcast_shapes(self.weight_a.shape, self.weight_b.shape)
        )
        wb = torch.broadcast_to(self.weight_b, wa.shape)
        if wa.dim() == 1:
            wa, wb = wa[None], wb[None]
        self.weight_a, self.weight_b = wa, wb
        self.n_units = int(wa.shape[0])
        self.n_events = int(self.x.shape[-2])

    @property
    def shapes(self) -> list[tuple[int, ...]]:
        """Per-unit parameter shapes."""
        return self.model.shapes

    @property
    def width(self) -> int:
        """Widest layer."""
        return _widest(self.model)

    def loss(
        self, params: list[torch.Tensor], units: Index, events: slice
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Cross-entropy (bounded below by 0: never diverges)."""
        x = _units(self.x, units, 3)[..., events, :]
        delta = self.model.forward(params, x)
        wa = _units(self.weight_a, units, 2)[..., events]
        wb = _units(self.weight_b, units, 2)[..., events]
        loss = cross_entropy_loss(2 * delta, wa, wb)
        return loss, torch.full(
            (loss.shape[0],), -math.inf, dtype=torch.float64, device=loss.device
        )

    @property
    def kernel_loss(self) -> str | None:
        """Loss family of the fused kernels (:mod:`.kernels`), for MLPs."""
        return "crossentropy" if isinstance(self.model, KernelModel) else None

    def kernel_inputs(self, units: Index, events: slice) -> tuple[torch.Tensor, ...]:
        """(x, w_A, w_B) for the fused kernel."""
        x = _units(self.x, units, 3)[..., events, :]
        wa = _units(self.weight_a, units, 2)[..., events]
        wb = _units(self.weight_b, units, 2)[..., events]
        return x, wa, wb

    def kernel_operands(self, events: slice) -> tuple[torch.Tensor | None, ...]:
        """(x, w_A, w_B, no scale) of every unit, uncopied, for the native kernels."""
        return self.x[..., events, :], self.weight_a[..., events], self.weight_b[..., events], None

    def newton_terms(
        self, params: list[torch.Tensor], units: Index, events: slice, exact: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Loss, -inf, gradient and Hessian in θ of δ.

        With z = 2δ: ∂ℓ/∂δ = 2(w_B σ(z) - w_A σ(-z)), ∂²ℓ/∂δ² = 4 (w_A + w_B) σ(z) σ(-z).
        """
        x = _units(self.x, units, 3)[..., events, :]
        delta, jac = self.model.jacobian(params, x)
        wa = torch.broadcast_to(_units(self.weight_a, units, 2)[..., events], delta.shape)
        wb = torch.broadcast_to(_units(self.weight_b, units, 2)[..., events], delta.shape)
        z = 2 * delta
        sp, sm = torch.sigmoid(z), torch.sigmoid(-z)
        loss = cross_entropy_loss(z, wa, wb)
        grad, hess = _second_order(
            self.model, params, x, jac, 2 * (wb * sp - wa * sm), 4 * (wa + wb) * sp * sm, exact
        )
        fmax = torch.full((loss.shape[0],), -math.inf, dtype=torch.float64, device=loss.device)
        return loss, fmax, grad, hess

    def clip_(self, params: list[torch.Tensor], bound: float, clip_biases: bool) -> None:
        """Weight clipping of the underlying model."""
        self.model.clip_(params, bound, clip_biases)

    def reference_loss(self) -> torch.Tensor:
        """Loss of the best constant δ (the null): -Σ_{k=A,B} n_k log(n_k / n), float64.

        t^δ = 2 (reference loss − loss) (Eq. 34). The fitter measures progress relative
        to it: the loss itself is ~ n log 2, which would make a relative tolerance blind.
        """
        na = self.weight_a.sum(-1, dtype=torch.float64)
        nb = self.weight_b.sum(-1, dtype=torch.float64)
        return null_cross_entropy(na, nb).cpu()

    def floor(self) -> torch.Tensor:
        """Cross-entropy is non-negative."""
        return torch.zeros(self.n_units, dtype=torch.float64)
