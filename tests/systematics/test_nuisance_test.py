"""Nuisance-aware NPLM and symmetrized tests: t = τ - Δ (arXiv:2111.13633)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch
from scipy import optimize

from symnplm.engine import MLP, BinwiseFunction, FitConfig
from symnplm.inference.test_statistics import BinnedTest, ReplicaBatch
from symnplm.io.samples import Sample
from symnplm.systematics import (
    AsymmetryNuisance,
    NormalisationNuisance,
    NuisanceNPLMTest,
    NuisanceObjective,
    NuisanceSet,
    NuisanceSymmetrizedTest,
)
from symnplm.systematics.toys import AsymmetryToy, ExponentialNuisanceToy

from .test_delta_learning import _flat_autograd

torch.set_num_threads(1)
NEWTON = FitConfig(optimizer="newton", dtype="float64")


@dataclass(frozen=True)
class ScaleNuisance:
    """Analytic second-order δ of the momentum scale on b0 (see systematics.toys)."""

    name: str = "scale"
    sigma: float = 0.05

    @property
    def order(self) -> int:
        return 2

    def coefficients(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)[:, 0]
        return np.stack([self.sigma * (x - 1), -0.5 * self.sigma**2 * x])

    def describe(self) -> dict:
        return {"kind": "analytic-scale", "sigma": self.sigma}


def _nplm_batch(data_sets, ref, ref_weight=1.0):
    """Replicas with their own data events and a shared reference (zero-padded)."""
    r, nmax = len(data_sets), max(len(d) for d in data_sets)
    n = len(ref) + nmax
    x, wa, wb = np.zeros((r, n, 1)), np.zeros((r, n)), np.zeros((r, n))
    for i, d in enumerate(data_sets):
        x[i, : len(ref), 0], wb[i, : len(ref)] = ref, ref_weight
        x[i, len(ref) : len(ref) + len(d), 0], wa[i, len(ref) : len(ref) + len(d)] = d, 1.0
    return ReplicaBatch(x, wa, wb, ("x",))


@pytest.mark.parametrize("link", ["extended", "crossentropy"])
def test_nuisance_objective_newton_terms_match_autograd(link):
    rng = np.random.default_rng(0)
    n, u = 50, 2
    x = torch.as_tensor(rng.exponential(size=(n, 1)))
    coef = torch.as_tensor(rng.normal(scale=0.3, size=(2, 2, n)))
    first = torch.as_tensor(rng.random(n))
    second = torch.as_tensor(rng.random((u, n)) * (rng.random((u, n)) < 0.6))
    aux = torch.as_tensor(rng.normal(size=(u, 2)))
    sigma = torch.tensor([1.0, 0.5], dtype=torch.float64)
    model = MLP((1, 3, 1))
    offset = torch.tensor([0.3, -0.2], dtype=torch.float64)
    obj = NuisanceObjective(model, x, coef, first, second, aux, sigma, link, offset)
    params = [*model.init([5, 6], dtype=torch.float64), torch.as_tensor(rng.normal(size=(u, 2)))]
    loss, _, grad, hess = obj.newton_terms(params, None, slice(None), exact=True)
    g_ref, h_ref = _flat_autograd(obj, params)
    torch.testing.assert_close(loss, obj.loss(params, None, slice(None))[0])
    torch.testing.assert_close(grad, g_ref)
    torch.testing.assert_close(hess, h_ref)


def test_delta_recovers_injected_shift():
    """Data at ν* = (scale +1.5σ, norm -1σ) against a large nominal reference: the Δ fit
    finds ν* (up to the statistical error and the pull of the prior)."""
    rng = np.random.default_rng(4)
    nu_true = (1.5, -1.0)
    toy = ExponentialNuisanceToy(20_000, scale_sigma=0.05, norm_sigma=0.1)
    data_sets = [toy.draw(rng, *nu_true) for _ in range(2)]
    ref = rng.exponential(size=60_000)
    ns = NuisanceSet((ScaleNuisance(), NormalisationNuisance("norm", 0.1)), features=("x",))
    # one τ start is enough here: this test is about Δ (the null start keeps t ≥ 0)
    test = NuisanceNPLMTest(ns, (1, 3, 1), n_expected=20_000, fit=NEWTON, starts=("null",))
    # statistical errors: ~0.1σ (scale), ~0.08σ (norm); prior pull ~2 %
    out = test.fit_batch(_nplm_batch(data_sets, ref, 1 / 3), seed=0, replica_ids=[0, 1])
    np.testing.assert_allclose(out.parts["nu_delta[scale]"], nu_true[0], atol=0.3)
    np.testing.assert_allclose(out.parts["nu_delta[norm]"], nu_true[1], atol=0.3)
    assert np.all(out.parts["delta"] > 20)  # a 1.5σ scale shift of 20k events is visible
    assert np.all(out.t >= -1e-8)
    assert np.all(out.t < 40)  # ... but absorbed by the nuisances: t stays a χ²-like value


def test_delta_matches_analytic_normalisation_profile():
    """Δ for a pure normalisation nuisance: -2 min_ν [N(e^{σν} - 1) - n σν + (ν - ν̂)²/2 - ν̂²/2]."""
    rng = np.random.default_rng(5)
    data_sets = [rng.exponential(size=k) for k in (900, 1000, 1150)]
    aux = np.array([[0.0], [0.7], [-1.2]])
    ref = rng.exponential(size=5000)
    sigma, n_exp = 0.1, 1000.0
    ns = NuisanceSet((NormalisationNuisance("norm", sigma),), features=("x",))
    edges = np.quantile(ref, np.linspace(0, 1, 6))
    test = NuisanceNPLMTest(ns, model=BinwiseFunction(tuple(edges)), n_expected=n_exp, fit=NEWTON)
    out = test.fit_batch(_nplm_batch(data_sets, ref), seed=0, replica_ids=[0, 1, 2], aux=aux)
    for i, d in enumerate(data_sets):
        a, n_obs = aux[i, 0], len(d)

        def loss(nu, n_obs=n_obs, a=a):
            return n_exp * np.expm1(sigma * nu) - n_obs * sigma * nu + 0.5 * ((nu - a) ** 2 - a**2)

        best = optimize.minimize_scalar(loss, bounds=(-10, 10), method="bounded")
        assert out.parts["delta"][i] == pytest.approx(-2 * best.fun, abs=1e-6)
        assert out.parts["nu_delta[norm]"][i] == pytest.approx(best.x, abs=1e-3)
    # with a bin-wise f the normalisation is absorbed by f in τ, so ν_τ = ν̂ and
    # τ = the binned NPLM statistic with the expected yield fixed, plus -2 C(ν̂) = ν̂²
    binned = BinnedTest(edges, "nplm", n_a_expected=n_exp).fit_batch(
        _nplm_batch(data_sets, ref), 0, [0, 1, 2]
    )
    np.testing.assert_allclose(out.parts["tau"], binned.t + aux[:, 0] ** 2, atol=1e-6)
    np.testing.assert_allclose(out.parts["nu_tau[norm]"], aux[:, 0], atol=1e-3)
    assert np.all(out.t >= -1e-8)


def test_symmetrized_without_nuisances_is_the_binned_g_test():
    """No nuisance and a bin-wise f: Δ = 0 and τ = the analytic binned symmetrized t."""
    rng = np.random.default_rng(6)
    a, b = rng.exponential(size=3000), rng.exponential(size=2500) * 1.03
    x = np.concatenate([a, b])[:, None]
    wa = np.concatenate([np.ones(len(a)), np.zeros(len(b))])[None]
    batch = ReplicaBatch(x, wa, 1 - wa, ("x",))
    edges = np.quantile(x[:, 0], np.linspace(0, 1, 9))
    test = NuisanceSymmetrizedTest(NuisanceSet(()), model=BinwiseFunction(tuple(edges)), fit=NEWTON)
    out = test.fit_batch(batch, 0, [0])
    ref = BinnedTest(edges, "symmetrized").fit_batch(batch, 0, [0])
    assert out.parts["delta"][0] == pytest.approx(0.0, abs=1e-9)
    assert out.t[0] == pytest.approx(ref.t[0], abs=1e-6)


def test_symmetrized_absorbs_detector_asymmetry():
    """B with a +1.5σ momentum-scale difference: flagged without the nuisance, absorbed with
    it (ν̂_Δ near 1.5, t ≥ 0 and χ²-like)."""
    rng = np.random.default_rng(7)
    toy = AsymmetryToy(8000, 8000, scale_sigma=0.06, eff_sigma=0.0, norm_sigma=0.0)
    pairs = [toy.draw(rng, nu_scale=1.5) for _ in range(4)]
    n = max(len(a) + len(b) for a, b in pairs)
    x, wa, wb = np.zeros((4, n, 1)), np.zeros((4, n)), np.zeros((4, n))
    for i, (a, b) in enumerate(pairs):
        x[i, : len(a) + len(b), 0] = np.concatenate([a, b])
        wa[i, : len(a)], wb[i, len(a) : len(a) + len(b)] = 1.0, 1.0
    batch = ReplicaBatch(x, wa, wb, ("x",))
    scale = AsymmetryNuisance("scale", on_b=ScaleNuisance(sigma=0.06))
    with_nu = NuisanceSymmetrizedTest(NuisanceSet((scale,), features=("x",)), (1, 3, 1), fit=NEWTON)
    without = NuisanceSymmetrizedTest(NuisanceSet(()), (1, 3, 1), fit=NEWTON)
    t_with = with_nu.fit_batch(batch, 0, range(4))
    t_without = without.fit_batch(batch, 0, range(4))
    # statistical error of one replica ≈ 0.3σ (8000 events, σ_s = 6 %)
    assert np.mean(t_with.parts["nu_delta[scale]"]) == pytest.approx(1.5, abs=0.4)
    assert np.all(t_with.t >= -1e-8)
    assert np.all(t_with.parts["tau"] >= t_with.parts["delta"] - 1e-8)
    assert np.median(t_without.t) > 2 * np.median(t_with.t)
    assert np.median(t_without.t) > 40


def test_observed_fit_records_nuisances_and_checks_features():
    rng = np.random.default_rng(8)
    ns = NuisanceSet((NormalisationNuisance("norm", 0.05),), aux=(0.5,), features=("x",))
    test = NuisanceNPLMTest(ns, (1, 3, 1), fit=NEWTON)
    a = Sample(rng.exponential(size=500), names=["x"], name="data")
    b = Sample(rng.exponential(size=2000), weights=np.full(2000, 0.25), names=["x"], name="ref")
    res = test.fit(a, b, seed=3)
    assert res.statistic == "nplm-nuisance"
    assert res.t == pytest.approx(res.parts["tau"] - res.parts["delta"])
    assert res.config["nuisances"]["aux"] == [0.5]
    assert "nu" in res.functions
    other = NuisanceSet((NormalisationNuisance("norm", 0.05),), features=("m_coll",))
    with pytest.raises(ValueError, match=r"learned on features \['m_coll'\].*\['x'\]"):
        NuisanceNPLMTest(other, (1, 3, 1), fit=NEWTON).fit(a, b)
    with pytest.raises(ValueError, match=r"aux must have shape \(1, 1\)"):
        test.fit_batch(
            _nplm_batch([rng.exponential(size=10)], rng.exponential(size=20)),
            0,
            [0],
            aux=np.zeros((1, 2)),
        )


def test_nuisance_set_validation():
    norm = NormalisationNuisance("norm", 0.05)
    with pytest.raises(ValueError, match=r"repeated: \['norm'\]"):
        NuisanceSet((norm, norm))
    with pytest.raises(ValueError, match=r"sigma has 2 values for 1 nuisances \['norm'\]"):
        NuisanceSet((norm,), sigma=(1.0, 2.0))
    with pytest.raises(ValueError, match="'norm': prior sigma must be positive"):
        NuisanceSet((norm,), sigma=(0.0,))
    with pytest.raises(ValueError, match="acts on neither"):
        AsymmetryNuisance("eff")
    asym = AsymmetryNuisance("scale", on_a=norm, on_b=ScaleNuisance())
    c = asym.coefficients(np.array([[0.5], [2.0]]))
    np.testing.assert_allclose(c[0], 0.05 - 0.05 * (np.array([0.5, 2.0]) - 1))
    np.testing.assert_allclose(c[1], 0.5 * 0.05**2 * np.array([0.5, 2.0]))


def test_calibrators_accept_the_nuisance_tests():
    """permutation_null / toy_null drive the nuisance tests like any other statistic
    (ν̂ fixed at the nuisance set's value; toys of the auxiliary measurement need
    ``fit_batch(aux=...)``, as in benchmarks/systematics_validation.py)."""
    from symnplm.inference.calculators import permutation_null

    rng = np.random.default_rng(9)
    a = Sample(rng.exponential(size=400), names=["x"], name="A")
    b = Sample(rng.exponential(size=400) * 1.02, names=["x"], name="B")
    scale = AsymmetryNuisance("scale", on_b=ScaleNuisance(sigma=0.02))
    test = NuisanceSymmetrizedTest(NuisanceSet((scale,), features=("x",)), (1, 3, 1), fit=NEWTON)
    null = permutation_null(test, a, b, 6, seed=1)
    assert null.t.shape == (6,)
    assert np.all(np.isfinite(null.t)) and np.all(null.t >= -1e-8)
    assert "nu_delta[scale]" in null.parts


def test_tau_keeps_the_best_start():
    """τ with starts ("null", "glorot") is at least τ from the null start alone (the null
    start is unit-for-unit the same fit), and the bad options are rejected."""
    rng = np.random.default_rng(10)
    data_sets = [rng.exponential(size=300) * 1.03 for _ in range(3)]
    ref = rng.exponential(size=1500)
    ns = NuisanceSet((ScaleNuisance(),), features=("x",))
    clipped = FitConfig(optimizer="newton", dtype="float64", clip=9.0)  # no runaway fits
    both = NuisanceNPLMTest(ns, (1, 3, 1), n_expected=300, fit=clipped)
    null_only = NuisanceNPLMTest(ns, (1, 3, 1), n_expected=300, fit=clipped, starts=("null",))
    batch = _nplm_batch(data_sets, ref, 0.2)
    t_both = both.fit_batch(batch, 0, [0, 1, 2])
    t_null = null_only.fit_batch(batch, 0, [0, 1, 2])
    np.testing.assert_allclose(t_both.parts["delta"], t_null.parts["delta"])
    assert np.all(t_both.parts["tau"] >= t_null.parts["tau"] - 1e-6)
    assert set(np.unique(t_both.parts["tau_start"])) <= {0.0, 1.0}
    with pytest.raises(ValueError, match="starts must be"):
        NuisanceNPLMTest(ns, starts=("zero",))
    with pytest.raises(TypeError, match="starts="):
        NuisanceNPLMTest(ns, init="null")
