"""Fixed-epoch batched Adam (``FitConfig(optimizer="adam")``).

The NPLM / arXiv:2401.09530 convention (lr 1e-3; the paper trains 5×10^5 epochs,
Sec. III A). Adam is element-wise, so one Adam over the stacked parameters of U
units is exactly U independent Adams. Every epoch is one full pass over the events,
by a fused kernel (:mod:`.kernel_selection`) or by autograd.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from symnplm.engine.bookkeeping import (
    Divergence,
    History,
    chunk_slices,
    evaluate,
    finite_units,
    one_torch_thread,
)
from symnplm.engine.kernel_selection import fused_target, native_target
from symnplm.engine.kernels import compiled_kernel
from symnplm.engine.objectives import Objective

if TYPE_CHECKING:
    from symnplm.engine.fitting import FitConfig

__all__ = ["GradientFunction", "gradient_function", "run_adam"]

#: params -> (loss per unit, max data f per unit, gradient per parameter tensor)
GradientFunction = Callable[
    [list[torch.Tensor]], tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]
]

#: event-epochs from which ``backend="auto"`` uses ``torch.compile`` (compilation ≲ 1 min)
COMPILE_WORK = 5e8


def gradient_function(
    objective: Objective, cfg: FitConfig, chunks: list[slice], work: float
) -> GradientFunction:
    """params -> (loss, max data f, gradients), by fused kernel or by autograd.

    The fused kernels (:mod:`.native`, :mod:`.kernels`) serve MLPs with
    ``backend="compiled"``, or with ``"auto"`` from 5×10^8 event-epochs
    (``torch.compile``) or 10^7 (native).
    """
    target = fused_target(objective, cfg, work, COMPILE_WORK)
    if target is None:

        def autograd(
            params: list[torch.Tensor],
        ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
            ps = [p.detach().requires_grad_(True) for p in params]
            loss, fmax = evaluate(objective, ps, None, chunks, backward=True)
            # a tensor the loss does not depend on gets no .grad: its gradient is zero
            grads = [torch.zeros_like(p) if p.grad is None else p.grad for p in ps]
            return loss, fmax, grads

        return autograd

    kernel_objective = target.objective
    native = native_target(target, cfg)
    if native is None:
        compiled = compiled_kernel(target.model.activation, target.loss)
        parts = chunks

        def kernel(
            params: list[torch.Tensor], ev: slice
        ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
            return compiled(params, *kernel_objective.kernel_inputs(None, ev))

    else:
        # native kernels need no working memory per event: one call over all events
        parts = [slice(0, objective.n_events)]

        def kernel(
            params: list[torch.Tensor], ev: slice
        ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
            x, c1, c2, scale = kernel_objective.kernel_operands(ev)
            return native.loss_and_grad(params, x, c1, c2, scale=scale)

    def fused(params: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        total, fmax, grads = kernel(params, parts[0])
        for ev in parts[1:]:
            loss, fm, g = kernel(params, ev)
            total, fmax = total + loss, torch.maximum(fmax, fm)
            grads = [a + b for a, b in zip(grads, g)]
        return total, fmax.to(torch.float64), grads

    return fused


def run_adam(
    objective: Objective,
    params: list[torch.Tensor],
    cfg: FitConfig,
    epochs: int,
    history: History,
    divergence: Divergence,
    step0: int = 0,
) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
    """Run ``epochs`` of batched Adam; return params, final loss, final grad norm.

    Diverged units are frozen (their learning rate is set to zero); weight clipping
    is applied after every step.
    """
    n_units = objective.n_units
    all_units = torch.arange(n_units)
    chunks = chunk_slices(objective.n_events, n_units * objective.width, cfg.max_chunk_elements)
    gradient = gradient_function(
        objective, cfg, chunks, float(epochs) * n_units * objective.n_events
    )
    params = [p.detach().clone() for p in params]
    m = [torch.zeros_like(p) for p in params]
    v = [torch.zeros_like(p) for p in params]
    b1, b2 = cfg.betas
    frozen_shape = [(n_units,) + (1,) * (p.dim() - 1) for p in params]
    active = torch.ones(n_units, dtype=params[0].dtype, device=params[0].device)
    check_every = min(cfg.record_every, 100)
    for epoch in range(epochs):
        loss, fmax, grads = gradient(params)
        if (step0 + epoch) % cfg.record_every == 0:
            history.add(step0 + epoch, loss.cpu().numpy())
        if epoch % check_every == 0:
            divergence.update(
                all_units, loss.cpu(), fmax.cpu(), finite_units(params, n_units).cpu()
            )
            active = (~divergence.flag).to(params[0].dtype).to(params[0].device)
            if not bool(active.any()):
                break
        t = epoch + 1
        with torch.no_grad():
            # θ -= lr m̂ / (√v̂ + ε), diverged units frozen; one multi-tensor op per step
            g = [torch.nan_to_num(gk, nan=0.0, posinf=0.0, neginf=0.0) for gk in grads]
            torch._foreach_mul_(m, b1)
            torch._foreach_add_(m, g, alpha=1 - b1)
            torch._foreach_mul_(v, b2)
            torch._foreach_addcmul_(v, g, g, value=1 - b2)
            denom = torch._foreach_div(v, 1 - b2**t)
            with one_torch_thread(params[0].device):
                torch._foreach_sqrt_(denom)
            torch._foreach_add_(denom, cfg.eps)
            step = torch._foreach_div(m, denom)
            rate = cfg.lr / (1 - b1**t) * active
            torch._foreach_mul_(step, [rate.reshape(shape) for shape in frozen_shape])
            torch._foreach_sub_(params, step)
            if cfg.clip is not None:
                objective.clip_(params, cfg.clip, cfg.clip_biases)
    # final state: loss and gradient at the returned parameters
    loss, fmax, grads = gradient(params)
    loss = loss.cpu()
    divergence.update(all_units, loss, fmax.cpu(), finite_units(params, n_units).cpu())
    squares = [
        (torch.nan_to_num(g).to(torch.float64) ** 2).reshape(n_units, -1).sum(1) for g in grads
    ]
    gnorm = torch.sqrt(functools.reduce(operator.add, squares))
    return params, loss, gnorm.cpu()
