"""Measure the efficiency-ratio map ε_μ/ε_e from a processor output directory.

The map is measured on the nominal ``emu`` + ``mue`` samples (unweighted by any
map: process without ``--efficiency-map`` first), then used in a second pass with
``EMuProcessor(efficiency=...)`` / ``symnplm process --efficiency-map``. See
:mod:`symnplm.physics.efficiency` for the method and its caveat about signal.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from symnplm.physics.efficiency import EfficiencyRatio, measure_efficiency_ratio
from symnplm.samples import EmptySelectionError, load_sample, read_manifest

_LEPTONS = ("pt_e", "eta_e", "pt_mu", "eta_mu")


def measure_from_output(
    outdir: str | os.PathLike[str],
    datasets: Sequence[str] | None = None,
    variation: str = "nominal",
    **options: Any,
) -> EfficiencyRatio:
    """R^ε = N_μ/N_e in (pT, |η|) bins of the ``emu`` + ``mue`` events of ``datasets``.

    Parameters
    ----------
    outdir
        Output directory of :func:`~symnplm.processors.runner.process_fileset`.
    datasets
        Datasets to combine (default: all in the output), e.g. the data.
    variation
        Which variation's events to use.
    **options
        Passed to :func:`~symnplm.physics.efficiency.measure_efficiency_ratio` (bin edges, …).
    """
    manifest = read_manifest(outdir)
    available = sorted({s["dataset"] for s in manifest["samples"]})
    datasets = list(datasets) if datasets else available
    unknown = [d for d in datasets if d not in available]
    if unknown:
        raise KeyError(f"{outdir}: no dataset(s) {unknown}; the output has {available}")
    columns: list[np.ndarray] = []
    weights: list[np.ndarray] = []
    for dataset in datasets:
        for category in ("emu", "mue"):
            try:
                sample = load_sample(outdir, dataset, category, variation, _LEPTONS)
            except EmptySelectionError:
                continue
            columns.append(sample.features)
            weights.append(sample.weights)
    if not columns:
        raise ValueError(f"{outdir}: no emu or mue event in datasets {datasets} to measure from")
    x = np.concatenate(columns)
    return measure_efficiency_ratio(
        x[:, 0], x[:, 1], x[:, 2], x[:, 3], np.concatenate(weights), **options
    )
