"""The analytic toy model of Sec. III A."""

import numpy as np
import pytest
from scipy import integrate

from symnplm.generation.toymodels import ToyModel, background_pdf, sample_signal, signal_pdf


@pytest.mark.parametrize(("name", "mean"), [("S1", 6.4), ("S2", 3.0), ("S3", 1.6)])
def test_signals_are_normalised_and_samplers_match(name, mean):
    pdf = signal_pdf(name)
    norm, _ = integrate.quad(pdf, 0, 50, points=[mean], limit=200)
    assert norm == pytest.approx(1.0, abs=1e-6)
    draws = sample_signal(np.random.default_rng(0), name, 20_000)
    assert draws.mean() == pytest.approx(mean, abs=0.05)


def test_background_and_poisson_sizes():
    assert integrate.quad(background_pdf, 0, np.inf)[0] == pytest.approx(1.0)
    rng = np.random.default_rng(1)
    sizes = [len(ToyModel(100, 50)(rng)[0]) for _ in range(300)]
    assert np.mean(sizes) == pytest.approx(100, abs=2) and np.std(sizes) == pytest.approx(
        10, rel=0.2
    )
    a, b = ToyModel(100, 50, signal="S1", n_signal=10, poisson=False)(rng)
    assert (len(a), len(b)) == (110, 50)
    assert np.sum(a.features > 5.5) >= 8  # the signal lives in the tail of A


def test_bad_toy_parameters():
    with pytest.raises(ValueError, match="unknown signal"):
        ToyModel(10, 10, signal="S4")
    with pytest.raises(ValueError, match="positive"):
        ToyModel(0, 10)
