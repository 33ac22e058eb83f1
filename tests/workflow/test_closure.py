"""``symnplm closure`` end to end on tiny productions of a detector that treats e and μ alike."""

from __future__ import annotations

import json

import numpy as np
import pytest

from symnplm.cli import main
from symnplm.generation.detector_config import DetectorConfig
from symnplm.generation.production import GenerationConfig, produce
from symnplm.physics.efficiency import EfficiencyRatio

#: e and μ with the same efficiency everywhere (the crack, where electrons are lost, is
#: vetoed for both flavours by the lfuv selection)
SYMMETRIC = DetectorConfig(
    electron_reco_eff_barrel=0.95,
    electron_reco_eff_endcap=0.95,
    electron_id_plateau=1.0,
    electron_id_turn_on=0.0,
    muon_eff_plateau=0.95,
    muon_gap_eff=0.95,
    muon_eff_turn_on=0.0,
)


def _production(path, seed):
    config = GenerationConfig(
        processes=("ttbar", "ggh_htaue"),
        luminosity_fb=0.05,  # 2500 ttbar events: weights ≈ 0.8, so thinning is possible
        n_events=2500,
        events_per_file=2500,
        seed=seed,
        gen_jets=False,
        truth_filter_pt=10.4,
        detector=SYMMETRIC,
    )
    return produce(config, path, progress=False).fileset_path


@pytest.mark.slow
def test_closure_on_a_symmetric_detector(tmp_path):
    test = _production(tmp_path / "test", 31)
    calibration = _production(tmp_path / "calibration", 32)
    out = tmp_path / "closure"
    args = ["closure", "--test", str(test), "--calibration", str(calibration), "-o", str(out),
            "--observables", "m_coll", "--splits", "4", "--relabellings", "2",
            "--signal-luminosity-fb", "0.02", "--signal-pseudo-experiments", "4",
            "--brs", "0.5", "--signal-datasets", "ggh_htaue", "--permutations", "9",
            "--max-iter", "10", "--workers", "1", "--batch-size", "6", "--quiet",
            # a few hundred calibration events: coarse bins, the vetoed regions whole
            "--map-pt-edges", "15", "35", "6500", "--map-eta-edges", "0", "0.1", "1.0", "1.37",
            "1.52", "2.3"]  # fmt: skip
    assert main(args) == 0
    summary = json.loads((out / "closure.json").read_text())
    corrected = summary["variants"]["corrected"]["m_coll"]
    # nothing to correct: the measured map is flat within its bootstrap uncertainty
    ratio = EfficiencyRatio.read(out / "efficiency_map_calibration.json")
    _, _, values, sigma = ratio.bins()
    used = sigma > 0
    pulls = np.log(values[used] / np.exp(np.mean(np.log(values[used])))) / sigma[used]
    assert np.mean(np.abs(pulls) > 3) < 0.05
    assert ratio.measured_on["files"] and ratio.measured_on["events"] == "all"
    # each production corrected with the other's map: the whole-sample test is not at the
    # permutation floor (p = 1/10), nor are the binned diagnostics (one of seven may be)
    for source in ("test", "calibration"):
        full = corrected["full"][source]
        assert full["p_value"] > 0.1, source
        assert sum(d["p_value"] <= 0.1 for d in full["diagnostics"]) <= 1, source
    pe = corrected["pseudo_experiments"]
    # 4 splits × 2 productions, two relabellings each
    assert pe["test"]["n"] == 8 and len(pe["test"]["t_null"]) == 16
    # disjoint splits: every selected event in exactly one pseudo-experiment
    split = pe["by_sample"]["test"]["events"]
    assert sum(a for a, _ in split) == corrected["full"]["test"]["events"][0]
    assert pe["luminosity_fb"] == pytest.approx(0.05 / 4)
    assert set(pe["diagnostics"]) >= {"m_coll", "eta_lead", "eta_lead:eta_sublead"}
    assert [p["branching_ratio"] for p in corrected["signal"]["points"]] == [0.5]
    assert "uncorrected" in summary["variants"]
    for name in ("closure_m_coll.png", "closure_diagnostics.png"):
        assert (out / name).stat().st_size > 5_000
    assert summary["seed"] == 1 and summary["provenance"]["versions"]["numpy"]
