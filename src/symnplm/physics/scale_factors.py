"""Lepton scale factors from correctionlib JSON files (the experiments' POG format).

A :class:`LeptonScaleFactor` is one correction of a correctionlib file evaluated at the
selected electron or muon of each simulated event: its real inputs are taken by name
from the lepton (``pt`` in GeV, ``eta``, ``abseta``), its string inputs are fixed
(e.g. ``scale_factors=nominal``, ``ValType=sf``). The processor multiplies simulation
weights by every scale factor it is given; data are left alone.

>>> LeptonScaleFactor.parse("muon:sf.json:NUM_TightID:scale_factors=nominal").fixed
{'scale_factors': 'nominal'}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["LEPTON_INPUTS", "LeptonScaleFactor"]

#: real inputs a scale factor may have, and how they come from the lepton
LEPTON_INPUTS = ("pt", "eta", "abseta")


@dataclass
class LeptonScaleFactor:
    """One correction of a correctionlib file, evaluated per selected lepton.

    Parameters
    ----------
    flavour
        ``"electron"`` or ``"muon"``: which selected lepton it is evaluated at.
    path
        The correctionlib JSON file.
    name
        The correction's name in it.
    fixed
        Values of its string (or other non-lepton) inputs, e.g. ``{"ValType": "sf"}``.
    """

    flavour: str
    path: str
    name: str
    fixed: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.flavour not in ("electron", "muon"):
            raise ValueError(
                f"scale factor flavour must be 'electron' or 'muon', got {self.flavour!r}"
            )
        self.path = str(self.path)

    @classmethod
    def parse(cls, spec: str) -> LeptonScaleFactor:
        """``FLAVOUR:FILE:CORRECTION[:KEY=VALUE...]``, as the command line takes it."""
        parts = spec.split(":")
        if len(parts) < 3 or not all(parts[:3]):
            raise ValueError(
                f"scale factor {spec!r}: expected FLAVOUR:FILE:CORRECTION[:KEY=VALUE...]"
            )
        fixed = {}
        for item in parts[3:]:
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise ValueError(f"scale factor {spec!r}: {item!r} is not KEY=VALUE")
            fixed[key] = value
        return cls(parts[0], parts[1], parts[2], fixed)

    def __getstate__(self) -> dict[str, Any]:
        # the compiled correction is rebuilt where it is used (each worker)
        return {k: v for k, v in self.__dict__.items() if k != "_compiled"}

    def _correction(self) -> Any:
        if "_compiled" not in self.__dict__:
            self.__dict__["_compiled"] = self._compile()
        return self.__dict__["_compiled"]

    def _compile(self) -> Any:
        import correctionlib

        path = Path(self.path)
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: no such scale-factor file") from None
        try:
            cset = correctionlib.CorrectionSet.from_string(text)
        except Exception as err:  # correctionlib raises several types
            raise ValueError(f"{path}: not a correctionlib JSON file ({err})") from None
        names = sorted(cset.keys())
        if self.name not in names:
            raise KeyError(f"{path}: no correction {self.name!r}; it has {names}")
        correction = cset[self.name]
        unknown = [
            v.name for v in correction.inputs if v.name not in LEPTON_INPUTS + tuple(self.fixed)
        ]
        if unknown:
            raise ValueError(
                f"{path}: correction {self.name!r} has input(s) {unknown}, neither taken from "
                f"the lepton ({list(LEPTON_INPUTS)}) nor fixed (FLAVOUR:FILE:NAME:KEY=VALUE)"
            )
        return correction

    def check(self) -> None:
        """Fail now, naming the file and correction, if it cannot be evaluated."""
        self._correction()

    def __call__(self, pt: Any, eta: Any) -> np.ndarray:
        """The scale factor of each lepton at (pT [GeV], η)."""
        correction = self._correction()
        pt = np.asarray(pt, dtype=np.float64)
        eta = np.asarray(eta, dtype=np.float64)
        lepton = {"pt": pt, "eta": eta, "abseta": np.abs(eta)}
        args = [
            lepton[v.name] if v.name in lepton else self.fixed[v.name] for v in correction.inputs
        ]
        return np.asarray(correction.evaluate(*args), dtype=np.float64)

    def to_dict(self) -> dict[str, Any]:
        """For provenance (the processor's configuration)."""
        return {"flavour": self.flavour, "path": self.path, "name": self.name, "fixed": self.fixed}
