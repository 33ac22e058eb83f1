"""Which path computes a fit's losses and derivatives: fused kernels or the eager path.

Fused kernels serve MLPs with the extended-likelihood or cross-entropy loss (a
:class:`~.objectives.KernelObjective` whose model is a
:class:`~.objectives.KernelModel`): the native C kernels of :mod:`.native` for
one-hidden-layer networks in float32 on the CPU, :mod:`.kernels` through
``torch.compile`` otherwise. ``FitConfig.backend`` chooses; ``"auto"`` weighs the
work of the fit against the cost of building the kernel.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import torch

from symnplm.engine.kernels import compiler_available
from symnplm.engine.native import MLP1Kernels, native_kernels
from symnplm.engine.objectives import KernelModel, KernelObjective, Objective

if TYPE_CHECKING:
    from symnplm.engine.fitting import FitConfig

__all__ = ["KernelTarget", "fused_target", "kernel_target", "native_target"]

#: event-units × steps from which ``backend="auto"`` builds the native kernels (≈ 1 s, once)
NATIVE_WORK = 1e7


class KernelTarget(NamedTuple):
    """An objective the fused kernels can compute, with its network and loss family."""

    objective: KernelObjective
    model: KernelModel
    loss: str


def kernel_target(objective: Objective) -> KernelTarget | None:
    """``objective`` as a :class:`KernelTarget`, or None where no fused kernel computes it."""
    if not isinstance(objective, KernelObjective):
        return None
    loss, model = objective.kernel_loss, objective.model
    if loss is None or not isinstance(model, KernelModel):
        return None
    return KernelTarget(objective, model, loss)


def native_target(target: KernelTarget | None, cfg: FitConfig) -> MLP1Kernels | None:
    """The native kernels for a one-hidden-layer MLP in float32 on the CPU, if they build."""
    if (
        target is None
        or cfg.backend in ("eager", "inductor")
        or len(target.model.architecture) != 3
        or cfg.dtype != "float32"
        or torch.device(cfg.device).type != "cpu"
    ):
        return None
    arch = target.model.architecture
    return native_kernels(target.model.activation, target.loss, arch[0], arch[1])


def fused_target(
    objective: Objective, cfg: FitConfig, work: float, threshold: float
) -> KernelTarget | None:
    """The objective to run through a fused kernel, or None for the eager path.

    ``backend="compiled"`` or ``"inductor"`` insists (an error if the objective has
    no kernel); ``"auto"`` compiles when ``work`` (events × units × steps) reaches
    ``threshold`` (for ``torch.compile``, whose compilation takes seconds to a
    minute) or :data:`NATIVE_WORK` (native kernels: built in a second, once per
    machine), and a compiler works.
    """
    target = kernel_target(objective)
    if cfg.backend in ("compiled", "inductor") and target is None:
        raise ValueError(f"no fused kernel for {type(objective).__name__}; use backend='eager'")
    if cfg.backend == "eager" or target is None:
        return None
    if cfg.backend == "auto":
        if work >= NATIVE_WORK and native_target(target, cfg) is not None:
            return target
        if work < threshold or not compiler_available():
            return None
    return target
