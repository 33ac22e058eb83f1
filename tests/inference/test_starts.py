"""Fits from several starting points: the best start per function, same t for one start."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from symnplm.engine import FitConfig
from symnplm.engine.fitting import FitResult
from symnplm.generation.toymodels import ToyModel
from symnplm.inference import CrossEntropyTest, NPLMTest, SymmetrizedTest, calibrate
from symnplm.inference.batches import ReplicaBatch

NEWTON = FitConfig(optimizer="newton", max_iter=80)


def _result(loss, diverged=None) -> FitResult:
    loss = np.asarray(loss, dtype=float)
    n = len(loss)
    return FitResult(
        params=[torch.arange(n, dtype=torch.float64)[:, None]],
        loss=loss,
        diverged=np.zeros(n, bool) if diverged is None else np.asarray(diverged),
        converged=np.arange(n) % 2 == 0,
        grad_norm=np.arange(n, dtype=float),
        steps=np.arange(n),
        history_steps=np.array([0, 5]),
        history_loss=np.stack([loss + 1, loss]),
        config=NEWTON,
        seconds=0.0,
    )


def test_best_of_starts_keeps_each_units_lowest_loss():
    # 2 slots (f, g) x 3 starts x 2 replicas; unit = slot·6 + start·2 + replica
    loss = np.array(
        [
            5,
            1,
            3,
            9,
            4,
            2,  # f: replica 0 best at start 2 (4), replica 1 at start 0
            7,
            8,
            6,
            0,
            9,
            9,
        ]
    )  # g: replica 0 best at start 1 (6), replica 1 at start 1
    best = _result(loss).best_of_starts(n_replicas=2, starts=3)
    assert best.loss.tolist() == [3, 1, 6, 0]
    picked = [2, 1, 8, 9]  # the units those losses came from
    assert best.params[0][:, 0].tolist() == picked
    assert best.steps.tolist() == picked and best.grad_norm.tolist() == picked
    assert best.converged.tolist() == [p % 2 == 0 for p in picked]
    assert best.history_loss[1].tolist() == [3, 1, 6, 0]
    assert best.extra["start"].tolist() == [1, 0, 1, 1]
    assert best.extra["start_loss"].shape == (3, 4)


def test_a_diverged_start_wins_and_one_start_is_the_identity():
    diverged = np.array([False, False, True, False])
    best = _result([1.0, 2.0, 5.0, 0.5], diverged).best_of_starts(n_replicas=2, starts=2)
    assert best.diverged.tolist() == [True, False] and best.loss.tolist() == [5.0, 0.5]
    single = _result([1.0, 2.0])
    assert single.best_of_starts(n_replicas=2, starts=1) is single
    with pytest.raises(ValueError, match="slots"):
        _result([1.0, 2.0, 3.0]).best_of_starts(n_replicas=2, starts=2)


def test_repeated_batch_is_copy_major():
    batch = ReplicaBatch(np.arange(3.0), [[1, 0, 1], [0, 1, 1]], [[0, 1, 0], [1, 0, 0]])
    rep = batch.repeated(3)
    assert rep.n_replicas == 6 and rep.x.shape == (3, 1)  # shared events stay shared
    np.testing.assert_array_equal(rep.weight_a[4], batch.weight_a[0])
    assert batch.repeated(1) is batch


@pytest.fixture(scope="module")
def pair():
    return ToyModel(800, 700, signal="S3", n_signal=60)(np.random.default_rng(5))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_more_starts_never_lower_t_and_start_zero_is_the_single_fit(pair, seed, device):
    """Units are independent in a batch, so start 0 of k is the single-start fit itself,
    and each of t_A, t_B can only grow (float32 fits: 1e-5 relative)."""
    a, b = pair
    fit = replace(NEWTON, device=device)
    one = SymmetrizedTest(fit=fit).fit(a, b, seed=seed)
    four = SymmetrizedTest(fit=fit, n_starts=4).fit(a, b, seed=seed)
    for part in ("t_A", "t_B"):
        assert four.parts[part] >= one.parts[part] - 1e-5 * abs(one.parts[part])
    assert four.t == pytest.approx(four.parts["t_A"] + four.parts["t_B"])
    assert four.config["n_starts"] == 4 and one.config["n_starts"] == 1


@pytest.mark.parametrize(
    "make",
    [
        lambda: SymmetrizedTest(fit=FitConfig(optimizer="adam", epochs=300), n_starts=3),
        lambda: SymmetrizedTest(fit=NEWTON, n_starts=3),
        lambda: SymmetrizedTest(parametrization="sigma_delta", fit=NEWTON, n_starts=3),
        lambda: CrossEntropyTest(fit=NEWTON, n_starts=3),
    ],
    ids=["symmetrized-adam", "symmetrized-newton", "sigma-delta-newton", "crossentropy-newton"],
)
def test_several_starts_keep_the_symmetry_under_swapping_a_and_b(make, pair):
    a, b = pair
    test = make()
    ab, ba = test.fit(a, b, seed=7), test.fit(b, a, seed=7)
    # f and g are one another's fit after the swap; Newton's float32 steps may round
    # them differently in the last bits (1e-6 relative), Adam's never
    assert ab.t == pytest.approx(ba.t, rel=1e-5, abs=1e-9)


def test_nplm_with_starts_and_the_null_fitted_alike(pair):
    """NPLM (one unit per replica) takes starts too, and a calibration fits its
    permutations with as many starts as the observation."""
    a, b = pair
    clip = replace(NEWTON, clip=3.0)
    nplm1 = NPLMTest(fit=clip).fit(a, b, seed=3).t
    nplm3 = NPLMTest(fit=clip, n_starts=3).fit(a, b, seed=3).t
    assert nplm3 >= nplm1 - 1e-5 * abs(nplm1)
    # the native kernels (chosen here whatever the batch's size) compute each unit
    # alone; the batched float64 solves round by batch size (1e-5 of t here)
    native = replace(NEWTON, max_iter=40, backend="compiled")
    test = SymmetrizedTest(fit=native, n_starts=2)
    res = calibrate(test, a, b, method="permutations", n=6, seed=2, batch_size=3)
    again = calibrate(test, a, b, method="permutations", n=6, seed=2, batch_size=6)
    np.testing.assert_allclose(res.null.t, again.null.t, rtol=1e-4)
    assert res.observed.config["n_starts"] == 2


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_n_starts_must_be_a_positive_integer(bad):
    with pytest.raises(ValueError, match="n_starts must be a positive integer"):
        SymmetrizedTest(n_starts=bad)
