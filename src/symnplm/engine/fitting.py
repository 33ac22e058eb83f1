"""Batched maximum-likelihood fitting of many independent units at once.

:func:`fit` and its settings :class:`FitConfig` are the entry point; the objectives
are those of :mod:`.objectives` (what the fitter calls is declared there as
protocols). Two optimisers, both full-batch (every step sees every event):

* ``"adam"`` (:mod:`.adam`) — fixed-epoch Adam, the NPLM / 2401.09530 convention (lr 1e-3; the
  paper trains 5×10^5 epochs, Sec. III A). Adam is element-wise, so one Adam over
  the stacked parameters of U units is exactly U independent Adams.
* ``"newton"`` (:mod:`.newton`) — a damped Newton method (Levenberg–Marquardt trust region on the
  exact per-unit Hessian) that converges to a local minimum in tens of iterations
  instead of 10^5 epochs; optional Adam warm-up. Converged units drop out of the
  batch.

Weight clipping (NPLM convention) is applied after every step (for Newton, the
trial point is projected). :mod:`.kernel_selection` decides whether fused kernels
or the eager path compute losses and derivatives; :mod:`.bookkeeping` holds the
state both optimisers share.

Precision policy
----------------
Networks are evaluated in ``dtype`` (float32 by default) and the per-event loss
terms are summed over events in float64 (:mod:`.losses`). The Newton solve and its
bookkeeping run in float64. ``dtype="float64"`` evaluates everything in double
precision, 1.7× (Adam) to 2× (Newton) slower on CPU; evaluated at the same
parameters, float32 t differs from float64 by 5e-5 at N = 2×10^5
(``benchmarks/precision.py``), far below its statistical spread. Whole fits in the
two precisions can still end apart: a non-convex fit amplifies last-bit
differences into a different path.

Divergence
----------
The NPLM loss is unbounded below (Sec. II A 2): f → +∞ on data points that have no
reference point nearby. A unit is flagged *diverged* (and frozen) when its loss or
parameters become non-finite, or when — for objectives whose loss has no finite
lower bound, fitted without weight clipping — f at a data event exceeds the
objective's ``max_log_ratio`` (:class:`.objectives.RunawayBoundObjective`): a value
at which a single reference event would predict more events than the whole data
sample, so no stationary point of the likelihood can reach it. Diverged units are
reported with t = +inf by the test statistics, never NaN.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from symnplm.engine.adam import run_adam
from symnplm.engine.bookkeeping import Divergence, History
from symnplm.engine.newton import run_newton
from symnplm.engine.objectives import NewtonObjective, Objective

__all__ = ["BACKENDS", "DTYPES", "NEWTON_MAX_ITER", "FitConfig", "FitResult", "fit"]

DTYPES = {"float32": torch.float32, "float64": torch.float64}
BACKENDS = ("auto", "eager", "compiled", "inductor")


#: Newton's default iteration cap. Fits of the 1-4-1 network on 10⁵ events need a few
#: hundred iterations (t of one replica: 3.1 after 50, 15.3 after 200, 16.6 converged);
#: converged units leave the batch, so a high cap costs only the iterations needed.
NEWTON_MAX_ITER = 1000


@dataclass(frozen=True)
class FitConfig:
    """Optimiser settings.

    Parameters
    ----------
    optimizer
        ``"newton"`` (default: damped Newton to convergence, as the command line) or
        ``"adam"`` (fixed epochs, the paper's optimiser).
    epochs
        Adam epochs (full passes over the events).
    lr, betas, eps
        Adam hyper-parameters (paper default lr = 1e-3).
    warmup_epochs
        Adam epochs run before Newton (``optimizer="newton"`` only).
    max_iter, tol, ftol, patience
        Newton stops a unit when the Newton decrement ½ gᵀH⁻¹g (the predicted
        remaining gain, loss units; t = -2 L) is below ``tol`` with a positive-definite
        Hessian, or when its loss improved by less than ``ftol·(1 + |L − L_0|)`` over
        the last ``patience`` iterations (L_0: the objective's ``reference_loss``, the
        null's loss, where it has one; else 0). The second rule matters for networks:
        the supremum of the likelihood is often reached only asymptotically (two
        sigmoids with large, opposite output weights sharpening a bump), so parameters
        drift along a flat valley while t has converged.
    clip
        Weight clipping bound W (None = no clipping); ``clip_biases`` also clips biases.
    record_every
        Record every unit's loss every this many epochs (Adam) / iterations (Newton).
    dtype
        Working precision of the network evaluation, ``"float32"`` or ``"float64"``.
    device
        Torch device, ``"cpu"`` (default) or e.g. ``"cuda"``.
    max_chunk_elements
        Memory bound: events are processed in chunks so that units × events ×
        layer width (× parameters for Hessians) stays below this.
    backend
        How losses, gradients and (Newton) Hessians of MLPs with the extended-likelihood
        or cross-entropy loss are computed: ``"eager"`` (autograd / matrix path),
        ``"compiled"`` (fused kernels: the native C kernels of :mod:`.native` for
        one-hidden-layer networks in float32 on the CPU, :mod:`.kernels` through
        ``torch.compile`` otherwise), ``"inductor"`` (always ``torch.compile``, for
        comparison) or ``"auto"`` (compiled for jobs large enough to repay the
        compilation, when a compiler works; eager otherwise).
    hessian
        Newton's curvature: ``"exact"`` (one-hidden-layer networks and bin-wise
        functions) or ``"gauss-newton"`` (J^T diag(ℓ'') J, positive semi-definite,
        any depth).
    """

    optimizer: Literal["adam", "newton"] = "newton"
    epochs: int = 20_000
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    warmup_epochs: int = 0
    max_iter: int = NEWTON_MAX_ITER
    tol: float = 1e-6
    ftol: float = 1e-4
    patience: int = 10
    clip: float | None = None
    clip_biases: bool = False
    record_every: int = 100
    dtype: Literal["float32", "float64"] = "float32"
    device: str = "cpu"
    max_chunk_elements: int = 1 << 24
    hessian: Literal["exact", "gauss-newton"] = "exact"
    backend: Literal["auto", "eager", "compiled", "inductor"] = "auto"

    def __post_init__(self) -> None:
        if self.optimizer not in ("adam", "newton"):
            raise ValueError(f"optimizer must be 'adam' or 'newton', got {self.optimizer!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {self.dtype!r}")
        for name in ("epochs", "warmup_epochs", "max_iter", "patience"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.record_every < 1:
            raise ValueError(f"record_every must be >= 1, got {self.record_every}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.clip is not None and not self.clip > 0:
            raise ValueError(f"clip must be positive or None, got {self.clip}")
        if self.hessian not in ("exact", "gauss-newton"):
            raise ValueError(f"hessian must be 'exact' or 'gauss-newton', got {self.hessian!r}")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.max_chunk_elements < 1:
            raise ValueError("max_chunk_elements must be positive")
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))

    @property
    def torch_dtype(self) -> torch.dtype:
        """The working torch dtype."""
        return DTYPES[self.dtype]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return asdict(self)


@dataclass
class FitResult:
    """Outcome of a batched fit of U units.

    Attributes
    ----------
    params
        Fitted parameters, one tensor per parameter shape, leading dimension U (CPU).
    loss
        Final loss per unit (float64); ``+inf`` t corresponds to diverged units.
    diverged
        Units flagged divergent (see module docstring).
    converged
        Newton: decrement below ``tol``. Adam: fixed epochs, never claims convergence.
    grad_norm
        Euclidean norm of each unit's final gradient.
    steps
        Epochs (Adam) or iterations (Newton, plus warm-up epochs) run per unit.
    history_steps, history_loss
        Recorded step numbers ``(K,)`` and losses ``(K, U)``.
    """

    params: list[torch.Tensor]
    loss: np.ndarray
    diverged: np.ndarray
    converged: np.ndarray
    grad_norm: np.ndarray
    steps: np.ndarray
    history_steps: np.ndarray
    history_loss: np.ndarray
    config: FitConfig
    seconds: float
    data_passes: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def best_of_starts(self, n_replicas: int, starts: int) -> FitResult:
        """Each unit's best fit among ``starts`` starting points.

        The units are laid out as ``slots × starts × n_replicas`` (slot: a function of
        the statistic, e.g. f and g of the symmetrized test; start-major within a slot,
        as :meth:`~symnplm.inference.batches.ReplicaBatch.repeated` lays out the
        problems). Every unit keeps the start with the lowest loss, a diverged start
        (loss unbounded below) first; the result has ``slots × n_replicas`` units in
        the order a single start gives them. ``extra["start"]`` records the chosen
        start and ``extra["start_loss"]`` (``starts``, units) every start's loss.
        """
        if starts == 1:
            return self
        n = len(self.loss)
        if n % (starts * n_replicas):
            raise ValueError(f"{n} units are not slots x {starts} starts x {n_replicas} replicas")
        slots = n // (starts * n_replicas)
        # (slot, start, replica) -> (start, slot·R + replica)
        order = np.arange(n).reshape(slots, starts, n_replicas).transpose(1, 0, 2)
        order = order.reshape(starts, slots * n_replicas)
        loss = np.where(self.diverged, -np.inf, self.loss)[order]
        best = np.argmin(loss, axis=0)
        pick = order[best, np.arange(order.shape[1])]
        return FitResult(
            params=[p[torch.as_tensor(pick)] for p in self.params],
            loss=self.loss[pick],
            diverged=self.diverged[pick],
            converged=self.converged[pick],
            grad_norm=self.grad_norm[pick],
            steps=self.steps[pick],
            history_steps=self.history_steps,
            history_loss=self.history_loss[:, pick],
            config=self.config,
            seconds=self.seconds,
            data_passes=self.data_passes,
            extra={**self.extra, "start": best, "start_loss": self.loss[order]},
        )


def fit(
    objective: Objective, params0: Sequence[torch.Tensor], config: FitConfig | None = None
) -> FitResult:
    """Minimise ``objective`` for all its units from ``params0``.

    Parameters
    ----------
    objective
        One of :mod:`symnplm.engine.objectives` (U units).
    params0
        Initial parameters, tensors with leading dimension U in the working dtype.
    config
        Optimiser settings (default: :class:`FitConfig` ``()``).

    Returns
    -------
    FitResult
    """
    cfg = config or FitConfig()
    t0 = time.perf_counter()
    n_units = objective.n_units
    params = [p.detach().to(device=cfg.device, dtype=cfg.torch_dtype) for p in params0]
    if any(p.shape[0] != n_units for p in params):
        raise ValueError(
            f"parameters have {[p.shape[0] for p in params]} replicas, "
            f"objective has {n_units} units"
        )
    history = History(n_units)
    divergence = Divergence(objective, clipped=cfg.clip is not None)
    passes = 0
    steps = np.zeros(n_units, dtype=np.int64)
    if cfg.optimizer == "adam":
        params, loss, gnorm = run_adam(objective, params, cfg, cfg.epochs, history, divergence)
        converged = torch.zeros(n_units, dtype=torch.bool)
        steps[:] = cfg.epochs
        passes = cfg.epochs + 1
    elif not isinstance(objective, NewtonObjective):
        raise TypeError(
            f"{type(objective).__name__} has no newton_terms (see NewtonObjective); "
            "fit it with optimizer='adam'"
        )
    else:
        if cfg.warmup_epochs:
            params, _, _ = run_adam(objective, params, cfg, cfg.warmup_epochs, history, divergence)
            passes += cfg.warmup_epochs + 1
        params, loss, gnorm, converged, iters, npass = run_newton(
            objective, params, cfg, history, divergence, cfg.warmup_epochs
        )
        passes += npass
        steps[:] = cfg.warmup_epochs + iters.numpy()
    loss = loss.detach().cpu().to(torch.float64)
    diverged = divergence.flag.clone()
    last_step = int(steps.max()) if n_units else 0
    if not history.steps or history.steps[-1] != last_step:
        history.add(last_step, loss.numpy())
    hs, hl = history.arrays()
    return FitResult(
        params=[p.detach().cpu() for p in params],
        loss=loss.numpy(),
        diverged=diverged.numpy(),
        converged=(converged & ~diverged).numpy(),
        grad_norm=gnorm.detach().cpu().numpy(),
        steps=steps,
        history_steps=hs,
        history_loss=hl,
        config=cfg,
        seconds=time.perf_counter() - t0,
        data_passes=passes,
    )
