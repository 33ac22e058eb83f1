"""The protocols of engine.objectives: what each objective offers, what the fitter needs."""

import numpy as np
import pytest
import torch

from symnplm.engine import (
    MLP,
    BinwiseFunction,
    CrossEntropyObjective,
    ExtendedLikelihoodObjective,
    FitConfig,
    SigmaDeltaObjective,
    fit,
)
from symnplm.engine.kernel_selection import fused_target, kernel_target
from symnplm.engine.objectives import (
    KernelModel,
    KernelObjective,
    NewtonObjective,
    ReferenceLossObjective,
    RunawayBoundObjective,
)
from symnplm.systematics import NuisanceObjective

N = 300


def _events(units=2, seed=0):
    rng = np.random.default_rng(seed)
    x = torch.tensor(rng.exponential(size=(N, 1)), dtype=torch.float32)
    labels = torch.tensor(rng.random((units, N)) < 0.5, dtype=torch.float32)
    return x, labels


def _extended(model, units=2):
    x, labels = _events(units)
    return ExtendedLikelihoodObjective(
        model, x, torch.ones(N), (labels.sum(1) / N).to(torch.float32), labels
    )


def _crossentropy(model):
    x, labels = _events()
    return CrossEntropyObjective(model, x, labels, 1 - labels)


def _sigma_delta(model):
    x, labels = _events()
    return SigmaDeltaObjective(model, x, labels, 1 - labels)


def _nuisance(model):
    x, labels = _events()
    coef = torch.zeros(1, 1, N)
    aux, sigma = torch.zeros(2, 1), torch.ones(1)
    return NuisanceObjective(model, x, coef, torch.ones(N), labels, aux, sigma)


@pytest.mark.parametrize(
    ("build", "capabilities", "kernel_loss"),
    [
        (_extended, {NewtonObjective, KernelObjective, RunawayBoundObjective}, "extended"),
        (_crossentropy, {NewtonObjective, KernelObjective, ReferenceLossObjective}, "crossentropy"),
        (_sigma_delta, {NewtonObjective}, None),
        (_nuisance, {NewtonObjective, RunawayBoundObjective}, None),
    ],
    ids=["extended", "crossentropy", "sigma-delta", "nuisance"],
)
def test_objectives_offer_exactly_the_capabilities_they_implement(build, capabilities, kernel_loss):
    obj = build(MLP((1, 3, 1)))
    for protocol in (
        NewtonObjective,
        KernelObjective,
        RunawayBoundObjective,
        ReferenceLossObjective,
    ):
        assert isinstance(obj, protocol) == (protocol in capabilities), protocol.__name__
    target = kernel_target(obj)
    assert (target.loss if target else None) == kernel_loss


def test_only_networks_are_kernel_models():
    assert isinstance(MLP((2, 5, 1)), KernelModel)
    assert not isinstance(BinwiseFunction((0.0, 1.0, 2.0)), KernelModel)
    # a kernel objective of a bin-wise function has no fused kernel
    binned = _extended(BinwiseFunction((0.0, 1.0, 2.0)))
    assert isinstance(binned, KernelObjective)
    assert binned.kernel_loss is None
    assert kernel_target(binned) is None
    with pytest.raises(ValueError, match="no fused kernel"):
        fused_target(binned, FitConfig(backend="compiled"), 1e12, 0.0)


class _LossOnly:
    """An objective with nothing but the base protocol (no Newton terms, no kernels)."""

    def __init__(self, inner):
        self._inner = inner
        self.n_units, self.n_events = inner.n_units, inner.n_events

    @property
    def shapes(self):
        return self._inner.shapes

    @property
    def width(self):
        return self._inner.width

    def loss(self, params, units, events):
        return self._inner.loss(params, units, events)

    def clip_(self, params, bound, clip_biases):
        self._inner.clip_(params, bound, clip_biases)

    def floor(self):
        return self._inner.floor()


def test_adam_needs_only_the_base_protocol():
    m = MLP((1, 3, 1))
    full = _extended(m)
    cfg = FitConfig(optimizer="adam", epochs=60, clip=3.0, backend="eager")
    want = fit(full, m.init([1, 2]), cfg)
    got = fit(_LossOnly(full), m.init([1, 2]), cfg)
    np.testing.assert_array_equal(got.loss, want.loss)
    for p, q in zip(got.params, want.params):
        assert torch.equal(p, q)


def test_newton_refuses_an_objective_without_newton_terms():
    m = MLP((1, 3, 1))
    with pytest.raises(TypeError, match="newton_terms"):
        fit(_LossOnly(_extended(m)), m.init([1, 2]), FitConfig(optimizer="newton"))
