"""Damped Newton (``FitConfig(optimizer="newton")``): Levenberg–Marquardt on the exact Hessian.

Each unit takes trust-region steps (H + λ D) p = -g with Marquardt scaling
D = diag|H|, λ adapted from the ratio of actual to predicted gain (Nielsen's rule),
and stops when its Newton decrement ½ gᵀH⁻¹g falls below ``tol`` at a
positive-definite H, or when its loss stalls, its damping explodes or it diverges
(see :class:`~symnplm.engine.fitting.FitConfig`). Loss, gradient and Hessian come
from the objective's ``newton_terms`` (:class:`~.objectives.NewtonObjective`) or from
a fused kernel (:mod:`.kernel_selection`).

Everything per iteration runs where the data are, as masked tensor operations over
the batch of units: the float64 Cholesky solves of the small (u, P, P) systems, the
search for a damping that makes H + λ D positive definite, the acceptance test and
the stopping rules. A unit that stops is frozen by its mask; the loop talks to the
host only every :data:`SYNC_EVERY` iterations (10 on a GPU), to drop the stopped
units from the batch, learn whether any is left and hand over the recorded losses.
On a GPU a host round trip per iteration would cost more than the iteration's
arithmetic.
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

__all__ = ["SYNC_EVERY", "HessianTerms", "LossOnly", "newton_functions", "run_newton"]

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
#: Newton iterations between the loop's host synchronisations, by device type (read at
#: each call; 10 for a type not listed). The loop's results do not depend on it, only
#: the work that stopped units spend in the batch does. On the CPU a synchronisation
#: costs nothing, so stopped units leave at once.
SYNC_EVERY: dict[str, int] = {"cpu": 1, "cuda": 10}


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
    """Batched ``cholesky_ex`` of the small (u, P, P) matrices (see :func:`one_torch_thread`).

    Without ``check_errors`` it reports failures in ``info`` and, on CUDA, does not
    synchronise with the host.
    """
    with one_torch_thread(a.device):
        return torch.linalg.cholesky_ex(a)


def _cholesky_solve(chol: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """x of (L Lᵀ) x = b per unit, ``b`` of shape (u, P), by two triangular solves.

    Bit for bit ``torch.cholesky_solve`` on the CPU (LAPACK's potrs is these two
    trsm); on CUDA it stays with cuBLAS, whereas batched ``cholesky_solve`` goes to
    MAGMA.
    """
    with one_torch_thread(chol.device):
        y = torch.linalg.solve_triangular(chol, b.unsqueeze(-1), upper=False)
        return torch.linalg.solve_triangular(chol.mT, y, upper=True).squeeze(-1)


def _newton_decrement(
    g: torch.Tensor, hess: torch.Tensor, ridge_eye: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(H positive definite, ½ gᵀH⁻¹g where it is, +inf elsewhere) per unit."""
    scale = hess.diagonal(dim1=1, dim2=2).abs().amax(1).clamp_min(1e-30)
    chol, info = _cholesky(hess + 1e-12 * scale[:, None, None] * ridge_eye)
    pd = info == 0
    # solved for every unit; where H is not PD the factor is partial and is not used
    dec = torch.where(pd, 0.5 * (g * _cholesky_solve(chol, g)).sum(1), math.inf)
    return pd, dec


def _damped_step(
    g: torch.Tensor, hess: torch.Tensor, lam: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Solve (H + λ' D) p = -g, D = diag|H| (floored), λ' = λ 10^j with j the first PD try.

    The tries j = 0 … :data:`MAX_DAMPING_TRIES` - 1 of a sequential search are found by
    bisection over j for all units at once, in a fixed number of rounds: H + λ D stays
    positive definite as λ grows, so the first success of the sequence is where it
    turns from failing to succeeding. λ 10^j is the product of j tenfold increases, as
    in the sequence, so each unit's chosen matrix is the sequence's bit for bit.

    Returns
    -------
    step, failed, damping
        The steps (zero where no try succeeded), the mask of units for which none of
        the tries gave a positive-definite matrix, and λ' (λ 10^MAX_DAMPING_TRIES
        where none did).
    """
    u, n_par = g.shape
    tries = MAX_DAMPING_TRIES
    diag = hess.diagonal(dim1=1, dim2=2).abs()
    diag = torch.maximum(diag, 1e-8 * diag.amax(1, keepdim=True).clamp_min(1e-30))
    # λ 10^j, j = 0 … tries, by repeated multiplication (cumprod runs in order)
    table = torch.full((u, tries + 1), 10.0, dtype=lam.dtype, device=lam.device)
    table[:, 0] = lam
    table = table.cumprod(1)
    # invariant: try `lo` fails (-1: none tried), try `hi` succeeds (`tries`: none does)
    lo = torch.full((u,), -1, dtype=torch.int64, device=g.device)
    hi = torch.full_like(lo, tries)
    chol = torch.eye(n_par, dtype=hess.dtype, device=hess.device).expand_as(hess)
    for _ in range(tries.bit_length()):  # ceil(log2(tries + 1)) halvings of (lo, hi]
        open_ = hi - lo > 1
        mid = torch.div(lo + hi, 2, rounding_mode="floor").clamp_min(0)
        lam_mid = table.gather(1, mid[:, None])
        c, info = _cholesky(hess + torch.diag_embed(lam_mid * diag))
        ok = open_ & (info == 0)
        hi = torch.where(ok, mid, hi)
        lo = torch.where(open_ & ~ok, mid, lo)
        chol = torch.where(ok[:, None, None], c, chol)
    failed = hi == tries
    step = torch.where(failed[:, None], 0.0, _cholesky_solve(chol, -g))
    return step, failed, table.gather(1, hi[:, None]).squeeze(1)


def _update_damping(
    active: torch.Tensor,
    lam: torch.Tensor,
    nu: torch.Tensor,
    lam_used: torch.Tensor,
    g: torch.Tensor,
    hess: torch.Tensor,
    step: torch.Tensor,
    loss: torch.Tensor,
    loss_trial: torch.Tensor,
    failed: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Accept or reject each active unit's step, update its damping (Nielsen's rule).

    Returns the accepted mask and the new (λ, ν); inactive units keep theirs.
    """
    predicted = -((g * step).sum(1) + 0.5 * torch.einsum("ui,uij,uj->u", step, hess, step))
    actual = loss - loss_trial
    accept = active & torch.isfinite(loss_trial) & (actual > 0) & ~failed
    rho = actual / predicted.clamp_min(1e-300)
    lam_acc = lam_used * torch.clamp(1 - (2 * rho - 1) ** 3, min=1 / 3)
    lam_new = torch.where(accept, lam_acc, lam_used * nu)
    nu_new = torch.where(accept, 2.0, nu * 2)
    return accept, torch.where(active, lam_new, lam), torch.where(active, nu_new, nu)


def _null_loss(objective: Objective) -> torch.Tensor:
    """Loss of the null per unit, the origin of the stopping rule (0, or ~ n log 2 for CE)."""
    if isinstance(objective, ReferenceLossObjective):
        return objective.reference_loss().to(torch.float64)
    return torch.zeros(objective.n_units, dtype=torch.float64)


class _Recorder:
    """Losses of all units at the recorded iterations, kept on the device until a sync.

    The loop records while some unit runs; between syncs it cannot know, so each
    record carries whether a unit was still running, and :meth:`flush` keeps those.
    """

    def __init__(self, history: History) -> None:
        self.history = history
        self.steps: list[int] = []
        self.rows: list[torch.Tensor] = []

    def add(self, step: int, running: torch.Tensor, loss: torch.Tensor) -> None:
        self.steps.append(step)
        self.rows.append(torch.cat([running.to(loss.dtype).reshape(1), loss]))

    def flush(self) -> None:
        if not self.steps:
            return
        table = torch.stack(self.rows).cpu().numpy()  # one device-to-host copy
        for step, row in zip(self.steps, table):
            if row[0]:
                self.history.add(step, row[1:])
        self.steps.clear()
        self.rows.clear()


def run_newton(
    objective: NewtonObjective,
    params: list[torch.Tensor],
    cfg: FitConfig,
    history: History,
    divergence: Divergence,
    step0: int,
) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Newton iterations from ``params``.

    The batch of running units is fixed between host synchronisations, every
    :data:`SYNC_EVERY` iterations; a unit that stops in between keeps its parameters,
    loss and flags (masked updates), so the loop's results do not depend on the
    interval. The kernels' rounding can depend on the batch size (the native kernels
    share a lone unit's events among the threads; batched matrix products), and a
    fit in a flat valley can amplify that into a different end point.

    Returns
    -------
    params, loss, grad_norm, converged, iterations, data_passes
        Per unit (parameters on the fit's device, the rest on the CPU), but the data
        passes, counted over the batch: P + 2 per evaluation of the Hessian
        (P parameters), one per trial step, including the iterations that stopped
        units spend in the batch before the next synchronisation drops them.
    """
    n_units = objective.n_units
    dev = params[0].device
    sync_every = max(1, int(SYNC_EVERY.get(dev.type, 10)))

    def full(value: float, *shape: int) -> torch.Tensor:
        return torch.full((n_units, *shape), value, dtype=torch.float64, device=dev)

    def project(th: torch.Tensor) -> torch.Tensor:
        if cfg.clip is None:
            return th
        views = unflatten(th, objective.shapes)
        objective.clip_(views, cfg.clip, cfg.clip_biases)
        return th

    theta = project(flatten(params).to(torch.float64))
    n_par = theta.shape[1]
    ring = cfg.patience + 1  # losses of the last `patience` iterations and this one
    state = {
        "theta": theta,
        "loss": full(math.inf),
        "gnorm": full(math.inf),
        "lam": full(1e-3),
        "nu": full(2.0),
        "past": full(math.inf, ring),
        "iters": torch.zeros(n_units, dtype=torch.int64, device=dev),
        "converged": torch.zeros(n_units, dtype=torch.bool, device=dev),
        "diverged": torch.zeros(n_units, dtype=torch.bool, device=dev),
        "stopped": torch.zeros(n_units, dtype=torch.bool, device=dev),
    }
    passes = 0
    ridge_eye = torch.eye(n_par, dtype=torch.float64, device=dev)
    offset = _null_loss(objective).to(dev)
    hessian_terms, loss_only = newton_functions(objective, cfg)
    recorder = _Recorder(history)
    rows = torch.zeros(0, dtype=torch.int64, device=dev)
    b: dict[str, torch.Tensor] = {}  # the batch's rows of `state`
    for it in range(cfg.max_iter + 1):
        if it % sync_every == 0:  # the loop's only host synchronisation
            for key, value in b.items():
                state[key].index_copy_(0, rows, value)
            recorder.flush()
            rows = torch.nonzero(~state["stopped"]).squeeze(1)
            if rows.numel() == 0:
                b = {}
                break
            b = {key: value.index_select(0, rows) for key, value in state.items()}
            off = offset.index_select(0, rows)
        act = ~b["stopped"]
        theta_b = b["theta"]
        L, g, H, fmax = hessian_terms(theta_b, rows)
        passes += n_par + 2
        b["loss"] = torch.where(act, L, b["loss"])
        b["gnorm"] = torch.where(act, g.norm(dim=1), b["gnorm"])
        finite = (
            torch.isfinite(theta_b).all(1)
            & torch.isfinite(g).all(1)
            & torch.isfinite(H).flatten(1).all(1)
        )
        bad = act & divergence.check(rows, L, fmax, finite)
        b["diverged"] = b["diverged"] | bad
        if (step0 + it) % cfg.record_every == 0:
            recorder.add(step0 + it, act.any(), state["loss"].index_copy(0, rows, b["loss"]))
        act = act & ~bad
        # Convergence: Newton decrement below tol with H positive definite, or a stall.
        pd, dec = _newton_decrement(g, H, ridge_eye)
        b["past"][:, it % ring] = L  # read only while the unit runs
        if it >= cfg.patience:
            gain = b["past"][:, (it - cfg.patience) % ring] - L
            stalled = gain < cfg.ftol * (1 + (L - off).abs())
        else:
            stalled = torch.zeros_like(pd)
        done = act & ((pd & (dec < cfg.tol)) | stalled)
        b["converged"] = b["converged"] | done
        b["stopped"] = b["stopped"] | bad | done
        if it == cfg.max_iter:
            break
        act = act & ~done
        b["iters"] = b["iters"] + act
        step, failed, lam_used = _damped_step(g, H, b["lam"])
        trial = project(theta_b + torch.where(act[:, None], step, 0.0))
        step = trial - theta_b
        L_trial, _ = loss_only(trial, rows)
        passes += 1
        accept, b["lam"], b["nu"] = _update_damping(
            act, b["lam"], b["nu"], lam_used, g, H, step, L, L_trial, failed
        )
        b["theta"] = torch.where(accept[:, None], trial, theta_b)
        # A unit whose damping exploded cannot make progress: stop it unconverged.
        b["stopped"] = b["stopped"] | (act & (b["lam"] > MAX_DAMPING))
    for key, value in b.items():
        state[key].index_copy_(0, rows, value)
    recorder.flush()
    divergence.mark(state["diverged"])
    return (
        unflatten(state["theta"], objective.shapes),
        state["loss"].cpu(),
        state["gnorm"].cpu(),
        state["converged"].cpu(),
        state["iters"].cpu(),
        passes,
    )
