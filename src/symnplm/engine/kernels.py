"""Fused loss-and-gradient kernels for small networks (the fast path of fixed-epoch Adam).

The networks of NPLM are tiny (13 parameters for 1-4-1) and the data are large
(10^5 events): an autograd step spends its time writing and re-reading
``(units, events, neurons)`` intermediates and dispatching dozens of small ops.
Here the forward pass and the back-propagation are written neuron by neuron on
``(units, events)`` tensors, so that every gradient component is a reduction over
events of an element-wise expression. ``torch.compile`` then fuses the whole
step into one loop over the events that keeps the activations in registers and
accumulates all P gradient components at once.

The same function runs eagerly (for checks, and where no compiler is available);
results agree with autograd to float32 rounding (tested).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

__all__ = [
    "LOSSES",
    "compiled_kernel",
    "compiled_loss_kernel",
    "compiled_newton_kernel",
    "compiler_available",
    "mlp1_newton_terms",
    "mlp_loss",
    "mlp_loss_and_grad",
]

LOSSES = ("extended", "crossentropy")


def _activation(name: str, z: torch.Tensor) -> torch.Tensor:
    if name == "sigmoid":
        return torch.sigmoid(z)
    if name == "tanh":
        return torch.tanh(z)
    if name == "relu":
        return torch.relu(z)
    return F.softplus(z)


def _activation_slope(name: str, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    if name == "sigmoid":
        return a * (1 - a)
    if name == "tanh":
        return 1 - a * a
    if name == "relu":
        return (z > 0).to(z.dtype)
    return torch.sigmoid(z)


def _activation_curvature(
    name: str, z: torch.Tensor, a: torch.Tensor, slope: torch.Tensor
) -> torch.Tensor:
    if name == "sigmoid":
        return slope * (1 - 2 * a)
    if name == "tanh":
        return -2 * a * slope
    if name == "relu":
        return torch.zeros_like(z)
    return torch.sigmoid(z) * torch.sigmoid(-z)  # softplus'' = σ(z)(1 - σ(z))


def _loss_derivatives(
    f: torch.Tensor, c1: torch.Tensor, c2: torch.Tensor, loss: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-event loss terms, ℓ'(f), ℓ''(f), and the max of f over data events."""
    if loss == "extended":
        e = c1 * torch.exp(f)
        fmax = torch.where(c2 > 0, f, torch.full_like(f, -torch.inf)).amax(-1)
        return e - c1 - c2 * f, e - c2, e, fmax
    z2 = 2 * f
    sp, sm = torch.sigmoid(z2), torch.sigmoid(-z2)
    terms = c1 * F.softplus(-z2) + c2 * F.softplus(z2)
    fmax = torch.full_like(f[:, 0], -torch.inf)
    return terms, 2 * (c2 * sp - c1 * sm), 4 * (c1 + c2) * sp * sm, fmax


def _forward(
    params: Sequence[torch.Tensor], x: torch.Tensor, activation: str
) -> tuple[torch.Tensor, list[list[torch.Tensor]], list[list[torch.Tensor]]]:
    """f ``(U, N)``, and every layer's inputs and pre-activations, neuron by neuron."""
    shared = x.dim() == 2
    # one (1, N) or (U, N) tensor per input feature
    h = [x[:, i][None, :] if shared else x[:, :, i] for i in range(x.shape[-1])]
    n_layers = len(params) // 2
    inputs, pre = [], []
    for layer in range(n_layers):
        w, b = params[2 * layer], params[2 * layer + 1]
        z = []
        for j in range(w.shape[1]):
            acc = b[:, j : j + 1]
            for i, hi in enumerate(h):
                acc = acc + w[:, j, i : i + 1] * hi
            z.append(acc)
        inputs.append(h)
        pre.append(z)
        h = [_activation(activation, zj) for zj in z] if layer < n_layers - 1 else z
    return h[0], inputs, pre


def mlp_loss(
    params: Sequence[torch.Tensor],
    x: torch.Tensor,
    c1: torch.Tensor,
    c2: torch.Tensor,
    *,
    activation: str,
    loss: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Loss per unit (float64) and max f over data events; arguments as :func:`mlp_loss_and_grad`.

    Newton's trial steps need only this: compiled, it is one pass over the events.
    """
    terms, _, _, fmax = _loss_derivatives(_forward(params, x, activation)[0], c1, c2, loss)
    return terms.sum(-1, dtype=torch.float64), fmax


def mlp_loss_and_grad(
    params: Sequence[torch.Tensor],
    x: torch.Tensor,
    c1: torch.Tensor,
    c2: torch.Tensor,
    *,
    activation: str,
    loss: str,
) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """Loss per unit (float64), max f over data events, and the gradient of an MLP.

    Parameters
    ----------
    params
        ``[W1 (U, h1, d), b1 (U, h1), ..., WL (U, 1, h), bL (U, 1)]``.
    x
        Events ``(N, d)`` shared by the units, or ``(U, N, d)``.
    c1, c2
        ``loss="extended"``: reference coefficient c and data weight β of Eq. (*) in
        :mod:`symnplm.engine.losses`. ``loss="crossentropy"``: weights of A and B
        (the network output is δ, the logit 2δ). Shapes ``(U, N)`` or ``(N,)``.
    activation, loss
        Hidden activation and loss family.
    """
    n_layers = len(params) // 2
    f, inputs, pre = _forward(params, x, activation)
    terms, r, _, fmax = _loss_derivatives(f, c1, c2, loss)
    total = terms.sum(-1, dtype=torch.float64)
    grads: list[torch.Tensor] = [torch.empty(0)] * len(params)
    delta = [r]
    for layer in reversed(range(n_layers)):
        w = params[2 * layer]
        hin = inputs[layer]
        grads[2 * layer] = torch.stack(
            [torch.stack([(dj * hi).sum(-1) for hi in hin], dim=-1) for dj in delta], dim=1
        )
        grads[2 * layer + 1] = torch.stack([dj.sum(-1) for dj in delta], dim=-1)
        if layer > 0:
            z_prev = pre[layer - 1]
            new = []
            for i, (zi, ai) in enumerate(zip(z_prev, hin)):
                back = w[:, 0, i : i + 1] * delta[0]
                for j in range(1, len(delta)):
                    back = back + w[:, j, i : i + 1] * delta[j]
                new.append(back * _activation_slope(activation, zi, ai))
            delta = new
    return total, fmax, grads


def mlp1_newton_terms(
    params: Sequence[torch.Tensor],
    x: torch.Tensor,
    c1: torch.Tensor,
    c2: torch.Tensor,
    *,
    activation: str,
    loss: str,
    exact: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Loss, max data f, gradient ``(U, P)`` and Hessian ``(U, P, P)`` of a one-hidden-layer MLP.

    f = Σ_a v_a σ(w_a·x + c_a) + b. The per-event gradient J has components
    v_a σ'_a x_j (w_aj), v_a σ'_a (c_a), σ_a (v_a), 1 (b); the Gauss–Newton part of
    the Hessian is Σ ℓ'' J Jᵀ (P(P+1)/2 reductions over events, by symmetry) and,
    with ``exact``, Σ ℓ' ∇²f couples only parameters of the same hidden unit:
    v_a σ''_a u uᵀ on (w_a, c_a) and σ'_a u between (w_a, c_a) and v_a, u = (x, 1).
    Arguments as in :func:`mlp_loss_and_grad`.
    """
    w1, _, w2, _ = params
    n_hidden, d = w1.shape[1], w1.shape[2]
    f, (xs, act), (z, _) = _forward(params, x, activation)
    slope = [_activation_slope(activation, za, sa) for za, sa in zip(z, act)]
    curv = [_activation_curvature(activation, *zs) for zs in zip(z, act, slope)]
    terms, r, q, fmax = _loss_derivatives(f, c1, c2, loss)
    # J in the flattened parameter order [W1 (H, d) row-major, b1 (H), W2 (H), b2]
    jac: list[torch.Tensor] = []
    for a in range(n_hidden):
        vs = w2[:, 0, a : a + 1] * slope[a]
        jac.extend(vs * xj for xj in xs)
    jac.extend(w2[:, 0, a : a + 1] * slope[a] for a in range(n_hidden))
    jac.extend(act)
    jac.append(torch.ones_like(f))
    n_par = len(jac)
    grad = torch.stack([(r * jk).sum(-1) for jk in jac], dim=-1)
    upper = {}
    for k in range(n_par):
        qk = q * jac[k]
        for m in range(k, n_par):
            upper[k, m] = (qk * jac[m]).sum(-1)
    if exact:
        u = [*xs, None]  # None stands for the constant 1 (the bias c_a)
        for a in range(n_hidden):
            block = [a * d + j for j in range(d)] + [n_hidden * d + a]  # w_a then c_a
            v_idx = n_hidden * d + n_hidden + a
            rc = r * curv[a] * w2[:, 0, a : a + 1]
            rs = r * slope[a]
            for i, (bi, ui) in enumerate(zip(block, u)):
                for bj, uj in zip(block[i:], u[i:]):
                    prod = rc if ui is None else rc * ui
                    prod = prod if uj is None else prod * uj
                    upper[bi, bj] = upper[bi, bj] + prod.sum(-1)
                upper[bi, v_idx] = upper[bi, v_idx] + (rs if ui is None else rs * ui).sum(-1)
    rows = [
        torch.stack([upper[min(k, m), max(k, m)] for m in range(n_par)], dim=-1)
        for k in range(n_par)
    ]
    return terms.sum(-1, dtype=torch.float64), fmax, grad, torch.stack(rows, dim=1)


def _compile(fn: Callable, loss: str, dynamic: bool, **options) -> Callable:
    if loss not in LOSSES:
        raise ValueError(f"no fused kernel for loss {loss!r}")
    return torch.compile(
        functools.partial(fn, loss=loss, **options), dynamic=dynamic, fullgraph=True
    )


@functools.lru_cache(maxsize=64)
def compiled_kernel(activation: str, loss: str) -> Callable:
    """:func:`mlp_loss_and_grad`, compiled once per (activation, loss) and input shapes."""
    return _compile(mlp_loss_and_grad, loss, False, activation=activation)


@functools.lru_cache(maxsize=64)
def compiled_loss_kernel(activation: str, loss: str) -> Callable:
    """:func:`mlp_loss`, compiled with dynamic shapes (for Newton's trial steps)."""
    return _compile(mlp_loss, loss, True, activation=activation)


@functools.lru_cache(maxsize=64)
def compiled_newton_kernel(activation: str, loss: str, exact: bool) -> Callable:
    """:func:`mlp1_newton_terms`, compiled with dynamic shapes (units drop out as they converge)."""
    return _compile(mlp1_newton_terms, loss, True, activation=activation, exact=exact)


@functools.lru_cache(maxsize=1)
def compiler_available() -> bool:
    """Whether ``torch.compile`` can build CPU kernels here (needs a C++ compiler)."""
    try:
        fn = torch.compile(lambda t: torch.exp(t).sum(), dynamic=False, fullgraph=True)
        fn(torch.ones(4))
    except Exception:  # any backend failure means: use the eager path
        return False
    return True
