"""Hand-built NanoAOD-schema ROOT files (written with uproot) for the processor tests.

Imported by the test modules (pytest puts this directory on ``sys.path``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import uproot

ELECTRON_MASS = 0.000511
MUON_MASS = 0.10566


@dataclass
class Lepton:
    """A reconstructed lepton; defaults pass every default cut."""

    pt: float
    eta: float
    phi: float
    charge: int
    iso: float = 0.05
    ident: int = 4  # Electron_cutBased (4 = tight) or Muon_tightId (1)
    mva: bool = True  # Electron MVA working point (v9 mvaFall17V2Iso_WP90, v12 mvaIso_WP90)
    iso04: float | None = None  # Muon_pfRelIso04_all (default: iso)


@dataclass
class Event:
    """One event of a hand-built file."""

    electrons: Sequence[Lepton] = ()
    muons: Sequence[Lepton] = ()
    met: tuple[float, float] = (0.0, 0.0)
    # (pt, eta, phi) or (pt, eta, phi, b-tag score); the score defaults to 0
    jets: Sequence[tuple[float, ...]] = ()
    gen_weight: float = 1.0
    puppi_met: tuple[float, float] | None = None  # PuppiMET (pt, phi), default: met
    # further flat branches, e.g. {"HLT_IsoMu24": True, "luminosityBlock": 7}
    extra: dict[str, Any] = field(default_factory=dict)


#: What differs between the NanoAOD versions these files imitate: the electron MVA
#: working-point name, the type of Electron_cutBased and the Runs-tree sum of weights.
VERSIONS: dict[str, dict[str, Any]] = {
    "v6": {"mva": "mvaFall17V2Iso_WP90", "cut_based": np.int32, "sumw": "genEventSumw_"},
    "v9": {"mva": "mvaFall17V2Iso_WP90", "cut_based": np.int32, "sumw": "genEventSumw"},
    "v12": {"mva": "mvaIso_WP90", "cut_based": np.uint8, "sumw": "genEventSumw"},
}


def _collection(leptons: list[Sequence[Lepton]], mass: float, pdg: int, ids: dict[str, Any]):
    def col(get, dtype):
        return ak.values_astype(ak.Array([[get(lep) for lep in ev] for ev in leptons]), dtype)

    out = {
        "pt": col(lambda lep: lep.pt, np.float32),
        "eta": col(lambda lep: lep.eta, np.float32),
        "phi": col(lambda lep: lep.phi, np.float32),
        "mass": col(lambda lep: mass, np.float32),
        "charge": col(lambda lep: lep.charge, np.int32),
        "pdgId": col(lambda lep: -pdg * lep.charge, np.int32),
        "pfRelIso03_all": col(lambda lep: lep.iso, np.float32),
    }
    return out | {name: col(get, dtype) for name, (get, dtype) in ids.items()}


def write_nanoaod(
    path: Path,
    events: Iterable[Event],
    *,
    drop: Iterable[str] = (),
    mc: bool = True,
    sumw: float | None = None,
    runs: bool = True,
    first_event: int = 1,
    version: str = "v9",
) -> Path:
    """Write ``events`` as a NanoAOD-like ROOT file (TTrees ``Events`` and ``Runs``).

    ``drop`` removes branches (e.g. ``"Muon_pfRelIso03_all"``, or ``"Jet"`` for the
    whole jet collection); ``sumw`` is the Runs-tree genEventSumw (default Σ genWeight),
    written for simulation (``mc``) unless ``runs`` is false. ``version`` (a key of
    :data:`VERSIONS`) picks the branch names and types of that NanoAOD version.
    """
    events = list(events)
    n = len(events)
    drop = set(drop)
    names = VERSIONS[version]
    electron = _collection(
        [e.electrons for e in events],
        ELECTRON_MASS,
        11,
        {
            "cutBased": (lambda lep: lep.ident, names["cut_based"]),
            names["mva"]: (lambda lep: lep.mva, np.bool_),
        },
    )
    muon = _collection(
        [e.muons for e in events],
        MUON_MASS,
        13,
        {
            "tightId": (lambda lep: lep.ident, np.bool_),
            "mediumId": (lambda lep: True, np.bool_),
            "pfRelIso04_all": (lambda lep: lep.iso if lep.iso04 is None else lep.iso04, np.float32),
        },
    )
    jets = {
        k: ak.values_astype(ak.Array([[(*j, 0.0)[i] for j in e.jets] for e in events]), np.float32)
        for i, k in enumerate(("pt", "eta", "phi", "btagDeepFlavB"))
    }
    jets["mass"] = ak.values_astype(ak.full_like(jets["pt"], 5.0), np.float32)
    branches: dict[str, Any] = {
        "run": np.ones(n, dtype=np.uint32),
        "luminosityBlock": np.ones(n, dtype=np.uint32),
        "event": np.arange(first_event, first_event + n, dtype=np.uint64),
        "MET_pt": np.array([e.met[0] for e in events], dtype=np.float32),
        "MET_phi": np.array([e.met[1] for e in events], dtype=np.float32),
        "PuppiMET_pt": np.array([(e.puppi_met or e.met)[0] for e in events], dtype=np.float32),
        "PuppiMET_phi": np.array([(e.puppi_met or e.met)[1] for e in events], dtype=np.float32),
    }
    for name, fields in (("Electron", electron), ("Muon", muon), ("Jet", jets)):
        kept = {k: v for k, v in fields.items() if f"{name}_{k}" not in drop}
        if name not in drop and kept:
            branches[name] = ak.zip(kept)
    if mc:
        branches["genWeight"] = np.array([e.gen_weight for e in events], dtype=np.float32)
    for key in sorted({k for e in events for k in e.extra}):
        missing = [i for i, e in enumerate(events) if key not in e.extra]
        if missing:
            raise ValueError(f"extra branch {key!r} missing in events {missing}")
        values = np.asarray([e.extra[key] for e in events])
        # a standard branch (run, luminosityBlock) keeps its NanoAOD type
        branches[key] = values.astype(branches[key].dtype) if key in branches else values
    branches = {k: v for k, v in branches.items() if k not in drop}
    path.parent.mkdir(parents=True, exist_ok=True)
    with uproot.recreate(path) as f:
        f.mktree("Events", branches)
        if mc and runs:
            total = float(sum(e.gen_weight for e in events)) if sumw is None else sumw
            f.mktree("Runs", {"run": np.array([1], np.uint32), names["sumw"]: np.array([total])})
    return path


def write_fileset(path: Path, datasets: Mapping[str, Mapping[str, Any]]) -> Path:
    """A coffea fileset JSON: ``{name: {"files": [...], "metadata": {...}}}``."""
    entries = {
        name: {"files": {str(f): "Events" for f in d["files"]}, "metadata": d.get("metadata", {})}
        for name, d in datasets.items()
    }
    path.write_text(json.dumps(entries, indent=1))
    return path
