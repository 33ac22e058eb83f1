"""What both optimisers share: event chunks, flat parameters, loss history, divergence flags.

The optimisers of :mod:`.adam` and :mod:`.newton` fit U units at once; these are
the pieces of their state that do not depend on the update rule, and
:class:`HostSyncs`, which counts where a loop makes the host wait for the device.
"""

from __future__ import annotations

import collections
import contextlib
import math
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

from symnplm.engine.objectives import Objective, RunawayBoundObjective

__all__ = [
    "Divergence",
    "History",
    "HostSyncs",
    "chunk_slices",
    "evaluate",
    "finite_units",
    "flatten",
    "one_torch_thread",
    "unflatten",
]


def chunk_slices(n_events: int, per_event_cost: int, budget: int) -> list[slice]:
    """Event slices of at most ``budget / per_event_cost`` events each (at least one)."""
    size = max(1, budget // max(1, per_event_cost))
    return [slice(i, min(i + size, n_events)) for i in range(0, n_events, size)]


def flatten(params: Sequence[torch.Tensor]) -> torch.Tensor:
    """Per-unit parameter tensors as one ``(U, P)`` matrix (row-major per tensor)."""
    return torch.cat([p.reshape(p.shape[0], -1) for p in params], dim=1)


def unflatten(theta: torch.Tensor, shapes: Sequence[tuple[int, ...]]) -> list[torch.Tensor]:
    """Inverse of :func:`flatten`: views of ``theta`` in the per-unit ``shapes``."""
    out, i = [], 0
    for s in shapes:
        n = math.prod(s)
        out.append(theta[:, i : i + n].reshape(theta.shape[0], *s))
        i += n
    return out


def finite_units(params: list[torch.Tensor], n_units: int) -> torch.Tensor:
    """Mask of the units whose parameters are all finite."""
    return torch.stack([torch.isfinite(p).reshape(n_units, -1).all(1) for p in params]).all(0)


class History:
    """Every unit's loss at the recorded steps."""

    def __init__(self, n_units: int) -> None:
        self.steps: list[int] = []
        self.loss: list[np.ndarray] = []
        self.n_units = n_units

    def add(self, step: int, loss: np.ndarray) -> None:
        """Record the losses of all units at ``step``."""
        self.steps.append(step)
        self.loss.append(loss.copy())

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Steps ``(K,)`` and losses ``(K, U)``."""
        if not self.steps:
            return np.zeros(0, dtype=np.int64), np.zeros((0, self.n_units))
        return np.asarray(self.steps, dtype=np.int64), np.stack(self.loss)


class Divergence:
    """Tracks which units diverged (non-finite, or f above the objective's bound).

    With weight clipping the network's variation is bounded (bounded activations and
    kernels, an output bias fixed by the normalisation), so only a non-finite loss
    counts: a clipped fit may legitimately put a high plateau where the reference is
    empty.

    :meth:`check` runs on the device of its arguments without touching the flags, for
    loops that must not wait for the host; :meth:`mark` records its verdicts later.
    ``flag`` stays on the CPU.
    """

    def __init__(self, objective: Objective, clipped: bool) -> None:
        if isinstance(objective, RunawayBoundObjective) and not clipped:
            self.bound = objective.max_log_ratio()
        else:
            self.bound = torch.full((objective.n_units,), math.inf, dtype=torch.float64)
        self.flag = torch.zeros(objective.n_units, dtype=torch.bool)
        self._bounds = {self.bound.device: self.bound}

    def check(
        self, units: torch.Tensor, loss: torch.Tensor, fmax: torch.Tensor, theta_ok: torch.Tensor
    ) -> torch.Tensor:
        """Mask (over ``units``) of those that have diverged, on the device of ``loss``."""
        bound = self._bounds.get(loss.device)
        if bound is None:  # copied once per device, not per call
            bound = self._bounds[loss.device] = self.bound.to(loss.device)
        return ~torch.isfinite(loss) | ~theta_ok | (fmax > bound[units])

    def mark(self, diverged: torch.Tensor) -> None:
        """Flag the units of the mask ``diverged`` (over all units, on any device)."""
        self.flag |= diverged.cpu()

    def update(
        self, units: torch.Tensor, loss: torch.Tensor, fmax: torch.Tensor, theta_ok: torch.Tensor
    ) -> torch.Tensor:
        """Flag units; return the mask (over ``units``) of those that have diverged."""
        bad = self.check(units, loss, fmax, theta_ok)
        self.flag[units.cpu()] |= bad.cpu()
        return bad


def evaluate(
    objective: Objective,
    params: list[torch.Tensor],
    units: torch.Tensor | None,
    chunks: list[slice],
    backward: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Loss and max data-f, summed/maxed over event chunks; accumulates .grad if ``backward``."""
    total: torch.Tensor | None = None
    fmax: torch.Tensor | None = None
    for ev in chunks:
        loss, fm = objective.loss(params, units, ev)
        if backward:
            loss.sum().backward()
        loss = loss.detach()
        total = loss if total is None else total + loss
        fmax = fm if fmax is None else torch.maximum(fmax, fm)
    if total is None or fmax is None:
        raise ValueError("no event chunks to evaluate")
    return total, fmax


@contextlib.contextmanager
def one_torch_thread(device: torch.device) -> Iterator[None]:
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


#: Tensor methods that hand a tensor's values to the host (a device-to-host copy)
_TO_HOST = frozenset({"cpu", "numpy", "tolist", "__array__"})
#: aten ops that read a value, or whose output shape depends on values
_READ = frozenset({"_local_scalar_dense", "nonzero", "masked_select", "unique"})
_MASK_INDEX = frozenset({"index", "index_put", "index_put_"})


class HostSyncs:
    """Count, inside ``with``, the operations that make the host wait for ``device``.

    On a GPU each is a synchronisation: the host stops until the queued kernels have
    run. Counted are copies to the host (``.cpu()``, ``.numpy()``, ``.tolist()``,
    ``.to("cpu")``), reads of a value (``.item()``, ``bool()``, ``float()``, ``if t``),
    and ops whose output size depends on the values (``nonzero``, boolean-mask
    indexing), of tensors on ``device``. On the CPU nothing waits, but the count is
    what the same code would cost on a GPU, so it can be checked without one.
    Synchronisations inside compiled kernels and libraries are not seen; on CUDA,
    :attr:`cuda_syncs` adds those that ``torch.cuda.set_sync_debug_mode`` reports.

    Attributes
    ----------
    counts
        Occurrences per operation name.
    cuda_syncs
        On CUDA, the synchronisations torch reported (the counted operations among
        them); ``None`` on other devices.
    """

    def __init__(self, device: str | torch.device) -> None:
        self.device = torch.device(device).type
        self.counts: collections.Counter[str] = collections.Counter()
        self.cuda_syncs: int | None = None
        self._stack = contextlib.ExitStack()
        self._warnings: list[warnings.WarningMessage] = []

    @property
    def total(self) -> int:
        """All counted operations."""
        return sum(self.counts.values())

    def _on_device(self, *values: Any) -> bool:
        return any(isinstance(v, torch.Tensor) and v.device.type == self.device for v in values)

    def __enter__(self) -> HostSyncs:
        outer = self

        class Functions(TorchFunctionMode):
            def __torch_function__(self, func, types, args=(), kwargs=None):
                kwargs = kwargs or {}
                name = getattr(func, "__name__", "")
                to_host = name in _TO_HOST or (
                    name == "to"
                    and any(
                        isinstance(a, (str, torch.device)) and torch.device(a).type == "cpu"
                        for a in (*args[1:], kwargs.get("device"))
                        if a is not None
                    )
                )
                if to_host and args and outer._on_device(args[0]):
                    outer.counts[name] += 1
                return func(*args, **kwargs)

        class Aten(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                kwargs = kwargs or {}
                name = func.overloadpacket.__name__
                if name in _READ and outer._on_device(*args):
                    outer.counts[name] += 1
                elif name in _MASK_INDEX and outer._on_device(args[0]):
                    indices = args[1] if len(args) > 1 else ()
                    if any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in indices):
                        outer.counts[f"{name} (mask)"] += 1
                return func(*args, **kwargs)

        if self.device == "cuda":
            self._warnings = self._stack.enter_context(warnings.catch_warnings(record=True))
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            self._stack.callback(torch.cuda.set_sync_debug_mode, "default")
        self._stack.enter_context(Functions())
        self._stack.enter_context(Aten())
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()
        if self.device == "cuda":
            self.cuda_syncs = sum("synchroniz" in str(w.message) for w in self._warnings)
