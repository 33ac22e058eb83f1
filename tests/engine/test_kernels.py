"""Fused loss-and-gradient kernels against autograd."""

import numpy as np
import pytest
import torch

from symnplm.engine import MLP, ExtendedLikelihoodObjective, FitConfig, fit
from symnplm.engine.kernels import compiler_available, mlp_loss_and_grad
from symnplm.engine.losses import cross_entropy_loss, extended_likelihood_loss


@pytest.mark.parametrize("arch", [(1, 4, 1), (3, 5, 4, 1)])
@pytest.mark.parametrize("loss", ["extended", "crossentropy"])
@pytest.mark.parametrize("shared", [True, False])
def test_kernel_equals_autograd(arch, loss, shared):
    torch.manual_seed(0)
    m = MLP(arch, activation="tanh" if len(arch) > 3 else "sigmoid")
    params = [p + 0.1 for p in m.init([1, 2, 3], dtype=torch.float64)]
    x = torch.randn(50, arch[0], dtype=torch.float64)
    if not shared:
        x = torch.randn(3, 50, arch[0], dtype=torch.float64)
    c1 = torch.rand(3, 50, dtype=torch.float64)
    c2 = (torch.rand(3, 50) < 0.5).double()
    ps = [p.clone().requires_grad_(True) for p in params]
    f = m.forward(ps, x)
    if loss == "extended":
        ref = extended_likelihood_loss(f, c1, c2)
    else:
        ref = cross_entropy_loss(2 * f, c1, c2)
    ref.sum().backward()
    value, fmax, grads = mlp_loss_and_grad(params, x, c1, c2, activation=m.activation, loss=loss)
    torch.testing.assert_close(value, ref.detach())
    for g, p in zip(grads, ps):
        torch.testing.assert_close(g, p.grad)
    if loss == "extended":
        minus_inf = torch.tensor(-np.inf, dtype=torch.float64)
        expected = torch.where(c2 > 0, f.detach(), minus_inf).amax(1)
        torch.testing.assert_close(fmax, expected)


@pytest.mark.skipif(not compiler_available(), reason="torch.compile has no C++ compiler here")
def test_compiled_adam_matches_eager_adam():
    rng = np.random.default_rng(0)
    n = 2000
    x = torch.tensor(rng.exponential(size=(n, 1)), dtype=torch.float32)
    labels = torch.tensor(rng.random((2, n)) < 0.5, dtype=torch.float32)
    m = MLP((1, 4, 1))
    obj = ExtendedLikelihoodObjective(m, x, torch.ones(n), labels.mean(1), labels)
    eager = fit(obj, m.init([1, 2]), FitConfig(epochs=50, backend="eager"))
    compiled = fit(obj, m.init([1, 2]), FitConfig(epochs=50, backend="compiled"))
    np.testing.assert_allclose(compiled.loss, eager.loss, rtol=1e-4)
