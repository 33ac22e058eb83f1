"""Named generation set-ups: the embedded ``demo`` dataset and the ``paper`` sample size.

``demo``
    Background at 5 fb⁻¹ (weights ≈ 1: about as many events as data would have), the
    four LFV signal samples at B(H → τℓ) = 1% with the luminosity equivalent of
    20 fb⁻¹ — the size of the paper's 456-event signal template, i.e. weight ≈ 0.25
    when normalised to the 5 fb⁻¹ background. Small enough to commit
    (``datasets/demo``, < 20 MB): the ``GenJet`` collection is not written; regenerated
    bit for bit by ``symnplm generate --preset demo``.
``paper``
    Everything at 20 fb⁻¹ (arXiv:2401.09530 Sec. III A: ≈ 2.2×10⁵ selected e-mu
    background events, 456 signal events at B = 1%); written to ``datasets/paper``
    (not committed).
"""

from __future__ import annotations

from typing import Any

from symnplm.generation.processes import BACKGROUNDS, SIGNAL_NAMES

__all__ = ["ALL_PROCESSES", "PAPER_SEED", "PRESETS", "PRESET_OUTPUT", "preset"]

ALL_PROCESSES: tuple[str, ...] = (*BACKGROUNDS, *SIGNAL_NAMES)
#: The arXiv number of the paper, as master seed.
PAPER_SEED = 240109530

PRESETS: dict[str, dict[str, Any]] = {
    "demo": {
        "processes": ALL_PROCESSES,
        "luminosity_fb": 5.0,
        "signal_luminosity_fb": 20.0,
        "lfv_branching_ratio": 0.01,
        "seed": PAPER_SEED,
        "events_per_file": 400_000,
        "gen_jets": False,
    },
    "paper": {
        "processes": ALL_PROCESSES,
        "luminosity_fb": 20.0,
        "signal_luminosity_fb": 20.0,
        "lfv_branching_ratio": 0.01,
        "seed": PAPER_SEED,
        "events_per_file": 400_000,
    },
}
#: Output directory of each preset, relative to the repository root.
PRESET_OUTPUT: dict[str, str] = {"demo": "datasets/demo", "paper": "datasets/paper"}


def preset(name: str) -> dict[str, Any]:
    """A copy of the keyword arguments of preset ``name`` for ``GenerationConfig``."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; known presets: {', '.join(PRESETS)}")
    return dict(PRESETS[name])
