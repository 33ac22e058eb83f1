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
    shared = x.dim() == 2
    # one (1, N) or (U, N) tensor per input feature
    h = [x[:, i][None, :] if shared else x[:, :, i] for i in range(x.shape[-1])]
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
    f = h[0]
    if loss == "extended":
        e = c1 * torch.exp(f)
        terms = e - c1 - c2 * f
        r = e - c2
        fmax = torch.where(c2 > 0, f, torch.full_like(f, -torch.inf)).amax(-1)
    else:
        z2 = 2 * f
        terms = c1 * F.softplus(-z2) + c2 * F.softplus(z2)
        r = 2 * (c2 * torch.sigmoid(z2) - c1 * torch.sigmoid(-z2))
        fmax = torch.full_like(f[:, 0], -torch.inf)
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


@functools.lru_cache(maxsize=64)
def compiled_kernel(activation: str, loss: str) -> Callable:
    """The fused kernel, compiled once per (activation, loss) and input shapes."""
    if loss not in LOSSES:
        raise ValueError(f"no fused kernel for loss {loss!r}")
    fn = functools.partial(mlp_loss_and_grad, activation=activation, loss=loss)
    return torch.compile(fn, dynamic=False, fullgraph=True)


def compiler_available() -> bool:
    """Whether ``torch.compile`` can build CPU kernels here (needs a C++ compiler)."""
    try:
        fn = torch.compile(lambda t: torch.exp(t).sum(), dynamic=False, fullgraph=True)
        fn(torch.ones(4))
    except Exception:  # any backend failure means: use the eager path
        return False
    return True
