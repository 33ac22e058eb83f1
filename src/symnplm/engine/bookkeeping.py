"""What both optimisers share: event chunks, flat parameters, loss history, divergence flags.

The optimisers of :mod:`.adam` and :mod:`.newton` fit U units at once; these are
the pieces of their state that do not depend on the update rule.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from symnplm.engine.objectives import Objective, RunawayBoundObjective

__all__ = [
    "Divergence",
    "History",
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
    """

    def __init__(self, objective: Objective, clipped: bool) -> None:
        if isinstance(objective, RunawayBoundObjective) and not clipped:
            self.bound = objective.max_log_ratio()
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
