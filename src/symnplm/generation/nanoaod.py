"""Write detector-level events as NanoAOD-schema ROOT files with uproot.

The ``Events`` tree has the CMS NanoAOD branch names and types that coffea's
``NanoAODSchema`` expects (``nElectron``, ``Electron_pt``, ..., ``genWeight``,
``run``/``luminosityBlock``/``event``) and a ``Runs`` tree with ``genEventCount``,
``genEventSumw`` and ``genEventSumw2``. Collections that the parametric detector
does not simulate (photons, hadronic τ, large-R jets, ...) are written *empty*
together with every cross-reference index the schema knows about, so that
``NanoAODSchema`` builds all its cross-references without a warning and
processors that veto, e.g., τ_h or photons see empty collections instead of
failing.

As in NanoAOD, floats are stored with reduced mantissa precision where full
precision is meaningless (8 bits for generator-level kinematics as in NanoAOD,
10–12 for jets and angles); the lepton momenta keep 16 mantissa bits
(1.5×10⁻⁵ relative). Rounding is deterministic,
and so is the file: the creation time and UUIDs uproot would take from the clock
are fixed, so the same events give a bit-identical file.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import sys
import types
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import uproot
import uproot.writing._cascadetree

from symnplm.generation.detector import Collection, RecoEvents
from symnplm.io.files import atomic_path

__all__ = [
    "EMPTY_COLLECTIONS",
    "FIXED_TIMESTAMP",
    "MANTISSA_BITS",
    "METADATA_KEY",
    "UNMATCHED_INDICES",
    "events_arrays",
    "read_metadata",
    "read_runs",
    "round_mantissa",
    "write_file",
]

#: Object stored in every file with the generation metadata (JSON in a TObjString).
METADATA_KEY = "symnplm_metadata"
#: Timestamp written into every file instead of the wall clock.
FIXED_TIMESTAMP = _dt.datetime(2024, 1, 1, 0, 0, 0)
_FIXED_UUID = uuid.UUID("00000000-0000-0000-0000-000000000000")
_COMPRESSION = uproot.LZMA(9)

#: Mantissa bits kept per branch (float32 has 23); unlisted float branches keep 23.
MANTISSA_BITS: dict[str, int] = {
    "Electron_pt": 16,
    "Muon_pt": 16,
    "Electron_eta": 12,
    "Electron_phi": 12,
    "Muon_eta": 12,
    "Muon_phi": 12,
    "Electron_mass": 10,
    "Muon_mass": 10,
    "Electron_pfRelIso03_all": 8,
    "Muon_pfRelIso03_all": 8,
    "Jet_pt": 10,
    "Jet_eta": 10,
    "Jet_phi": 10,
    "Jet_mass": 8,
    "Jet_btagDeepFlavB": 8,
    "GenJet_pt": 8,
    "GenJet_eta": 8,
    "GenJet_phi": 8,
    "GenJet_mass": 8,
    "GenPart_pt": 8,
    "GenPart_eta": 8,
    "GenPart_phi": 8,
    "GenPart_mass": 8,
    "MET_pt": 12,
    "MET_phi": 10,
    "MET_sumEt": 8,
    "GenMET_pt": 12,
    "GenMET_phi": 10,
}

#: Collections written empty so that NanoAODSchema finds every cross-reference target.
EMPTY_COLLECTIONS: dict[str, dict[str, str]] = {
    "Photon": {
        "pt": "f4",
        "eta": "f4",
        "phi": "f4",
        "electronIdx": "i4",
        "genPartIdx": "i4",
        "jetIdx": "i4",
    },
    "Tau": {
        "pt": "f4",
        "eta": "f4",
        "phi": "f4",
        "mass": "f4",
        "charge": "i4",
        "genPartIdx": "i4",
        "jetIdx": "i4",
    },
    "FatJet": {
        "pt": "f4",
        "eta": "f4",
        "phi": "f4",
        "mass": "f4",
        "genJetAK8Idx": "i4",
        "subJetIdx1": "i4",
        "subJetIdx2": "i4",
    },
    "SubJet": {"pt": "f4", "eta": "f4", "phi": "f4", "mass": "f4"},
    "GenJetAK8": {"pt": "f4", "eta": "f4", "phi": "f4", "mass": "f4"},
    "LowPtElectron": {
        "pt": "f4",
        "eta": "f4",
        "phi": "f4",
        "mass": "f4",
        "charge": "i4",
        "electronIdx": "i4",
        "genPartIdx": "i4",
        "photonIdx": "i4",
    },
    "FsrPhoton": {"pt": "f4", "eta": "f4", "phi": "f4", "muonIdx": "i4"},
    "GenVisTau": {
        "pt": "f4",
        "eta": "f4",
        "phi": "f4",
        "mass": "f4",
        "charge": "i4",
        "genPartIdxMother": "i4",
    },
}
#: Index branches of simulated collections that point to an empty collection (always -1).
UNMATCHED_INDICES: dict[str, tuple[str, ...]] = {
    "Electron": ("photonIdx",),
    "Muon": ("fsrPhotonIdx",),
}


def round_mantissa(values: np.ndarray, bits: int) -> np.ndarray:
    """Round float32 ``values`` to ``bits`` mantissa bits (round half up on the magnitude)."""
    x = np.ascontiguousarray(values, dtype=np.float32)
    if bits >= 23:
        return x
    drop = 23 - bits
    raw = x.view(np.uint32).astype(np.uint64)
    raw = ((raw + (1 << (drop - 1))) >> drop) << drop
    out = raw.astype(np.uint32).view(np.float32)
    # Keep inf/nan untouched (rounding could turn the largest finite numbers into inf).
    return np.where(np.isfinite(x), out, x)


def _typed(name: str, values: np.ndarray) -> np.ndarray:
    if values.dtype.kind == "f":
        return round_mantissa(values, MANTISSA_BITS.get(name, 23))
    if values.dtype.kind == "i" and values.dtype != np.int32:
        return values.astype(np.int32)
    return values


def _jagged(name: str, col: Collection) -> ak.Array:
    contents = {f: _typed(f"{name}_{f}", v) for f, v in col.fields.items()}
    flat = ak.zip(contents, depth_limit=1) if contents else None
    return ak.unflatten(flat, col.counts)


def events_arrays(
    events: RecoEvents, event_ids: Mapping[str, np.ndarray], gen_weight: np.ndarray
) -> dict[str, Any]:
    """The ``Events`` branches as a dict that ``uproot`` writes with NanoAOD names."""
    n = events.n_events
    out: dict[str, Any] = {
        "run": np.asarray(event_ids["run"], dtype=np.uint32),
        "luminosityBlock": np.asarray(event_ids["luminosityBlock"], dtype=np.uint32),
        "event": np.asarray(event_ids["event"], dtype=np.uint64),
        "genWeight": np.asarray(gen_weight, dtype=np.float32),
    }
    for name, col in events.collections.items():
        fields = dict(col.fields)
        for idx in UNMATCHED_INDICES.get(name, ()):
            fields[idx] = np.full(len(next(iter(fields.values()))), -1, dtype=np.int32)
        out[name] = _jagged(name, Collection(col.counts, fields))
    for name, spec in EMPTY_COLLECTIONS.items():
        empty = Collection(
            np.zeros(n, dtype=np.int64), {f: np.zeros(0, dtype=dt) for f, dt in spec.items()}
        )
        out[name] = _jagged(name, empty)
    for name, values in events.met.items():
        out[name] = _typed(name, np.asarray(values, dtype=np.float32))
    return out


@contextlib.contextmanager
def _fixed_clock() -> Iterator[None]:
    """Make uproot stamp files with FIXED_TIMESTAMP instead of the current time."""

    class _Fixed(_dt.datetime):
        @classmethod
        def now(cls, tz: Any = None) -> _dt.datetime:
            return FIXED_TIMESTAMP

    stub = types.SimpleNamespace(datetime=_Fixed)
    # Every uproot writing module that stamps keys with datetime.datetime.now().
    modules = [
        m
        for name, m in sorted(sys.modules.items())
        if name.startswith("uproot.writing") and getattr(m, "datetime", None) is _dt
    ]
    saved = [m.datetime for m in modules]
    try:
        for m in modules:
            m.datetime = stub
        yield
    finally:
        for m, original in zip(modules, saved, strict=False):
            m.datetime = original


def _write_tree(f: Any, name: str, branches: Mapping[str, Any]) -> None:
    types = {k: (v.type if isinstance(v, ak.Array) else v.dtype) for k, v in branches.items()}
    tree = f.mktree(name, types)
    tree.extend(dict(branches))


def write_file(
    path: str | os.PathLike[str],
    events: dict[str, Any],
    runs: Mapping[str, Any],
    metadata: Mapping[str, Any],
) -> Path:
    """Write one NanoAOD-schema file atomically (temporary name, then rename).

    Parameters
    ----------
    path
        Destination; never exists half-written.
    events
        Branches from :func:`events_arrays` (may describe zero events).
    runs
        ``genEventCount``, ``genEventSumw``, ``genEventSumw2`` of all *generated* events.
    metadata
        JSON-serialisable description stored as the ``symnplm_metadata`` TObjString.
    """
    path = Path(path)
    runs_tree = {
        "run": np.array([1], dtype=np.uint32),
        "genEventCount": np.array([runs["genEventCount"]], dtype=np.int64),
        "genEventSumw": np.array([runs["genEventSumw"]], dtype=np.float64),
        "genEventSumw2": np.array([runs["genEventSumw2"]], dtype=np.float64),
    }
    # Written through a file object: uproot then records a fixed name ("dynamic.root")
    # instead of the random temporary file name, keeping the bytes reproducible.
    with atomic_path(path) as tmp, _fixed_clock(), open(tmp, "w+b") as sink:
        with uproot.recreate(
            sink, compression=_COMPRESSION, uuid_function=lambda: _FIXED_UUID
        ) as f:
            # mktree, not item assignment: uproot >= 5.6 writes a dict as an RNTuple.
            _write_tree(f, "Events", events)
            _write_tree(f, "Runs", runs_tree)
            f[METADATA_KEY] = json.dumps(metadata, sort_keys=True)
    return path


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The metadata stored by :func:`write_file`; ValueError naming the file if absent."""
    with uproot.open(path) as f:
        if METADATA_KEY not in f:
            raise ValueError(f"{path}: no {METADATA_KEY} object (not written by symnplm)")
        return json.loads(str(f[METADATA_KEY]))


def read_runs(path: str | os.PathLike[str]) -> dict[str, float]:
    """Sum of the ``Runs`` tree entries of one file."""
    with uproot.open(path) as f:
        if "Runs" not in f:
            raise ValueError(f"{path}: no Runs tree")
        runs = f["Runs"].arrays(["genEventCount", "genEventSumw", "genEventSumw2"], library="np")
    return {k: float(v.sum()) for k, v in runs.items()}
