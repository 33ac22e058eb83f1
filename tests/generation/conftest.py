"""Shared tiny productions for the generation tests (seconds, not minutes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from symnplm.generation.presets import ALL_PROCESSES
from symnplm.generation.production import GenerationConfig, ProductionReport, produce


@pytest.fixture(scope="session")
def tiny_config() -> GenerationConfig:
    """Every process, 40 events each, no skim (every generated event is written)."""
    return GenerationConfig(
        processes=ALL_PROCESSES,
        luminosity_fb=2.0,
        n_events=40,
        events_per_file=20,  # two files per dataset: chunking is exercised
        skim_pt_min=None,
        seed=7,
    )


@pytest.fixture(scope="session")
def tiny_production(
    tmp_path_factory: pytest.TempPathFactory, tiny_config: GenerationConfig
) -> ProductionReport:
    """The files of ``tiny_config``, generated once per test session."""
    out: Path = tmp_path_factory.mktemp("tiny_production")
    return produce(tiny_config, out, workers=1, progress=False)
