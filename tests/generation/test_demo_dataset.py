"""The committed demo dataset is complete, small, and what the demo preset generates today."""

from __future__ import annotations

from pathlib import Path

import pytest
import uproot

from symnplm.generation.presets import PRESET_OUTPUT, preset
from symnplm.generation.production import (
    GenerationConfig,
    dataset_metadata,
    plan_datasets,
)
from symnplm.io.filesets import load_fileset

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / PRESET_OUTPUT["demo"]
MAX_BYTES = 20 * 1024 * 1024


@pytest.fixture(scope="module")
def demo_fileset() -> dict:
    path = DEMO / "fileset.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} missing: run `symnplm generate --preset demo`")
    return load_fileset(path)


def test_demo_is_small_enough_for_git():
    total = sum(p.stat().st_size for p in DEMO.rglob("*") if p.is_file())
    assert total <= MAX_BYTES


def test_demo_matches_the_current_preset(demo_fileset):
    """Changing the demo preset, a process definition or a detector default changes
    config_hash: then regenerate the demo (delete it, ``symnplm generate --preset demo``)."""
    config = GenerationConfig(**preset("demo"))
    plans = {p.name: p for p in plan_datasets(config)}
    assert set(demo_fileset) == set(plans)
    for name, plan in plans.items():
        expected = dataset_metadata(plan, config)["config_hash"]
        assert demo_fileset[name]["metadata"]["config_hash"] == expected, name
        assert len(demo_fileset[name]["files"]) == len(plan.chunk_sizes())


def test_demo_files_exist_and_count_their_events(demo_fileset):
    for name, entry in demo_fileset.items():
        generated = 0
        for path in entry["files"]:
            with uproot.open(path) as f:
                generated += int(f["Runs"]["genEventCount"].array(library="np").sum())
        assert generated == entry["metadata"]["n_generated"], name
