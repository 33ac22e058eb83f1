"""Result directories: ``hists.root`` holds every histogram of ``hists.json``."""

from __future__ import annotations

import itertools

import hist
import numpy as np
import pytest
import uproot

from symnplm.engine import FitConfig
from symnplm.generation.toymodels import ToyModel
from symnplm.inference import SymmetrizedTest, calibrate
from symnplm.io.booking import HISTS_ROOT, read_hists, write_result
from symnplm.io.samples import Sample
from symnplm.workflow.config import RunConfig


def _weighted(sample: Sample, names: tuple[str, ...], rng: np.random.Generator) -> Sample:
    """The sample with uneven weights (so that Σw ≠ Σw² ≠ N) and physics-like names."""
    weights = rng.uniform(0.2, 3.0, len(sample))
    return Sample(sample.features, weights, names, sample.provenance, sample.name)


@pytest.fixture(scope="module", params=[1, 2], ids=["1d", "2d"])
def result_dir(request, tmp_path_factory):
    """A result of uneven weights written by write_result: in 1D (with ``functions``), or
    in 2D (m_coll and an angle)."""
    rng = np.random.default_rng(31)
    names = ("m_coll", "dphi")[: request.param]
    a, b = ToyModel(400, 400, signal="S3", n_signal=40)(rng)
    if request.param == 2:
        a, b = (
            Sample(np.c_[s.features, rng.uniform(0, np.pi, len(s))], s.weights, name=s.name)
            for s in (a, b)
        )
    a, b = _weighted(a, names, rng), _weighted(b, names, rng)
    fit = FitConfig(optimizer="newton", max_iter=15)
    test = SymmetrizedTest((len(names), 4, 1), init="null", fit=fit)
    result = calibrate(test, a, b, method="permutations", n=8, seed=4)
    out = tmp_path_factory.mktemp(f"result{request.param}")
    write_result(out, RunConfig(), result, a, b, {"total_s": 0.0})
    return out, names


def _slices(h: hist.Hist):
    """(category values, histogram without category axes) for every combination of h's
    category values: the slices write_hists_root names by histogram and values."""
    cats = [ax for ax in h.axes if isinstance(ax, (hist.axis.StrCategory, hist.axis.IntCategory))]
    for values in itertools.product(*(list(ax) for ax in cats)):
        yield [*map(str, values)], h[dict(zip((ax.name for ax in cats), values))]


def test_root_histograms_equal_the_json_ones(result_dir):
    """Every slice of every histogram: edges, contents with flow, Σw² (Weight storage),
    means, Σw and errors of the profiles (Mean storage)."""
    directory, names = result_dir
    hists = read_hists(directory)
    expected = {"null_t", *(f"{kind}/{n}" for kind in ("samples", "fit", "delta") for n in names)}
    assert set(hists) == expected | ({"functions"} if len(names) == 1 else set())
    kinds = set()
    with uproot.open(directory / HISTS_ROOT) as f:
        written = {k.rsplit(";", 1)[0] for k, c in f.classnames().items() if c != "TDirectory"}
        keys = set()
        for name, h in hists.items():
            for values, one in _slices(h):
                key = "/".join([name, *values])
                keys.add(key)
                obj = f[key]
                kinds.add(obj.classname)
                np.testing.assert_allclose(obj.axis().edges(), one.axes[0].edges, err_msg=key)
                if one.storage_type is hist.storage.Mean:
                    # profiles: the bin means, the sums of weights, and ROOT's error of the
                    # mean, spread / √(Σw) (Σw² taken as Σw), spread² = Σw(y − ȳ)² / Σw,
                    # which ROOT takes as Σwy²/Σw − ȳ²: rounding of ȳ² where it is ~0
                    assert obj.classname == "TProfile", key
                    view = one.view(flow=True)
                    filled = view.count > 0
                    sumw, mean = view.count[filled], view.value[filled]
                    np.testing.assert_allclose(
                        obj.values(flow=True)[filled], mean, rtol=1e-12, err_msg=key
                    )
                    np.testing.assert_allclose(obj.counts(flow=True), view.count, err_msg=key)
                    spread2 = np.maximum(view._sum_of_deltas_squared[filled], 0.0) / sumw
                    root_spread2 = obj.errors(flow=True)[filled] ** 2 * sumw
                    assert np.all(
                        np.abs(root_spread2 - spread2) <= 1e-6 * spread2 + 1e-13 * mean**2
                    ), key
                    continue
                assert obj.classname == "TH1D", key
                np.testing.assert_allclose(
                    obj.values(flow=True), one.values(flow=True), rtol=1e-12, err_msg=key
                )
                if one.storage_type is hist.storage.Weight:  # Σw² per bin
                    np.testing.assert_allclose(
                        obj.variances(flow=True), one.variances(flow=True), rtol=1e-12,
                        err_msg=key,
                    )  # fmt: skip
                else:  # Double: no Σw² stored
                    assert len(obj.member("fSumw2")) == 0, key
    assert written == keys  # one ROOT object per slice, nothing else
    assert kinds == {"TH1D", "TProfile"}
    # the weights are uneven, so Σw² differs from Σw: the TH1D has the squared ones
    a = hists["samples/m_coll"]["A", :]
    assert not np.allclose(a.variances(), a.values())
