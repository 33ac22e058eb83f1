"""Cross sections, forced-decay weights and sums of weights.

Reference numbers here come from outside the code under test: PDG 2022 branching
fractions and the quoted higher-order cross sections, so a wrong K-factor, a lost
open fraction or a wrong τ weight fails these tests.
"""

from __future__ import annotations

import numpy as np
import pytest
import uproot

from symnplm.generation import truth
from symnplm.generation.event_generator import PythiaGenerator
from symnplm.generation.processes import all_processes, get_process
from symnplm.io.filesets import load_fileset

# PDG 2022
BR_W_LNU = 0.1086
BR_Z_LL = 0.033658
BR_Z_NUNU = 0.2000
BR_TAU_E = 0.1782
BR_TAU_MU = 0.1739
# LHCHXSWG YR4, mH = 125 GeV
BR_H_WW = 0.2152
BR_H_TAUTAU = 0.06256

#: Fraction of the inclusive reference cross section left after the forced resonance decays.
FORCED_FRACTION = {
    "ttbar": (3 * BR_W_LNU) ** 2,
    "ztautau": 1.0,
    "ww": (3 * BR_W_LNU) ** 2,
    "wz": 3 * BR_W_LNU * 3 * BR_Z_LL,
    "zz": (3 * BR_Z_LL + BR_Z_NUNU) ** 2,
    "tw": (3 * BR_W_LNU) ** 2,
    "ggh_hww": BR_H_WW * (3 * BR_W_LNU) ** 2,
    "vbfh_hww": BR_H_WW * (3 * BR_W_LNU) ** 2,
    "ggh_htautau": BR_H_TAUTAU,
    "vbfh_htautau": BR_H_TAUTAU,
}
PROCESS_LEVEL = ("PartonLevel:all = off", "HadronLevel:all = off")


def _process_level_sigma(name: str, extra: tuple[str, ...] = (), n: int = 2000, br: float = 0.01):
    gen = PythiaGenerator(all_processes(br)[name], seed=4242, extra_settings=PROCESS_LEVEL + extra)
    for _ in range(n):
        gen.pythia.next()
    return gen.sigma_pb(), gen.sigma_error_pb()


@pytest.mark.parametrize("name", sorted(FORCED_FRACTION))
def test_lo_times_k_reproduces_the_reference_cross_section(name):
    spec = get_process(name)
    sigma, error = _process_level_sigma(name)
    expected = spec.sigma_ref_pb * FORCED_FRACTION[name]
    # 4σ of Pythia's MC estimate, plus 2.5% for Pythia's own vs PDG branching fractions.
    tolerance = 4 * error * spec.k_factor + 0.025 * expected
    assert sigma * spec.k_factor == pytest.approx(expected, abs=tolerance)


@pytest.mark.parametrize("name", ["ggh_htaue", "vbfh_htaumu"])
@pytest.mark.parametrize("br", [0.01, 0.1])
def test_signal_cross_section_is_production_times_branching_ratio(name, br):
    spec = all_processes(br)[name]
    sigma, error = _process_level_sigma(name, br=br)
    expected = spec.sigma_ref_pb * br
    assert sigma * spec.k_factor == pytest.approx(
        expected, abs=4 * error * spec.k_factor + 0.01 * expected
    )


def test_forced_w_decays_scale_the_cross_section_by_the_leptonic_fraction():
    forced, err_forced = _process_level_sigma("ttbar")
    inclusive, err_inclusive = _process_level_sigma("ttbar", extra=("24:onMode = on",))
    ratio = forced / inclusive
    error = ratio * np.hypot(err_forced / forced, err_inclusive / inclusive)
    assert ratio == pytest.approx((3 * BR_W_LNU) ** 2, abs=4 * error + 0.003)


def test_tau_weight_is_the_leptonic_branching_fraction_of_unforced_decays():
    """The per-τ weight must equal the fraction of τ that decay to e or μ without forcing."""
    spec = get_process("ztautau")
    forced = PythiaGenerator(spec, seed=5)
    assert forced.tau_branching_fraction == pytest.approx(BR_TAU_E + BR_TAU_MU, rel=0.01)
    # Unforced τ decays (parton shower off for speed; τ decays happen at hadron level).
    free = PythiaGenerator(
        spec,
        seed=5,
        extra_settings=(
            "PartonLevel:ISR = off",
            "PartonLevel:FSR = off",
            "HadronLevel:Hadronize = off",
            "15:onMode = on",
        ),
    )
    batch = next(free.batches(3000, 3000))
    n_tau = truth.count_tau_decays(batch).sum()
    assert n_tau == 6000  # Z/γ* → ττ, both decay
    aid = np.abs(batch.pdg_id)
    mother = batch.pdg_id[batch.offsets[batch.event_index] + batch.mother1]
    leptonic = batch.is_final & ((aid == 11) | (aid == 13)) & (np.abs(mother) == 15)
    fraction = leptonic.sum() / n_tau
    sigma = np.sqrt(fraction * (1 - fraction) / n_tau)
    assert fraction == pytest.approx(forced.tau_branching_fraction, abs=4 * sigma)


def _file_arrays(path: str) -> tuple[np.ndarray, dict, dict]:
    with uproot.open(path) as f:
        weights = f["Events"]["genWeight"].array(library="np")
        runs = {
            k: f["Runs"][k].array(library="np")
            for k in ("genEventCount", "genEventSumw", "genEventSumw2")
        }
        import json

        meta = json.loads(str(f["symnplm_metadata"]))
    return weights, runs, meta


def test_sum_of_weights_matches_the_runs_tree(tiny_production, tiny_config):
    """Without skim every generated event is written: Σ genWeight is genEventSumw exactly."""
    fileset = load_fileset(tiny_production.fileset_path)
    for name, entry in fileset.items():
        total = 0.0
        for path in entry["files"]:
            w, runs, _ = _file_arrays(path)
            w64 = w.astype(np.float64)
            assert w64.sum() == pytest.approx(runs["genEventSumw"].sum(), rel=1e-12), path
            assert (w64**2).sum() == pytest.approx(runs["genEventSumw2"].sum(), rel=1e-12)
            assert runs["genEventCount"].sum() == len(w)
            total += w64.sum()
        meta = entry["metadata"]
        assert meta["sumw"] == pytest.approx(total, rel=1e-12), name
        lumi_pb = tiny_config.luminosity_fb * 1000.0
        assert meta["xsec"] == pytest.approx(total / lumi_pb, rel=1e-12)


def test_genweight_is_sigma_k_lumi_over_n_times_tau_weights(tiny_production, tiny_config):
    """genWeight = σ_chunk · K · B_τ^{n_τ} · L / N, checked on samples with a fixed n_τ."""
    fileset = load_fileset(tiny_production.fileset_path)
    cases = {"ztautau": (BR_TAU_E + BR_TAU_MU) ** 2, "ggh_htaue": BR_TAU_MU, "ggh_htaumu": BR_TAU_E}
    for name, tau_weight in cases.items():
        meta_ds = fileset[name]["metadata"]
        for path in fileset[name]["files"]:
            w, _, meta = _file_arrays(path)
            unit = (
                meta["sigma_lo_pb"]
                * meta_ds["k_factor"]
                * tiny_config.luminosity_fb
                * 1000.0
                / tiny_config.n_events
            )
            assert np.median(w) / unit == pytest.approx(tau_weight, rel=0.012), (name, path)


def test_weights_are_of_order_one_when_generating_sigma_times_lumi(tmp_path):
    """With the planned σ × L events the mean weight is ≈ 1 (the demo's design)."""
    from symnplm.generation.production import GenerationConfig, produce

    config = GenerationConfig(processes=("ztautau",), luminosity_fb=0.004, seed=3, skim_pt_min=None)
    report = produce(config, tmp_path, workers=1, progress=False)
    (entry,) = load_fileset(report.fileset_path).values()
    weights = np.concatenate([_file_arrays(p)[0] for p in entry["files"]])
    assert len(weights) == entry["metadata"]["n_planned"]
    assert weights.mean() == pytest.approx(1.0, abs=0.08)
