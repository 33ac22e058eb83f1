"""Damped Newton (``FitConfig(optimizer="newton")``): Levenberg–Marquardt on the exact Hessian.

Each unit takes trust-region steps (H + λ D) p = -g with Marquardt scaling
D = diag|H|, λ adapted from the ratio of actual to predicted gain, and stops when
its Newton decrement ½ gᵀH⁻¹g falls below ``tol`` at a positive-definite H, or when
its loss stalls (see :class:`~symnplm.engine.fitting.FitConfig`). Converged,
stalled and diverged units drop out of the batch; the small (u, P, P) solves run on
the host in float64. Loss, gradient and Hessian come from the objective's
``newton_terms`` (:class:`~.objectives.NewtonObjective`) or from a fused kernel
(:mod:`.kernel_selection`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

import torch

from symnplm.engine.bookkeeping import (
    Divergence,
    History,
    chunk_slices,
    evaluate,
    flatten,
    one_torch_thread,
    unflatten,
)
from symnplm.engine.kernel_selection import fused_target, native_target
from symnplm.engine.kernels import compiled_loss_kernel, compiled_newton_kernel
from symnplm.engine.objectives import NewtonObjective, Objective, ReferenceLossObjective

if TYPE_CHECKING:
    from symnplm.engine.fitting import FitConfig

__all__ = ["HessianTerms", "LossOnly", "newton_functions", "run_newton"]

#: (theta (u, P), units) -> (loss, gradient (u, P), Hessian (u, P, P), max data f), float64
HessianTerms = Callable[
    [torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]
]
#: (theta (u, P), units) -> (loss, max data f), float64
LossOnly = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
Terms = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]

#: event-iterations from which ``backend="auto"`` uses ``torch.compile`` (compilation ≲ 1 min)
COMPILE_WORK = 1e9
#: damping beyond which a unit cannot make progress and stops unconverged
MAX_DAMPING = 1e16
#: Cholesky attempts per step, λ growing tenfold after each failure
MAX_DAMPING_TRIES = 40


def _sum_chunks(parts: Iterable[Terms], u: int, n_par: int, device: torch.device) -> Terms:
    """Add up (loss, max f, gradient, Hessian) of event chunks; symmetrise the Hessian."""
    loss = torch.zeros(u, dtype=torch.float64, device=device)
    grad = torch.zeros(u, n_par, dtype=torch.float64, device=device)
    hess = torch.zeros(u, n_par, n_par, dtype=torch.float64, device=device)
    fmax = torch.full((u,), -math.inf, dtype=torch.float64, device=device)
    with torch.no_grad():
        for l_c, f_c, g_c, h_c in parts:
            loss += l_c
            grad += g_c
            hess += h_c
            fmax = torch.maximum(fmax, f_c.to(torch.float64))
    return loss, grad, 0.5 * (hess + hess.transpose(1, 2)), fmax


def _loss_grad_hessian(
    objective: NewtonObjective, theta: torch.Tensor, units: torch.Tensor, cfg: FitConfig
) -> Terms:
    """Per-unit loss, gradient ``(u, P)`` and Hessian ``(u, P, P)`` in float64.

    Analytic per-event Jacobians (see ``MLP.jacobian``), summed over event chunks so
    that memory stays bounded by ``max_chunk_elements``.
    """
    u, n_par = theta.shape
    chunks = chunk_slices(
        objective.n_events, u * (n_par + objective.width) * 2, cfg.max_chunk_elements
    )
    params = unflatten(theta.to(cfg.torch_dtype), objective.shapes)
    exact = cfg.hessian == "exact"
    return _sum_chunks(
        (objective.newton_terms(params, units, ev, exact) for ev in chunks), u, n_par, theta.device
    )


def _loss_only(
    objective: Objective, theta: torch.Tensor, units: torch.Tensor, cfg: FitConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-unit loss and max data f (the trial point of a step)."""
    chunks = chunk_slices(
        objective.n_events, theta.shape[0] * objective.width, cfg.max_chunk_elements
    )
    with torch.no_grad():
        return evaluate(
            objective,
            unflatten(theta.to(cfg.torch_dtype), objective.shapes),
            units,
            chunks,
            backward=False,
        )


def newton_functions(objective: NewtonObjective, cfg: FitConfig) -> tuple[HessianTerms, LossOnly]:
    """``(theta, units) -> (loss, gradient, Hessian, max f)`` and ``-> (loss, max f)``.

    Fused kernels serve one-hidden-layer MLPs with ``backend="compiled"``, or with
    ``"auto"`` from 10^7 (native, :mod:`.native`) or 10^9 event-iterations
    (``torch.compile`` of :func:`.kernels.mlp1_newton_terms` and
    :func:`.kernels.mlp_loss`, compilation up to a minute); otherwise the matrix
    path of the objective. For ``torch.compile`` event chunks have one fixed length
    (the last is zero-padded: zero weights add exactly nothing), so each kernel
    compiles once per fit whatever the number of units still running.
    """
    work = float(objective.n_events) * objective.n_units * cfg.max_iter
    target = fused_target(objective, cfg, work, COMPILE_WORK)
    if target is None or len(objective.shapes) != 4:
        return (
            lambda theta, units: _loss_grad_hessian(objective, theta, units, cfg),
            lambda theta, units: _loss_only(objective, theta, units, cfg),
        )
    kernel_objective = target.objective
    exact = cfg.hessian == "exact"
    native = native_target(target, cfg)
    newton_kernel: Callable[..., Terms]
    loss_kernel: Callable[..., tuple[torch.Tensor, torch.Tensor]]
    if native is not None:
        newton_kernel = functools.partial(native.newton_terms, exact=exact)
        loss_kernel = native.loss
    else:
        activation = target.model.activation
        newton_kernel = compiled_newton_kernel(activation, target.loss, exact)
        loss_kernel = compiled_loss_kernel(activation, target.loss)
    # native kernels need no working memory per event: one call over all events
    size = (
        objective.n_events
        if native is not None
        else min(max(1, cfg.max_chunk_elements // (4 * objective.n_units)), objective.n_events)
    )
    chunks = [slice(i, i + size) for i in range(0, objective.n_events, size)]

    def padded(theta: torch.Tensor, units: torch.Tensor, kernel: Callable) -> Iterator:
        params = unflatten(theta.to(cfg.torch_dtype), objective.shapes)
        for ev in chunks:
            if native is not None:  # reads the units' rows in place
                x, c1, c2, scale = kernel_objective.kernel_operands(ev)
                yield kernel(params, x, c1, c2, rows=units, scale=scale)
                continue
            x, c1, c2 = kernel_objective.kernel_inputs(units, ev)
            pad = size - c1.shape[-1]
            if pad:
                x = torch.nn.functional.pad(x, (0, 0, 0, pad))
                c1 = torch.nn.functional.pad(c1, (0, pad))
                c2 = torch.nn.functional.pad(c2, (0, pad))
            yield kernel(params, x, c1, c2)

    def hessian_terms(theta: torch.Tensor, units: torch.Tensor) -> Terms:
        parts = padded(theta, units, newton_kernel)
        return _sum_chunks(parts, theta.shape[0], theta.shape[1], theta.device)

    def loss_only(theta: torch.Tensor, units: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loss = torch.zeros(theta.shape[0], dtype=torch.float64, device=theta.device)
        fmax = torch.full_like(loss, -math.inf)
        with torch.no_grad():
            for l_c, f_c in padded(theta, units, loss_kernel):
                loss += l_c
                fmax = torch.maximum(fmax, f_c.to(torch.float64))
        return loss, fmax

    return hessian_terms, loss_only


def _cholesky(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Batched ``cholesky_ex`` of the small (u, P, P) Hessians (see :func:`one_torch_thread`)."""
    with one_torch_thread(a.device):
        return torch.linalg.cholesky_ex(a)


def _newton_decrement(
    loss: torch.Tensor, g: torch.Tensor, hess: torch.Tensor, ridge_eye: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(H positive definite, ½ gᵀH⁻¹g where it is, +inf elsewhere) per unit."""
    scale = hess.diagonal(dim1=1, dim2=2).abs().amax(1).clamp_min(1e-30)
    chol, info = _cholesky(hess + 1e-12 * scale[:, None, None] * ridge_eye)
    dec = torch.full_like(loss, math.inf)
    pd = info == 0
    if bool(pd.any()):
        sol = torch.cholesky_solve(g[pd].unsqueeze(-1), chol[pd]).squeeze(-1)
        dec[pd] = 0.5 * (g[pd] * sol).sum(1)
    return pd, dec


def _damped_step(
    g: torch.Tensor, hess: torch.Tensor, lam: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Solve (H + λ D) p = -g, D = diag|H| (floored); λ grows tenfold where H + λ D is not PD.

    ``lam`` is updated in place. Returns the steps and the mask of units for which
    no damping up to :data:`MAX_DAMPING_TRIES` tenfold increases gave a solution.
    """
    diag = hess.diagonal(dim1=1, dim2=2).abs()
    diag = torch.maximum(diag, 1e-8 * diag.amax(1, keepdim=True).clamp_min(1e-30))
    step = torch.zeros_like(g)
    need = torch.ones(g.shape[0], dtype=torch.bool)
    for _ in range(MAX_DAMPING_TRIES):
        a = hess[need] + lam[need, None, None] * torch.diag_embed(diag[need])
        chol, info = _cholesky(a)
        ok = info == 0
        idx = torch.nonzero(need).squeeze(1)
        if bool(ok.any()):
            step[idx[ok]] = torch.cholesky_solve(-g[idx[ok]].unsqueeze(-1), chol[ok]).squeeze(-1)
        lam[idx[~ok]] *= 10.0
        need[idx[ok]] = False
        if not bool(need.any()):
            break
    return step, need


def _update_damping(
    lam: torch.Tensor,
    nu: torch.Tensor,
    units: torch.Tensor,
    lam_u: torch.Tensor,
    g: torch.Tensor,
    hess: torch.Tensor,
    step: torch.Tensor,
    loss: torch.Tensor,
    loss_trial: torch.Tensor,
    failed: torch.Tensor,
) -> torch.Tensor:
    """Accept or reject each unit's step, update its damping (Nielsen's rule); the accepted."""
    predicted = -((g * step).sum(1) + 0.5 * torch.einsum("ui,uij,uj->u", step, hess, step))
    actual = loss - loss_trial
    accept = torch.isfinite(loss_trial) & (actual > 0) & ~failed
    rho = actual / predicted.clamp_min(1e-300)
    lam_acc = lam_u * torch.clamp(1 - (2 * rho - 1) ** 3, min=1 / 3)
    lam[units] = torch.where(accept, lam_acc, lam_u * nu[units])
    nu[units] = torch.where(accept, torch.full_like(nu[units], 2.0), nu[units] * 2)
    return accept


def _null_loss(objective: Objective) -> torch.Tensor:
    """Loss of the null per unit, the origin of the stopping rule (0, or ~ n log 2 for CE)."""
    if isinstance(objective, ReferenceLossObjective):
        return objective.reference_loss().cpu()
    return torch.zeros(objective.n_units, dtype=torch.float64)


def run_newton(
    objective: NewtonObjective,
    params: list[torch.Tensor],
    cfg: FitConfig,
    history: History,
    divergence: Divergence,
    step0: int,
) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Newton iterations from ``params``.

    Returns
    -------
    params, loss, grad_norm, converged, iterations, data_passes
        Per unit, but the data passes, counted over all units: P + 2 per evaluation
        of the Hessian (P parameters), one per trial step.
    """
    n_units = objective.n_units
    dev = params[0].device
    theta = flatten(params).to(torch.float64)
    n_par = theta.shape[1]
    loss = torch.full((n_units,), math.inf, dtype=torch.float64)
    gnorm = torch.full((n_units,), math.inf, dtype=torch.float64)
    lam = torch.full((n_units,), 1e-3, dtype=torch.float64)
    nu = torch.full((n_units,), 2.0, dtype=torch.float64)
    converged = torch.zeros(n_units, dtype=torch.bool)
    stopped = torch.zeros(n_units, dtype=torch.bool)
    iters = torch.zeros(n_units, dtype=torch.int64)
    past = torch.full((cfg.max_iter + 1, n_units), math.inf, dtype=torch.float64)
    passes = 0
    # the solves run on the host (loss, gradient and Hessian are copied there each iteration)
    ridge_eye = torch.eye(n_par, dtype=torch.float64)

    def project(th: torch.Tensor) -> torch.Tensor:
        if cfg.clip is None:
            return th
        views = unflatten(th, objective.shapes)
        objective.clip_(views, cfg.clip, cfg.clip_biases)
        return th

    theta = project(theta)
    hessian_terms, loss_only = newton_functions(objective, cfg)
    offset = _null_loss(objective)
    for it in range(cfg.max_iter + 1):
        units = torch.nonzero(~stopped).squeeze(1)
        if units.numel() == 0:
            break
        u_dev = units.to(dev)
        L, g, H, fmax = hessian_terms(theta[u_dev], u_dev)
        passes += n_par + 2
        L, g, H, fmax = L.cpu(), g.cpu(), H.cpu(), fmax.cpu()
        loss[units] = L
        gnorm[units] = g.norm(dim=1)
        finite = (
            torch.isfinite(theta[u_dev].cpu()).all(1)
            & torch.isfinite(g).all(1)
            & torch.isfinite(H).flatten(1).all(1)
        )
        bad = divergence.update(units, L, fmax, finite)
        stopped[units[bad]] = True
        if (step0 + it) % cfg.record_every == 0:
            history.add(step0 + it, loss.numpy())
        keep = ~bad
        units, L, g, H = units[keep], L[keep], g[keep], H[keep]
        if units.numel() == 0:
            continue
        # Convergence: Newton decrement below tol with H positive definite, or a stall.
        pd, dec = _newton_decrement(L, g, H, ridge_eye)
        past[it, units] = L
        if it >= cfg.patience:
            gain = past[it - cfg.patience, units] - L
            stalled = gain < cfg.ftol * (1 + (L - offset[units]).abs())
        else:
            stalled = torch.zeros_like(pd)
        done = (pd & (dec < cfg.tol)) | stalled
        converged[units[done]] = True
        stopped[units[done]] = True
        if it == cfg.max_iter:
            break
        act = ~done
        units, L, g, H = units[act], L[act], g[act], H[act]
        if units.numel() == 0:
            continue
        iters[units] += 1
        lam_u = lam[units].clone()
        step, failed = _damped_step(g, H, lam_u)
        trial = project(theta[units.to(dev)] + step.to(dev))
        step = (trial - theta[units.to(dev)]).cpu()
        L_trial, _ = loss_only(trial, units.to(dev))
        L_trial = L_trial.cpu()
        passes += 1
        accept = _update_damping(lam, nu, units, lam_u, g, H, step, L, L_trial, failed)
        theta[units[accept].to(dev)] = trial[accept.to(dev)]
        # A unit whose damping exploded cannot make progress: stop it unconverged.
        stopped[units[lam[units] > MAX_DAMPING]] = True
    return unflatten(theta, objective.shapes), loss, gnorm, converged, iters, passes
