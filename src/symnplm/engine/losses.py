"""Losses as pure functions of network outputs and per-event weights.

Equation numbers refer to Bressler, Savoray & Zurgil, arXiv:2401.09530.

Every likelihood-ratio statistic of the NPLM family is a sum over events of

    L[f] = Σ_i  c_i (e^{f(x_i)} - 1)  -  Σ_i  β_i f(x_i)                       (*)

where ``c_i`` is the (scaled) weight of event i in the *reference* sample and
``β_i`` its weight in the *data* sample; t = -2 min L. The statistics differ only
in which events carry which coefficients:

* NPLM t_B(A), Eq. (11): c = (N_A / Ñ_B) w for x ∈ B, β = w for x ∈ A.
* symmetrized t_{A+B}(A), Eq. (23): c = (Ñ_A / (Ñ_A + Ñ_B)) w for x ∈ A ∪ B,
  β = w for x ∈ A; and t_{A+B}(B), Eq. (24), with A ↔ B. Their sum is
  t_{A+B}(A+B), Eq. (22).

Weights replace counts everywhere: Ñ_A = Σ_{x∈A} w. Per-event terms are computed
in the working precision of the network (float32 by default) and summed over
events in float64 (see :mod:`symnplm.engine.fitting` for the precision policy).

All functions take tensors with a leading replica axis ``(R, N)`` and return one
value per replica ``(R,)``; a shared ``(N,)`` coefficient broadcasts.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "ACCUMULATE",
    "cross_entropy_loss",
    "extended_likelihood_floor",
    "extended_likelihood_loss",
    "null_cross_entropy",
]

ACCUMULATE = torch.float64


def extended_likelihood_loss(
    f: torch.Tensor, ref: torch.Tensor, data: torch.Tensor
) -> torch.Tensor:
    """L[f] of (*): ``Σ ref·(e^f - 1) - Σ data·f`` per replica, summed in float64.

    Parameters
    ----------
    f
        Network output, ``(R, N)``.
    ref
        Reference coefficients c_i (already scaled by the normalisation), ``(R, N)`` or ``(N,)``.
    data
        Data weights β_i, ``(R, N)`` or ``(N,)``.
    """
    terms = ref * torch.expm1(f) - data * f
    return terms.sum(dim=-1, dtype=ACCUMULATE)


def cross_entropy_loss(
    z: torch.Tensor, weight_a: torch.Tensor, weight_b: torch.Tensor
) -> torch.Tensor:
    """Weighted binary cross-entropy with logit ``z = 2δ(x)`` (Eqs. 33–34).

    ``-Σ_A w log σ(z) - Σ_B w log(1 - σ(z))``, written with softplus so that it
    is finite for any z: ``-log σ(z) = softplus(-z)``, ``-log(1-σ(z)) = softplus(z)``.
    """
    terms = weight_a * F.softplus(-z) + weight_b * F.softplus(z)
    return terms.sum(dim=-1, dtype=ACCUMULATE)


def extended_likelihood_floor(ref: torch.Tensor, data: torch.Tensor) -> torch.Tensor:
    """Event-by-event lower bound of (*): ``Σ [β - c - β log(β/c)]`` (-inf if β > 0 = c).

    Each event term ``c(e^f - 1) - β f`` is minimised at e^f = β/c. A finite floor
    is why the symmetrized loss cannot diverge (every data event is also a
    reference event), while NPLM's can (Sec. II A 2).
    """
    ref, data = torch.broadcast_tensors(ref.to(ACCUMULATE), data.to(ACCUMULATE))
    safe_ref = torch.where(ref > 0, ref, torch.ones_like(ref))
    safe_data = torch.where(data > 0, data, torch.ones_like(data))
    log_term = torch.where(data > 0, data * torch.log(safe_data / safe_ref), torch.zeros_like(data))
    term = data - ref - log_term
    term = torch.where((ref <= 0) & (data > 0), torch.full_like(term, -torch.inf), term)
    return term.sum(dim=-1)


def null_cross_entropy(sum_a: torch.Tensor, sum_b: torch.Tensor) -> torch.Tensor:
    """Cross-entropy at the best constant δ (the null of Eq. 34): -Σ_k n_k log(n_k / n)."""
    n = sum_a + sum_b
    return -(sum_a * torch.log(sum_a / n) + sum_b * torch.log(sum_b / n))
