"""Replicated function families f(x; θ_r), r = 1..R, evaluated as one batched program.

A model here is stateless: it knows its parameter shapes, how to initialise R
independent replicas from per-replica seeds, and how to evaluate all replicas on
a batch of events. The parameters themselves are a list of tensors whose leading
dimension is the replica index, so that toys and permutations are replicas of one
tensor program rather than a Python loop of trainings.

Events are either shared by every replica, ``x`` of shape ``(N, d)`` (permutations,
Poisson-bootstrap toys: only the per-event weights differ), or per replica,
``x`` of shape ``(R, N, d)`` (toys drawn from a generator, zero-padded).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

__all__ = [
    "ACTIVATIONS",
    "MLP",
    "BinwiseFunction",
    "replica_generators",
]

ACTIVATIONS = {
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "relu": torch.relu,
    "softplus": torch.nn.functional.softplus,
}


def _activation_derivatives(
    name: str, z: torch.Tensor, a: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """First and second derivative of the activation at z (a = act(z) given for reuse)."""
    if name == "sigmoid":
        d1 = a * (1 - a)
        return d1, d1 * (1 - 2 * a)
    if name == "tanh":
        d1 = 1 - a * a
        return d1, -2 * a * d1
    if name == "relu":
        return (z > 0).to(z.dtype), torch.zeros_like(z)
    s = torch.sigmoid(z)  # softplus
    return s, s * (1 - s)


def replica_generators(
    seeds: Sequence[int], device: torch.device | str = "cpu"
) -> list[torch.Generator]:
    """One torch generator per replica seed (initialisation must not depend on batching)."""
    gens = []
    for s in seeds:
        g = torch.Generator(device="cpu")
        g.manual_seed(int(s))
        gens.append(g)
    return gens


#: (shape, index of the tensor in the shapes, the replica's generator) -> float64 values
Draw = Callable[[tuple[int, ...], int, torch.Generator], torch.Tensor]


def _stack_init(
    shapes: list[tuple[int, ...]],
    draw: Draw,
    seeds: Sequence[int],
    dtype: torch.dtype,
    device: torch.device | str,
) -> list[torch.Tensor]:
    """Draw each replica's parameters from its own generator and stack along dim 0."""
    per_replica = [
        [draw(shape, i_shape, g) for i_shape, shape in enumerate(shapes)]
        for g in replica_generators(seeds)
    ]
    return [
        torch.stack([rep[k] for rep in per_replica]).to(dtype=dtype, device=device).contiguous()
        for k in range(len(shapes))
    ]


@dataclass(frozen=True)
class MLP:
    """Fully connected network, e.g. ``(1, 4, 1)`` (Eq. 12) or ``(5, 5, 5, 5, 1)``.

    Hidden layers use ``activation`` (logistic sigmoid by default, as in Eq. 12 and
    D1); the output layer is linear. Kernels are initialised Glorot-uniform and
    biases to zero (the Keras defaults used by the NPLM reference code), each replica
    from its own seed.

    Weight clipping (:meth:`clip_`) limits the *kernels* (weights) to [-W, W] and
    leaves the biases free, as the NPLM reference implementation does
    (``kernel_constraint`` only); pass ``clip_biases=True`` to clip biases too.
    """

    architecture: tuple[int, ...] = (1, 4, 1)
    activation: str = "sigmoid"

    def __post_init__(self) -> None:
        arch = tuple(int(a) for a in self.architecture)
        if len(arch) < 2 or any(a < 1 for a in arch):
            raise ValueError(
                "architecture must be at least (d_in, d_out) with positive sizes, "
                f"got {self.architecture}"
            )
        if arch[-1] != 1:
            raise ValueError(f"the network must have one output, architecture ends with {arch[-1]}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"unknown activation {self.activation!r}; choose from {sorted(ACTIVATIONS)}"
            )
        object.__setattr__(self, "architecture", arch)

    @property
    def input_dim(self) -> int:
        """Dimension d of the feature space."""
        return self.architecture[0]

    @property
    def shapes(self) -> list[tuple[int, ...]]:
        """Per-replica parameter shapes: [W1 (h1, d), b1 (h1,), ..., WL (1, h), bL (1,)]."""
        out: list[tuple[int, ...]] = []
        for n_in, n_out in zip(self.architecture[:-1], self.architecture[1:]):
            out += [(n_out, n_in), (n_out,)]
        return out

    @property
    def n_parameters(self) -> int:
        """Free parameters of one network (13 for (1, 4, 1))."""
        return sum(math.prod(s) for s in self.shapes)

    def is_kernel(self, k: int) -> bool:
        """Whether parameter tensor ``k`` is a weight matrix (even index) rather than a bias."""
        return k % 2 == 0

    def init(
        self,
        seeds: Sequence[int],
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
        zero_output: bool = False,
    ) -> list[torch.Tensor]:
        """Parameters of ``len(seeds)`` replicas, Glorot-uniform kernels, zero biases.

        ``zero_output=True`` also zeroes the output kernel, so that f ≡ 0 at the start
        (used for antisymmetric functions such as δ, whose fit must map to -δ when A
        and B are swapped).
        """
        n_last = len(self.shapes) - 2

        def draw(shape: tuple[int, ...], k: int, g: torch.Generator) -> torch.Tensor:
            if k % 2 == 1 or (zero_output and k == n_last):
                return torch.zeros(shape, dtype=torch.float64)
            fan_out, fan_in = shape
            limit = math.sqrt(6.0 / (fan_in + fan_out))
            return (torch.rand(shape, generator=g, dtype=torch.float64) * 2 - 1) * limit

        return _stack_init(self.shapes, draw, seeds, dtype, device)

    def forward(self, params: Sequence[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """f for every replica and event: ``(R, N)``.

        ``x`` is ``(N, d)`` (shared events) or ``(R, N, d)`` (per-replica events).
        """
        act = ACTIVATIONS[self.activation]
        n_layers = len(params) // 2
        h = x
        for layer in range(n_layers):
            w, b = params[2 * layer], params[2 * layer + 1]
            if h.dim() == 2:  # shared events: (N, d) x (R, h, d) -> (R, N, h)
                z = torch.einsum("nd,rhd->rnh", h, w) + b[:, None, :]
            else:
                z = torch.baddbmm(b[:, None, :], h, w.transpose(1, 2))
            h = act(z) if layer < n_layers - 1 else z
        return h.squeeze(-1)

    def jacobian(
        self, params: Sequence[torch.Tensor], x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """f and its per-event gradient ∂f/∂θ, ``(R, N)`` and ``(R, N, P)``.

        Back-propagation written out for one output, event by event (batched), with θ
        in the order of :attr:`shapes` flattened row-major. This is what the Newton
        optimiser needs, at the cost of a few matrix products instead of P backward
        passes through an autograd graph.
        """
        act = ACTIVATIONS[self.activation]
        n_layers = len(params) // 2
        inputs, pre = [], []
        h = x if x.dim() == 3 else x.unsqueeze(0).expand(params[0].shape[0], *x.shape)
        for layer in range(n_layers):
            w, b = params[2 * layer], params[2 * layer + 1]
            inputs.append(h)
            z = torch.baddbmm(b[:, None, :], h, w.transpose(1, 2))
            pre.append(z)
            h = act(z) if layer < n_layers - 1 else z
        f = h.squeeze(-1)
        blocks: list[torch.Tensor] = []
        delta = torch.ones_like(h)  # ∂f/∂z of the output layer, (R, N, 1)
        for layer in reversed(range(n_layers)):
            a_in = inputs[layer]
            gw = delta.unsqueeze(-1) * a_in.unsqueeze(-2)  # (R, N, out, in)
            blocks = [gw.flatten(2), delta, *blocks]
            if layer > 0:
                d1, _ = _activation_derivatives(self.activation, pre[layer - 1], inputs[layer])
                delta = torch.bmm(delta, params[2 * layer]) * d1
        return f, torch.cat(blocks, dim=-1)

    def curvature(
        self, params: Sequence[torch.Tensor], x: torch.Tensor, r: torch.Tensor
    ) -> torch.Tensor | None:
        """Σ_i r_i ∇²f(x_i), ``(R, P, P)``, for one hidden layer; ``None`` for deeper nets.

        With f = Σ_a v_a σ(w_a·x + c_a) + b, second derivatives couple only the
        parameters of the same hidden unit a: (w_a, c_a) with themselves through
        v_a σ'' u uᵀ and with v_a through σ' u, where u = (x, 1).
        """
        if len(params) != 4:
            return None
        w1, b1, w2, _ = params
        n_rep, n_hidden, d = w1.shape
        xs = x if x.dim() == 3 else x.unsqueeze(0).expand(n_rep, *x.shape)
        z = torch.baddbmm(b1[:, None, :], xs, w1.transpose(1, 2))
        a = ACTIVATIONS[self.activation](z)
        d1, d2 = _activation_derivatives(self.activation, z, a)
        u = torch.cat([xs, torch.ones_like(xs[..., :1])], dim=-1)  # (R, N, d+1)
        v = w2[:, 0, :]  # (R, H)
        # (w_a, c_a) block: v_a Σ r σ'' u uᵀ  -> (R, H, d+1, d+1)
        m = torch.einsum("rn,rnh,rnj,rnk->rhjk", r, d2, u, u) * v[:, :, None, None]
        # (w_a, c_a) x v_a: Σ r σ' u  -> (R, H, d+1)
        cross = torch.einsum("rn,rnh,rnj->rhj", r, d1, u)
        n_par = n_hidden * d + n_hidden + n_hidden + 1
        out = torch.zeros(n_rep, n_par, n_par, dtype=r.dtype, device=r.device)
        for h_idx in range(n_hidden):
            idx = [h_idx * d + j for j in range(d)] + [n_hidden * d + h_idx]  # w_a then c_a
            vi = n_hidden * d + n_hidden + h_idx
            ii = torch.tensor(idx, device=r.device)
            out[:, ii[:, None], ii[None, :]] = m[:, h_idx]
            out[:, ii, vi] = cross[:, h_idx]
            out[:, vi, ii] = cross[:, h_idx]
        return out

    def clip_(
        self, params: Sequence[torch.Tensor], bound: float, clip_biases: bool = False
    ) -> None:
        """Clip parameters in place to [-bound, bound] (kernels only unless ``clip_biases``)."""
        with torch.no_grad():
            for k, p in enumerate(params):
                if clip_biases or self.is_kernel(k):
                    p.clamp_(-bound, bound)

    def describe(self) -> dict[str, Any]:
        """JSON-able description."""
        return {
            "family": "mlp",
            "architecture": list(self.architecture),
            "activation": self.activation,
        }


@dataclass(frozen=True)
class BinwiseFunction:
    """Piecewise-constant f on bins of a 1D observable: one free parameter per bin.

    Runs through exactly the same losses and optimisers as the networks, so that the
    fitted t can be compared with the analytic bin-wise maximum (a check of the
    fitting machinery). Events outside ``edges`` fall in the nearest edge bin.
    Initialised at f = 0 (the null hypothesis).
    """

    edges: tuple[float, ...]

    def __post_init__(self) -> None:
        e = np.asarray(self.edges, dtype=np.float64)
        if e.ndim != 1 or len(e) < 2 or not np.all(np.diff(e) > 0):
            raise ValueError(
                f"bin edges must be a strictly increasing sequence of >= 2 values, got {self.edges}"
            )
        object.__setattr__(self, "edges", tuple(float(v) for v in e))

    @property
    def input_dim(self) -> int:
        """Binned models are one-dimensional."""
        return 1

    @property
    def n_bins(self) -> int:
        """Number of bins K."""
        return len(self.edges) - 1

    @property
    def shapes(self) -> list[tuple[int, ...]]:
        """One vector of K bin values."""
        return [(self.n_bins,)]

    @property
    def n_parameters(self) -> int:
        """K free parameters."""
        return self.n_bins

    def is_kernel(self, k: int) -> bool:
        """Bin values are clipped like kernels."""
        return True

    def bin_index(self, x: torch.Tensor) -> torch.Tensor:
        """Bin of each event (edge bins absorb under/overflow)."""
        edges = torch.tensor(self.edges[1:-1], dtype=x.dtype, device=x.device)
        return torch.bucketize(x[..., 0].contiguous(), edges, right=True)

    def init(
        self,
        seeds: Sequence[int],
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
        zero_output: bool = False,
    ) -> list[torch.Tensor]:
        """f = 0 for every replica (``zero_output`` is implied)."""
        return [torch.zeros((len(seeds), self.n_bins), dtype=dtype, device=device)]

    def forward(self, params: Sequence[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """f for every replica and event: ``(R, N)``."""
        (theta,) = params
        idx = self.bin_index(x)
        if idx.dim() == 1:
            return theta[:, idx]
        return torch.gather(theta, 1, idx)

    def jacobian(
        self, params: Sequence[torch.Tensor], x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """f and ∂f/∂θ: the one-hot indicator of each event's bin."""
        f = self.forward(params, x)
        idx = self.bin_index(x)
        if idx.dim() == 1:
            idx = idx.unsqueeze(0).expand(params[0].shape[0], -1)
        onehot = torch.nn.functional.one_hot(idx, self.n_bins).to(f.dtype)
        return f, onehot

    def curvature(
        self, params: Sequence[torch.Tensor], x: torch.Tensor, r: torch.Tensor
    ) -> torch.Tensor:
        """Zero: f is linear in the bin values."""
        return torch.zeros(
            params[0].shape[0], self.n_bins, self.n_bins, dtype=r.dtype, device=r.device
        )

    def clip_(
        self, params: Sequence[torch.Tensor], bound: float, clip_biases: bool = False
    ) -> None:
        """Clip bin values to [-bound, bound]."""
        with torch.no_grad():
            params[0].clamp_(-bound, bound)

    def describe(self) -> dict[str, Any]:
        """JSON-able description."""
        return {"family": "binwise", "edges": list(self.edges)}
