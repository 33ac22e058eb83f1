"""Native C kernels (symnplm.engine.native) against the torch kernels in float64."""

import itertools

import numpy as np
import pytest
import torch

from symnplm.engine import FitConfig, fit, native
from symnplm.engine.kernels import mlp1_newton_terms, mlp_loss_and_grad

pytestmark = pytest.mark.skipif(
    native.native_kernels("sigmoid", "extended", 1, 4) is None,
    reason="no C compiler for the native kernels here",
)


def _inputs(n_units, n, d, hidden, shared, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    params = [
        scale * torch.randn(n_units, hidden, d, generator=g),
        torch.randn(n_units, hidden, generator=g),
        0.3 * torch.randn(n_units, 1, hidden, generator=g),
        0.1 * torch.randn(n_units, 1, generator=g),
    ]
    shape = (n, d) if shared else (n_units, n, d)
    x = torch.rand(shape, generator=g) * 2 - 0.5
    c1 = 0.5 + torch.rand(n_units, n, generator=g)
    c2 = (torch.rand(n_units, n, generator=g) < 0.5).float()
    if shared:
        c1 = c1[0]
    return params, x, c1, c2


def _close(got, ref, name, rtol=2e-5):
    got, ref = got.double(), ref.double()
    scale = ref.abs().amax().clamp_min(1e-30)
    err = ((got - ref).abs().amax() / scale).item()
    assert err < rtol, f"{name}: relative error {err:.2e}"


CASES = list(
    itertools.product(
        ["sigmoid", "tanh", "relu", "softplus"], ["extended", "crossentropy"], [1, 3], [True, False]
    )
)


@pytest.mark.parametrize(("activation", "loss", "d", "shared"), CASES)
def test_native_equals_torch_kernels(activation, loss, d, shared):
    # 5000 events: several float32 runs (4096) and Jacobian blocks (256), and a ragged tail
    params, x, c1, c2 = _inputs(3, 5000 + 7, d, 4, shared)
    k = native.native_kernels(activation, loss, d, 4)
    p64 = [p.double() for p in params]
    x64, a64, b64 = x.double(), c1.double(), c2.double()
    ref_loss, ref_fmax, ref_grads = mlp_loss_and_grad(
        p64, x64, a64, b64, activation=activation, loss=loss
    )
    value, fmax, grads = k.loss_and_grad(params, x, c1, c2)
    _close(value, ref_loss, "loss")
    if loss == "extended":  # f at a data event; -inf for cross-entropy (no such bound)
        _close(fmax, ref_fmax, "max f")
    for g, r in zip(grads, ref_grads):
        assert g.shape == r.shape and g.dtype == torch.float32
        _close(g, r, "gradient")
    only, fmax_only = k.loss(params, x, c1, c2)
    _close(only, ref_loss, "loss only")
    if loss == "extended":
        _close(fmax_only, ref_fmax, "max f (loss only)")
    for exact in (True, False):
        ref = mlp1_newton_terms(p64, x64, a64, b64, activation=activation, loss=loss, exact=exact)
        got = k.newton_terms(params, x, c1, c2, exact=exact)
        _close(got[0], ref[0], "newton loss")
        _close(got[2], ref[2], "newton gradient")
        _close(got[3], ref[3], f"hessian exact={exact}", rtol=5e-5)
        assert torch.equal(got[3], got[3].transpose(1, 2))


def test_units_do_not_interact_and_threads_change_nothing():
    params, x, c1, c2 = _inputs(5, 3000, 1, 4, shared=False, seed=1)
    k = native.native_kernels("sigmoid", "extended", 1, 4)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = k.newton_terms(params, x, c1, c2, exact=True)
        torch.set_num_threads(2)
        two = k.newton_terms(params, x, c1, c2, exact=True)
    finally:
        torch.set_num_threads(threads)
    for a, b in zip(one, two):
        assert torch.equal(a, b)
    # unit 3 alone gives unit 3's numbers: per-unit strides are honoured
    alone = k.newton_terms([p[3:4] for p in params], x[3:4], c1[3:4], c2[3:4], exact=True)
    for a, b in zip(alone, one):
        assert torch.equal(a[0], b[3])


@pytest.mark.parametrize("loss", ["extended", "crossentropy"])
def test_events_are_summed_in_blocks_whatever_the_threads_and_batch_mates(monkeypatch, loss):
    """Blocks of events, their sums and max combined: the float64 reference's values, and
    bit for bit the same numbers for a unit alone or among others, on 1, 2 or 3 threads
    (the order of the sums is fixed by the events alone)."""
    monkeypatch.setattr(native, "EVENTS_PER_BLOCK", 1024)
    params, x, c1, c2 = _inputs(3, 5000 + 7, 1, 4, shared=True, seed=5)
    k = native.native_kernels("sigmoid", loss, 1, 4)
    p64 = [p.double() for p in params]
    ref = mlp1_newton_terms(p64, x.double(), c1.double(), c2.double(), activation="sigmoid",
                            loss=loss, exact=True)  # fmt: skip

    def unsplit(*args):
        raise AssertionError("the events were not split into blocks")

    monkeypatch.setattr(native.MLP1Kernels, "_unit_split", unsplit)
    threads = torch.get_num_threads()
    runs = {}
    try:
        for n_threads in (1, 2, 3):
            torch.set_num_threads(n_threads)
            runs[n_threads, "all"] = k.newton_terms(params, x, c1, c2, exact=True)
            runs[n_threads, "alone"] = k.newton_terms([p[1:2] for p in params], x, c1, c2[1:2],
                                                      exact=True)  # fmt: skip
        value, fmax, grads = k.loss_and_grad(params, x, c1, c2)
        only, fmax_only = k.loss(params, x, c1, c2)
    finally:
        torch.set_num_threads(threads)
    split = runs[1, "all"]
    _close(split[0], ref[0], "loss")
    _close(split[2], ref[2], "gradient")
    _close(split[3], ref[3], "hessian", rtol=5e-5)
    _close(value, ref[0], "loss (Adam)")
    _close(only, ref[0], "loss only")
    _close(torch.cat([g.reshape(3, -1) for g in grads], dim=1), ref[2], "gradient (Adam)")
    # the kernels round f their own ways (max f of the cross-entropy kernels is -inf)
    assert torch.allclose(fmax, split[1], rtol=1e-6, atol=0)
    assert torch.allclose(fmax_only, split[1], rtol=1e-6, atol=0)
    for (n_threads, who), terms in runs.items():
        for a, b in zip(terms, split):
            assert torch.equal(a, b if who == "all" else b[1:2]), (n_threads, who)


def test_broadcast_coefficients_equal_materialised_ones():
    params, x, c1, c2 = _inputs(4, 1000, 1, 4, shared=True, seed=2)
    k = native.native_kernels("sigmoid", "extended", 1, 4)
    expanded = k.loss_and_grad(params, x, c1.expand(4, -1), c2)  # stride 0 over units
    shared = k.loss_and_grad(params, x, c1, c2)
    copied = k.loss_and_grad(params, x.expand(4, -1, -1).contiguous(), c1.repeat(4, 1), c2)
    flat = [(*r[:2], *r[2]) for r in (expanded, shared, copied)]
    for a, b, c in zip(*flat):
        assert torch.equal(a, b) and torch.equal(b, c)


def test_overflow_is_infinite_and_nan_propagates():
    params, x, c1, c2 = _inputs(2, 100, 1, 4, shared=True, seed=3)
    params[3] = torch.tensor([[200.0], [0.0]])  # e^f overflows float32 for unit 0
    k = native.native_kernels("sigmoid", "extended", 1, 4)
    loss, fmax = k.loss(params, x, c1, c2)
    assert loss[0] == np.inf and np.isfinite(loss[1].item())
    assert fmax[0] > 199
    params[3] = torch.tensor([[np.nan], [0.0]])
    loss, _, grads = k.loss_and_grad(params, x, c1, c2)
    assert np.isnan(loss[0].item()) and np.isfinite(loss[1].item())
    assert torch.isnan(grads[0][0]).all() and torch.isfinite(grads[0][1]).all()


def test_only_float32_on_cpu():
    params, x, c1, c2 = _inputs(2, 100, 1, 4, shared=True)
    k = native.native_kernels("sigmoid", "extended", 1, 4)
    with pytest.raises(TypeError, match="x is torch.float64"):
        k.loss(params, x.double(), c1, c2)


def test_missing_compiler_means_fallback(tmp_path, monkeypatch):
    monkeypatch.setenv("SYMNPLM_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    assert native._library.__wrapped__(1, 4, "sigmoid", "extended") is None
    assert list(tmp_path.iterdir()) == []  # nothing half-built is left behind
    monkeypatch.delenv("CC")
    lib = native._library.__wrapped__(1, 4, "sigmoid", "extended")
    assert lib is not None
    assert [p.suffix for p in tmp_path.iterdir()] == [".so"]


def test_fit_with_native_kernels_follows_eager(label_split):
    """Adam and the first Newton steps through native kernels follow autograd / matrix algebra."""
    n = 3000
    m, obj = label_split(n)
    backends = ("eager", "compiled")
    adam = {
        b: fit(obj, m.init([1, 2]), FitConfig(optimizer="adam", epochs=50, backend=b))
        for b in backends
    }
    # losses are sums over 3000 events of terms of order one that cancel to ~1: compare
    # on the scale of the terms (float32 rounding of the sums), far below what 50 epochs move
    start = obj.loss(m.init([1, 2]), None, slice(None))[0].detach().numpy()
    assert np.all(np.abs(start - adam["eager"].loss) > 1e4 * 1e-7 * n)
    np.testing.assert_allclose(adam["compiled"].loss, adam["eager"].loss, atol=1e-7 * n)
    cfg = {"optimizer": "newton", "max_iter": 3}
    newton = {b: fit(obj, m.init([1, 2]), FitConfig(**cfg, backend=b)) for b in backends}
    np.testing.assert_allclose(newton["compiled"].loss, newton["eager"].loss, atol=1e-7 * n)


def test_rows_and_scale_read_the_inputs_in_place():
    """``rows`` selects units' rows and ``scale`` multiplies c1, as copies would."""
    params, x, c1, c2 = _inputs(5, 2000, 1, 4, shared=False, seed=4)
    scale = torch.rand(5) + 0.5
    rows = torch.tensor([4, 1, 1])
    sub = [p[rows] for p in params]
    k = native.native_kernels("sigmoid", "extended", 1, 4)
    got = k.newton_terms(sub, x, c1, c2, exact=True, rows=rows, scale=scale)
    ref = k.newton_terms(sub, x[rows], scale[rows, None] * c1[rows], c2[rows], exact=True)
    for name, a, b in zip(("loss", "max f", "gradient", "hessian"), got, ref):
        _close(a, b, name, rtol=1e-6)
    shared = k.loss(sub, x[0], c1[0], c2, rows=rows, scale=scale)[0]
    _close(shared, k.loss(sub, x[0], scale[rows, None] * c1[0], c2[rows])[0], "shared", 1e-6)
    with pytest.raises(ValueError, match="one entry per unit"):
        k.loss(sub, x, c1, c2, rows=rows[:2])
    with pytest.raises(IndexError, match="row 4 of c2, which has 3"):
        k.loss(sub, x, c1, c2[:3], rows=rows)


def test_threads_work_in_a_forked_child():
    """A process forked after the thread pool started still runs multi-threaded kernels."""
    import multiprocessing

    params, x, c1, c2 = _inputs(4, 2000, 1, 4, shared=True, seed=5)
    k = native.native_kernels("sigmoid", "extended", 1, 4)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        parent = k.loss(params, x, c1, c2)[0]  # starts the pool in this process
        with multiprocessing.get_context("fork").Pool(1) as pool:
            child = pool.apply_async(_child_loss, (params, x, c1, c2)).get(timeout=60)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(child, parent)


def _child_loss(params, x, c1, c2):
    torch.set_num_threads(2)
    return native.native_kernels("sigmoid", "extended", 1, 4).loss(params, x, c1, c2)[0]


def test_loading_the_kernels_leaves_subnormal_numbers_alone():
    """The kernels are compiled with -ffast-math, but loading them must not switch the whole
    process to flush-to-zero: subnormal doubles stay representable in the user's program."""
    import subprocess
    import sys

    code = (
        "from symnplm.engine import native\n"
        "assert native.native_kernels('tanh', 'crossentropy', 2, 3) is not None\n"
        "x = 2.0 ** -1070\n"
        "print(x * 1.0 > 0)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "True"
