"""A batch of Pythia event records as flat numpy arrays (one row per particle).

Pythia's ``nextBatch`` returns an awkward array of full event records; the
truth, jet and detector code works on flat arrays plus per-event offsets, which
numba loops and numpy vector operations both handle directly. Indices such as
``mother1`` stay *local* (within the event), as in Pythia.
"""

from __future__ import annotations

from dataclasses import dataclass

import awkward as ak
import numpy as np

__all__ = ["NEUTRINOS", "ParticleBatch", "pseudorapidity"]

#: Neutrino |PDG id|s (invisible to the detector).
NEUTRINOS = (12, 14, 16)


@dataclass(frozen=True)
class ParticleBatch:
    """Flat particle arrays for ``n_events`` events.

    Attributes
    ----------
    offsets
        ``offsets[k]:offsets[k+1]`` are the particles of event ``k``; length ``n_events + 1``.
    pdg_id, status, mother1, daughter1, daughter2
        Pythia particle properties (indices local to the event).
    px, py, pz, energy, mass
        Four-momentum components and mass in GeV.
    """

    offsets: np.ndarray
    pdg_id: np.ndarray
    status: np.ndarray
    mother1: np.ndarray
    daughter1: np.ndarray
    daughter2: np.ndarray
    px: np.ndarray
    py: np.ndarray
    pz: np.ndarray
    energy: np.ndarray
    mass: np.ndarray

    @classmethod
    def from_pythia(cls, events: ak.Array) -> ParticleBatch:
        """Build from the ``prt`` records of ``Pythia.nextBatch``."""
        prt = events.prt
        counts = ak.to_numpy(ak.num(prt)).astype(np.int64)
        offsets = np.zeros(len(counts) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        p = ak.flatten(prt.p)

        def flat(array: ak.Array, dtype: type) -> np.ndarray:
            return np.ascontiguousarray(ak.to_numpy(ak.flatten(array)), dtype=dtype)

        return cls(
            offsets=offsets,
            pdg_id=flat(prt.id, np.int32),
            status=flat(prt.status, np.int32),
            mother1=flat(prt.mother1, np.int32),
            daughter1=flat(prt.daughter1, np.int32),
            daughter2=flat(prt.daughter2, np.int32),
            px=np.ascontiguousarray(ak.to_numpy(p.px), dtype=np.float64),
            py=np.ascontiguousarray(ak.to_numpy(p.py), dtype=np.float64),
            pz=np.ascontiguousarray(ak.to_numpy(p.pz), dtype=np.float64),
            energy=np.ascontiguousarray(ak.to_numpy(p.e), dtype=np.float64),
            mass=flat(prt.m, np.float64),
        )

    @property
    def n_events(self) -> int:
        return len(self.offsets) - 1

    def select_events(self, mask: np.ndarray) -> ParticleBatch:
        """The events where ``mask`` (one bool per event) is True; indices stay local."""
        counts = np.diff(self.offsets)[mask]
        offsets = np.zeros(len(counts) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        per_particle = np.repeat(mask, np.diff(self.offsets))
        arrays = {
            f: getattr(self, f)[per_particle] for f in self.__dataclass_fields__ if f != "offsets"
        }
        return ParticleBatch(offsets=offsets, **arrays)

    @property
    def event_index(self) -> np.ndarray:
        """Event number (0-based within the batch) of every particle."""
        return np.repeat(np.arange(self.n_events), np.diff(self.offsets))

    @property
    def pt(self) -> np.ndarray:
        return np.hypot(self.px, self.py)

    @property
    def eta(self) -> np.ndarray:
        return pseudorapidity(self.px, self.py, self.pz)

    @property
    def phi(self) -> np.ndarray:
        return np.arctan2(self.py, self.px)

    @property
    def is_final(self) -> np.ndarray:
        """Stable particles (Pythia status > 0)."""
        return self.status > 0

    @property
    def is_visible(self) -> np.ndarray:
        """Stable particles other than neutrinos."""
        return self.is_final & ~np.isin(np.abs(self.pdg_id), NEUTRINOS)


def pseudorapidity(px: np.ndarray, py: np.ndarray, pz: np.ndarray) -> np.ndarray:
    """η = asinh(pz / pT); ±20 for particles along the beam (pT = 0)."""
    pt = np.hypot(px, py)
    with np.errstate(divide="ignore", invalid="ignore"):
        eta = np.arcsinh(pz / pt)
    return np.where(pt > 0, eta, np.copysign(20.0, pz))
