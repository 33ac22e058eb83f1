"""Runs: from a run description to a calibrated result directory.

``config``
    The run description (YAML/TOML), validated: samples, features, statistic,
    calibration, injection, output.
``runs``
    Samples → test → calibration → booking (:func:`run`, :func:`emu_vs_mue`).
``campaign``
    Null replicas as resumable batches on a dask cluster.
``cluster``
    The dask clusters they (and the processor's dask executor) run on.
``scan``
    Region scans: many cells, one relabelling per replica, a global p-value.
``sensitivity``
    Median significance against signal strength (``symnplm sensitivity``).
``closure``
    The e-mu vs mu-e closure study on detector-level samples (``symnplm closure``).
``demo``
    The main job on the embedded dataset (``symnplm demo``).
``progress``
    Progress bars for long work.

The entry points of :mod:`~symnplm.workflow.runs` are importable from here
(``from symnplm import workflow; workflow.run(cfg)``); they load torch on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

_RUNS = (
    "RunInputs",
    "RunOutcome",
    "build_test",
    "emu_vs_mue",
    "learn_nuisances",
    "load_inputs",
    "load_processed",
    "map_reweighting",
    "map_uncertainty",
    "prepare_samples",
    "run",
    "scale_features",
    "unweight",
)
__all__ = sorted(_RUNS)


def __getattr__(name: str) -> Any:
    if name not in _RUNS:
        raise AttributeError(f"module 'symnplm.workflow' has no attribute {name!r}")
    return getattr(importlib.import_module("symnplm.workflow.runs"), name)
