"""Efficiency-ratio maps ε_μ/ε_e from processor output, and the check that a map is independent.

A map is measured on the nominal ``emu`` + ``mue`` samples of an output directory
processed *without* a map (:func:`measure_from_output`), then applied to another
sample with ``EMuProcessor(efficiency=...)`` / ``symnplm process --efficiency-map``.
The map records the content fingerprints of the files it was measured on and their
event parity; :func:`check_independent` refuses to apply it to the same events (see
:mod:`symnplm.physics.efficiency` for why).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from symnplm.io.samples import EmptySelectionError, load_sample, read_manifest
from symnplm.physics.efficiency import EfficiencyRatio, measure_efficiency_ratio
from symnplm.processors.inputs import InputError

_LEPTONS = ("pt_e", "eta_e", "pt_mu", "eta_mu")

__all__ = ["check_independent", "measure_from_output", "sample_description"]


def sample_description(
    fileset: Mapping[str, Mapping[str, Any]], datasets: Sequence[str], events: str
) -> dict[str, Any]:
    """What a sample is made of: datasets, file fingerprints (path → content hash), parity."""
    files = {}
    for d in datasets:
        entry = fileset.get(d, {})
        prints = entry.get("fingerprints") or {}
        for path in entry.get("files", {}):
            files[path] = prints.get(path)
    return {"datasets": list(datasets), "files": files, "events": events}


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
        Output directory of :func:`~symnplm.processors.runner.process_fileset`,
        processed without an efficiency map.
    datasets
        Datasets to combine (default: all in the output), e.g. the data.
    variation
        Which variation's events to use.
    **options
        Passed to :func:`~symnplm.physics.efficiency.measure_efficiency_ratio` (bin edges,
        bootstrap replicas, seed, …).
    """
    manifest = read_manifest(outdir)
    if manifest.get("config", {}).get("efficiency"):
        raise ValueError(
            f"{outdir} was processed with an efficiency map: measure the map on an output "
            "processed without one"
        )
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
    measured_on = {
        "input": str(outdir),
        **sample_description(
            manifest.get("fileset", {}),
            datasets,
            manifest.get("config", {}).get("events", "all"),
        ),
        "selection": {k: manifest.get("config", {}).get(k) for k in ("electron", "muon")},
    }
    return measure_efficiency_ratio(
        x[:, 0],
        x[:, 1],
        x[:, 2],
        x[:, 3],
        np.concatenate(weights),
        measured_on=measured_on,
        **options,
    )


def _parities_overlap(a: str, b: str) -> bool:
    return a == "all" or b == "all" or a == b


def check_independent(
    ratio: EfficiencyRatio, fileset: Mapping[str, Mapping[str, Any]], events: str
) -> None:
    """Raise :class:`InputError` if ``ratio`` was measured on events of ``fileset``.

    Files are the same when their content fingerprints agree (or, without
    fingerprints, their paths); the events overlap unless the map and this run use
    opposite event-number parities. A map without a record of what it was measured
    on (made elsewhere) passes: its independence is the user's statement.
    """
    source = ratio.measured_on
    if not source:
        return
    if not _parities_overlap(source.get("events", "all"), events):
        return
    theirs = source.get("files") or {}
    their_prints = {p for p in theirs.values() if p}
    shared = []
    for dataset, entry in fileset.items():
        prints = entry.get("fingerprints") or {}
        for path in entry.get("files", {}):
            fp = prints.get(path)
            if (fp is not None and fp in their_prints) or path in theirs:
                shared.append(f"{path} ({dataset})")
    if shared:
        raise InputError(
            f"efficiency map {ratio.source} was measured on events this run processes "
            f"({len(shared)} file(s), e.g. {shared[0]}; map events: "
            f"{source.get('events', 'all')}, this run: {events}): the map would absorb part of "
            "any asymmetry they hold. Measure it on an independent sample (another "
            "production, a control region, or the other event parity: --events odd / even), "
            "or pass --allow-map-overlap to apply it anyway"
        )
