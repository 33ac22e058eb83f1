"""Replicated networks and bin-wise functions."""

import numpy as np
import pytest
import torch

from symnplm.engine import MLP, BinwiseFunction


def test_parameter_counts():
    assert MLP((1, 4, 1)).n_parameters == 13  # Eq. (12): 4 + 4 + 4 + 1
    assert MLP((5, 5, 5, 5, 1)).n_parameters == 3 * 30 + 6


def test_forward_is_eq12_for_each_replica():
    m = MLP((1, 4, 1))
    params = m.init([7, 8, 9], dtype=torch.float64)
    params[1].normal_()  # non-zero biases
    x = torch.linspace(-2, 5, 11, dtype=torch.float64)[:, None]
    f = m.forward(params, x)
    w1, b1, w2, b2 = params
    for r in range(3):
        expected = b2[r, 0] + (w2[r, 0] * torch.sigmoid(x * w1[r, :, 0] + b1[r])).sum(1)
        torch.testing.assert_close(f[r], expected)
    # shared events (N, d) and per-replica events (R, N, d) agree
    torch.testing.assert_close(m.forward(params, x.expand(3, -1, -1).contiguous()), f)


def test_initialisation_depends_only_on_the_replica_seed():
    m = MLP((2, 3, 1))
    together = m.init([11, 12, 13])
    alone = m.init([12])
    for a, b in zip(together, alone):
        torch.testing.assert_close(a[1:2], b, rtol=0, atol=0)
    assert not torch.equal(together[0][0], together[0][1])
    assert torch.count_nonzero(together[1]) == 0  # biases start at zero (Keras default)
    zero = m.init([1], zero_output=True)
    assert torch.count_nonzero(zero[2]) == 0 and torch.count_nonzero(zero[0]) > 0


def test_weight_clipping_touches_kernels_only_by_default():
    m = MLP((1, 4, 1))
    params = [p.normal_(0, 50) for p in m.init([1, 2], dtype=torch.float64)]
    biases_before = [params[1].clone(), params[3].clone()]
    m.clip_(params, 9.0)
    assert params[0].abs().max() <= 9 and params[2].abs().max() <= 9
    assert torch.equal(params[1], biases_before[0]) and torch.equal(params[3], biases_before[1])
    m.clip_(params, 9.0, clip_biases=True)
    assert all(p.abs().max() <= 9 for p in params)


def test_jacobian_matches_autograd_for_deep_network():
    m = MLP((3, 5, 4, 1), activation="tanh")
    params = m.init([3, 4], dtype=torch.float64)
    x = torch.randn(6, 3, dtype=torch.float64)
    _, jac = m.jacobian(params, x)
    flat = torch.cat([p.reshape(2, -1) for p in params], 1).requires_grad_(True)

    def forward(theta):
        out, i = [], 0
        for s in m.shapes:
            n = int(np.prod(s))
            out.append(theta[:, i : i + n].reshape(2, *s))
            i += n
        return m.forward(out, x)

    for event in range(6):
        (g,) = torch.autograd.grad(forward(flat)[:, event].sum(), flat)
        torch.testing.assert_close(jac[:, event], g)


def test_curvature_matches_autograd_hessian():
    m = MLP((2, 3, 1))
    params = [p + 0.3 for p in m.init([5], dtype=torch.float64)]
    x = torch.randn(9, 2, dtype=torch.float64)
    r = torch.randn(1, 9, dtype=torch.float64)
    flat = torch.cat([p.reshape(1, -1) for p in params], 1)[0]

    def weighted_sum(theta):
        out, i = [], 0
        for s in m.shapes:
            n = int(np.prod(s))
            out.append(theta[i : i + n].reshape(1, *s))
            i += n
        return (r * m.forward(out, x)).sum()

    expected = torch.autograd.functional.hessian(weighted_sum, flat)
    torch.testing.assert_close(m.curvature(params, x, r)[0], expected)


@pytest.mark.parametrize("arch", [(1,), (1, 4, 2), (0, 4, 1)])
def test_bad_architecture(arch):
    with pytest.raises(ValueError, match="architecture|output"):
        MLP(arch)


def test_binwise_function_indexes_bins_and_absorbs_overflow():
    m = BinwiseFunction((0.0, 1.0, 2.0, 4.0))
    params = [torch.tensor([[10.0, 20.0, 30.0]])]
    x = torch.tensor([[-5.0], [0.5], [1.0], [3.9], [100.0]])
    torch.testing.assert_close(
        m.forward(params, x)[0], torch.tensor([10.0, 10.0, 20.0, 30.0, 30.0])
    )
    with pytest.raises(ValueError, match="increasing"):
        BinwiseFunction((0.0, 0.0, 1.0))
