"""Event generation: Pythia 8 e-mu samples, a parametric detector, NanoAOD-schema output.

Modules, in the order the data flows:

``processes``
    The pp → eμ processes: Pythia settings, forced decays, K-factors, the LFV signal.
``event_generator``
    A configured Pythia 8 instance (MPI off, isotropic τ decays); ``tw_process`` adds
    g b → t W, which Pythia lacks.
``event_record``, ``truth``
    Pythia events as flat arrays; NanoAOD ``statusFlags``, the pruned ``GenPart`` list,
    τ-decay counting, FSR dressing.
``jets``, ``detector_config``, ``detector``
    Anti-kT clustering and the parametric ATLAS-like detector with e/μ asymmetry knobs.
``nanoaod``
    NanoAOD-schema ROOT files (uproot), bit-for-bit reproducible.
``production``, ``presets``, ``cli``
    Chunked, seeded, resumable, multi-process production, the coffea fileset, the
    ``demo`` / ``paper`` presets and ``symnplm generate``.
"""

from __future__ import annotations

import importlib
from typing import Any

# Imported on first use, so that ``symnplm --help`` does not load Pythia and numba.
_EXPORTS = {
    "DetectorConfig": "detector_config",
    "EfficiencyMap": "detector_config",
    "GenerationConfig": "production",
    "all_processes": "processes",
    "get_process": "processes",
    "produce": "production",
    "signal_processes": "processes",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'symnplm.generation' has no attribute {name!r}")
    return getattr(importlib.import_module(f"symnplm.generation.{_EXPORTS[name]}"), name)
