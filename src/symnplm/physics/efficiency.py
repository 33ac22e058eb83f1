"""Efficiency-ratio maps R^ε(pT, |η|) = ε_μ / ε_e that restore the e ↔ μ symmetry.

Electrons and muons are reconstructed, identified and isolated with different
efficiencies, so even without new physics the ``emu`` and ``mue`` samples differ.
In an e-mu event the yield is proportional to ε_e(p_e) ε_μ(p_μ); weighting every
event by w = R^ε(p_e) = ε_μ(p_e)/ε_e(p_e) turns it into ε_μ(p_e) ε_μ(p_μ), which is
symmetric under e ↔ μ, so ``emu`` and ``mue`` become comparable again (ATLAS,
arXiv:1604.07730; seed 000, backup slides).

Measurement from data
---------------------
R^ε is measured in (pT, |η|) bins of the combined (``emu`` + ``mue``) sample as
N_μ / N_e, the (weighted) number of muons over the number of electrons in each
bin. Because each count also contains the efficiency of the *other* lepton of the
event, the plain ratio equals ε_μ/ε_e only up to a bin-dependent factor (the
partner's average efficiency). :func:`measure_efficiency_ratio` therefore iterates

    R ← R · N_μ^w / N_e^w,   with weights w = R(electron),

(in half steps after the first), which starts from the plain N_μ/N_e and
converges to the map for which the weighted electron and muon spectra agree in
every bin — the true ε_μ/ε_e, up to one overall constant, whenever the
underlying sample is e ↔ μ symmetric. The
constant is fixed by keeping the total weighted yield equal to the unweighted one.

Caveat: the measurement assumes that the combined sample is e ↔ μ symmetric apart
from efficiencies. A lepton-flavour-violating signal in the same data (e.g.
H → τe, τ → μνν) is partly absorbed into the map and diluted; measure the map in a
control region or on a sample where the signal is negligible, or check that the
map is stable when the signal region (e.g. 100 < m_coll < 150 GeV) is excluded.

Storage
-------
Maps are correctionlib (schema v2) JSON: a ``CorrectionSet`` with one correction
(default name ``efficiency_ratio``) with inputs ``pt`` and ``abseta`` (real), a
``multibinning`` node and ``clamp`` flow (outside the edges, the nearest bin).
User-made maps are accepted if their inputs are named ``pt`` and ``abseta`` or
``eta`` (any node type).
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from symnplm.fileio import atomic_path

#: Default pT bin edges (GeV); values beyond the last edge use the last bin.
DEFAULT_PT_EDGES: tuple[float, ...] = (
    15.0,
    20.0,
    25.0,
    30.0,
    40.0,
    50.0,
    70.0,
    100.0,
    200.0,
    6500.0,
)
#: Default |η| bin edges; 1.2 is the barrel/endcap boundary of the scale nuisances.
DEFAULT_ABSETA_EDGES: tuple[float, ...] = (0.0, 0.8, 1.2, 1.6, 2.0, 2.5)
DEFAULT_NAME = "efficiency_ratio"


@dataclass(frozen=True)
class EfficiencyRatio:
    """R^ε = ε_μ/ε_e as a correctionlib correction; call it with (pt, eta) of electrons.

    Parameters
    ----------
    json_text
        A correctionlib CorrectionSet (schema v2) as JSON text.
    name
        Name of the correction inside the set.
    source
        Where it came from (a file path or ``"measured"``), for provenance.
    measurement
        For measured maps: bin counts and convergence information.
    """

    json_text: str
    name: str = DEFAULT_NAME
    source: str = "<memory>"
    measurement: dict[str, Any] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        inputs = [v.name for v in self._correction.inputs]
        if "pt" not in inputs or not ({"abseta", "eta"} & set(inputs)) or len(inputs) != 2:
            raise ValueError(
                f"{self.source}: correction {self.name!r} has inputs {inputs}; an efficiency "
                "ratio map needs exactly 'pt' and 'abseta' (or 'eta')"
            )

    @functools.cached_property
    def _correction(self) -> Any:
        import correctionlib

        try:
            cset = correctionlib.CorrectionSet.from_string(self.json_text)
        except Exception as err:  # correctionlib raises RuntimeError / ValueError variants
            raise ValueError(f"{self.source}: not a valid correctionlib JSON ({err})") from None
        names = sorted(cset.keys())
        if self.name not in names:
            raise KeyError(f"{self.source}: no correction named {self.name!r}; has {names}")
        return cset[self.name]

    def __getstate__(self) -> dict[str, Any]:
        # the compiled correction is rebuilt on demand (in each worker)
        return {k: v for k, v in self.__dict__.items() if k != "_correction"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def __call__(self, pt: Any, eta: Any) -> np.ndarray:
        """R^ε at the given electron pT (GeV) and η (its absolute value is taken if needed)."""
        pt = np.asarray(pt, dtype=np.float64)
        eta = np.asarray(eta, dtype=np.float64)
        args = {"pt": pt, "abseta": np.abs(eta), "eta": eta}
        return np.asarray(
            self._correction.evaluate(*(args[v.name] for v in self._correction.inputs)),
            dtype=np.float64,
        )

    @classmethod
    def from_bins(
        cls,
        pt_edges: Sequence[float],
        abseta_edges: Sequence[float],
        values: Any,
        name: str = DEFAULT_NAME,
        description: str = "efficiency ratio eps_mu/eps_e",
        source: str = "<memory>",
        measurement: dict[str, Any] | None = None,
    ) -> EfficiencyRatio:
        """A binned map: ``values[i, j]`` for pT bin i and |η| bin j (clamped outside the edges)."""
        import correctionlib.schemav2 as cs

        pt_edges = [float(x) for x in pt_edges]
        abseta_edges = [float(x) for x in abseta_edges]
        values = np.asarray(values, dtype=np.float64)
        expected = (len(pt_edges) - 1, len(abseta_edges) - 1)
        if values.shape != expected:
            raise ValueError(
                f"efficiency ratio values have shape {values.shape}, edges need {expected}"
            )
        for label, edges in (("pt", pt_edges), ("abseta", abseta_edges)):
            if len(edges) < 2 or np.any(np.diff(edges) <= 0):
                raise ValueError(
                    f"{label} edges must be increasing with at least two entries: {edges}"
                )
        if not np.all(np.isfinite(values)) or np.any(values <= 0):
            raise ValueError("efficiency ratio values must be finite and positive")
        correction = cs.Correction(
            name=name,
            description=description,
            version=1,
            inputs=[
                cs.Variable(name="pt", type="real", description="electron pT [GeV]"),
                cs.Variable(name="abseta", type="real", description="electron |eta|"),
            ],
            output=cs.Variable(name="weight", type="real", description="eps_mu / eps_e"),
            data=cs.MultiBinning(
                nodetype="multibinning",
                inputs=["pt", "abseta"],
                edges=[pt_edges, abseta_edges],
                content=values.ravel().tolist(),  # row-major: pT outer, |eta| inner
                flow="clamp",
            ),
        )
        cset = cs.CorrectionSet(schema_version=2, description=description, corrections=[correction])
        return cls(cset.model_dump_json(exclude_unset=True), name, source, measurement)

    @classmethod
    def read(cls, path: str | os.PathLike[str], name: str | None = None) -> EfficiencyRatio:
        """Read a map from a correctionlib JSON file (``name`` defaults to the only correction)."""
        path = Path(path)
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: no such efficiency map file") from None
        try:
            names = [c["name"] for c in json.loads(text)["corrections"]]
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise ValueError(f"{path}: not a correctionlib JSON file ({err})") from None
        if name is None:
            if len(names) != 1:
                raise ValueError(f"{path}: holds corrections {names}; say which one to use")
            name = names[0]
        return cls(text, name, str(path))

    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write the correctionlib JSON (atomically)."""
        path = Path(path)
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(json.loads(self.json_text), indent=1) + "\n")
        return path


def _bin_index(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin of each value, clamped to the first/last bin like correctionlib's ``clamp`` flow."""
    return np.clip(np.searchsorted(edges, x, side="right") - 1, 0, len(edges) - 2)


def measure_efficiency_ratio(
    pt_e: Any,
    eta_e: Any,
    pt_mu: Any,
    eta_mu: Any,
    weights: Any | None = None,
    *,
    pt_edges: Sequence[float] = DEFAULT_PT_EDGES,
    abseta_edges: Sequence[float] = DEFAULT_ABSETA_EDGES,
    iterations: int = 10_000,
    tolerance: float = 1e-12,
    name: str = DEFAULT_NAME,
) -> EfficiencyRatio:
    """Measure R^ε = ε_μ/ε_e as N_μ/N_e in (pT, |η|) bins of an e-mu sample (module docstring).

    Parameters
    ----------
    pt_e, eta_e, pt_mu, eta_mu
        Electron and muon of every event of the combined ``emu`` + ``mue`` sample.
    weights
        Event weights (default 1).
    pt_edges, abseta_edges
        Bin edges; values outside are counted in the nearest bin.
    iterations
        Maximum number of iterations; ``1`` gives the plain N_μ/N_e (normalised).
    tolerance
        Stop when no bin changes by more than this relative amount.
    name
        Name of the correctionlib correction.

    Returns
    -------
    EfficiencyRatio
        With ``measurement`` holding the raw N_e, N_μ per bin, the iterations used and
        whether the iteration converged. Bins without electrons or muons keep the
        overall normalisation factor (listed in ``measurement["empty_bins"]``).
    """
    pt_e, eta_e, pt_mu, eta_mu = (
        np.asarray(a, dtype=np.float64) for a in (pt_e, eta_e, pt_mu, eta_mu)
    )
    n = pt_e.shape[0]
    if any(a.shape != (n,) for a in (eta_e, pt_mu, eta_mu)):
        raise ValueError("pt_e, eta_e, pt_mu, eta_mu must be 1D arrays of the same length")
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (n,):
        raise ValueError(f"weights have shape {w.shape}, expected ({n},)")
    if n == 0 or not w.sum() > 0:
        raise ValueError("cannot measure an efficiency ratio from an empty sample")
    if iterations < 1:
        raise ValueError(f"iterations must be ≥ 1, got {iterations}")
    pt_edges_a, eta_edges_a = np.asarray(pt_edges, float), np.asarray(abseta_edges, float)
    shape = (len(pt_edges_a) - 1, len(eta_edges_a) - 1)
    nbins = shape[0] * shape[1]
    bin_e = np.ravel_multi_index(
        (_bin_index(pt_e, pt_edges_a), _bin_index(np.abs(eta_e), eta_edges_a)), shape
    )
    bin_mu = np.ravel_multi_index(
        (_bin_index(pt_mu, pt_edges_a), _bin_index(np.abs(eta_mu), eta_edges_a)), shape
    )
    # pairs[b, b']: weight of the events with the muon in bin b and the electron in bin b'
    pairs = np.bincount(bin_mu * nbins + bin_e, w, nbins * nbins).reshape(nbins, nbins)
    n_e, n_mu = pairs.sum(axis=0), pairs.sum(axis=1)
    filled = (n_e > 0) & (n_mu > 0)

    def step(ratio: np.ndarray) -> np.ndarray:
        # R · N_mu^w / N_e^w with weights R(electron): (pairs @ R) / N_e; empty bins stay
        return np.where(filled, pairs @ ratio / np.where(filled, n_e, 1.0), ratio)

    def normalised(ratio: np.ndarray) -> np.ndarray:
        return ratio * w.sum() / (n_e @ ratio)  # keep the total yield

    ratio = normalised(step(np.ones(nbins)))  # the plain N_mu / N_e
    converged, used = False, 1
    while used < iterations and not converged:
        used += 1
        # half steps: a full step can oscillate when bins only pair up with each other
        new = normalised(0.5 * (ratio + step(ratio)))
        converged = bool(np.max(np.abs(new / ratio - 1.0)) < tolerance)
        ratio = new

    measurement = {
        "pt_edges": pt_edges_a.tolist(),
        "abseta_edges": eta_edges_a.tolist(),
        "n_electron": n_e.reshape(shape).tolist(),
        "n_muon": n_mu.reshape(shape).tolist(),
        "events": int(n),
        "iterations": used,
        "converged": converged,
        "empty_bins": [list(np.unravel_index(i, shape)) for i in np.flatnonzero(~filled)],
    }
    description = (
        "eps_mu/eps_e measured as N_mu/N_e in (pT, |eta|) bins of the combined emu+mue "
        f"sample ({n} events), iterated {used}x (converged: {converged}); normalised to keep "
        "the total yield. Assumes the sample is e<->mu symmetric apart from efficiencies: "
        "an LFV signal in it is partly absorbed."
    )
    return EfficiencyRatio.from_bins(
        pt_edges_a, eta_edges_a, ratio.reshape(shape), name, description, "measured", measurement
    )
