"""Efficiency-ratio maps R^ε(pT, |η|) = ε_μ / ε_e that restore the e ↔ μ symmetry.

Electrons and muons are reconstructed, identified and isolated with different
efficiencies, so even without new physics the ``emu`` and ``mue`` samples differ.
In an e-mu event the yield is proportional to ε_e(p_e) ε_μ(p_μ); weighting every
event by w = R^ε(p_e) = ε_μ(p_e)/ε_e(p_e) turns it into ε_μ(p_e) ε_μ(p_μ), which is
symmetric under e ↔ μ, so ``emu`` and ``mue`` become comparable again (ATLAS,
arXiv:1604.07730). Where one flavour is not reconstructed at all (ε = 0) no weight
helps: such regions belong outside the fiducial selection for both flavours
(:data:`symnplm.physics.selection.ETA_VETOES`).

Measurement
-----------
R^ε is measured in (pT, |η|) bins of an e-mu sample (``emu`` + ``mue``) as N_μ / N_e,
the (weighted) number of muons over the number of electrons in each bin. Because
each count also contains the efficiency of the *other* lepton of the event, the
plain ratio equals ε_μ/ε_e only up to a bin-dependent factor (the partner's average
efficiency). :func:`measure_efficiency_ratio` therefore iterates

    R ← R · N_μ^w / N_e^w,   with weights w = R(electron),

(in half steps after the first), which starts from the plain N_μ/N_e and converges
to the map for which the weighted electron and muon spectra agree in every bin —
the true ε_μ/ε_e, up to one overall constant, whenever the underlying sample is
e ↔ μ symmetric. The constant is fixed by keeping the total weighted yield. The map
also absorbs, to first order, differences of the e and μ momentum *response* (FSR
in the electron cluster, resolution, scale), which act on each lepton's spectrum
like an efficiency: it is an e ↔ μ symmetrising weight, measured, not assumed.

The statistical uncertainty of every bin is the spread of the map measured on
Poisson-bootstrap replicas of the sample (seeded); it is stored as the ``up`` and
``down`` variations (R e^{±σ}) of a ``systematic`` input, and used to propagate the
map's own fluctuations into the calibration of a test
(:mod:`symnplm.inference.reweighting`).

Common acceptance
-----------------
A bin where one flavour is missing (no electron or no muon), or where R is more than
:data:`MASK_RATIO` times away from the map's median, is a region the detector covers
for one flavour only — a crack or gap the selection does not know of. No weight
restores it; the map *masks* it (``measurement["masked_bins"]``) and
:meth:`EfficiencyRatio.accepts` is false there, so that the processor removes events
with **either** lepton in a masked bin: the fiducial region becomes the one both
flavours are seen in, measured on the calibration sample, to the map's granularity.

Independence
------------
A map measured on the events it then corrects absorbs part of any asymmetry they
have — an LFV signal included — and its fluctuations cancel the events' own, so a
test of the corrected events is biased towards "no difference". Measure it on an
independent sample (a control region, a separate simulation with the same
detector, or the other half of the data by event-number parity); the map records
what it was measured on (``measurement["measured_on"]``) and the processor refuses
to apply it to the same events (:func:`symnplm.processors.efficiency_map.check_independent`).

Storage
-------
Maps are correctionlib (schema v2) JSON: a ``CorrectionSet`` with one correction
(default name ``efficiency_ratio``) with inputs ``systematic`` (string: ``nominal``,
``up``, ``down``), ``pt`` and ``abseta`` (real), ``multibinning`` nodes and ``clamp``
flow (outside the edges, the nearest bin). The measurement record (edges, counts,
uncertainties, what it was measured on, seed, versions) is the JSON text of the
CorrectionSet's ``description``. User-made maps are accepted if their inputs are
``pt`` and ``abseta`` or ``eta``, optionally with a ``systematic`` input first.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from symnplm.io.files import atomic_path

__all__ = [
    "DEFAULT_ABSETA_EDGES",
    "DEFAULT_NAME",
    "DEFAULT_PT_EDGES",
    "MASK_RATIO",
    "RECORD_KEY",
    "SYSTEMATICS",
    "EfficiencyRatio",
    "measure_efficiency_ratio",
]

#: Default pT bin edges (GeV); values beyond the last edge use the last bin.
DEFAULT_PT_EDGES: tuple[float, ...] = (
    15.0,
    20.0,
    25.0,
    30.0,
    35.0,
    40.0,
    50.0,
    70.0,
    100.0,
    6500.0,
)
#: Default |η| bin edges: steps of 0.1 (an efficiency step anywhere is resolved to 0.1),
#: with the detector boundaries of the default vetoes (0.1; 1.37, 1.52) as edges.
DEFAULT_ABSETA_EDGES: tuple[float, ...] = (
    *(round(0.1 * k, 1) for k in range(14)),
    1.37,
    1.52,
    *(round(0.1 * k, 1) for k in range(16, 24)),
)
DEFAULT_NAME = "efficiency_ratio"
#: Values of the ``systematic`` input of a map with uncertainties.
SYSTEMATICS: tuple[str, ...] = ("nominal", "up", "down")
#: Marker of the measurement record in the CorrectionSet description.
RECORD_KEY = "symnplm-efficiency-map"
#: A bin whose R is this many times above or below the map's median is masked (with the
#: bins that lack one flavour): one flavour is (nearly) not reconstructed there.
MASK_RATIO = 4.0


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
        For measured maps: edges, bin counts, uncertainties, convergence, and what
        the map was measured on (``measured_on``).
    """

    json_text: str
    name: str = DEFAULT_NAME
    source: str = "<memory>"
    measurement: dict[str, Any] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        inputs = self.inputs
        kinematic = [v for v in inputs if v != "systematic"]
        if (
            "pt" not in kinematic
            or not ({"abseta", "eta"} & set(kinematic))
            or len(kinematic) != 2
            or (len(inputs) == 3 and inputs[0] != "systematic")
        ):
            raise ValueError(
                f"{self.source}: correction {self.name!r} has inputs {inputs}; an efficiency "
                "ratio map needs 'pt' and 'abseta' (or 'eta'), optionally after 'systematic'"
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

    @property
    def inputs(self) -> list[str]:
        """Names of the correction's inputs, in order."""
        return [v.name for v in self._correction.inputs]

    @property
    def has_uncertainty(self) -> bool:
        """Whether the map has ``up`` / ``down`` variations (a ``systematic`` input)."""
        return "systematic" in self.inputs

    @property
    def measured_on(self) -> dict[str, Any] | None:
        """What a measured map was measured on (files, event parity), if recorded."""
        return (self.measurement or {}).get("measured_on")

    def __getstate__(self) -> dict[str, Any]:
        # the compiled correction is rebuilt on demand (in each worker)
        return {k: v for k, v in self.__dict__.items() if k != "_correction"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def __call__(self, pt: Any, eta: Any, systematic: str = "nominal") -> np.ndarray:
        """R^ε at the given electron pT (GeV) and η (its absolute value is taken if needed).

        ``systematic`` is ``"nominal"``, ``"up"`` or ``"down"`` (the bin-by-bin ±1σ
        statistical variation); a map without uncertainties only has ``"nominal"``.
        """
        if systematic not in SYSTEMATICS:
            raise ValueError(f"systematic must be one of {SYSTEMATICS}, got {systematic!r}")
        pt = np.asarray(pt, dtype=np.float64)
        eta = np.asarray(eta, dtype=np.float64)
        if not self.has_uncertainty:
            if systematic != "nominal":
                raise ValueError(f"{self.source}: the map has no {systematic!r} variation")
            args: dict[str, Any] = {}
        else:
            args = {"systematic": systematic}
        args |= {"pt": pt, "abseta": np.abs(eta), "eta": eta}
        return np.asarray(
            self._correction.evaluate(*(args[v] for v in self.inputs)), dtype=np.float64
        )

    # -- binned maps ---------------------------------------------------------------------
    @classmethod
    def from_bins(
        cls,
        pt_edges: Sequence[float] | np.ndarray,
        abseta_edges: Sequence[float] | np.ndarray,
        values: Any,
        name: str = DEFAULT_NAME,
        description: str = "efficiency ratio eps_mu/eps_e",
        source: str = "<memory>",
        measurement: Mapping[str, Any] | None = None,
        log_uncertainty: Any | None = None,
    ) -> EfficiencyRatio:
        """A binned map: ``values[i, j]`` for pT bin i and |η| bin j (clamped outside the edges).

        ``log_uncertainty[i, j]`` (σ of log R) adds the ``up`` / ``down`` variations
        R e^{±σ} behind a ``systematic`` input.
        """
        import correctionlib.schemav2 as cs

        pt_list = [float(x) for x in pt_edges]
        abseta_list = [float(x) for x in abseta_edges]
        # the typed form of correctionlib's schema (edges may also be "inf" strings)
        edge_lists: list[list[float | Literal["inf", "+inf", "-inf"]] | cs.UniformBinning] = [
            [*pt_list],
            [*abseta_list],
        ]
        pt_edges, abseta_edges = pt_list, abseta_list
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

        def node(content: np.ndarray) -> Any:
            return cs.MultiBinning(
                nodetype="multibinning",
                inputs=["pt", "abseta"],
                edges=edge_lists,
                content=content.ravel().tolist(),  # row-major: pT outer, |eta| inner
                flow="clamp",
            )

        inputs = [
            cs.Variable(name="pt", type="real", description="electron pT [GeV]"),
            cs.Variable(name="abseta", type="real", description="electron |eta|"),
        ]
        record = dict(measurement or {})
        if log_uncertainty is None:
            data: Any = node(values)
        else:
            sigma = np.asarray(log_uncertainty, dtype=np.float64)
            if sigma.shape != values.shape or not np.all(np.isfinite(sigma) & (sigma >= 0)):
                raise ValueError(
                    f"log_uncertainty must be finite, >= 0 and of shape {values.shape}"
                )
            inputs.insert(
                0,
                cs.Variable(
                    name="systematic",
                    type="string",
                    description="nominal, or up/down: every bin by +-1 sigma (statistical)",
                ),
            )
            data = cs.Category(
                nodetype="category",
                input="systematic",
                content=[
                    cs.CategoryItem(key="nominal", value=node(values)),
                    cs.CategoryItem(key="up", value=node(values * np.exp(sigma))),
                    cs.CategoryItem(key="down", value=node(values * np.exp(-sigma))),
                ],
            )
            record["log_uncertainty"] = sigma.tolist()
        record |= {"pt_edges": pt_edges, "abseta_edges": abseta_edges, "values": values.tolist()}
        correction = cs.Correction(
            name=name,
            description=description,
            version=1,
            inputs=inputs,
            output=cs.Variable(name="weight", type="real", description="eps_mu / eps_e"),
            data=data,
        )
        cset = cs.CorrectionSet(
            schema_version=2,
            description=json.dumps({RECORD_KEY: record}),
            corrections=[correction],
        )
        return cls(cset.model_dump_json(exclude_unset=True), name, source, record)

    def bins(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
        """(pT edges, |η| edges, values, σ of log R) of a binned map made here, else ``None``.

        σ is zero where the map carries no uncertainty.
        """
        m = self.measurement or {}
        if not {"pt_edges", "abseta_edges", "values"} <= set(m):
            return None
        values = np.asarray(m["values"], dtype=np.float64)
        sigma = np.asarray(m.get("log_uncertainty", np.zeros_like(values)), dtype=np.float64)
        return np.asarray(m["pt_edges"]), np.asarray(m["abseta_edges"]), values, sigma

    def accepts(self, pt: Any, eta: Any) -> np.ndarray:
        """Whether each lepton (pT, η) lies outside the map's masked bins (all true if none)."""
        masked = (self.measurement or {}).get("masked_bins") or []
        pt = np.asarray(pt, dtype=np.float64)
        if not masked:
            return np.ones(pt.shape, dtype=bool)
        shape = self.bins()[2].shape  # type: ignore[index]
        flat = np.ravel_multi_index(tuple(np.asarray(masked, dtype=np.int64).T), shape)
        return ~np.isin(self.bin_index(pt, eta), flat)

    def bin_index(self, pt: Any, eta: Any) -> np.ndarray:
        """Flat (row-major) bin of each (pT, η), clamped like correctionlib's ``clamp`` flow."""
        binned = self.bins()
        if binned is None:
            raise ValueError(f"{self.source}: not a binned map with a measurement record")
        pt_edges, eta_edges, _, _ = binned
        return _flat_bin(pt, eta, pt_edges, eta_edges)

    # -- files -------------------------------------------------------------------------------
    @classmethod
    def read(cls, path: str | os.PathLike[str], name: str | None = None) -> EfficiencyRatio:
        """Read a map from a correctionlib JSON file (``name`` defaults to the only correction)."""
        path = Path(path)
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: no such efficiency map file") from None
        try:
            doc = json.loads(text)
            names = [c["name"] for c in doc["corrections"]]
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise ValueError(f"{path}: not a correctionlib JSON file ({err})") from None
        if name is None:
            if len(names) != 1:
                raise ValueError(f"{path}: holds corrections {names}; say which one to use")
            name = names[0]
        record = None
        try:
            record = json.loads(doc.get("description") or "")[RECORD_KEY]
        except (json.JSONDecodeError, KeyError, TypeError):
            pass  # a map made elsewhere: no measurement record
        return cls(text, name, str(path), record)

    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write the correctionlib JSON (atomically)."""
        path = Path(path)
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(json.loads(self.json_text), indent=1) + "\n")
        return path


def _bin_index(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin of each value, clamped to the first/last bin like correctionlib's ``clamp`` flow."""
    return np.clip(np.searchsorted(edges, x, side="right") - 1, 0, len(edges) - 2)


def _flat_bin(pt: Any, eta: Any, pt_edges: np.ndarray, abseta_edges: np.ndarray) -> np.ndarray:
    """Flat (row-major: pT outer, |η| inner) clamped bin of each lepton (pT, η)."""
    i = _bin_index(np.asarray(pt, dtype=np.float64), pt_edges)
    j = _bin_index(np.abs(np.asarray(eta, dtype=np.float64)), abseta_edges)
    return np.ravel_multi_index((i, j), (len(pt_edges) - 1, len(abseta_edges) - 1))


def _solve_ratio(
    pairs: np.ndarray, total: float, iterations: int, tolerance: float, start: np.ndarray | None
) -> tuple[np.ndarray, int, bool, np.ndarray]:
    """The fixed point of R ← R · N_μ^w / N_e^w for a (muon bin, electron bin) weight table.

    Returns (R, iterations used, converged, filled bins); R has non-finite entries if
    the iteration ran away (bins that only pair with each other and are nearly empty).
    """
    n_e, n_mu = pairs.sum(axis=0), pairs.sum(axis=1)
    filled = (n_e > 0) & (n_mu > 0)

    def step(ratio: np.ndarray) -> np.ndarray:
        # R · N_mu^w / N_e^w with weights R(electron): (pairs @ R) / N_e; empty bins stay
        return np.where(filled, pairs @ ratio / np.where(filled, n_e, 1.0), ratio)

    def normalised(ratio: np.ndarray) -> np.ndarray:
        return ratio * total / (n_e @ ratio)  # keep the total yield

    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        ratio = normalised(step(np.ones(len(n_e)))) if start is None else normalised(start)
        converged, used = False, 1
        while used < iterations and not converged and np.all(np.isfinite(ratio)):
            used += 1
            # half steps: a full step can oscillate when bins only pair up with each other
            new = normalised(0.5 * (ratio + step(ratio)))
            converged = bool(np.max(np.abs(new / ratio - 1.0)) < tolerance)
            ratio = new
    return ratio, used, converged and bool(np.all(np.isfinite(ratio))), filled


def measure_efficiency_ratio(
    pt_e: Any,
    eta_e: Any,
    pt_mu: Any,
    eta_mu: Any,
    weights: Any | None = None,
    *,
    pt_edges: Sequence[float] | None = None,
    abseta_edges: Sequence[float] | None = None,
    iterations: int = 10_000,
    tolerance: float = 1e-12,
    n_bootstrap: int = 100,
    seed: int = 0,
    measured_on: Mapping[str, Any] | None = None,
    min_per_bin: float = 10.0,
    name: str = DEFAULT_NAME,
) -> EfficiencyRatio:
    """Measure R^ε = ε_μ/ε_e in (pT, |η|) bins of an e-mu sample (module docstring).

    Parameters
    ----------
    pt_e, eta_e, pt_mu, eta_mu
        Electron and muon of every event of the combined ``emu`` + ``mue`` sample.
    weights
        Event weights (default 1).
    pt_edges, abseta_edges
        Bin edges (default :data:`DEFAULT_PT_EDGES`, :data:`DEFAULT_ABSETA_EDGES`); values
        outside are counted in the nearest bin.
    iterations
        Maximum number of iterations; ``1`` gives the plain N_μ/N_e (normalised).
    tolerance
        Stop when no bin changes by more than this relative amount.
    n_bootstrap
        Poisson-bootstrap replicas for the statistical uncertainty of every bin
        (0: no uncertainty, no ``systematic`` input).
    seed
        Seed of the bootstrap.
    measured_on
        What the sample is (files, event parity, datasets), recorded in the map so that
        it is not applied to the events it was measured on.
    min_per_bin
        Refuse binnings whose median populated bin holds fewer electrons (or muons,
        weighted) than this: such a map is mostly noise.
    name
        Name of the correctionlib correction.

    Returns
    -------
    EfficiencyRatio
        With ``measurement`` holding the raw N_e, N_μ per bin, the iterations used,
        whether the iteration converged, the uncertainties and the seed. Bins without
        electrons or muons keep the overall normalisation factor and no uncertainty
        (listed in ``measurement["empty_bins"]``); bins seen for one flavour only are
        masked (``measurement["masked_bins"]``, module docstring).
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
    if np.any(w < 0):
        raise ValueError(
            f"{int(np.sum(w < 0))} events have negative weights: the efficiency ratio is "
            "measured from counts, which cannot be negative"
        )
    if iterations < 1:
        raise ValueError(f"iterations must be ≥ 1, got {iterations}")
    if n_bootstrap < 0 or n_bootstrap == 1:
        raise ValueError(f"n_bootstrap must be 0 or ≥ 2, got {n_bootstrap}")
    pt_edges_a = np.asarray(DEFAULT_PT_EDGES if pt_edges is None else pt_edges, float)
    eta_edges_a = np.asarray(DEFAULT_ABSETA_EDGES if abseta_edges is None else abseta_edges, float)
    shape = (len(pt_edges_a) - 1, len(eta_edges_a) - 1)
    nbins = shape[0] * shape[1]
    bin_e = _flat_bin(pt_e, eta_e, pt_edges_a, eta_edges_a)
    bin_mu = _flat_bin(pt_mu, eta_mu, pt_edges_a, eta_edges_a)
    # pairs[b, b']: weight of the events with the muon in bin b and the electron in bin b'
    pair_index = bin_mu * nbins + bin_e

    def table(weights_: np.ndarray) -> np.ndarray:
        return np.bincount(pair_index, weights_, nbins * nbins).reshape(nbins, nbins)

    pairs = table(w)
    ratio, used, converged, filled = _solve_ratio(pairs, w.sum(), iterations, tolerance, None)

    if not filled.any():
        raise ValueError("no (pT, |eta|) bin holds both an electron and a muon")
    sparse = np.median(np.minimum(pairs.sum(axis=0), pairs.sum(axis=1))[filled])
    if not np.all(np.isfinite(ratio)) or sparse < min_per_bin:
        raise ValueError(
            f"too few events for {int(filled.sum())} (pT, |eta|) bins: the median bin holds "
            f"{sparse:.3g} electrons or muons (need >= {min_per_bin:g}); use coarser edges or a "
            "larger sample"
        )
    sigma = None
    if n_bootstrap:
        rng = np.random.default_rng(np.random.SeedSequence(int(seed)))
        logs = np.full((n_bootstrap, nbins), np.nan)
        for r in range(n_bootstrap):
            wr = w * rng.poisson(1.0, size=n)
            # from the nominal map: the replicas are small perturbations of it
            rr, _, _, filled_r = _solve_ratio(table(wr), wr.sum(), iterations, 1e-9, ratio)
            ok = filled_r & np.isfinite(rr) & (rr > 0)
            logs[r, ok] = np.log(rr[ok])
        n_ok = np.sum(np.isfinite(logs), axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            spread = np.nanstd(np.where(n_ok >= 2, logs, 0.0), axis=0, ddof=1)
            # a bin that most replicas leave empty: the counting estimate √(1/N_e + 1/N_μ)
            counting = np.sqrt(1.0 / pairs.sum(axis=0) + 1.0 / pairs.sum(axis=1))
        sparse = n_ok < 0.9 * n_bootstrap
        sigma = np.where(filled, np.where(sparse, counting, spread), 0.0).reshape(shape)

    n_e, n_mu = pairs.sum(axis=0), pairs.sum(axis=1)
    # one flavour missing, or R far from the rest: the detector covers one flavour only
    relative = ratio / np.median(ratio[filled])
    masked = (n_e + n_mu > 0) & (~filled | (relative > MASK_RATIO) | (relative < 1.0 / MASK_RATIO))
    record = {
        "n_electron": n_e.reshape(shape).tolist(),
        "n_muon": n_mu.reshape(shape).tolist(),
        "events": int(n),
        "sum_weights": float(w.sum()),
        "iterations": used,
        "converged": converged,
        "empty_bins": [list(map(int, np.unravel_index(i, shape))) for i in np.flatnonzero(~filled)],
        "masked_bins": [list(map(int, np.unravel_index(i, shape))) for i in np.flatnonzero(masked)],
        "mask_ratio": MASK_RATIO,
        "n_bootstrap": int(n_bootstrap),
        "seed": int(seed),
        "measured_on": dict(measured_on) if measured_on is not None else None,
    }
    from symnplm.io.provenance import package_versions

    record["versions"] = package_versions()
    description = (
        "eps_mu/eps_e measured as N_mu/N_e in (pT, |eta|) bins of an emu+mue sample "
        f"({n} events), iterated {used}x (converged: {converged}); normalised to keep "
        "the total yield; up/down: every bin by its bootstrap standard deviation. Assumes "
        "the sample is e<->mu symmetric apart from efficiencies."
    )
    return EfficiencyRatio.from_bins(
        pt_edges_a,
        eta_edges_a,
        ratio.reshape(shape),
        name,
        description,
        "measured",
        record,
        log_uncertainty=sigma,
    )
