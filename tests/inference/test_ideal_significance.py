"""Ideal significances (Eqs. 29, 30, C2) against independent computations."""

import numpy as np
import pytest

from symnplm.generation.toymodels import SIGNALS, background_pdf, signal_pdf
from symnplm.inference import BinnedTest
from symnplm.inference.ideal_significance import (
    asimov_symmetrized_score,
    binned_ideal_significance,
    ideal_significance,
    ideal_symmetrized_score,
)
from symnplm.io.samples import Sample


@pytest.mark.parametrize("signal", ["S1", "S2", "S3"])
def test_eq30_against_a_fine_trapezoid(signal):
    n_b, n_s = 5000.0, 60.0
    x = np.linspace(0.0, 40.0, 2_000_001)
    b, s = n_b * background_pdf(x), n_s * signal_pdf(signal)(x)
    integrand = (b + s) * np.log1p(s / b)
    q0 = 2 * (-n_s + np.trapezoid(integrand, x))
    peaks = (SIGNALS[signal]["mean"],) if signal in SIGNALS else ()
    z = ideal_significance(n_b, n_s, background_pdf, signal_pdf(signal), points=peaks)
    assert z == pytest.approx(np.sqrt(q0), rel=1e-5)
    assert z > 0


def test_eq29_small_hand_example():
    z = binned_ideal_significance(np.array([10.0, 20.0]), np.array([5.0, 0.0]))
    assert z == pytest.approx(np.sqrt(2 * (-5 + 15 * np.log(1.5))))
    assert binned_ideal_significance(np.array([0.0, 1.0]), np.array([1.0, 0.0])) == np.inf


def test_c2_equals_the_asimov_symmetrized_score_for_same_shape_backgrounds():
    rng = np.random.default_rng(0)
    shape = rng.uniform(1, 5, 12)
    n_b_a = 800 * shape / shape.sum()
    n_b_b = 2.5 * n_b_a
    n_s = np.zeros(12)
    n_s[4:6] = [30.0, 20.0]
    c2 = ideal_symmetrized_score(n_s, n_b_a, n_b_b)
    assert c2 == pytest.approx(asimov_symmetrized_score(n_s + n_b_a, n_b_b), rel=1e-10)
    assert c2 > 0
    assert ideal_symmetrized_score(np.zeros(12), n_b_a, n_b_b) == pytest.approx(0.0, abs=1e-9)


def test_asimov_score_is_the_binned_statistic_on_asimov_data():
    n_a = np.array([50.0, 30.0, 10.0, 5.0])
    n_b = np.array([40.0, 35.0, 12.0, 2.0])
    centres = np.array([0.5, 1.5, 2.5, 3.5])
    a = Sample(centres, n_a, name="A")
    b = Sample(centres, n_b, name="B")
    t = BinnedTest(np.arange(5.0)).fit(a, b).t
    assert t == pytest.approx(asimov_symmetrized_score(n_a, n_b), rel=1e-12)
