"""Native C kernels for one-hidden-layer MLPs (the fastest CPU path of Adam and Newton).

``torch.compile`` fuses :mod:`.kernels` into one loop over events, but keeps the
semantics of every intermediate (accurate vector exp, a cascade helper per
reduction, float64 conversions) and, for Newton's 91+ Hessian reductions, spills
its accumulators. ``mlp1.c`` is the same mathematics written for the hardware: the
network is unrolled at compile time for its (inputs, hidden units, activation,
loss), the event loop runs 16 lanes at a time with glibc's vector ``expf``, and the
Hessian is formed block by block as dot products of per-event Jacobian rows.

The library is built on first use with the system C compiler (``$CC``, else ``cc``;
the same requirement as ``torch.compile`` on the CPU) and cached under
``$SYMNPLM_CACHE_DIR`` (default ``~/.cache/symnplm/native``), keyed by source,
flags and CPU; it is written under a temporary name and renamed, so concurrent
processes never load a half-written file. When no compiler works,
:func:`native_kernels` returns None and the callers fall back to ``torch.compile``.

Units and blocks of events are split over ``torch.get_num_threads()`` threads (ctypes
releases the GIL); the blocks are fixed by the number of events alone and summed in
order, so a unit's result does not depend on the threads or on the other units.
Results agree with :mod:`.kernels` to float32 rounding (tested).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import itertools
import os
import platform
import subprocess
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path

import torch

__all__ = [
    "ACTIVATIONS",
    "LOSSES",
    "MLP1Kernels",
    "cache_dir",
    "native_kernels",
]

ACTIVATIONS = {"sigmoid": 0, "tanh": 1, "relu": 2, "softplus": 3}
LOSSES = {"extended": 0, "crossentropy": 1}
#: events summed as one block (a multiple of the 16-lane vector step); blocks are summed
#: in order, so results do not depend on threads or batch-mates
EVENTS_PER_BLOCK = 16384
FLAGS = (
    "-O3",
    "-march=native",
    # fast math without -ffinite-math-only: infinities carry the divergence guard
    "-ffast-math",
    "-fno-finite-math-only",
    "-fopenmp-simd",
    "-std=gnu11",
    "-fPIC",
)
#: linked in a separate step without -ffast-math: linking with it adds start-up code
#: that makes the whole process flush subnormal numbers to zero (x86 FTZ/DAZ) when the
#: library loads, changing every later float operation of the user's program
LINK_FLAGS = ("-shared",)


class _Inputs(ctypes.Structure):
    _fields_ = [
        ("x", ctypes.c_void_p),
        ("x_su", ctypes.c_int64),
        ("x_sj", ctypes.c_int64),
        ("c1", ctypes.c_void_p),
        ("c1_su", ctypes.c_int64),
        ("c2", ctypes.c_void_p),
        ("c2_su", ctypes.c_int64),
        ("scale", ctypes.c_void_p),
        ("rows", ctypes.c_void_p),
        ("theta", ctypes.c_void_p),
        ("n", ctypes.c_int64),
    ]


def cache_dir() -> Path:
    """Where built libraries are kept (``$SYMNPLM_CACHE_DIR`` or ``~/.cache/symnplm/native``)."""
    if os.environ.get("SYMNPLM_CACHE_DIR"):
        return Path(os.environ["SYMNPLM_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "symnplm" / "native"


def _cpu_fingerprint() -> str:
    # -march=native code must not be loaded on another CPU sharing the cache
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        flags = ""
    return platform.machine() + platform.processor() + flags


@functools.lru_cache(maxsize=64)
def _library(d: int, hidden: int, activation: str, loss: str) -> ctypes.CDLL | None:
    source = resources.files("symnplm.engine").joinpath("mlp1.c").read_text()
    cc = os.environ.get("CC", "cc")
    defines = (
        f"-DD={d}",
        f"-DH={hidden}",
        f"-DACT={ACTIVATIONS[activation]}",
        f"-DLOSS={LOSSES[loss]}",
    )
    key = hashlib.sha256(
        "\0".join([source, cc, *FLAGS, "link:", *LINK_FLAGS, *defines, _cpu_fingerprint()]).encode()
    ).hexdigest()[:16]
    path = cache_dir() / f"mlp1-d{d}-h{hidden}-{activation}-{loss}-{key}.so"
    try:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
                src = Path(tmp) / "mlp1.c"
                src.write_text(source)
                obj, out = Path(tmp) / "mlp1.o", Path(tmp) / path.name
                for command in (
                    [cc, *FLAGS, *defines, "-c", str(src), "-o", str(obj)],
                    [cc, *LINK_FLAGS, str(obj), "-o", str(out), "-lm"],
                ):
                    subprocess.run(command, check=True, capture_output=True, timeout=300)
                os.replace(out, path)
        lib = ctypes.CDLL(str(path))
    except (OSError, subprocess.SubprocessError):
        return None
    ptr, i64 = ctypes.c_void_p, ctypes.c_int64
    inputs = ctypes.POINTER(_Inputs)
    lib.mlp1_loss.argtypes = [inputs, i64, i64, ptr, ptr]
    lib.mlp1_grad.argtypes = [inputs, i64, i64, ptr, ptr, ptr]
    lib.mlp1_newton.argtypes = [inputs, i64, i64, ctypes.c_int, ptr, ptr, ptr, ptr]
    for fn in (lib.mlp1_loss, lib.mlp1_grad, lib.mlp1_newton):
        fn.restype = None
    return lib


_POOLS: dict[int, ThreadPoolExecutor] = {}


def _pool() -> ThreadPoolExecutor:
    # one pool per process: a forked child (coffea's futures executor, multiprocessing)
    # inherits the parent's executor object but none of its threads
    pid = os.getpid()
    if pid not in _POOLS:
        _POOLS.clear()
        workers = max(1, os.cpu_count() or 1)
        _POOLS[pid] = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mlp1")
    return _POOLS[pid]


def _rows(t: torch.Tensor, n_events: int) -> tuple[torch.Tensor, int]:
    """A coefficient ``(N,)`` or ``(U, N)``, unit stride over events, and its stride over units."""
    if t.dim() == 1 or t.shape[0] == 1 or t.stride(0) == 0:
        row = t.reshape(-1, n_events)[0] if t.dim() > 1 else t
        return row.contiguous(), 0
    t = t if t.stride(-1) == 1 else t.contiguous()
    return t, t.stride(0)


class MLP1Kernels:
    """Loss, gradient and Hessian kernels of one (inputs, hidden units, activation, loss).

    The methods take and return what their counterparts in :mod:`.kernels` do:
    ``params = [W1 (U, H, d), b1 (U, H), W2 (U, 1, H), b2 (U, 1)]`` in float32, events
    ``x`` ``(N, d)`` or ``(U, N, d)``, coefficients ``c1, c2`` ``(N,)`` or ``(U, N)``.
    Two optional arguments spare the caller copies: ``rows`` (int, one per unit), the
    row of ``x``, ``c1``, ``c2`` and ``scale`` that each unit reads (the inputs then
    have a row per unit of the whole fit, of which ``params`` is a subset), and
    ``scale`` ``(U,)``, a per-row factor of ``c1`` (so that ``c1`` may stay ``(N,)``).
    """

    def __init__(self, lib: ctypes.CDLL, d: int, hidden: int) -> None:
        self._lib, self.d, self.hidden = lib, d, hidden
        self.n_params = hidden * d + 2 * hidden + 1

    def _inputs(
        self, params, x, c1, c2, rows=None, scale=None
    ) -> tuple[_Inputs, int, list[torch.Tensor]]:
        n_units = params[0].shape[0]
        theta = torch.cat([p.reshape(n_units, -1) for p in params], dim=1).contiguous()
        n = x.shape[-2]
        if x.dim() == 3 and x.stride(0) == 0:
            x = x[0]
        # features as rows (d, N): unit stride over events
        xt = x.transpose(-1, -2)
        if xt.stride(-1) != 1:
            xt = xt.contiguous()
        a, a_su = _rows(c1, n)
        b, b_su = _rows(c2, n)
        tensors = [("x", xt), ("c1", a), ("c2", b), ("params", theta)]
        if scale is not None:
            scale = scale.to(torch.float32).contiguous()
            tensors.append(("scale", scale))
        for name, t in tensors:
            if t.dtype != torch.float32 or t.device.type != "cpu":
                raise TypeError(
                    f"native kernels take float32 CPU tensors; {name} is {t.dtype} on {t.device}"
                )
        if rows is not None:
            rows = rows.to(device="cpu", dtype=torch.int64).contiguous()
            if rows.shape != (n_units,):
                raise ValueError(f"rows must have one entry per unit ({n_units}), got {rows.shape}")
            top = int(rows.max()) if n_units else 0
            for name, t, per_unit in (
                ("x", xt, xt.dim() == 3),
                ("c1", c1, a_su != 0),
                ("c2", c2, b_su != 0),
                ("scale", scale, scale is not None),
            ):
                if per_unit and (top >= t.shape[0] or int(rows.min()) < 0):
                    raise IndexError(f"rows ask for row {top} of {name}, which has {t.shape[0]}")
            tensors.append(("rows", rows))
        s = _Inputs(
            xt.data_ptr(),
            xt.stride(0) if xt.dim() == 3 else 0,
            xt.stride(-2),
            a.data_ptr(),
            a_su,
            b.data_ptr(),
            b_su,
            None if scale is None else scale.data_ptr(),
            None if rows is None else rows.data_ptr(),
            theta.data_ptr(),
            n,
        )
        return s, n_units, [t for _, t in tensors]  # alive until the call returns

    def _run(self, fn, n_units: int, s: _Inputs, outputs: list[torch.Tensor], *lead) -> None:
        """``fn(inputs, u0, u1, *lead, *outputs)`` over the units, spread over the threads.

        Events come in blocks of :data:`EVENTS_PER_BLOCK` whatever the threads and the
        units: each block fills its own outputs, which are then summed block after block
        (the loss, gradient and Hessian are sums over events) or maxed (max f, the
        second output). A unit's result thus depends on its events alone, never on how
        many threads there are or which other units share the batch (a fit whose
        batch-mates converged early would otherwise be summed in another order and,
        the fit being non-convex, end elsewhere). Threads take (block, units) pieces.
        """
        edges = [*range(0, s.n, EVENTS_PER_BLOCK), s.n]
        if len(edges) <= 2:
            self._unit_split(fn, n_units, s, [*lead, *(o.data_ptr() for o in outputs)])
            return
        part_out = [[torch.empty_like(o) for o in outputs] for _ in range(len(edges) - 1)]
        n_threads = max(1, torch.get_num_threads())
        chunks = max(1, min(n_units, n_threads))
        unit_edges = [round(i * n_units / chunks) for i in range(chunks + 1)]
        pieces = []
        for (e0, e1), outs in zip(itertools.pairwise(edges), part_out):
            sub = _Inputs.from_buffer_copy(s)
            sub.x, sub.c1, sub.c2 = (p + 4 * e0 for p in (s.x, s.c1, s.c2))  # float32
            sub.n = e1 - e0
            ptrs = [*lead, *(o.data_ptr() for o in outs)]
            pieces += [(sub, u0, u1, ptrs) for u0, u1 in itertools.pairwise(unit_edges)]
        if n_threads == 1:
            for sub, u0, u1, ptrs in pieces:
                fn(ctypes.byref(sub), u0, u1, *ptrs)
        else:
            jobs = [
                _pool().submit(fn, ctypes.byref(sub), u0, u1, *ptrs) for sub, u0, u1, ptrs in pieces
            ]
            for job in jobs:
                job.result()
        for k, out in enumerate(outputs):
            total = part_out[0][k]
            for outs in part_out[1:]:  # in block order: the same sum on every machine
                total = torch.maximum(total, outs[k]) if k == 1 else total.add_(outs[k])
            out.copy_(total)

    def _unit_split(self, fn, n_units: int, s: _Inputs, args: list) -> None:
        n_threads = max(1, min(torch.get_num_threads(), n_units))
        ref = ctypes.byref(s)
        if n_threads == 1:
            fn(ref, 0, n_units, *args)
            return
        edges = [round(i * n_units / n_threads) for i in range(n_threads + 1)]
        jobs = [_pool().submit(fn, ref, lo, hi, *args) for lo, hi in itertools.pairwise(edges)]
        for job in jobs:
            job.result()

    def loss(
        self, params: Sequence[torch.Tensor], x, c1, c2, *, rows=None, scale=None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss per unit (float64) and max f over data events (float32)."""
        s, u, keep = self._inputs(params, x, c1, c2, rows, scale)
        loss = torch.empty(u, dtype=torch.float64)
        fmax = torch.empty(u, dtype=torch.float32)
        self._run(self._lib.mlp1_loss, u, s, [loss, fmax])
        del keep
        return loss, fmax

    def loss_and_grad(
        self, params: Sequence[torch.Tensor], x, c1, c2, *, rows=None, scale=None
    ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """Loss (float64), max data f and the gradient in the shapes of ``params`` (float32)."""
        s, u, keep = self._inputs(params, x, c1, c2, rows, scale)
        loss = torch.empty(u, dtype=torch.float64)
        fmax = torch.empty(u, dtype=torch.float32)
        grad = torch.empty(u, self.n_params, dtype=torch.float64)
        self._run(self._lib.mlp1_grad, u, s, [loss, fmax, grad])
        del keep
        sizes = [p[0].numel() for p in params]
        grads = [g.reshape(p.shape).to(p.dtype) for g, p in zip(grad.split(sizes, dim=1), params)]
        return loss, fmax, grads

    def newton_terms(
        self, params: Sequence[torch.Tensor], x, c1, c2, *, exact: bool, rows=None, scale=None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Loss, max data f, gradient ``(U, P)`` and Hessian ``(U, P, P)``, all float64 but f."""
        s, u, keep = self._inputs(params, x, c1, c2, rows, scale)
        loss = torch.full((u,), torch.nan, dtype=torch.float64)
        fmax = torch.empty(u, dtype=torch.float32)
        grad = torch.full((u, self.n_params), torch.nan, dtype=torch.float64)
        hess = torch.full((u, self.n_params, self.n_params), torch.nan, dtype=torch.float64)
        self._run(self._lib.mlp1_newton, u, s, [loss, fmax, grad, hess], int(exact))
        del keep
        return loss, fmax, grad, hess


def native_kernels(activation: str, loss: str, d: int, hidden: int) -> MLP1Kernels | None:
    """The native kernels of a ``d``-``hidden``-1 MLP, or None where they cannot be built.

    Set ``SYMNPLM_NATIVE=0`` to turn them off (then ``torch.compile`` serves).
    """
    if os.environ.get("SYMNPLM_NATIVE", "1") == "0":
        return None
    if activation not in ACTIVATIONS or loss not in LOSSES:
        return None
    lib = _library(int(d), int(hidden), activation, loss)
    return None if lib is None else MLP1Kernels(lib, int(d), int(hidden))
