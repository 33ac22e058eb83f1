"""Batched maximum-likelihood fitting of many independent units at once.

Two optimisers, both full-batch (every step sees every event):

* ``"adam"`` — fixed-epoch Adam, the NPLM / 2401.09530 convention (lr 1e-3; the
  paper trains 5×10^5 epochs, Sec. III A). Adam is element-wise, so one Adam over
  the stacked parameters of U units is exactly U independent Adams.
* ``"newton"`` — a damped Newton method (Levenberg–Marquardt trust region on the
  exact per-unit Hessian) that converges to a local minimum in tens of iterations
  instead of 10^5 epochs; optional Adam warm-up. Converged units drop out of the
  batch.

Weight clipping (NPLM convention) is applied after every step (for Newton, the
trial point is projected).

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
objective's ``max_log_ratio``: a value
at which a single reference event would predict more events than the whole data
sample, so no stationary point of the likelihood can reach it. Diverged units are
reported with t = +inf by the test statistics, never NaN.
"""

from __future__ import annotations

import contextlib
import functools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np
import torch

from symnplm.engine.kernels import (
    compiled_kernel,
    compiled_loss_kernel,
    compiled_newton_kernel,
    compiler_available,
)
from symnplm.engine.native import MLP1Kernels, native_kernels
from symnplm.engine.objectives import Objective

DTYPES = {"float32": torch.float32, "float64": torch.float64}
BACKENDS = ("auto", "eager", "compiled", "inductor")


@dataclass(frozen=True)
class FitConfig:
    """Optimiser settings.

    Parameters
    ----------
    optimizer
        ``"adam"`` (fixed epochs) or ``"newton"`` (converged damped Newton).
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

    optimizer: Literal["adam", "newton"] = "adam"
    epochs: int = 10_000
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    warmup_epochs: int = 0
    max_iter: int = 200
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

    def to_dict(self) -> dict:
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
    extra: dict = field(default_factory=dict)


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------
def _chunk_slices(n_events: int, per_event_cost: int, budget: int) -> list[slice]:
    size = max(1, budget // max(1, per_event_cost))
    return [slice(i, min(i + size, n_events)) for i in range(0, n_events, size)]


def _flatten(params: Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.cat([p.reshape(p.shape[0], -1) for p in params], dim=1)


def _unflatten(theta: torch.Tensor, shapes: Sequence[tuple[int, ...]]) -> list[torch.Tensor]:
    out, i = [], 0
    for s in shapes:
        n = math.prod(s)
        out.append(theta[:, i : i + n].reshape(theta.shape[0], *s))
        i += n
    return out


class _History:
    def __init__(self, n_units: int) -> None:
        self.steps: list[int] = []
        self.loss: list[np.ndarray] = []
        self.n_units = n_units

    def add(self, step: int, loss: np.ndarray) -> None:
        self.steps.append(step)
        self.loss.append(loss.copy())

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        if not self.steps:
            return np.zeros(0, dtype=np.int64), np.zeros((0, self.n_units))
        return np.asarray(self.steps, dtype=np.int64), np.stack(self.loss)


class _Divergence:
    """Tracks which units diverged (non-finite, or f above the objective's bound).

    With weight clipping the network's variation is bounded (bounded activations and
    kernels, an output bias fixed by the normalisation), so only a non-finite loss
    counts: a clipped fit may legitimately put a high plateau where the reference is
    empty.
    """

    def __init__(self, objective: Objective, clipped: bool) -> None:
        bound = getattr(objective, "max_log_ratio", None)
        if callable(bound) and not clipped:
            self.bound = bound()
        else:
            self.bound = torch.full((objective.n_units,), math.inf, dtype=torch.float64)
        self.flag = torch.zeros(objective.n_units, dtype=torch.bool)

    def update(
        self, units: torch.Tensor, loss: torch.Tensor, fmax: torch.Tensor, theta_ok: torch.Tensor
    ) -> torch.Tensor:
        """Flag units; return the mask (over ``units``) of those that have diverged."""
        bad = ~torch.isfinite(loss) | ~theta_ok | (fmax > self.bound[units])
        new = bad & ~self.flag[units]
        self.flag[units[new]] = True
        return bad


def _evaluate(
    objective: Objective,
    params: list[torch.Tensor],
    units: torch.Tensor | None,
    chunks: list[slice],
    backward: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Loss and max data-f, summed/maxed over event chunks; accumulates .grad if ``backward``."""
    total = None
    fmax = None
    for ev in chunks:
        loss, fm = objective.loss(params, units, ev)
        if backward:
            loss.sum().backward()
        loss = loss.detach()
        total = loss if total is None else total + loss
        fmax = fm if fmax is None else torch.maximum(fmax, fm)
    return total, fmax


# --------------------------------------------------------------------------------------
# Adam
# --------------------------------------------------------------------------------------
def _native(objective: Objective, cfg: FitConfig) -> MLP1Kernels | None:
    """The native kernels for a one-hidden-layer MLP in float32 on the CPU, if they build."""
    arch = getattr(getattr(objective, "model", None), "architecture", None)
    kind = getattr(objective, "kernel_loss", None)
    if (
        cfg.backend in ("eager", "inductor")
        or kind is None
        or arch is None
        or len(arch) != 3
        or cfg.dtype != "float32"
        or torch.device(cfg.device).type != "cpu"
    ):
        return None
    return native_kernels(objective.model.activation, kind, arch[0], arch[1])


def _compiled_loss(
    objective: Objective, cfg: FitConfig, work: float, threshold: float
) -> str | None:
    """The loss family to run through a compiled kernel, or None for the eager path.

    ``backend="compiled"`` or ``"inductor"`` insists (an error if the objective has
    no kernel); ``"auto"`` compiles when ``work`` (events × units × steps) reaches
    ``threshold`` (for ``torch.compile``, whose compilation takes seconds to a
    minute) or 10^7 (native kernels: built in a second, once per machine), and a
    compiler works.
    """
    kind = getattr(objective, "kernel_loss", None)
    if cfg.backend in ("compiled", "inductor") and kind is None:
        raise ValueError(f"no fused kernel for {type(objective).__name__}; use backend='eager'")
    if cfg.backend == "eager" or kind is None:
        return None
    if cfg.backend == "auto":
        if work >= 1e7 and _native(objective, cfg) is not None:
            return kind
        if work < threshold or not compiler_available():
            return None
    return kind


def _gradient_function(
    objective: Objective, cfg: FitConfig, chunks: list[slice], work: float
) -> Callable[[list[torch.Tensor]], tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]]:
    """params -> (loss, max data f, gradients), by fused kernel or by autograd.

    The fused kernels (:mod:`.native`, :mod:`.kernels`) serve MLPs with
    ``backend="compiled"``, or with ``"auto"`` from 5×10^8 event-epochs
    (``torch.compile``) or 10^7 (native).
    """
    kind = _compiled_loss(objective, cfg, work, 5e8)
    if kind is not None:
        native = _native(objective, cfg)
        compiled = compiled_kernel(objective.model.activation, kind) if native is None else None

        def kernel(params: list[torch.Tensor], ev: slice):
            if native is None:
                return compiled(params, *objective.kernel_inputs(None, ev))
            x, c1, c2, scale = objective.kernel_operands(ev)
            return native.loss_and_grad(params, x, c1, c2, scale=scale)

        # native kernels need no working memory per event: one call over all events
        parts = chunks if native is None else [slice(0, objective.n_events)]

        def fused(params: list[torch.Tensor]):
            total = fmax = grads = None
            for ev in parts:
                loss, fm, g = kernel(params, ev)
                if total is None:
                    total, fmax, grads = loss, fm, g
                else:
                    total, fmax = total + loss, torch.maximum(fmax, fm)
                    grads = [a + b for a, b in zip(grads, g)]
            return total, fmax.to(torch.float64), grads

        return fused

    def autograd(params: list[torch.Tensor]):
        ps = [p.detach().requires_grad_(True) for p in params]
        loss, fmax = _evaluate(objective, ps, None, chunks, backward=True)
        return loss, fmax, [p.grad for p in ps]

    return autograd


def _finite_units(params: list[torch.Tensor], n_units: int) -> torch.Tensor:
    return torch.stack([torch.isfinite(p).reshape(n_units, -1).all(1) for p in params]).all(0)


def _adam(
    objective: Objective,
    params: list[torch.Tensor],
    cfg: FitConfig,
    epochs: int,
    history: _History,
    divergence: _Divergence,
    step0: int = 0,
) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
    """Run ``epochs`` of batched Adam; return params, final loss, final grad norm."""
    n_units = objective.n_units
    all_units = torch.arange(n_units)
    chunks = _chunk_slices(objective.n_events, n_units * objective.width, cfg.max_chunk_elements)
    gradient = _gradient_function(
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
                all_units, loss.cpu(), fmax.cpu(), _finite_units(params, n_units).cpu()
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
            with _one_torch_thread(params[0].device):
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
    divergence.update(all_units, loss, fmax.cpu(), _finite_units(params, n_units).cpu())
    gnorm = torch.sqrt(
        sum((torch.nan_to_num(g).to(torch.float64) ** 2).reshape(n_units, -1).sum(1) for g in grads)
    )
    return params, loss, gnorm.cpu()


# --------------------------------------------------------------------------------------
# Newton (Levenberg–Marquardt on the exact Hessian)
# --------------------------------------------------------------------------------------
def _loss_grad_hessian(
    objective: Objective, theta: torch.Tensor, units: torch.Tensor, cfg: FitConfig
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-unit loss, gradient ``(u, P)`` and Hessian ``(u, P, P)`` in float64.

    Analytic per-event Jacobians (see ``MLP.jacobian``), summed over event chunks so
    that memory stays bounded by ``max_chunk_elements``.
    """
    u, n_par = theta.shape
    chunks = _chunk_slices(
        objective.n_events, u * (n_par + objective.width) * 2, cfg.max_chunk_elements
    )
    params = _unflatten(theta.to(cfg.torch_dtype), objective.shapes)
    exact = cfg.hessian == "exact"
    return _sum_chunks(
        (objective.newton_terms(params, units, ev, exact) for ev in chunks), u, n_par, theta.device
    )


@contextlib.contextmanager
def _one_torch_thread(device: torch.device):
    """Run torch's CPU ops inside on one thread.

    Some of torch's CPU kernels (sqrt, batched Cholesky) start their OpenMP team even
    for a few hundred elements; its workers then spin and take the cores from the
    native kernels' threads of the next pass over the events (measured: Adam at
    N = 10⁴, R = 64, 2 threads went from 2.4 to 4.0×10⁸ event-epochs/s; Newton about
    10 %). One thread for these tiny ops costs nothing.
    """
    if device.type != "cpu":
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _cholesky(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Batched ``cholesky_ex`` of the small (u, P, P) Hessians (see :func:`_one_torch_thread`)."""
    with _one_torch_thread(a.device):
        return torch.linalg.cholesky_ex(a)


def _sum_chunks(parts, u: int, n_par: int, device) -> tuple[torch.Tensor, ...]:
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


def _newton_functions(objective: Objective, cfg: FitConfig) -> tuple[Callable, Callable]:
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
    kind = _compiled_loss(objective, cfg, work, 1e9)
    if kind is None or len(objective.shapes) != 4:
        return (
            lambda theta, units: _loss_grad_hessian(objective, theta, units, cfg),
            lambda theta, units: _loss_only(objective, theta, units, cfg),
        )
    exact = cfg.hessian == "exact"
    native = _native(objective, cfg)
    if native is not None:
        newton_kernel = functools.partial(native.newton_terms, exact=exact)
        loss_kernel = native.loss
    else:
        activation = objective.model.activation
        newton_kernel = compiled_newton_kernel(activation, kind, exact)
        loss_kernel = compiled_loss_kernel(activation, kind)
    # native kernels need no working memory per event: one call over all events
    size = (
        objective.n_events
        if native is not None
        else min(max(1, cfg.max_chunk_elements // (4 * objective.n_units)), objective.n_events)
    )
    chunks = [slice(i, i + size) for i in range(0, objective.n_events, size)]

    def padded(theta: torch.Tensor, units: torch.Tensor, kernel: Callable):
        params = _unflatten(theta.to(cfg.torch_dtype), objective.shapes)
        for ev in chunks:
            if native is not None:  # reads the units' rows in place
                x, c1, c2, scale = objective.kernel_operands(ev)
                yield kernel(params, x, c1, c2, rows=units, scale=scale)
                continue
            x, c1, c2 = objective.kernel_inputs(units, ev)
            pad = size - c1.shape[-1]
            if pad:
                x = torch.nn.functional.pad(x, (0, 0, 0, pad))
                c1 = torch.nn.functional.pad(c1, (0, pad))
                c2 = torch.nn.functional.pad(c2, (0, pad))
            yield kernel(params, x, c1, c2)

    def hessian_terms(theta: torch.Tensor, units: torch.Tensor):
        parts = padded(theta, units, newton_kernel)
        return _sum_chunks(parts, theta.shape[0], theta.shape[1], theta.device)

    def loss_only(theta: torch.Tensor, units: torch.Tensor):
        loss = torch.zeros(theta.shape[0], dtype=torch.float64, device=theta.device)
        fmax = torch.full_like(loss, -math.inf)
        with torch.no_grad():
            for l_c, f_c in padded(theta, units, loss_kernel):
                loss += l_c
                fmax = torch.maximum(fmax, f_c.to(torch.float64))
        return loss, fmax

    return hessian_terms, loss_only


def _loss_only(
    objective: Objective, theta: torch.Tensor, units: torch.Tensor, cfg: FitConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    chunks = _chunk_slices(
        objective.n_events, theta.shape[0] * objective.width, cfg.max_chunk_elements
    )
    with torch.no_grad():
        return _evaluate(
            objective,
            _unflatten(theta.to(cfg.torch_dtype), objective.shapes),
            units,
            chunks,
            backward=False,
        )


def _newton(
    objective: Objective,
    params: list[torch.Tensor],
    cfg: FitConfig,
    history: _History,
    divergence: _Divergence,
    step0: int,
) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int]:
    n_units = objective.n_units
    dev = params[0].device
    theta = _flatten(params).to(torch.float64)
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
        views = _unflatten(th, objective.shapes)
        objective.clip_(views, cfg.clip, cfg.clip_biases)
        return th

    theta = project(theta)
    hessian_terms, loss_only = _newton_functions(objective, cfg)
    # progress is judged on the scale of t: the loss relative to the null's (0 for the
    # extended likelihood, ~ n log 2 for cross-entropy)
    reference = getattr(objective, "reference_loss", None)
    offset = (
        reference().cpu() if reference is not None else torch.zeros(n_units, dtype=torch.float64)
    )
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
        # Convergence: Newton decrement ½ gᵀH⁻¹g below tol with H positive definite.
        scale = H.diagonal(dim1=1, dim2=2).abs().amax(1).clamp_min(1e-30)
        chol, info = _cholesky(H + 1e-12 * scale[:, None, None] * ridge_eye)
        dec = torch.full_like(L, math.inf)
        pd = info == 0
        if bool(pd.any()):
            sol = torch.cholesky_solve(g[pd].unsqueeze(-1), chol[pd]).squeeze(-1)
            dec[pd] = 0.5 * (g[pd] * sol).sum(1)
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
        # Damped step (H + λ D) p = -g, Marquardt scaling D = diag|H| (floored).
        diag = H.diagonal(dim1=1, dim2=2).abs()
        diag = torch.maximum(diag, 1e-8 * diag.amax(1, keepdim=True).clamp_min(1e-30))
        lam_u = lam[units].clone()
        step = torch.zeros_like(g)
        need = torch.ones(units.numel(), dtype=torch.bool)
        for _ in range(40):
            A = H[need] + lam_u[need, None, None] * torch.diag_embed(diag[need])
            chol, info = _cholesky(A)
            ok = info == 0
            idx = torch.nonzero(need).squeeze(1)
            if bool(ok.any()):
                step[idx[ok]] = torch.cholesky_solve(-g[idx[ok]].unsqueeze(-1), chol[ok]).squeeze(
                    -1
                )
            lam_u[idx[~ok]] *= 10.0
            need[idx[ok]] = False
            if not bool(need.any()):
                break
        trial = project(theta[units.to(dev)] + step.to(dev))
        step = (trial - theta[units.to(dev)]).cpu()
        L_trial, _ = loss_only(trial, units.to(dev))
        L_trial = L_trial.cpu()
        passes += 1
        predicted = -((g * step).sum(1) + 0.5 * torch.einsum("ui,uij,uj->u", step, H, step))
        actual = L - L_trial
        accept = torch.isfinite(L_trial) & (actual > 0) & ~need
        rho = actual / predicted.clamp_min(1e-300)
        lam_acc = lam_u * torch.clamp(1 - (2 * rho - 1) ** 3, min=1 / 3)
        lam[units] = torch.where(accept, lam_acc, lam_u * nu[units])
        nu[units] = torch.where(accept, torch.full_like(nu[units], 2.0), nu[units] * 2)
        theta[units[accept].to(dev)] = trial[accept.to(dev)]
        # A unit whose damping exploded cannot make progress: stop it unconverged.
        stalled = lam[units] > 1e16
        stopped[units[stalled]] = True
    return _unflatten(theta, objective.shapes), loss, gnorm, converged, iters, passes


# --------------------------------------------------------------------------------------
# public entry point
# --------------------------------------------------------------------------------------
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
    history = _History(n_units)
    divergence = _Divergence(objective, clipped=cfg.clip is not None)
    passes = 0
    steps = np.zeros(n_units, dtype=np.int64)
    if cfg.optimizer == "adam":
        params, loss, gnorm = _adam(objective, params, cfg, cfg.epochs, history, divergence)
        converged = torch.zeros(n_units, dtype=torch.bool)
        steps[:] = cfg.epochs
        passes = cfg.epochs + 1
    else:
        if cfg.warmup_epochs:
            params, _, _ = _adam(objective, params, cfg, cfg.warmup_epochs, history, divergence)
            passes += cfg.warmup_epochs + 1
        params, loss, gnorm, converged, iters, npass = _newton(
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
