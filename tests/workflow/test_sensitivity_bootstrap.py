"""The paper's sensitivity protocol (arXiv:2401.09530 Sec. V B) and the reach table."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from symnplm.cli import main
from symnplm.inference.significance import p_to_z
from symnplm.inference.streams import replica_rng
from symnplm.io.samples import Sample
from symnplm.workflow.config import from_dict
from symnplm.workflow.sensitivity import (
    bootstrap_experiments,
    bootstrap_model,
    bootstrap_scan,
    reach,
    reach_table,
    replica_stream,
)

#: a feature value no event of the fixture has (m_coll / 100 GeV is a few units at most)
SENTINEL = 99.0


def _cfg(processed, **extra):
    return from_dict(
        {
            "input": str(processed),
            "statistic": {"max_iter": 10},
            "inject": {"datasets": ["ggh_htaue"]},
            "seed": 4,
            **extra,
        }
    )


def test_pool_and_template_are_both_categories_at_the_processed_luminosity(processed):
    model = bootstrap_model(_cfg(processed))
    # the expectations from the manifest's Σw of every sample (not from the parquet files)
    manifest = json.loads((processed / "manifest.json").read_text())
    sumw = {
        (s["dataset"], s["category"]): s["sum_weights"]
        for s in manifest["samples"]
        if s["variation"] == "nominal"
    }
    pool = sum(sumw[d, c] for d in ("ttbar", "ztautau") for c in ("emu", "mue"))
    ref = manifest["fileset"]["ggh_htaue"]["metadata"]["lfv_branching_ratio"]
    signal_per_br = (sumw["ggh_htaue", "emu"] + sumw["ggh_htaue", "mue"]) / ref
    assert model.luminosity_fb == 5.0  # the background datasets' luminosity_fb
    assert model.pool.sum_weights == pytest.approx(pool)
    assert model.signal.sum_weights == pytest.approx(signal_per_br)
    # one sample expects half the pool (emu or mue), the signal scales with BR and L
    assert model.expected_background(1.0) == pytest.approx(pool / 2 / 5.0)
    assert model.expected_signal(2.0, 0.03) == pytest.approx(signal_per_br * 0.03 * 2 / 5)
    assert model.ideal_z(1.0, 0.0) == 0.0
    assert 0 < model.ideal_z(1.0, 0.01) < model.ideal_z(2.0, 0.01) < model.ideal_z(2.0, 0.02)


def test_signal_is_bootstrapped_into_a_only(processed):
    model = bootstrap_model(_cfg(processed))
    # the same model with every signal event marked by a sentinel feature value
    marked = Sample(np.full_like(model.signal.features, SENTINEL), model.signal.weights)
    model = dataclasses.replace(model, signal=dataclasses.replace(marked, names=("m_coll",)))
    assert not np.any(model.pool.features == SENTINEL)
    n_signal = model.expected_signal(1.0, 0.05)
    signal_in_a = []
    for r in range(40):
        rng = replica_rng(0, 0, r)
        a, b = model.experiments(1.0, 0.05)(rng)
        assert not np.any(b.features == SENTINEL)
        signal_in_a.append(int(np.sum(a.features == SENTINEL)))
        a0, b0 = model.experiments(1.0, 0.0)(rng)
        assert not np.any(a0.features == SENTINEL) and not np.any(b0.features == SENTINEL)
    assert min(signal_in_a) > 0
    # Poisson(N_s) signal events: the mean of 40 within 5σ
    assert abs(np.mean(signal_in_a) - n_signal) < 5 * np.sqrt(n_signal / 40)


def test_sizes_are_poisson_and_draws_follow_the_weights():
    pool = Sample(np.arange(4.0), [1.0, 1.0, 1.0, 3.0], ("x",))
    signal = Sample(np.full(3, SENTINEL), [1.0, 1.0, 2.0], ("x",))
    n_b, n_s, replicas = 200.0, 30.0, 400
    generate = bootstrap_experiments(pool, n_b, signal, n_s)
    sizes_a, sizes_b, sizes_s, heavy, drawn = [], [], [], 0, 0
    for r in range(replicas):
        a, b = generate(replica_rng(7, 0, r))
        x_a = a.features[:, 0]
        assert np.all(a.weights == 1) and np.all(b.weights == 1)
        sizes_a.append(len(a))
        sizes_b.append(len(b))
        sizes_s.append(int(np.sum(x_a == SENTINEL)))
        heavy += int(np.sum(x_a == 3.0) + np.sum(b.features == 3.0))
        drawn += int(np.sum(x_a != SENTINEL) + len(b))
    # means within 4 standard errors of N_b (B), N_b + N_s (A) and N_s (A's signal)
    for sizes, mean in ((sizes_b, n_b), (sizes_a, n_b + n_s), (sizes_s, n_s)):
        assert abs(np.mean(sizes) - mean) < 4 * np.sqrt(mean / replicas)
        # Poisson: variance = mean (a fixed size would give 0); 4σ of var/mean ≈ 4·√(2/400)
        assert 0.7 < np.var(sizes, ddof=1) / mean < 1.3
    # the event of weight 3 is drawn with probability 3/6
    assert heavy / drawn == pytest.approx(0.5, abs=0.01)


def test_weighted_bootstrap_refuses_negative_weights_and_empty_samples():
    pool = Sample(np.arange(3.0), [1.0, -0.5, 2.0], ("x",))
    with pytest.raises(ValueError, match="weights must be >= 0"):
        bootstrap_experiments(pool, 100.0)
    with pytest.raises(ValueError, match="too few"):
        bootstrap_experiments(Sample(np.arange(3.0), None, ("x",)), 2.0)


def test_reach_interpolates_in_log_br():
    brs = [0.0, 0.005, 0.01, 0.02, 0.03, 0.05]
    c = 70.0
    linear = [c * b for b in brs]
    # Z = c·BR: reach at Z = 2 is 2/c (between 0.02 and 0.03), at Z = 3 it is 3/c
    assert reach(brs, linear, 2.0) == pytest.approx(2 / c, rel=1e-12)
    assert reach(brs, linear, 3.0) == pytest.approx(3 / c, rel=1e-12)
    # Z = c·BR²: straight in (log BR, log Z) is exact for any power law
    quadratic = [2000.0 * b**2 for b in brs]
    assert reach(brs, quadratic, 2.0) == pytest.approx(np.sqrt(2 / 2000.0), rel=1e-12)
    # not reached within the scan, or already above at the smallest BR > 0: None
    assert reach(brs, linear, 4.0) is None
    assert reach(brs, [z + 5 for z in linear], 2.0) is None
    # noise: the running maximum makes the curve monotone, the first crossing counts
    noisy_brs, noisy = [0.01, 0.02, 0.03, 0.04], [0.5, 2.5, 1.5, 3.5]
    expected = np.exp(np.log(0.03) + np.log(3 / 2.5) / np.log(3.5 / 2.5) * np.log(4 / 3))
    assert reach(noisy_brs, noisy, 3.0) == pytest.approx(expected, rel=1e-12)
    # from Z <= 0 (or -inf: t <= 0) there is no log Z: straight in (log BR, Z)
    assert reach([0.01, 0.1], [-np.inf, 4.0], 2.0) == pytest.approx(np.sqrt(0.001), rel=1e-12)


def test_reach_table_flags_targets_beyond_the_null(processed):
    from symnplm.workflow.sensitivity import SensitivityPoint

    t0 = np.arange(9.0)  # 9 null replicas: the empirical Z is at most p_to_z(1/10)
    points = [
        SensitivityPoint(br, np.zeros(3), np.full(3, z), np.full(3, 1.5 * z), 2 * z, 10.0)
        for br, z in ((0.0, 0.0), (0.01, 0.8), (0.02, 2.4))
    ]
    points[0] = dataclasses.replace(points[0], t=t0)
    rows = {row["z"]: row for row in reach_table(points)}
    cap = p_to_z(0.1)
    assert rows[2.0]["empirical_z_cap"] == pytest.approx(cap)
    assert rows[2.0]["status_empirical"] == "beyond the null" and rows[2.0]["br_empirical"] is None
    assert rows[2.0]["br_chi2"] == pytest.approx(reach([0.01, 0.02], [1.2, 3.6], 2.0))
    assert rows[3.0]["status_ideal"] == "interpolated" and rows[2.0]["status_ideal"] == (
        "interpolated"
    )


def test_bootstrap_command_runs_end_to_end(processed, tmp_path):
    out = tmp_path / "sens"
    args = ["sensitivity", "--input", str(processed), "--inject-datasets", "ggh_htaue",
            "--protocol", "bootstrap", "--luminosities", "1", "2", "--brs", "0.05",
            "--toys", "3", "--null-toys", "4", "--max-iter", "10", "--seed", "3",
            "--output", str(out), "--quiet"]  # fmt: skip
    assert main(args) == 0
    scan = json.loads((out / "sensitivity.json").read_text())
    assert scan["protocol"] == "bootstrap" and scan["luminosities"] == [1.0, 2.0]
    assert scan["seed"] == 3 and scan["provenance"]["versions"]["numpy"]
    assert scan["config"]["statistic"]["max_iter"] == 10
    assert [(p["luminosity_fb"], p["branching_ratio"], len(p["t"])) for p in scan["points"]] == [
        (1.0, 0.0, 4), (1.0, 0.05, 3), (2.0, 0.0, 4), (2.0, 0.05, 3)
    ]  # fmt: skip
    expected = {e["luminosity_fb"]: e for e in scan["bootstrap"]["expected"]}
    assert expected[2.0]["background_per_sample"] == pytest.approx(
        2 * expected[1.0]["background_per_sample"]
    )
    assert scan["bootstrap"]["seed_stream"]["stream"] == 31
    reach_rows = json.loads((out / "reach.json").read_text())["rows"]
    assert [(r["luminosity_fb"], r["z"]) for r in reach_rows] == [
        (1.0, 2.0), (1.0, 3.0), (2.0, 2.0), (2.0, 3.0)
    ]  # fmt: skip
    assert (out / "reach.md").read_text().count("\n") == 2 + 4
    for name in ("z_vs_br.png", "z_vs_zid.png"):
        assert (out / name).stat().st_size > 5_000
    # every (L, BR) is kept: the same scan rerun reads its replicas back without fitting
    assert sorted(f.name for f in (out / "replicas").iterdir()) == [
        "L1.0_BR0.0.npz", "L1.0_BR0.05.npz", "L2.0_BR0.0.npz", "L2.0_BR0.05.npz"
    ]  # fmt: skip
    import symnplm.workflow.sensitivity as sensitivity

    def refuse(*_args, **_kwargs):
        raise AssertionError("refitted although the checkpoint holds the replicas")

    cfg = _cfg(processed, seed=3)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sensitivity, "_replicas", refuse)
        nulls, points = bootstrap_scan(
            cfg, [0.05], 3, luminosities=[1.0, 2.0], n_null=4, checkpoint=out / "replicas"
        )
    assert [p.t.tolist() for p in points] == [p["t"] for p in scan["points"]]
    assert nulls[2.0].tolist() == scan["points"][2]["t"]
    # another seed is another scan: its replicas are fitted, not read back
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sensitivity, "_replicas", refuse)
        with pytest.raises(AssertionError, match="refitted"):
            bootstrap_scan(
                _cfg(processed, seed=4), [0.05], 3, luminosities=[1.0], n_null=4,
                checkpoint=out / "replicas",
            )  # fmt: skip


def test_replica_streams_depend_on_luminosity_and_br_only():
    s = replica_stream(0, 5.0, 0.01).generate_state(2).tolist()
    assert s == replica_stream(0, 5.0, 0.01).generate_state(2).tolist()
    assert s != replica_stream(0, 10.0, 0.01).generate_state(2).tolist()
    assert s != replica_stream(0, 5.0, 0.02).generate_state(2).tolist()
    assert s != replica_stream(1, 5.0, 0.01).generate_state(2).tolist()


def test_luminosities_need_the_bootstrap_protocol(processed, tmp_path):
    args = ["sensitivity", "--input", str(processed), "--brs", "0.1", "--luminosities", "1",
            "--output", str(tmp_path / "x"), "--quiet"]  # fmt: skip
    assert main(args) == 2


def test_an_emu_only_pool_is_the_papers_and_each_sample_expects_all_of_it(processed):
    """a = b = emu: the electron-leading events alone, once (arXiv:2401.09530 Sec. V B)."""
    import dataclasses

    from symnplm.workflow.config import SampleSpec

    cfg = dataclasses.replace(
        _cfg(processed), a=SampleSpec(category="emu"), b=SampleSpec(category="emu")
    )
    model = bootstrap_model(cfg)
    manifest = json.loads((processed / "manifest.json").read_text())
    emu = sum(
        s["sum_weights"]
        for s in manifest["samples"]
        if s["variation"] == "nominal" and s["category"] == "emu" and s["dataset"] != "ggh_htaue"
    )
    assert model.categories == 1
    assert model.pool.sum_weights == pytest.approx(emu)
    assert model.expected_background(5.0) == pytest.approx(emu)


# ---------------------------------------------------------------------------------------
# the LFUV protocol: one pool, each sample with its own category's size and signal
# ---------------------------------------------------------------------------------------
def test_lfuv_pairing_puts_each_categorys_signal_in_its_sample(processed):
    model = bootstrap_model(_cfg(processed), "by-category")
    manifest = json.loads((processed / "manifest.json").read_text())
    sumw = {
        (s["dataset"], s["category"]): s["sum_weights"]
        for s in manifest["samples"]
        if s["variation"] == "nominal"
    }
    ref = manifest["fileset"]["ggh_htaue"]["metadata"]["lfv_branching_ratio"]
    for sample, category in (("a", "emu"), ("b", "mue")):
        bkg = sum(sumw[d, category] for d in ("ttbar", "ztautau"))
        assert model.expected_background(5.0, sample) == pytest.approx(bkg)
        assert model.expected_signal(5.0, 0.02, sample) == pytest.approx(
            sumw["ggh_htaue", category] / ref * 0.02
        )
    n_pool, n_signal = model.split
    # labels: 1 emu background, 2 mue background, 3 emu signal, 4 mue signal
    pool_marks = np.where(np.arange(len(model.pool)) < n_pool, 1.0, 2.0)
    signal_marks = np.where(np.arange(len(model.signal)) < n_signal, 3.0, 4.0)
    marked = dataclasses.replace(
        model,
        pool=Sample(pool_marks, model.pool.weights, ("m_coll",)),
        signal=Sample(signal_marks, model.signal.weights, ("m_coll",)),
    )
    counts = {3.0: [], 4.0: [], "emu share": [], "size b": []}
    for r in range(30):
        a, b = marked.experiments(5.0, 0.2)(replica_rng(1, 0, r))
        # both backgrounds from the one pool (emu and mue), the signal by category
        assert set(np.unique(a.features)) == {1.0, 2.0, 3.0}
        assert set(np.unique(b.features)) == {1.0, 2.0, 4.0}
        counts[3.0].append(int(np.sum(a.features == 3.0)))
        counts[4.0].append(int(np.sum(b.features == 4.0)))
        background_a = a.features[a.features < 3.0]
        counts["emu share"].append(np.mean(background_a == 1.0))
        counts["size b"].append(int(np.sum(b.features < 3.0)))
        a0, b0 = marked.experiments(5.0, 0.0)(replica_rng(1, 1, r))
        assert a0.features.max() < 3.0 and b0.features.max() < 3.0
    # Poisson signal counts: 30-replica means within 5σ of the expectation
    for label, sample in ((3.0, "a"), (4.0, "b")):
        mean = model.expected_signal(5.0, 0.2, sample)
        assert abs(np.mean(counts[label]) - mean) < 5 * np.sqrt(mean / 30)
    n_a, n_b = model.expected_background(5.0, "a"), model.expected_background(5.0, "b")
    assert np.mean(counts["emu share"]) == pytest.approx(n_a / (n_a + n_b), abs=0.02)
    assert abs(np.mean(counts["size b"]) - n_b) < 5 * np.sqrt(n_b / 30)
    # Z_id grows with the signal; below that of the signal all in A over half the pool
    assert 0 < model.ideal_z(5.0, 0.01) < model.ideal_z(5.0, 0.02)


def test_lfuv_pairing_needs_two_categories(processed):
    from symnplm.exceptions import ConfigError
    from symnplm.workflow.config import SampleSpec

    cfg = dataclasses.replace(
        _cfg(processed), a=SampleSpec(category="emu"), b=SampleSpec(category="emu")
    )
    with pytest.raises(ConfigError, match="both 'emu'"):
        bootstrap_model(cfg, "by-category")


def test_lfuv_command_runs_end_to_end(processed, tmp_path):
    out = tmp_path / "lfuv"
    args = ["sensitivity", "--input", str(processed), "--inject-datasets", "ggh_htaue",
            "--protocol", "lfuv", "--luminosities", "2", "--brs", "0.05",
            "--toys", "3", "--null-toys", "5", "--max-iter", "10", "--seed", "3",
            "--output", str(out), "--quiet"]  # fmt: skip
    assert main(args) == 0
    scan = json.loads((out / "sensitivity.json").read_text())
    assert scan["protocol"] == "lfuv"
    assert scan["bootstrap"]["pairing"] == "by-category"
    assert [(p["branching_ratio"], len(p["t"])) for p in scan["points"]] == [(0.0, 5), (0.05, 3)]
    expected = scan["bootstrap"]["expected"][0]
    assert expected["background_b"] > 0 and expected["signal_in_b"]["0.05"] > 0
    by_category = scan["bootstrap"]["pool"]["by_category"]
    assert expected["background_per_sample"] == pytest.approx(
        by_category["emu"]["sum_weights"] * 2 / scan["bootstrap"]["luminosity_processed_fb"]
    )
