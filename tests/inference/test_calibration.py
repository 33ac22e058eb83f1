"""Calibration: permutations, toys, asymptotic; results on disk."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from symnplm.engine import FitConfig
from symnplm.generation.toymodels import ToyModel
from symnplm.inference import (
    BinnedTest,
    CalibrationResult,
    SymmetrizedTest,
    TestResult,
    calibrate,
    permutation_null,
    quantile_edges,
    toy_null,
)
from symnplm.io.samples import Sample

FAST = FitConfig(optimizer="newton", max_iter=25)


def test_permutation_p_values_are_not_concentrated_near_zero_under_the_null():
    """40 null datasets, binned statistic, 49 permutations each (seeded)."""
    rng = np.random.default_rng(21)
    edges = np.r_[0, np.quantile(rng.exponential(size=10_000), np.linspace(0.1, 0.9, 9)), 20]
    test = BinnedTest(edges)
    p = []
    for k in range(40):
        a, b = ToyModel(400, 400)(rng)
        p.append(calibrate(test, a, b, method="permutations", n=49, seed=k).p_value)
    p = np.asarray(p)
    assert np.mean(p <= 0.05) < 0.25
    assert 0.3 < np.median(p) < 0.7


def test_network_permutation_p_values_under_the_null():
    rng = np.random.default_rng(22)
    test = SymmetrizedTest(init="null", fit=FAST)
    p = [
        calibrate(test, *ToyModel(300, 300)(rng), method="permutations", n=19, seed=k).p_value
        for k in range(6)
    ]
    assert np.median(p) > 0.15
    assert np.mean(np.asarray(p) <= 0.1) <= 0.5


def test_permutations_keep_sample_sizes_and_are_reproducible(device):
    a, b = ToyModel(200, 300, poisson=False)(np.random.default_rng(1))
    test = SymmetrizedTest(init="null", fit=replace(FAST, device=device))
    n1 = permutation_null(test, a, b, 6, seed=3)
    n2 = permutation_null(test, a, b, 6, seed=3)
    np.testing.assert_array_equal(n1.t, n2.t)
    np.testing.assert_array_equal(n1.replica_ids, np.arange(6))
    assert not np.allclose(n1.t, permutation_null(test, a, b, 6, seed=4).t)
    # every relabelling keeps Ñ_A and Ñ_B: the binned statistic sees it in its tables
    from symnplm.inference.calculators import permutation_batch

    null = permutation_batch(BinnedTest(np.linspace(0, 8, 9)), a, b, 0, range(5))
    assert len(null) == 5 and np.all(np.isfinite(null.t))


def test_permutation_batches_do_not_change_replica_values_for_the_binned_statistic():
    a, b = ToyModel(150, 170)(np.random.default_rng(2))
    test = BinnedTest(quantile_edges(Sample.concatenate([a, b]), 6))
    one = permutation_null(test, a, b, 10, seed=9)
    split = permutation_null(test, a, b, 10, seed=9, batch_size=3)
    np.testing.assert_array_equal(one.t, split.t)


def test_empirical_p_value_follows_the_null():
    a, b = ToyModel(300, 300, signal="S3", n_signal=150)(np.random.default_rng(5))
    res = calibrate(BinnedTest(np.linspace(0, 6, 13)), a, b, method="permutations", n=99, seed=1)
    assert res.p_value == pytest.approx((1 + np.sum(res.null.t >= res.t)) / 100)
    assert res.p_value == pytest.approx(0.01)  # the signal beats every permutation
    assert res.z > 2


def test_toys_from_a_generator_and_from_the_poisson_bootstrap():
    model = ToyModel(300, 300)
    edges = np.linspace(0, 6, 9)
    gen = toy_null(BinnedTest(edges), 30, generator=model, seed=2)
    assert len(gen) == 30 and gen.method == "toys"
    # null toys of a binned G-test: mean ≈ dof (Wilks), loosely
    assert 3 < np.mean(gen.t) < 12
    a, b = model(np.random.default_rng(3))
    boot = toy_null(BinnedTest(edges), 30, a=a, b=b, seed=2)
    assert 3 < np.mean(boot.t) < 12
    with pytest.raises(ValueError, match="generator"):
        toy_null(BinnedTest(edges), 3)


def test_network_toys_with_generator_are_batched_and_padded(device):
    """Toys of different sizes share one zero-padded batch; padding must not leak into t."""
    model = ToyModel(120, 150)
    test = SymmetrizedTest(fit=FitConfig(optimizer="adam", epochs=150, device=device))
    batched = toy_null(test, 4, generator=model, seed=1, batch_size=4)
    alone = toy_null(test, 4, generator=model, seed=1, batch_size=1)
    assert batched.t.shape == (4,) and np.all(np.isfinite(batched.t))
    np.testing.assert_allclose(batched.t, alone.t, rtol=1e-5, atol=1e-5)


def test_calibration_arguments_are_checked():
    a, b = ToyModel(50, 50)(np.random.default_rng(0))
    with pytest.raises(ValueError, match="unknown calibration"):
        calibrate(BinnedTest([0, 1, 9]), a, b, method="bootstrap")
    with pytest.raises(ValueError, match="needs the number"):
        calibrate(BinnedTest([0, 1, 9]), a, b, method="permutations")


def test_results_round_trip_through_disk(tmp_path):
    a, b = ToyModel(300, 300, signal="S3", n_signal=60)(np.random.default_rng(8))
    test = SymmetrizedTest(init="null", fit=FAST)
    res = calibrate(test, a, b, method="permutations", n=5, seed=7)
    res.save(tmp_path / "r")
    meta = json.loads((tmp_path / "r" / "result.json").read_text())
    assert meta["observed"]["seed"] == 7
    assert meta["observed"]["provenance"]["versions"]["torch"]
    assert meta["observed"]["config"]["fit"]["optimizer"] == "newton"
    back = CalibrationResult.load(tmp_path / "r")
    assert back.t == res.t and back.p_value == res.p_value
    np.testing.assert_array_equal(back.null.t, res.null.t)
    grid = np.linspace(0, 5, 7)
    np.testing.assert_allclose(
        back.observed.evaluate(grid)["log_ratio"], res.observed.evaluate(grid)["log_ratio"]
    )
    # log n_A/n_B = f - g + log(Ñ_A/Ñ_B)
    ev = res.observed.evaluate(grid)
    np.testing.assert_allclose(
        ev["log_ratio"], ev["f"] - ev["g"] + np.log(len(a) / len(b)), rtol=1e-6
    )


def test_binned_result_log_ratio_is_the_histogram_ratio(tmp_path):
    a, b = ToyModel(500, 400)(np.random.default_rng(9))
    edges = np.array([0.0, 0.5, 1.0, 2.0, 10.0])
    res = BinnedTest(edges).fit(a, b)
    res.save(tmp_path / "b")
    back = TestResult.load(tmp_path / "b")
    ha = np.histogram(a.features[:, 0], edges)[0]
    hb = np.histogram(b.features[:, 0], edges)[0]
    np.testing.assert_allclose(
        back.evaluate([0.25, 0.75, 1.5, 5.0])["log_ratio"], np.log(ha / hb), rtol=1e-10
    )


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_permutation_null_on_cuda_matches_the_cpu():
    """The same relabellings fitted on the GPU give the CPU's t (float64, converged Newton)."""
    a, b = ToyModel(400, 500)(np.random.default_rng(8))
    fit = FitConfig(optimizer="newton", dtype="float64", max_iter=200)
    cpu = permutation_null(SymmetrizedTest(fit=fit), a, b, 8, seed=5)
    gpu = permutation_null(SymmetrizedTest(fit=replace(fit, device="cuda")), a, b, 8, seed=5)
    np.testing.assert_allclose(gpu.t, cpu.t, rtol=1e-4, atol=1e-4)


def test_progress_true_draws_the_replicas_done_with_an_eta(capsys):
    a, b = ToyModel(150, 170)(np.random.default_rng(2))
    test = BinnedTest(quantile_edges(Sample.concatenate([a, b]), 6))
    quiet = calibrate(test, a, b, method="permutations", n=12, seed=3, batch_size=4)
    assert capsys.readouterr().err == ""  # opt-in: nothing without it
    shown = calibrate(test, a, b, method="permutations", n=12, seed=3, batch_size=4, progress=True)
    lines = capsys.readouterr().err.split("\r")[1:]
    assert [line.split(" (")[0] for line in lines] == [
        "permutations: 4/12",
        "permutations: 8/12",
        "permutations: 12/12",
    ]
    assert "ETA" in lines[0] and "ETA" not in lines[-1] and lines[-1].endswith("\n")
    np.testing.assert_array_equal(shown.null.t, quiet.null.t)  # drawing changes nothing
