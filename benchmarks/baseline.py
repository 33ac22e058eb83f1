"""The plain PyTorch baseline: one NPLM fit the way an analyst would write it.

Independent of symnplm's engine: an ``nn.Sequential`` (sigmoid hidden layers, linear
output), the extended-likelihood loss of 2401.09530 Eq. (11)/(23),

    L = Σ_ref c (e^f − 1) − Σ_data w f        (summed over events, float32),

autograd, ``torch.optim.Adam(lr=1e-3)`` and full-batch epochs, one fit at a time.
The throughput benchmark (:mod:`benchmarks.throughput`) runs it side by side with
symnplm, from the same initial parameters, so that both do the same computation.

Usage (a quick single timing)::

    python -m benchmarks.baseline --dim 1 --events 1e5 --epochs 200 --threads 1
"""

from __future__ import annotations

import argparse
import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from benchmarks._common import count, default_architecture, set_threads, toy_samples


def make_network(architecture: Sequence[int]) -> nn.Sequential:
    """``Linear → Sigmoid → … → Linear`` for layer sizes such as ``(1, 4, 1)``."""
    layers: list[nn.Module] = []
    sizes = list(architecture)
    for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(nn.Sigmoid())
    return nn.Sequential(*layers)


def load_parameters(net: nn.Sequential, params: Sequence[torch.Tensor]) -> None:
    """Copy ``[W1 (h1, d), b1 (h1,), …]`` (symnplm's per-replica layout) into ``net``.

    ``nn.Linear`` stores its weight as (out, in), the same layout, so the copy is direct.
    """
    linear = [m for m in net if isinstance(m, nn.Linear)]
    if len(params) != 2 * len(linear):
        raise ValueError(f"{len(params)} tensors for {len(linear)} linear layers")
    with torch.no_grad():
        for k, layer in enumerate(linear):
            layer.weight.copy_(params[2 * k])
            layer.bias.copy_(params[2 * k + 1])


def extended_likelihood(f: torch.Tensor, ref: torch.Tensor, data: torch.Tensor) -> torch.Tensor:
    """``Σ ref·(e^f − 1) − Σ data·f`` over events (the loss of Eqs. 11 and 23)."""
    return (ref * (torch.exp(f) - 1) - data * f).sum()


@dataclass
class BaselineFit:
    """One baseline fit: final loss (float64, at the returned parameters) and its time."""

    loss: float
    seconds: float
    epochs: int
    params: list[np.ndarray]


def train(
    x: torch.Tensor,
    ref: torch.Tensor,
    data: torch.Tensor,
    architecture: Sequence[int],
    epochs: int,
    *,
    lr: float = 1e-3,
    params: Sequence[torch.Tensor] | None = None,
    seed: int = 0,
    clip: float | None = None,
) -> BaselineFit:
    """Fit one network with full-batch Adam for ``epochs`` epochs.

    Parameters
    ----------
    x
        Events ``(N, d)`` on the device to train on.
    ref, data
        Per-event reference coefficient c and data weight w, ``(N,)`` (or broadcastable).
    architecture
        Layer sizes, e.g. ``(1, 4, 1)``.
    epochs
        Adam steps (each sees every event).
    lr
        Adam learning rate (the paper's 1e-3).
    params
        Initial parameters in symnplm's layout; default: PyTorch's own initialisation.
    seed
        Seeds PyTorch's initialisation when ``params`` is not given.
    clip
        Weight clipping of the kernels after every step (the NPLM convention), or None.

    Returns
    -------
    BaselineFit
        ``seconds`` covers building the network and optimiser, the epochs and the final
        loss evaluation (symnplm's ``fit`` also ends with one evaluation).
    """
    start = time.perf_counter()
    torch.manual_seed(seed)
    net = make_network(architecture).to(x.device)
    if params is not None:
        load_parameters(net, params)
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    kernels = [m.weight for m in net if isinstance(m, nn.Linear)]
    for _ in range(epochs):
        optimizer.zero_grad(set_to_none=True)
        loss = extended_likelihood(net(x).squeeze(-1), ref, data)
        loss.backward()
        optimizer.step()
        if clip is not None:
            with torch.no_grad():
                for w in kernels:
                    w.clamp_(-clip, clip)
    with torch.no_grad():
        # the reported value is summed in float64, like symnplm's, so the two compare
        final = extended_likelihood(net(x).squeeze(-1).double(), ref.double(), data.double()).item()
    seconds = time.perf_counter() - start
    return BaselineFit(
        loss=final,
        seconds=seconds,
        epochs=epochs,
        params=[p.detach().cpu().numpy().copy() for p in net.parameters()],
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Time one baseline fit of the symmetrized f-term (A against A ∪ B)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dim", type=int, default=1)
    p.add_argument("--events", type=count, default=100_000, help="events in A ∪ B")
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    threads = set_threads(args.threads)
    a, b = toy_samples(args.dim, args.events, args.seed)
    x = torch.as_tensor(np.concatenate([a.features, b.features]), dtype=torch.float32)
    data = torch.cat([torch.ones(len(a)), torch.zeros(len(b))])
    ref = torch.full_like(data, len(a) / len(x))
    arch = default_architecture(args.dim)
    train(x, ref, data, arch, 2, seed=args.seed)  # warm-up
    res = train(x, ref, data, arch, args.epochs, seed=args.seed)
    rate = len(x) * args.epochs / res.seconds
    print(
        f"baseline {arch}, {len(x)} events, {args.epochs} epochs, {threads['intra_op']} "
        f"thread(s): {res.seconds:.2f} s, {rate:.3g} event-epochs/s, t = {-2 * res.loss:.3f}"
    )


if __name__ == "__main__":
    main()
