"""Every process runs end to end; the fileset describes what is on disk; bad input is refused."""

from __future__ import annotations

import json

import numpy as np
import pytest
import uproot

from symnplm.generation.presets import ALL_PROCESSES
from symnplm.generation.processes import BACKGROUNDS, SIGNAL_NAMES, get_process
from symnplm.generation.production import (
    GenerationConfig,
    load_fileset,
    plan_datasets,
)


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
