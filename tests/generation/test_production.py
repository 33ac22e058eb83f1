"""Every process runs end to end; the fileset describes what is on disk; bad input is refused."""

from __future__ import annotations

import json

import numpy as np
import pytest
import uproot

from symnplm.generation.detector_config import DetectorConfig
from symnplm.generation.presets import ALL_PROCESSES
from symnplm.generation.processes import BACKGROUNDS, SIGNAL_NAMES, get_process
from symnplm.generation.production import (
    GenerationConfig,
    plan_datasets,
    produce,
)
from symnplm.io.filesets import load_fileset


@pytest.mark.parametrize("name", ALL_PROCESSES)
def test_every_process_produces_its_files(tiny_production, tiny_config, name):
    fileset = load_fileset(tiny_production.fileset_path)
    entry = fileset[name]
    assert len(entry["files"]) == 2  # 40 events in files of 20
    n_generated = 0
    for path, tree in entry["files"].items():
        assert tree == "Events"
        with uproot.open(path) as f:
            n_generated += int(f["Runs"]["genEventCount"].array(library="np").sum())
            # No skim in the shared production: every generated event is written.
            assert f["Events"].num_entries == 20
    assert n_generated == tiny_config.n_events
    meta = entry["metadata"]
    assert meta["process"] == name
    assert meta["is_signal"] is (name in SIGNAL_NAMES)
    assert meta["n_generated"] == tiny_config.n_events
    assert meta["luminosity_fb"] == tiny_config.luminosity_fb
    assert meta["xsec"] > 0
    assert meta["sigma_lo_pb"] > 0


def test_fileset_is_coffea_format_with_relative_paths(tiny_production):
    raw = json.loads(tiny_production.fileset_path.read_text())
    assert set(raw) == set(ALL_PROCESSES)
    for entry in raw.values():
        assert set(entry) == {"files", "metadata"}
        for path in entry["files"]:
            assert not path.startswith("/"), "paths are stored relative to the fileset"
        for key in (
            "process",
            "xsec",
            "sumw",
            "is_signal",
            "seed",
            "config_hash",
            "versions",
            "detector",
            "k_factor",
            "sigma_ref_pb",
        ):
            assert key in entry["metadata"]


def test_planned_events_give_unit_weights():
    """σ × L planning: ttbar at 1 fb⁻¹ is ~ 832 pb × 0.065 × 1000 events."""
    spec = get_process("ttbar")
    assert spec.planned_events(1.0) == pytest.approx(831.76 * 0.2542**2 * 1000, rel=0.01)
    config = GenerationConfig(
        processes=("ttbar", "ggh_htaue"),
        luminosity_fb=2.0,
        signal_luminosity_fb=20.0,
        lfv_branching_ratio=0.02,
    )
    plans = {p.name: p for p in plan_datasets(config)}
    assert plans["ttbar"].luminosity_fb == 2.0
    assert plans["ggh_htaue"].luminosity_fb == 20.0
    # Signal events scale with the branching ratio.
    assert plans["ggh_htaue"].n_events == pytest.approx(48.58 * 0.02 * 0.1739 * 20000, rel=0.01)


def test_chunking_covers_every_event_once():
    config = GenerationConfig(
        processes=("ww",), luminosity_fb=1.0, n_events=1001, events_per_file=250
    )
    (plan,) = plan_datasets(config)
    assert plan.chunk_sizes() == [250, 250, 250, 250, 1]


def test_zero_branching_ratio_plans_no_signal():
    config = GenerationConfig(
        processes=("ttbar", "ggh_htaue"), luminosity_fb=1.0, lfv_branching_ratio=0.0
    )
    assert [p.name for p in plan_datasets(config)] == ["ttbar"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"processes": ("ttbar", "zprime")}, "unknown process 'zprime'"),
        ({"luminosity_fb": -5.0}, "luminosity_fb must be a positive number of fb\\^-1, got -5.0"),
        ({"luminosity_fb": float("nan")}, "luminosity_fb .* got nan"),
        ({"signal_luminosity_fb": 0.0}, "signal_luminosity_fb .* got 0.0"),
        ({"lfv_branching_ratio": 1.5}, "must lie in \\[0, 1\\], got 1.5"),
        ({"lfv_branching_ratio": -0.01}, "must lie in \\[0, 1\\], got -0.01"),
        ({"events_per_file": 0}, "events_per_file must be >= 1, got 0"),
        ({"n_events": -3}, "n_events must be >= 1, got -3"),
        ({"seed": -1}, "seed must be a non-negative integer, got -1"),
        ({"truth_filter_pt": 10.0, "skim_pt_min": None}, "truth_filter_pt needs skim_pt_min"),
        ({"truth_filter_pt": 14.0}, r"truth_filter_pt must lie in \[0, skim_pt_min = 13.0\]"),
        (
            {"truth_filter_pt": 10.0, "detector": DetectorConfig(jet_fake_electron_rate=0.01)},
            "jet_fake_electron_rate > 0",
        ),
    ],
)
def test_bad_configuration_is_refused_naming_the_value(kwargs, message):
    base = {"processes": ("ttbar",), "luminosity_fb": 1.0}
    with pytest.raises(ValueError, match=message):
        GenerationConfig(**(base | kwargs))


def test_unknown_process_lookup_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown process 'ttbarr'.*ttbar, ztautau"):
        get_process("ttbarr")


def test_background_and_signal_names_are_disjoint_and_complete():
    assert set(BACKGROUNDS).isdisjoint(SIGNAL_NAMES)
    assert set(ALL_PROCESSES) == set(BACKGROUNDS) | set(SIGNAL_NAMES)
    assert {
        "ttbar",
        "ztautau",
        "ww",
        "wz",
        "zz",
        "tw",
        "ggh_hww",
        "vbfh_hww",
        "ggh_htautau",
        "vbfh_htautau",
    } == set(BACKGROUNDS)


def test_event_numbers_are_unique_within_a_dataset(tiny_production, tiny_config):
    fileset = load_fileset(tiny_production.fileset_path)
    events = np.concatenate(
        [uproot.open(p)["Events"]["event"].array(library="np") for p in fileset["ttbar"]["files"]]
    )
    assert len(np.unique(events)) == len(events) == tiny_config.n_events


def _events(path):
    with uproot.open(path) as f:
        return f["Events"].arrays(["event", "Electron_pt", "Muon_pt", "MET_pt"], library="np")


def test_detector_variants_equal_productions_with_one_detector(tmp_path):
    """One Pythia run, several detectors: each variant's files are those a production with
    that detector alone writes (same events, same random streams), and the variants differ
    only where their detectors do."""
    base = GenerationConfig(
        processes=("ttbar",), luminosity_fb=1.0, n_events=300, events_per_file=300, seed=11,
        truth_filter_pt=10.4,
    )  # fmt: skip
    other = DetectorConfig(muon_eff_plateau=0.80, electron_scale_offset=0.01)
    report = produce(base, tmp_path / "v", variants={"nominal": base.detector, "other": other})
    assert report.fileset_path == tmp_path / "v" / "nominal" / "fileset.json"
    alone = produce(GenerationConfig(**(vars(base) | {"detector": other})), tmp_path / "alone")
    name = "ttbar/ttbar_0000.root"
    a, b = _events(tmp_path / "v" / "other" / name), _events(tmp_path / "alone" / name)
    for key in a:
        assert all(np.array_equal(x, y) for x, y in zip(a[key], b[key], strict=True)), key
    assert (
        json.loads((tmp_path / "v" / "other" / "fileset.json").read_text())["ttbar"]["metadata"][
            "config_hash"
        ]
        == json.loads(alone.fileset_path.read_text())["ttbar"]["metadata"]["config_hash"]
    )
    nominal = _events(tmp_path / "v" / "nominal" / name)
    # fewer muons pass the lower plateau; electrons are 1 % harder
    assert sum(map(len, nominal["Muon_pt"])) > sum(map(len, a["Muon_pt"]))
    assert not np.array_equal(
        np.concatenate(nominal["Electron_pt"]), np.concatenate(a["Electron_pt"])
    )
    # a rerun finds every file and generates nothing
    again = produce(base, tmp_path / "v", variants={"nominal": base.detector, "other": other})
    assert again.generated == [] and len(again.skipped) == 2
    with pytest.raises(ValueError, match="plain directory name"):
        produce(base, tmp_path / "w", variants={"../x": other})


def test_truth_filter_drops_no_event_the_skim_keeps():
    """Every event with a reconstructed e and mu above the skim threshold has a generated
    (dressed) e and mu above the truth filter, with worse resolution and scale offsets."""
    from symnplm.generation import truth
    from symnplm.generation.detector import simulate
    from symnplm.generation.event_generator import PythiaGenerator
    from symnplm.generation.processes import all_processes
    from symnplm.generation.production import _skim_mask

    detector = DetectorConfig(
        electron_sampling_term=0.2, electron_scale_offset=0.02, muon_scale_offset=0.02
    )
    kept = passed = 0
    for name in ("ztautau", "ttbar"):
        gen = PythiaGenerator(all_processes(0.01)[name], 5)
        for batch in gen.batches(600, 300):
            skim = _skim_mask(simulate(batch, detector, np.random.SeedSequence(3), False), 13.0)
            truth_pass = truth.has_electron_and_muon(batch, 0.8 * 13.0)
            assert not np.any(skim & ~truth_pass)
            kept, passed = kept + skim.sum(), passed + truth_pass.sum()
            # the filtered batch keeps exactly the selected events
            sub = batch.select_events(truth_pass)
            assert sub.n_events == truth_pass.sum()
            np.testing.assert_array_equal(np.diff(sub.offsets), np.diff(batch.offsets)[truth_pass])
    assert kept > 10 and passed < 0.8 * 1200  # it removes most events, none the skim wants
