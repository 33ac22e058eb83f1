"""Samples from processor output (luminosity, injection, unweighting); result directories."""

from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest

from symnplm.cli import main
from symnplm.io import booking
from symnplm.io.samples import Sample
from symnplm.processors.inputs import InputError, background_luminosity_fb
from symnplm.workflow.config import ConfigError, RunConfig, from_dict
from symnplm.workflow.runs import prepare_samples, run, unweight


def test_thinning_keeps_the_expected_counts_and_never_repeats_an_event():
    rng = np.random.default_rng(0)
    w = np.r_[np.full(20_000, 0.25), np.full(20_000, 0.8)]
    s = Sample(np.arange(w.size, dtype=float), w, ["x"], name="mc")
    u = unweight(s, np.random.default_rng(1), "thin")
    assert not u.is_weighted
    low = np.count_nonzero(u.features[:, 0] < 20_000)
    # E[k] = w in both bands; 5 sigma of the binomial count
    assert abs(low - 5_000) < 5 * np.sqrt(5_000 * 0.75)
    assert abs((len(u) - low) - 16_000) < 5 * np.sqrt(16_000 * 0.2)
    assert u.provenance["unweighted"]["method"] == "thin"
    assert len(np.unique(u.features[:, 0])) == len(u)  # every event at most once
    # the same seed gives the same pseudo-data
    a, b = (unweight(s, np.random.default_rng(5)) for _ in range(2))
    np.testing.assert_array_equal(a.features, b.features)
    with pytest.raises(ValueError, match="negative weight"):
        unweight(Sample([1.0, 2.0], [1.0, -0.5]), rng)


def test_background_luminosity_of_a_fileset():
    meta = lambda lumi, sig: {"metadata": {"luminosity_fb": lumi, "is_signal": sig}}  # noqa: E731
    assert background_luminosity_fb({"a": meta(5.0, False), "s": meta(20.0, True)}) == 5.0
    assert background_luminosity_fb({"a": {"metadata": {}}}) is None
    with pytest.raises(InputError, match="different luminosity_fb"):
        background_luminosity_fb({"a": meta(5.0, False), "b": meta(10.0, False)})


def test_samples_from_processor_output(processed):
    cfg = from_dict({"input": str(processed), "features": "m_coll"})
    a, b = prepare_samples(cfg)
    # background only (ttbar 400 × 1.6 + ztautau 300 × 1.0), m_coll in units of 100 GeV
    assert len(a) == 700 and a.sum_weights == pytest.approx(940.0)
    assert a.names == ("m_coll",) and a.features.max() < 20
    assert a.provenance["datasets"] == ["ttbar", "ztautau"]

    # luminosity rescaling: the processor normalised simulation to 5 fb^-1
    a2, _ = prepare_samples(from_dict({"input": str(processed), "luminosity_fb": 10}))
    assert a2.sum_weights == pytest.approx(2 * 940.0)

    # injection: ggh_htaue (reference BR 0.01, weight 0.25 per event) scaled to BR 0.04
    inj = {"input": str(processed), "inject": {"branching_ratio": 0.04, "datasets": ["ggh_htaue"]}}
    a3, b3 = prepare_samples(from_dict(inj))
    assert a3.sum_weights - a.sum_weights == pytest.approx(200 * 0.25 * 4)
    assert b3.sum_weights - b.sum_weights == pytest.approx(50 * 0.25 * 4)

    # pseudo-data: thinned at 2.5 fb^-1 (ttbar w = 0.8, ztautau 0.5), unit weights, seeded
    pd = {"input": str(processed), "unweight": "thin", "luminosity_fb": 2.5, "seed": 3}
    u1, u2 = prepare_samples(from_dict(pd))[0], prepare_samples(from_dict(pd))[0]
    assert not u1.is_weighted and abs(len(u1) - 470) < 5 * np.sqrt(470)
    np.testing.assert_array_equal(u1.features, u2.features)
    # at the simulation's own luminosity ttbar's weights (1.6) cannot be thinned
    with pytest.raises(ValueError, match=r"weights up to 1\.6 exceed 1"):
        prepare_samples(from_dict({**pd, "luminosity_fb": None}))

    with pytest.raises(KeyError, match="no sample dataset='wz'"):
        prepare_samples(
            from_dict({"input": str(processed), "a": {"category": "emu", "datasets": ["wz"]}})
        )
    with pytest.raises(ConfigError, match="lfv_branching_ratio"):
        prepare_samples(
            from_dict({**inj, "inject": {"branching_ratio": 0.1, "datasets": ["ttbar"]}})
        )


def test_data_and_simulation_are_not_added_up_by_default(tmp_path):
    """A fileset holding data and simulation: the default A/B would sum both; refused."""
    from conftest import write_processed

    out = write_processed(tmp_path / "processed")
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["fileset"]["ztautau"]["metadata"] = {"is_data": True, "luminosity_fb": 5.0}
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ConfigError, match=r"^a\.datasets: .* data \['ztautau'\] and simulation "):
        prepare_samples(from_dict({"input": str(out)}))
    # named datasets are the analyst's choice: data against data is fine
    chosen = {"datasets": ["ztautau"]}
    a, b = prepare_samples(
        from_dict({"input": str(out), "a": {**chosen, "category": "emu"}, "b": chosen})
    )
    assert len(a) == len(b) == 300
    # what the processor did decides, also where the metadata says neither
    manifest["fileset"]["ztautau"]["metadata"] = {"luminosity_fb": 5.0, "xsec": 1.0}
    manifest["weighting"] = {"ztautau": ["1 (data)"], "ttbar": ["genWeight * xsec"]}
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ConfigError, match=r"data \['ztautau'\]"):
        prepare_samples(from_dict({"input": str(out)}))


def test_result_directory_holds_json_and_hists(processed, tmp_path, local_client):
    cfg = RunConfig(
        input=str(processed),
        features=["m_coll", "met"],
        unweight="none",
        seed=2,
        output=str(tmp_path / "res"),
    )
    cfg.statistic.max_iter = 15
    cfg.calibration.method, cfg.calibration.n, cfg.calibration.batch_size = "permutations", 6, 3
    outcome = run(cfg, client=local_client)
    back = booking.load_result(tmp_path / "res")
    s = back.summary
    assert (
        s["t"] == outcome.result.t and s["dof"] == (2 * 4 + 4) + (4 + 1) - 1
    )  # 2-4-1 parameters - 1
    assert s["p_value"] == outcome.result.p_value and s["n_null"] == 6
    assert s["seed"] == 2 and s["config"]["features"] == ["m_coll", "met"]
    assert s["provenance"]["versions"]["torch"] and s["timing"]["total_s"] > 0
    h = back.hists
    assert h["null_t"].sum(flow=True) == 6
    a = outcome.a
    for name in ("m_coll", "met"):
        # A and B in GeV, all events (flow included)
        assert h[f"samples/{name}"]["A", :].sum(flow=True).value == pytest.approx(a.sum_weights)
        assert h[f"samples/{name}"].axes[1].edges[-1] > 20  # GeV, not 100 GeV
        # fitted n_A + n_B = the pooled sample, bin by bin
        fit = h[f"fit/{name}"]
        both = fit["A", :].values(flow=True) + fit["B", :].values(flow=True)
        pooled = h[f"samples/{name}"].values(flow=True).sum(axis=0)
        np.testing.assert_allclose(both, pooled, rtol=1e-9)
        # fitted totals: Σ_A+B w σ(δ̂) ≈ Ñ_A (the fit reproduces the normalisations)
        assert fit["A", :].sum(flow=True).value == pytest.approx(a.sum_weights, rel=0.05)
    assert "functions" not in h  # only in 1D
    # run.json is written last and mirrors the calibration
    assert json.loads((tmp_path / "res" / "run.json").read_text())["z"] == back.calibration.z


def test_one_dimensional_functions_on_a_grid(processed, tmp_path):
    out = tmp_path / "r1"
    code = main(
        [
            "test",
            "--input",
            str(processed),
            "--unweight",
            "none",
            "--max-iter",
            "15",
            "--output",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    back = booking.load_result(out)
    f = back.hists["functions"]
    x = f.axes[1].centers
    direct = back.calibration.observed.evaluate(x / 100.0)  # the fit saw m_coll / 100 GeV
    np.testing.assert_allclose(f["log_ratio", :].values(), direct["log_ratio"], rtol=1e-6)
    np.testing.assert_allclose(
        f["f", :].values() - f["g", :].values(), direct["f"] - direct["g"], rtol=1e-5, atol=1e-7
    )
    # processed samples are calibrated by permutations unless the run says otherwise
    assert back.summary["calibration"] == "permutations" and back.summary["n_null"] == 100
    assert back.hists["null_t"].sum(flow=True) == 100


def test_injected_signal_raises_t(processed, tmp_path):
    """H -> tau e lands in emu more than mue: the symmetrized test sees it."""
    base = {
        "input": str(processed),
        "unweight": "none",
        "seed": 1,
        "statistic": {"max_iter": 40},
    }
    t0 = run(from_dict(base)).result.t
    t1 = run(
        from_dict({**base, "inject": {"branching_ratio": 0.2, "datasets": ["ggh_htaue"]}})
    ).result.t
    assert t1 > t0 + 20


def test_a_refused_rerun_leaves_the_directory_as_it_was(processed, tmp_path, local_client):
    """Another run (other seed) into a directory holding a campaign is refused before it
    writes anything: config.yaml and run.json still describe the first run."""
    import yaml

    cfg = RunConfig(input=str(processed), unweight="none", seed=5, output=str(tmp_path / "r"))
    cfg.statistic.max_iter = 5
    cfg.calibration.method, cfg.calibration.n, cfg.calibration.batch_size = "permutations", 2, 2
    run(cfg, client=local_client)
    files = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "r").iterdir() if p.is_file()}
    other = from_dict({**cfg.to_dict(), "seed": 6})
    with pytest.raises(ValueError, match="different campaign"):
        run(other, client=local_client)
    assert yaml.safe_load((tmp_path / "r" / "config.yaml").read_text())["seed"] == 5
    assert booking.load_result(tmp_path / "r").summary["seed"] == 5
    after = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "r").iterdir() if p.is_file()}
    assert after == files


def test_load_result_of_an_incomplete_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a complete result directory"):
        booking.load_result(tmp_path)


def test_outputs_that_are_inputs_are_refused(processed, tmp_path):
    """A result written into the processor output (or processing into a result) is refused."""
    from symnplm.processors.runner import process_fileset

    before = sorted(p.name for p in processed.iterdir())
    with pytest.raises(ConfigError, match="holds a processor output"):
        run(from_dict({"input": str(processed), "output": str(processed)}))
    assert sorted(p.name for p in processed.iterdir()) == before  # nothing written
    (tmp_path / "afile").write_text("")
    with pytest.raises(ConfigError, match="afile is a file, not a directory"):
        run(from_dict({"input": str(processed), "output": str(tmp_path / "afile")}))
    (tmp_path / "run.json").write_text("{}")
    with pytest.raises(InputError, match=r"holds a test result \(run\.json\)"):
        process_fileset({"d": ["none.root"]}, tmp_path)


class _Payload:
    """Unpickling this creates a directory: proof that a pickle was loaded."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def test_a_pickle_in_an_output_directory_is_never_loaded(tmp_path, capsys):
    """A crafted hists.pkl (as earlier versions wrote) is refused, not unpickled."""
    processed, ran = tmp_path / "processed", tmp_path / "payload-ran"
    processed.mkdir()
    (processed / "hists.pkl").write_bytes(pickle.dumps({"m_coll": _Payload(str(ran))}))
    (processed / "manifest.json").write_text(json.dumps({"fileset": {}, "hists": "hists.pkl"}))
    with pytest.raises(FileNotFoundError, match="pickles can run code"):
        booking.read_hists(processed)
    code = main(["plot", "--kinematics", str(processed), "-o", str(tmp_path / "figs")])
    assert code == 2 and "hists.pkl" in capsys.readouterr().err
    assert not ran.exists()


def test_nuisances_are_learned_from_the_variation_samples(processed, tmp_path):
    """muon_scale ±1σ samples of A and B give an asymmetry nuisance the test profiles."""
    cfg = from_dict(
        {
            "input": str(processed),
            "nuisances": ["muon_scale"],
            "statistic": {"max_iter": 10},
            "seed": 2,
            "output": str(tmp_path / "nu"),
        }
    )
    outcome = run(cfg)
    assert outcome.result.observed.statistic == "symmetrized-nuisance"
    described = outcome.result.observed.config["nuisances"]["nuisances"]
    assert [n["name"] for n in described] == ["muon_scale"]
    # learned on each category's own variation samples (order 1: only ±1σ exist)
    for side in ("on_a", "on_b"):
        training = described[0][side]["training"]
        assert training["order"] == 1
        assert set(training["variations"]["varied"]) == {"1.0", "-1.0"}
    assert np.isfinite(outcome.result.t) and outcome.result.t >= -1e-6  # τ ≥ Δ
    with pytest.raises(ConfigError, match="no electron_scale_up1 / electron_scale_down1"):
        run(from_dict({"input": str(processed), "nuisances": ["electron_scale"]}))


def test_results_carry_binned_diagnostics(processed, tmp_path):
    cfg = from_dict(
        {
            "input": str(processed),
            "statistic": {"max_iter": 5},
            "calibration": {"method": "permutations", "n": 9, "batch_size": 9},
            "seed": 4,
            "output": str(tmp_path / "diag"),
        }
    )
    outcome = run(cfg)
    names = [d.name for d in outcome.diagnostics]
    assert names == ["m_coll", "pt_lead", "eta_lead", "pt_sublead", "eta_sublead", "dphi",
                     "eta_lead:eta_sublead"]  # fmt: skip
    summary = json.loads((tmp_path / "diag" / "run.json").read_text())
    assert [d["name"] for d in summary["diagnostics"]] == names
    assert all(d["n_null"] == 9 for d in summary["diagnostics"])  # the test's permutations
    assert summary["diagnostics_min_p"] == min(d.p_value for d in outcome.diagnostics)
    assert summary["reweighting_uncertainty"] is None  # no efficiency map in this output
    only = run(from_dict({**cfg.to_dict(), "output": None, "diagnostics": ["dphi"]}))
    assert [d.name for d in only.diagnostics] == ["dphi"]
    assert run(from_dict({**cfg.to_dict(), "output": None, "diagnostics": []})).diagnostics == []


def test_nplm_with_a_reference_smaller_than_the_data_is_flagged():
    """A 10-event reference against 10⁴ events: the run carries a note saying why."""
    from symnplm.workflow.runs import reference_note

    rng = np.random.default_rng(0)
    a, b = Sample(rng.normal(size=(10_000, 1))), Sample(rng.normal(size=(10, 1)))
    note = reference_note("nplm", a, b)
    assert note is not None and "10 events against 10000" in note
    assert reference_note("symmetrized", a, b) is None  # no reference to cover
    assert reference_note("nplm", b, a) is None
    # as large as the data is not enough: the reference should be several times larger
    same = Sample(rng.normal(size=(10_000, 1)))
    assert "at least 5x" in (reference_note("nplm", a, same) or "")
    assert reference_note("nplm", a, Sample(rng.normal(size=(50_000, 1)))) is None


def test_cli_prints_the_tiny_reference_note(tmp_path, capsys):
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    rng = np.random.default_rng(1)
    Sample(rng.normal(size=(2000, 1)), None, ("x",)).to_parquet(a)
    Sample(rng.normal(size=(40, 1)), None, ("x",)).to_parquet(b)
    out = tmp_path / "result"
    args = ["test", "--a", str(a), "--b", str(b), "--statistic", "nplm", "--quiet"]
    assert main([*args, "--output", str(out)]) == 0
    assert "the NPLM reference B has 40 events against 2000" in capsys.readouterr().err
    # and the result records it: the notes are part of what the run found
    notes = json.loads((out / "run.json").read_text())["notes"]
    assert any("the NPLM reference B has 40 events against 2000" in n for n in notes)


def test_binned_statistic_refuses_bins_it_cannot_fill():
    """More bins than events, or a discrete feature, would quietly give fewer bins."""
    from symnplm.workflow.config import StatisticSpec
    from symnplm.workflow.runs import build_test

    rng = np.random.default_rng(2)
    a, b = Sample(rng.normal(size=(20, 1))), Sample(rng.normal(size=(15, 1)))
    with pytest.raises(ConfigError, match=r"^statistic\.bins: 40 bins for 35 events of A and B$"):
        build_test(StatisticSpec(method="binned", bins=40), a, b)
    assert build_test(StatisticSpec(method="binned", bins=35), a, b).n_parameters == 35
    jets = Sample(rng.integers(0, 4, size=(500, 1)).astype(float), None, ("n_jets",))
    with pytest.raises(
        ConfigError, match=r"^statistics\.s \(regions\.0j, m_coll\)\.bins: n_jets has 4 distinct"
    ):
        build_test(
            StatisticSpec(method="binned", bins=10),
            jets,
            jets,
            key="statistics.s (regions.0j, m_coll)",
        )
    assert build_test(StatisticSpec(method="binned", bins=3), jets, jets).n_parameters == 3


def test_a_manifest_efficiency_map_out_of_the_directory_is_not_followed(tmp_path):
    from conftest import write_processed
    from symnplm.io.samples import efficiency_map_path

    out = write_processed(tmp_path / "processed")
    manifest = json.loads((out / "manifest.json").read_text())
    for name in ("../map.json", str(tmp_path / "map.json")):  # relative and absolute
        manifest["efficiency_map"] = name
        (out / "manifest.json").write_text(json.dumps(manifest))
        with pytest.raises(ValueError, match="efficiency_map points outside the directory"):
            efficiency_map_path(out)
        with pytest.raises(ValueError, match="efficiency_map points outside the directory"):
            prepare_samples(from_dict({"input": str(out)}))
    manifest["efficiency_map"] = "efficiency_map.json"
    (out / "manifest.json").write_text(json.dumps(manifest))
    assert efficiency_map_path(out) == (out / "efficiency_map.json").resolve()


def test_each_learned_nuisance_source_has_its_own_random_stream(tmp_path):
    """Two sources with the same variation samples: their δ fits start from different
    seeds (one stream per source), so they are not one fit repeated."""
    from conftest import write_processed
    from symnplm.workflow.runs import learn_nuisances

    out = write_processed(tmp_path / "processed")
    manifest = json.loads((out / "manifest.json").read_text())
    twins = [
        {**s, "variation": s["variation"].replace("muon", "electron")}
        for s in manifest["samples"]
        if s["variation"].startswith("muon_scale")
    ]
    manifest["samples"] += twins
    (out / "manifest.json").write_text(json.dumps(manifest))
    cfg = from_dict(
        {"input": str(out), "features": "m_coll", "nuisances": ["electron_scale", "muon_scale"]}
    )
    learned = learn_nuisances(cfg)
    assert learned is not None
    seeds = [n.on_a.training["seed"] for n in learned.nuisances]
    assert len(seeds) == 2 and seeds[0] != seeds[1]
    assert learn_nuisances(cfg).nuisances[0].on_a.training["seed"] == seeds[0]  # reproducible
