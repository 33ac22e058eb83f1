"""Fused loss-and-gradient kernels against autograd."""

import numpy as np
import pytest
import torch

from symnplm.engine import (
    MLP,
    CrossEntropyObjective,
    ExtendedLikelihoodObjective,
    FitConfig,
    fit,
)
from symnplm.engine.kernels import (
    compiler_available,
    mlp1_newton_terms,
    mlp_loss,
    mlp_loss_and_grad,
)
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
    only, fmax_only = mlp_loss(params, x, c1, c2, activation=m.activation, loss=loss)
    torch.testing.assert_close(only, ref.detach())
    torch.testing.assert_close(fmax_only, fmax)
    for g, p in zip(grads, ps):
        torch.testing.assert_close(g, p.grad)
    if loss == "extended":
        minus_inf = torch.tensor(-np.inf, dtype=torch.float64)
        expected = torch.where(c2 > 0, f.detach(), minus_inf).amax(1)
        torch.testing.assert_close(fmax, expected)


@pytest.mark.skipif(not compiler_available(), reason="torch.compile has no C++ compiler here")
@pytest.mark.parametrize("backend", ["compiled", "inductor"])
def test_compiled_adam_matches_eager_adam(backend, label_split):
    m, obj = label_split(2000)
    eager = fit(obj, m.init([1, 2]), FitConfig(optimizer="adam", epochs=50, backend="eager"))
    compiled = fit(obj, m.init([1, 2]), FitConfig(optimizer="adam", epochs=50, backend=backend))
    np.testing.assert_allclose(compiled.loss, eager.loss, rtol=1e-4)


def _objective(loss: str, activation: str, d: int = 2, n: int = 300, dtype=torch.float64):
    rng = np.random.default_rng(3)
    x = torch.tensor(rng.normal(size=(n, d)), dtype=dtype)
    m = MLP((d, 3, 1), activation=activation)
    labels = torch.tensor(rng.random((2, n)) < 0.4, dtype=dtype)
    if loss == "extended":
        obj = ExtendedLikelihoodObjective(
            m, x, 0.7 * torch.ones(n, dtype=dtype), labels.mean(1), labels
        )
    else:
        obj = CrossEntropyObjective(m, x, labels, 1 - labels)
    return m, obj


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "softplus"])
@pytest.mark.parametrize("loss", ["extended", "crossentropy"])
@pytest.mark.parametrize("exact", [True, False])
def test_newton_kernel_equals_matrix_path(activation, loss, exact):
    """The unrolled one-hidden-layer Hessian equals J-matrix algebra (exact and Gauss-Newton)."""
    m, obj = _objective(loss, activation)
    params = [p + 0.2 for p in m.init([4, 5], dtype=torch.float64)]
    units = torch.arange(2)
    events = slice(0, obj.n_events)
    ref = obj.newton_terms(params, units, events, exact)
    x, c1, c2 = obj.kernel_inputs(units, events)
    got = mlp1_newton_terms(params, x, c1, c2, activation=activation, loss=loss, exact=exact)
    for name, a, b in zip(("loss", "fmax", "gradient"), got[:3], ref[:3]):
        torch.testing.assert_close(a.double(), b.double(), rtol=1e-10, atol=1e-10, msg=name)
    # the matrix path may return an unsymmetrised Hessian; compare symmetric parts
    href = 0.5 * (ref[3] + ref[3].transpose(1, 2))
    torch.testing.assert_close(got[3], href, rtol=1e-10, atol=1e-10)
    if exact:  # and the exact Hessian is not the Gauss-Newton one (the test can fail)
        gn = mlp1_newton_terms(params, x, c1, c2, activation=activation, loss=loss, exact=False)
        assert not torch.allclose(gn[3], got[3])


@pytest.mark.skipif(not compiler_available(), reason="torch.compile has no C++ compiler here")
@pytest.mark.parametrize("backend", ["compiled", "inductor"])
def test_compiled_newton_follows_eager_newton(backend):
    """The first Newton steps agree (a non-convex fit later amplifies rounding)."""
    m, obj = _objective("extended", "sigmoid", d=1, n=2000, dtype=torch.float32)
    eager = fit(obj, m.init([1, 2]), FitConfig(optimizer="newton", max_iter=3, backend="eager"))
    compiled = fit(obj, m.init([1, 2]), FitConfig(optimizer="newton", max_iter=3, backend=backend))
    np.testing.assert_allclose(compiled.loss, eager.loss, rtol=1e-5)
