"""Batched fitting: equivalence to independent fits, divergence, clipping, reproducibility."""

import numpy as np
import pytest
import torch

from symnplm.engine import (
    MLP,
    BinwiseFunction,
    CrossEntropyObjective,
    ExtendedLikelihoodObjective,
    FitConfig,
    fit,
)


def _objective(model, n=400, units=3, seed=0, dtype=torch.float32):
    rng = np.random.default_rng(seed)
    x = torch.tensor(rng.exponential(size=(n, 1)), dtype=dtype)
    labels = torch.tensor(rng.random((units, n)) < 0.5, dtype=dtype)
    scale = (labels.sum(1) / n).to(dtype)
    return ExtendedLikelihoodObjective(model, x, torch.ones(n, dtype=dtype), scale, labels)


def test_batched_adam_equals_independent_adams():
    m = MLP((1, 4, 1))
    obj = _objective(m)
    params = m.init([1, 2, 3])
    cfg = FitConfig(optimizer="adam", epochs=200, record_every=50)
    together = fit(obj, params, cfg)
    for u in range(3):
        single = ExtendedLikelihoodObjective(
            m, obj.x, obj.ref_weight, obj.ref_scale[u : u + 1], obj.data_weight[u : u + 1]
        )
        alone = fit(single, [p[u : u + 1] for p in params], cfg)
        np.testing.assert_allclose(alone.loss, together.loss[u : u + 1], rtol=1e-5)
    np.testing.assert_array_equal(together.history_steps, [0, 50, 100, 150, 200])
    assert together.history_loss.shape == (5, 3)


@pytest.mark.parametrize("optimizer", ["adam", "newton"])
def test_same_seed_is_bit_identical(optimizer):
    m = MLP((1, 4, 1))
    obj = _objective(m)
    cfg = FitConfig(optimizer=optimizer, epochs=100, max_iter=20)
    a = fit(obj, m.init([4, 5, 6]), cfg)
    b = fit(obj, m.init([4, 5, 6]), cfg)
    np.testing.assert_array_equal(a.loss, b.loss)
    for p, q in zip(a.params, b.params):
        assert torch.equal(p, q)


def test_newton_reaches_the_binwise_maximum():
    """Bin-wise f is a convex problem: Newton must land on e^{f_k} = β_k / c_k."""
    edges = (0.0, 0.5, 1.0, 2.0, 9.0)
    m = BinwiseFunction(edges)
    obj = _objective(m, units=2, dtype=torch.float64)
    res = fit(
        obj,
        m.init([0, 1], dtype=torch.float64),
        FitConfig(optimizer="newton", dtype="float64", tol=1e-12),
    )
    assert res.converged.all()
    idx = m.bin_index(obj.x).numpy()
    ref, _ = obj.coefficients(None, slice(None))
    for u in range(2):
        c = np.bincount(idx, weights=np.broadcast_to(ref[u].numpy(), idx.shape), minlength=4)
        b = np.bincount(idx, weights=obj.data_weight[u].numpy(), minlength=4)
        np.testing.assert_allclose(res.params[0][u].numpy(), np.log(b / c), atol=1e-8)


def test_unclipped_nplm_on_disjoint_support_is_flagged_divergent_not_nan():
    """Data where the reference has no events: the NPLM loss is unbounded (Sec. II A 2)."""
    rng = np.random.default_rng(3)
    a = rng.uniform(2, 3, 200)  # data
    b = rng.uniform(0, 1, 200)  # reference
    x = torch.tensor(np.r_[a, b][:, None], dtype=torch.float32)
    data = torch.tensor(np.r_[np.ones(200), np.zeros(200)], dtype=torch.float32)[None]
    ref = torch.tensor(np.r_[np.zeros(200), np.ones(200)], dtype=torch.float32)
    m = MLP((1, 4, 1))
    obj = ExtendedLikelihoodObjective(m, x, ref, torch.tensor([1.0]), data)
    for cfg in (FitConfig(optimizer="newton", max_iter=100), FitConfig(epochs=3000, lr=0.05)):
        res = fit(obj, m.init([1]), cfg)
        assert res.diverged.all(), cfg.optimizer
        assert not np.isnan(res.loss).any()


def test_weight_clipping_holds_after_every_step():
    m = MLP((1, 4, 1))
    obj = _objective(m, units=2)
    res = fit(obj, m.init([1, 2]), FitConfig(optimizer="adam", epochs=300, lr=0.5, clip=0.3))
    assert res.params[0].abs().max() <= 0.3 + 1e-7 and res.params[2].abs().max() <= 0.3 + 1e-7
    assert res.params[1].abs().max() > 0.3  # biases are not clipped by default
    res = fit(obj, m.init([1, 2]), FitConfig(optimizer="newton", max_iter=30, clip=0.3))
    assert res.params[0].abs().max() <= 0.3 + 1e-7


def test_event_chunks_do_not_change_the_result():
    m = MLP((1, 4, 1))
    obj = _objective(m, n=1000, dtype=torch.float64)
    params = m.init([1, 2, 3], dtype=torch.float64)
    whole = fit(obj, params, FitConfig(optimizer="adam", epochs=30, dtype="float64"))
    chunked = fit(
        obj,
        params,
        FitConfig(optimizer="adam", epochs=30, dtype="float64", max_chunk_elements=3 * 4 * 97),
    )
    np.testing.assert_allclose(chunked.loss, whole.loss, rtol=1e-10)
    whole = fit(obj, params, FitConfig(optimizer="newton", max_iter=10, dtype="float64"))
    chunked = fit(
        obj,
        params,
        FitConfig(optimizer="newton", max_iter=10, dtype="float64", max_chunk_elements=5000),
    )
    np.testing.assert_allclose(chunked.loss, whole.loss, rtol=1e-9)


def test_float32_and_float64_agree_on_a_converged_fit():
    m = BinwiseFunction((0.0, 0.3, 1.0, 2.0, 9.0))
    obj64 = _objective(m, n=5000, units=2, dtype=torch.float64)
    obj32 = ExtendedLikelihoodObjective(
        m,
        obj64.x.float(),
        obj64.ref_weight.float(),
        obj64.ref_scale.float(),
        obj64.data_weight.float(),
    )
    r64 = fit(
        obj64, m.init([0, 1], dtype=torch.float64), FitConfig(optimizer="newton", dtype="float64")
    )
    r32 = fit(obj32, m.init([0, 1]), FitConfig(optimizer="newton"))
    np.testing.assert_allclose(-2 * r32.loss, -2 * r64.loss, atol=1e-3)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"optimizer": "sgd"}, "optimizer"),
        ({"epochs": -1}, "epochs"),
        ({"clip": 0}, "clip"),
        ({"dtype": "float16"}, "dtype"),
        ({"lr": 0}, "lr"),
        ({"hessian": "bfgs"}, "hessian"),
    ],
)
def test_fit_config_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FitConfig(**kwargs)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_matches_cpu():
    m = MLP((1, 4, 1))
    obj = _objective(m, dtype=torch.float64)
    cpu = fit(
        obj,
        m.init([1, 2, 3], dtype=torch.float64),
        FitConfig(optimizer="adam", epochs=200, dtype="float64"),
    )
    objc = ExtendedLikelihoodObjective(
        m, obj.x.cuda(), obj.ref_weight.cuda(), obj.ref_scale.cuda(), obj.data_weight.cuda()
    )
    gpu = fit(
        objc,
        m.init([1, 2, 3], dtype=torch.float64),
        FitConfig(optimizer="adam", epochs=200, dtype="float64", device="cuda"),
    )
    np.testing.assert_allclose(gpu.loss, cpu.loss, rtol=1e-6)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_newton_matches_cpu():
    """Newton on CUDA: solves, damping search and stopping rules run on the device."""
    m = MLP((1, 4, 1))
    obj = _objective(m, dtype=torch.float64)
    cfg = {"optimizer": "newton", "max_iter": 30, "dtype": "float64"}
    cpu = fit(obj, m.init([1, 2, 3], dtype=torch.float64), FitConfig(**cfg))
    objc = ExtendedLikelihoodObjective(
        m, obj.x.cuda(), obj.ref_weight.cuda(), obj.ref_scale.cuda(), obj.data_weight.cuda()
    )
    gpu = fit(objc, m.init([1, 2, 3], dtype=torch.float64), FitConfig(**cfg, device="cuda"))
    np.testing.assert_allclose(gpu.loss, cpu.loss, rtol=1e-6)


def test_newton_stall_rule_is_on_the_scale_of_t():
    """Cross-entropy losses are ~ n log 2: the stall rule must judge gains on the scale of t.

    A converged fit gained less than 0.01 in t in its last iteration; judged relative to
    |L| (1.4 in loss, 2.8 in t over ``patience`` = 10 iterations here) the stall rule
    would stop fits still gaining about 0.3 per iteration. (Over all ``patience``
    iterations a fit that converged quadratically, by the decrement rule, may have
    gained more.)
    """
    rng = np.random.default_rng(4)
    n = 20_000
    # float64: in float32 the sums of 2×10⁴ terms (L ~ n log 2) round at ~10⁻³ in t, and
    # which of the several local maxima a fit climbs towards depends on that rounding
    x = torch.tensor(rng.exponential(size=(n, 1)), dtype=torch.float64)
    wa = torch.tensor(rng.random((8, n)) < 0.5, dtype=torch.float64)
    obj = CrossEntropyObjective(MLP((1, 4, 1)), x, wa, 1 - wa)
    params = MLP((1, 4, 1)).init(list(range(8)), dtype=torch.float64)
    for p in params[2:]:
        p.zero_()  # δ ≡ 0 at the start, as CrossEntropyTest does
    cfg = FitConfig(optimizer="newton", max_iter=100, record_every=1, dtype="float64")
    res = fit(obj, params, cfg)
    t = 2 * (obj.reference_loss().numpy() - res.history_loss)
    # the rule's units: stopped before the cap and reported converged (a unit whose
    # damping exploded also stops early, unconverged, and is reported so)
    stopped = (res.steps < cfg.max_iter) & res.converged
    assert stopped.any()
    for u in np.flatnonzero(stopped):
        last = res.steps[u]
        assert t[last, u] - t[max(0, last - 1), u] < 0.01


def test_divergence_bound_is_computed_chunk_by_chunk():
    """max_log_ratio over event chunks equals the whole-sample formula (bounded and not)."""
    rng = np.random.default_rng(2)
    n, units = 40_000, 64  # chunks of 2^20 / 64 = 16384 events: three chunks
    x = torch.tensor(rng.exponential(size=(n, 1)), dtype=torch.float32)
    ref = torch.tensor(rng.random(n) < 0.7, dtype=torch.float32)  # NPLM: B events only
    data = torch.tensor(rng.random((units, n)) < 0.3, dtype=torch.float32)
    data[::2] *= ref  # even units: every data event also a reference event -> bounded
    scale = torch.tensor(rng.uniform(0.5, 2.0, units), dtype=torch.float32)
    obj = ExtendedLikelihoodObjective(MLP((1, 4, 1)), x, ref, scale, data)
    c = (scale[:, None] * ref[None, :]).double()
    expected = torch.log(data.double().sum(1) / c.where(c > 0, torch.inf).amin(1)) + 2
    unbounded = ((c <= 0) & (data > 0)).any(1)
    expected = torch.where(unbounded, expected, torch.inf)
    assert unbounded[1::2].all() and not unbounded[::2].any()
    torch.testing.assert_close(obj.max_log_ratio(), expected)
    assert torch.equal(torch.isfinite(obj.floor()), ~unbounded)
