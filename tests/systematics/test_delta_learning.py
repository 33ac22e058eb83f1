"""δ_k learning (arXiv:2111.13633; quadratic loss of arXiv:2007.10356) and its input checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from symnplm.engine import MLP
from symnplm.io.files import write_json
from symnplm.io.samples import Sample, sample_path
from symnplm.systematics import (
    DeltaObjective,
    LearnedNuisance,
    NuisanceSet,
    VariationSet,
    learn_deltas,
    variation_set_from_processor,
)
from symnplm.systematics.toys import (
    efficiency_shape,
    efficiency_variations,
    scale_log_ratio,
    scale_variations,
)

torch.set_num_threads(1)


def _flat_autograd(obj, params):
    """Gradient and Hessian of the summed loss in the flattened parameters, by autograd."""
    shapes = [p.shape for p in params]
    sizes = [p[0].numel() for p in params]
    n_units = params[0].shape[0]
    theta0 = torch.cat([p.reshape(n_units, -1) for p in params], 1)

    def total(theta):
        out, i = [], 0
        for shape, size in zip(shapes, sizes):
            out.append(theta[:, i : i + size].reshape(shape))
            i += size
        return obj.loss(out, None, slice(None))[0].sum()

    grad = torch.autograd.functional.jacobian(total, theta0)
    hess = torch.autograd.functional.hessian(total, theta0)
    per_unit = torch.stack([hess[u, :, u, :] for u in range(n_units)])
    return grad, per_unit


def test_delta_objective_newton_terms_match_autograd():
    rng = np.random.default_rng(0)
    n, order = 60, 2
    x = torch.as_tensor(rng.exponential(size=(n, 1)))
    nu = torch.tensor([-1.0, 1.0, 2.0], dtype=torch.float64)
    w_var = torch.as_tensor(rng.random((3, n)) * (rng.random((3, n)) < 0.5))
    w_nom = torch.as_tensor(rng.random(n))
    model = MLP((1, 3, 1))
    obj = DeltaObjective(model, order, x, nu, w_var, w_nom, n_units=2)
    params = model.init([1, 2], dtype=torch.float64) + model.init([3, 4], dtype=torch.float64)
    loss, _, grad, hess = obj.newton_terms(params, None, slice(None), exact=True)
    g_ref, h_ref = _flat_autograd(obj, params)
    torch.testing.assert_close(loss, obj.loss(params, None, slice(None))[0])
    torch.testing.assert_close(grad, g_ref)
    torch.testing.assert_close(hess, h_ref)


def test_learned_deltas_reproduce_scaled_exponential():
    """b0 with x → x e^{σν}: log r = -σν - x(e^{-σν} - 1) (an exponential whose slope
    depends on ν), δ_1 = σ(x - 1) at first order."""
    sigma = 0.1
    vs = scale_variations(np.random.default_rng(1), 20_000, sigma)
    learned = learn_deltas(vs, order=2, seed=0)
    assert learned.training["converged"]
    x = np.quantile(vs.nominal.features[:, 0], np.linspace(0.05, 0.9, 12))[:, None]
    for nu in (-2.0, -1.0, 1.0, 2.0):
        err = learned.log_ratio(x, nu) - scale_log_ratio(x[:, 0], nu, sigma)
        assert np.abs(err).max() < 0.03 * abs(nu), (nu, err)
    delta1 = learned.coefficients(x)[0]
    np.testing.assert_allclose(delta1, sigma * (x[:, 0] - 1), atol=0.015)
    # the learned functions are usable as a nuisance of a test
    ns = NuisanceSet((learned,), features=("x",))
    np.testing.assert_allclose(ns.log_ratio(x, [1.0]), learned.log_ratio(x, 1.0))


def test_learned_nuisance_save_load_roundtrip(tmp_path):
    vs = scale_variations(np.random.default_rng(3), 2000, 0.1)
    learned = learn_deltas(vs, order=2, seed=0, architecture=(1, 2, 1))
    path = learned.save(tmp_path / "scale.json")
    back = LearnedNuisance.load(path)
    x = np.linspace(0, 3, 7)[:, None]
    np.testing.assert_array_equal(back.coefficients(x), learned.coefficients(x))
    assert back.training["seed"] == 0 and back.features == ("x",)
    with pytest.raises(ValueError, match="kind='normalisation'"):
        LearnedNuisance.from_description({"kind": "normalisation"})


def test_linear_nuisance_learns_no_quadratic_term():
    """The efficiency-shape variation is exactly linear in ν: δ_2 ≈ 0, δ_1 = σ g(x)."""
    sigma = 0.1
    vs = efficiency_variations(np.random.default_rng(2), 40_000, sigma)
    learned = learn_deltas(vs, order=2, seed=3)
    x = np.linspace(0.1, 2.5, 10)[:, None]
    d1, d2 = learned.coefficients(x)
    np.testing.assert_allclose(d1, sigma * efficiency_shape(x[:, 0]), atol=0.02)
    assert np.abs(d2).max() < 0.01


# ---------------------------------------------------------------------------------------
# input checks
# ---------------------------------------------------------------------------------------
def _sample(x, name, names=("x",)):
    return Sample(np.asarray(x, dtype=float), names=list(names), name=name)


def test_variation_set_rejects_inconsistent_samples():
    rng = np.random.default_rng(0)
    nom = _sample(rng.exponential(size=100), "nominal")
    with pytest.raises(ValueError, match="no varied sample"):
        VariationSet("scale", nom, {})
    with pytest.raises(ValueError, match=r"'scale' at ν = \+0.*nominal"):
        VariationSet("scale", nom, {0.0: nom})
    other = _sample(rng.exponential(size=(100, 1)), "up", names=("m_coll",))
    with pytest.raises(ValueError, match=r"'scale' at ν = \+1.*'m_coll'.*\['x'\]"):
        VariationSet("scale", nom, {1.0: other})
    big = Sample(rng.exponential(size=100), weights=np.full(100, 10.0), names=["x"], name="up")
    with pytest.raises(ValueError, match=r"'scale' at ν = \+1 \('up'\).*10 × the nominal"):
        VariationSet("scale", nom, {1.0: big})


def test_order_needs_enough_variations():
    rng = np.random.default_rng(0)
    nom = _sample(rng.exponential(size=100), "nominal")
    vs = VariationSet("scale", nom, {1.0: _sample(rng.exponential(size=100), "up")})
    with pytest.raises(ValueError, match=r"'scale'.*order-2.*\[1.0\]"):
        learn_deltas(vs, order=2)
    with pytest.raises(ValueError, match="architecture"):
        learn_deltas(vs, order=1, architecture=(2, 4, 1))


def _fake_processor_output(tmp_path, variations):
    rng = np.random.default_rng(0)
    entries = []
    for variation in variations:
        s = Sample(rng.exponential(size=(50, 1)), names=["m_coll"], name=variation)
        path = sample_path(tmp_path, "dy", "emu", variation)
        s.to_parquet(path)
        entries.append(
            {
                "dataset": "dy",
                "category": "emu",
                "variation": variation,
                "path": str(path.relative_to(tmp_path)),
                "n_events": 50,
            }
        )
    write_json(tmp_path / "manifest.json", {"samples": entries})


def test_variation_set_from_processor(tmp_path):
    _fake_processor_output(tmp_path, ["nominal", "muon_scale_up1", "muon_scale_down1"])
    vs = variation_set_from_processor(tmp_path, "dy", "emu", "muon_scale", ["m_coll"])
    assert vs.nu_values == (-1.0, 1.0)
    assert vs.features == ("m_coll",)
    with pytest.raises(KeyError, match=r"'muon_scale_up2'.*'muon_scale'.*ν = \+2.*dy/emu"):
        variation_set_from_processor(tmp_path, "dy", "emu", "muon_scale", ["m_coll"], (1, 2))
    with pytest.raises(KeyError, match="'electron_scale_up1'"):
        variation_set_from_processor(tmp_path, "dy", "emu", "electron_scale", ["m_coll"])
