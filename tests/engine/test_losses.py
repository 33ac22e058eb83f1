"""Losses: analytic values of Eq. (*) (module docstring of symnplm.engine.losses)."""

import numpy as np
import pytest
import torch

from symnplm.engine import cross_entropy_loss, extended_likelihood_floor, extended_likelihood_loss


def test_extended_loss_for_constant_f_is_analytic():
    rng = np.random.default_rng(0)
    ref = torch.tensor(rng.uniform(0, 2, (3, 50)))
    data = torch.tensor(rng.uniform(0, 2, (3, 50)))
    c = torch.tensor([-0.3, 0.0, 0.7], dtype=torch.float64)
    f = c[:, None].expand(3, 50)
    expected = ref.sum(1) * (torch.exp(c) - 1) - data.sum(1) * c
    torch.testing.assert_close(extended_likelihood_loss(f, ref, data), expected)
    # minimum over constants at e^c = Σβ / Σc, where the loss equals the floor of one bin
    c_star = torch.log(data.sum(1) / ref.sum(1))
    at_min = extended_likelihood_loss(c_star[:, None].expand(3, 50), ref, data)
    one_bin_floor = extended_likelihood_floor(ref.sum(1, keepdim=True), data.sum(1, keepdim=True))
    torch.testing.assert_close(at_min, one_bin_floor)


def test_loss_accumulates_in_float64():
    f = torch.zeros(1, 10, dtype=torch.float32)
    out = extended_likelihood_loss(f, torch.ones(10), torch.ones(10))
    assert out.dtype == torch.float64


def test_cross_entropy_matches_log_sigmoid_and_is_finite_for_huge_logits():
    z = torch.tensor([[-3.0, 0.0, 2.0]], dtype=torch.float64)
    wa = torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)
    wb = torch.tensor([0.5, 1.0, 3.0], dtype=torch.float64)
    s = torch.sigmoid(z)
    expected = -(wa * torch.log(s) + wb * torch.log(1 - s)).sum(1)
    torch.testing.assert_close(cross_entropy_loss(z, wa, wb), expected)
    big = cross_entropy_loss(
        torch.tensor([[1e4, -1e4]]), torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    )
    assert torch.isfinite(big).all() and big.item() == pytest.approx(0.0, abs=1e-12)


def test_floor_finite_iff_every_data_event_is_a_reference_event():
    ref = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    data = torch.tensor([[1.0, 0.0, 1.0], [1.0, 0.0, 1.0]])
    floor = extended_likelihood_floor(ref, data)
    assert floor[0] == -np.inf  # NPLM-like: a data point without reference (Sec. II A 2)
    assert torch.isfinite(floor[1])
