"""The e-mu processor: selection, features, variations and weights on NanoAOD.

For every chunk of events, and for the nominal sample and each momentum-scale
variation (all leptons of one flavour shifted, selected or not, since MET is built
from all of them; MET updated; selection re-applied):

1. select events with exactly one electron and one muon (``symnplm.physics.selection``);
2. compute the per-event columns — m_coll, the five two-body features by role,
   m_ll, MET, n_jets, n_bjets, the flavour-resolved lepton kinematics;
3. weight them (coffea ``Weights``): genWeight × σ × L / Σw for simulation (1 for
   data), times the lepton scale factors and the efficiency-ratio weight R^ε(electron)
   when a map is given, times exp(ν σ_N) for
   the normalisation variations and R^ε_up/down / R^ε for the efficiency variations
   (``efficiency_up1`` / ``efficiency_down1``: every bin of the map moved by its
   statistical uncertainty); with a map, events with either lepton in a bin the map
   masks (seen for one flavour only) are removed;
4. fill the histograms per category and keep the columns.

``events="even"`` / ``"odd"`` keeps only events of that event-number parity: two
independent halves of one sample (one to measure an efficiency map on, the other to
test).

The output is a plain dict (coffea accumulates it across chunks)::

    {"hists":   {name: hist.Hist},                        # axes dataset, category, variation, ...
     "cutflow": {dataset: {step: events}},
     "columns": {(dataset, variation): {chunk: {column: array}}},   # nominal + scale variations
     "missing": {dataset: {optional branch not in the input}},
     "weighting": {dataset: {how the event weights were made}},
     "nonfinite_inputs": {dataset: {file: events skipped for a non-finite input}}}

:meth:`EMuProcessor.postprocess` joins the chunks in a fixed order (file, first
entry), so every executor gives the same arrays; :meth:`EMuProcessor.tables`
splits them into the (dataset, category, variation) samples, adding the
normalisation and efficiency variations (the nominal events with other weights).
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

import awkward as ak
import numpy as np
from coffea import processor
from coffea.analysis_tools import PackedSelection, Weights
from coffea.nanoevents import NanoAODSchema

from symnplm.io.samples import COLUMNS_DIR, WEIGHT_PREFIX, write_columns
from symnplm.physics.efficiency import EfficiencyRatio
from symnplm.physics.kinematics import EMU_COLUMNS, CollinearForm, emu_features
from symnplm.physics.scale_factors import LeptonScaleFactor
from symnplm.physics.selection import (
    ELECTRON_CUTS,
    JET_CUTS,
    MUON_CUTS,
    ChargeMode,
    JetCuts,
    LeptonCuts,
    category_names,
    emu_categories,
    jet_multiplicities,
    select_emu,
)
from symnplm.physics.variations import (
    ELECTRON_SCALE,
    MUON_SCALE,
    NOMINAL,
    NORMALISATION,
    MomentumScale,
    Normalisation,
    propagate_to_met,
    scale_momenta,
    variation_name,
)
from symnplm.processors.histograms import book_histograms, fill_histograms
from symnplm.processors.inputs import (
    READ_ERRORS,
    DamagedFileError,
    InputError,
    background_luminosity_fb,
)

__all__ = [
    "EFFICIENCY_VARIATIONS",
    "WEIGHT",
    "EMuNanoAODSchema",
    "EMuProcessor",
    "EventParity",
    "cutflow",
    "hlt_paths",
    "read_lumi_mask",
]

WEIGHT = "weight"
_KINEMATICS = ("pt", "eta", "phi", "mass", "charge")
_EVENT_IDS = ("run", "luminosityBlock", "event")
_JET_FIELDS = ("pt", "eta", "phi", "mass")  # coffea's jet four-vectors need the mass
EventParity = Literal["all", "even", "odd"]
#: Names of the efficiency-map variations and the map systematic each one uses.
EFFICIENCY_VARIATIONS: tuple[tuple[str, str], ...] = (
    (variation_name("efficiency", 1.0), "up"),
    (variation_name("efficiency", -1.0), "down"),
)


def _weights_of(nominal: np.ndarray) -> Any:
    """``(variation, mask) -> weights``: a variation given as a number is the nominal
    weights times it, one given per event is its own weights."""

    def weights(variation: Any, mask: np.ndarray) -> np.ndarray:
        if isinstance(variation, np.ndarray):
            return variation[mask]
        return nominal[mask] * variation

    return weights


class EMuNanoAODSchema(NanoAODSchema):
    """NanoAOD schema for reading the declared subset of branches (:meth:`EMuProcessor.branches`).

    Cross-references into collections that the processor does not read (photons,
    generator matching, …) are absent by construction when only those branches are
    read, so the schema's warning about each of them is switched off.
    """

    warn_missing_crossrefs = False


def _finite_nus(nus: Sequence[float], what: str) -> tuple[float, ...]:
    out = tuple(float(nu) for nu in nus)
    if not all(math.isfinite(nu) for nu in out) or len(set(out)) != len(out):
        raise ValueError(f"{what} must be distinct finite numbers, got {list(nus)}")
    return out


def hlt_paths(paths: Any, what: str) -> tuple[str, ...]:
    """HLT path names without the ``HLT_`` prefix (accepted with or without it)."""
    if isinstance(paths, str) or not all(isinstance(p, str) and p for p in paths):
        raise InputError(f"{what}: expected a list of HLT path names, got {paths!r}")
    return tuple(p.removeprefix("HLT_") for p in paths)


def read_lumi_mask(path: str | Path) -> Any:
    """coffea's ``LumiMask`` of a certified-luminosity JSON; a bad file is one clear error."""
    from coffea.lumi_tools import LumiMask

    try:
        with open(path) as fh:
            runs = json.load(fh)
        if not isinstance(runs, dict) or not all(
            str(r).isdigit() and isinstance(v, list) for r, v in runs.items()
        ):
            raise ValueError("expected {run: [[first, last], ...]}")
        return LumiMask(str(path))
    except FileNotFoundError:
        raise InputError(f"{path}: no such lumi-mask file") from None
    except (ValueError, TypeError) as err:
        raise InputError(f"{path}: not a certified-luminosity JSON ({err})") from None


def cutflow(cuts: Mapping[str, np.ndarray]) -> dict[str, int]:
    """Events left after each cut in order (coffea's ``PackedSelection`` cutflow)."""
    if not cuts:
        return {}
    selection = PackedSelection()
    for name, mask in cuts.items():
        selection.add(name, mask)
    # nevcutflow starts with the number of events before any cut
    counts = selection.cutflow(*selection.names).result().nevcutflow[1:]
    return {name: int(n) for name, n in zip(selection.names, counts, strict=True)}


class EMuProcessor(processor.ProcessorABC):
    """e-mu / mu-e selection with features, nuisance variations and efficiency weights.

    Parameters
    ----------
    electron, muon
        Lepton cuts; default the symmetric ``lfuv`` selection
        (:data:`~symnplm.physics.selection.SELECTIONS`): pT ≥ 15 GeV, |η| ≤ 2.3 with the
        crack and gap vetoed, isolation < 0.15, ``cutBased ≥ 3`` (e) / ``tightId`` (μ).
        Their isolation and ID branches are required: a file lacking one is an error
        naming it (``id_field=None`` selects without an ID). NanoAOD names differ
        between versions (Run 2 UL v9 ``Electron_mvaFall17V2Iso_WP90``, Run 3 v12
        ``Electron_mvaIso_WP90``; ``Muon_pfRelIso04_all`` is the CMS muon isolation):
        the cuts name the branch to read.
    jets
        Jets counted in ``n_jets`` (pT > 30 GeV, |η| < 4.7, ΔR > 0.4 from the leptons)
        and, b-tagged (score > 0.5, |η| < 2.5), in ``n_bjets``. Inputs without jets get
        ``n_jets = n_bjets = -1``, inputs without the b-tag branch ``n_bjets = -1``.
    charge
        ``"opposite"`` (signal region) or ``"same"`` (control region).
    scales
        Momentum-scale nuisances (default: electron-like 0.3 %/0.9 % for electrons,
        muon-like 0.05 %/0.15 % for muons).
    scale_nus
        Values ν (units of σ) of the momentum-scale variations; empty for none.
    normalisation
        Normalisation nuisance (σ_N = 2.5 %), or ``None``.
    norm_nus
        Values ν of the normalisation variations.
    collinear_form
        ``"atlas"`` (default) or ``"cms"``, see :mod:`symnplm.physics.kinematics`.
    met
        The missing-momentum collection (``MET``, or e.g. ``PuppiMET``, which Run 3
        analyses use): its ``_pt`` and ``_phi`` branches are read.
    efficiency
        Efficiency-ratio map (:class:`~symnplm.physics.efficiency.EfficiencyRatio` or the
        path of a correctionlib JSON file with one correction); each event is weighted
        by R^ε at its electron. ``None`` for no efficiency weights.
    luminosity_fb
        Integrated luminosity in fb⁻¹ for normalising simulation (``xsec`` in pb).
        ``None`` (default): the ``luminosity_fb`` its background datasets record, taken
        by :meth:`for_fileset` (as :func:`~symnplm.processors.runner.process_fileset`
        and ``symnplm process`` do), so that simulation carries weights ~1 as data would.
    events
        ``"all"``, or only the events with an ``"even"`` / ``"odd"`` event number.
    triggers
        HLT paths (``"IsoMu24"`` or ``"HLT_IsoMu24"``) of which an event must have fired
        one; a dataset's ``triggers`` metadata replaces them (eras, data and simulation
        differ). Empty: no trigger requirement. A path the input lacks is an error
        naming the file and the branch.
    lumi_mask
        Certified-luminosity JSON (run → [[first, last] lumi section]) applied to data
        (coffea's ``LumiMask``); ``None``: every luminosity section.
    scale_factors
        Lepton scale factors (:class:`~symnplm.physics.scale_factors.LeptonScaleFactor`,
        correctionlib) multiplied into the weights of simulation at the selected
        electron or muon.
    """

    def __init__(
        self,
        *,
        electron: LeptonCuts = ELECTRON_CUTS,
        muon: LeptonCuts = MUON_CUTS,
        jets: JetCuts = JET_CUTS,
        charge: ChargeMode = "opposite",
        scales: Sequence[MomentumScale] = (ELECTRON_SCALE, MUON_SCALE),
        scale_nus: Sequence[float] = (-2.0, -1.0, 1.0, 2.0),
        normalisation: Normalisation | None = NORMALISATION,
        norm_nus: Sequence[float] = (-2.0, -1.0, 1.0, 2.0),
        collinear_form: CollinearForm = "atlas",
        met: str = "MET",
        efficiency: EfficiencyRatio | str | Path | None = None,
        luminosity_fb: float | None = None,
        events: EventParity = "all",
        triggers: Sequence[str] = (),
        lumi_mask: str | Path | None = None,
        scale_factors: Sequence[LeptonScaleFactor] = (),
    ) -> None:
        self.electron = electron
        self.muon = muon
        self.jets = jets
        self.categories = category_names(charge)  # validates charge
        self.charge = charge
        if collinear_form not in ("atlas", "cms"):
            raise ValueError(f"collinear_form must be 'atlas' or 'cms', got {collinear_form!r}")
        self.collinear_form = collinear_form
        if not (isinstance(met, str) and met.isidentifier() and "_" not in met):
            raise ValueError(f"met must name a NanoAOD collection (MET, PuppiMET...), got {met!r}")
        self.met = met
        sources = [s.source for s in scales]
        if len(set(sources)) != len(sources):
            raise ValueError(f"one momentum scale per flavour, got {sources}")
        self.scales = tuple(scales)
        self.scale_nus = _finite_nus(scale_nus, "scale_nus")
        self.normalisation = normalisation
        self.norm_nus = _finite_nus(norm_nus, "norm_nus") if normalisation is not None else ()
        if isinstance(efficiency, (str, Path)):
            efficiency = EfficiencyRatio.read(efficiency)
        self.efficiency = efficiency
        self._check_map_selection()
        if luminosity_fb is not None and not (math.isfinite(luminosity_fb) and luminosity_fb > 0):
            raise ValueError(f"luminosity_fb must be positive (fb^-1), got {luminosity_fb}")
        self.luminosity_fb = None if luminosity_fb is None else float(luminosity_fb)
        if events not in ("all", "even", "odd"):
            raise ValueError(f"events must be 'all', 'even' or 'odd', got {events!r}")
        self.events = events
        self.triggers = hlt_paths(triggers, "triggers")
        self.lumi_mask_path = None if lumi_mask is None else str(lumi_mask)
        self.lumi_mask = None if lumi_mask is None else read_lumi_mask(lumi_mask)
        self.scale_factors = tuple(scale_factors)
        for sf in self.scale_factors:  # a bad file fails here, not in a worker
            sf.check()
        #: where chunks write their columns (:meth:`streaming_to`); None: in the output
        self.columns_dir: str | None = None

    def streaming_to(self, outdir: str | Path) -> EMuProcessor:
        """This processor writing each chunk's columns to ``outdir/columns`` in the worker.

        The output then carries only histograms, cutflows and a summary per chunk file
        (``column_files``), so memory does not grow with the input.
        """
        streaming = copy.copy(self)
        # absolute: workers (dask, futures) may run in another working directory; a
        # remote cluster needs the folder on a filesystem it shares with this machine
        streaming.columns_dir = str(Path(outdir).resolve() / COLUMNS_DIR)
        return streaming

    def for_fileset(self, fileset: Mapping[str, Mapping[str, Any]]) -> EMuProcessor:
        """This processor with ``luminosity_fb`` taken from ``fileset`` if it has none.

        Simulation normalised by a cross section needs a luminosity: a fileset whose
        background datasets record none is an error naming the remedy.
        """
        if self.luminosity_fb is not None:
            return self
        lumi = background_luminosity_fb(fileset)
        if lumi is None:
            needs = sorted(d for d, e in fileset.items() if "xsec" in e.get("metadata", {}))
            if needs:
                raise InputError(
                    f"datasets {needs} have a cross section but the fileset records no "
                    "luminosity_fb: give the luminosity (EMuProcessor(luminosity_fb=...), "
                    "symnplm process --luminosity)"
                )
            return self
        resolved = copy.copy(self)
        resolved.luminosity_fb = lumi
        return resolved

    def _check_map_selection(self) -> None:
        """A map measured with other lepton cuts measures other efficiencies: refuse it."""
        measured = (self.efficiency.measured_on or {}).get("selection") if self.efficiency else None
        if not measured:
            return
        for flavour, cuts in (("electron", self.electron), ("muon", self.muon)):
            theirs = measured.get(flavour)
            mine = json.loads(json.dumps(asdict(cuts)))  # tuples as lists, as in the record
            if theirs is not None and theirs != mine:
                differ = sorted(k for k in mine if mine.get(k) != theirs.get(k))
                raise ValueError(
                    f"efficiency map {self.efficiency.source} was measured with other {flavour} "
                    f"cuts ({', '.join(differ)} differ: {[theirs.get(k) for k in differ]} vs "
                    f"{[mine.get(k) for k in differ]}): measure it with this selection"
                )

    # -- description --------------------------------------------------------------------
    @property
    def scale_variations(self) -> list[tuple[str, MomentumScale, float]]:
        """(name, scale, ν) of every momentum-scale variation."""
        return [(variation_name(s.source, nu), s, nu) for s in self.scales for nu in self.scale_nus]

    @property
    def norm_variations(self) -> list[tuple[str, float]]:
        """(name, weight factor) of every normalisation variation."""
        if self.normalisation is None:
            return []
        n = self.normalisation
        return [(variation_name(n.source, nu), n.factor(nu)) for nu in self.norm_nus]

    @property
    def efficiency_variations(self) -> list[tuple[str, str]]:
        """(name, map systematic) of the efficiency variations (a map with uncertainties)."""
        if self.efficiency is None or not self.efficiency.has_uncertainty:
            return []
        return list(EFFICIENCY_VARIATIONS)

    @property
    def variations(self) -> list[str]:
        """All variation names, ``nominal`` first."""
        return (
            [NOMINAL]
            + [v[0] for v in self.scale_variations]
            + [v[0] for v in self.norm_variations]
            + [v[0] for v in self.efficiency_variations]
        )

    def event_weights(self, cols: Mapping[str, np.ndarray], base: np.ndarray, mc: bool) -> Weights:
        """The selected events' weights as coffea ``Weights``: ``base`` (generator weight
        × σ L / Σw, or 1 for data), the lepton scale factors (simulation) and the
        efficiency-ratio map at the electron, with its ``efficiencyUp`` / ``Down``.
        """
        weights = Weights(len(base), storeIndividual=False)
        weights.add("generator", base)
        if mc:  # the experiment's lepton scale factors, at the selected leptons
            for i, sf in enumerate(self.scale_factors):
                flavour = "e" if sf.flavour == "electron" else "mu"
                weights.add(f"scale_factor_{i}", sf(cols[f"pt_{flavour}"], cols[f"eta_{flavour}"]))
        if self.efficiency is not None:
            pt, eta = cols["pt_e"], cols["eta_e"]
            shifted = {s: self.efficiency(pt, eta, s) for _, s in self.efficiency_variations}
            weights.add(
                "efficiency", self.efficiency(pt, eta), shifted.get("up"), shifted.get("down")
            )
        return weights

    def weight_variations(self, weights: Weights) -> list[tuple[str, Any]]:
        """(name, weights) of the variations made from the nominal events' weights.

        A number for the normalisation (the nominal weights times it), the events' own
        weights for the efficiency map's (``weights``' modifiers).
        """
        out: list[tuple[str, Any]] = list(self.norm_variations)
        for name, systematic in self.efficiency_variations:
            out.append((name, weights.weight(f"efficiency{systematic.capitalize()}")))
        return out

    def required_branches(self, mc: bool) -> list[str]:
        """Branches without which the processor cannot run (``genWeight`` for simulation)."""
        out = [*_EVENT_IDS, f"{self.met}_pt", f"{self.met}_phi"]
        for collection, cuts in (("Electron", self.electron), ("Muon", self.muon)):
            out += [f"n{collection}"] + [f"{collection}_{f}" for f in (*_KINEMATICS, *cuts.fields)]
        return out + (["genWeight"] if mc else [])

    def branches(self, triggers: Sequence[str] = ()) -> list[str]:
        """Every branch the processor may read (``filter_name``: limits the I/O and the
        schema); ``triggers``: the paths datasets' metadata asks for besides its own."""
        optional = ["nJet", *(f"Jet_{f}" for f in (*_JET_FIELDS, self.jets.btag_field))]
        optional += ["genWeight", "run", "luminosityBlock"]
        optional += [f"HLT_{t}" for t in (*self.triggers, *hlt_paths(triggers, "triggers"))]
        return list(dict.fromkeys(self.required_branches(mc=False) + optional))

    def config(self) -> dict[str, Any]:
        """The configuration, JSON-serialisable, for provenance."""
        return {
            "electron": asdict(self.electron),
            "muon": asdict(self.muon),
            "jets": asdict(self.jets),
            "charge": self.charge,
            "categories": list(self.categories),
            "scales": [asdict(s) for s in self.scales],
            "scale_nus": list(self.scale_nus),
            "normalisation": asdict(self.normalisation) if self.normalisation else None,
            "norm_nus": list(self.norm_nus),
            "collinear_form": self.collinear_form,
            "met": self.met,
            "efficiency": None
            if self.efficiency is None
            else {
                "source": self.efficiency.source,
                "name": self.efficiency.name,
                "uncertainty": self.efficiency.has_uncertainty,
                "measured_on": self.efficiency.measured_on,
            },
            "luminosity_fb": self.luminosity_fb,
            # read by the workflow to rescale simulation to another luminosity
            "luminosity_pb": None if self.luminosity_fb is None else 1000.0 * self.luminosity_fb,
            "events": self.events,
            "triggers": list(self.triggers),
            "lumi_mask": self.lumi_mask_path,
            "scale_factors": [sf.to_dict() for sf in self.scale_factors],
            "variations": self.variations,
        }

    # -- per-chunk processing -------------------------------------------------------------
    def _check(self, events: ak.Array, metadata: Mapping[str, Any], mc: bool) -> None:
        """Fail with the file and branch name if a required branch is absent."""
        fields = set(events.fields)
        for branch in self.required_branches(mc):
            collection, _, field = branch.partition("_")
            if branch.startswith("n") and branch[1:] in fields:
                continue  # counts branches become the collections' offsets
            present = (
                (collection in fields and field in events[collection].fields)
                if field
                else (branch in fields)
            )
            if not present:
                why = " (simulation: metadata gives 'xsec')" if branch == "genWeight" else ""
                raise InputError(
                    f"{metadata.get('filename', '<events>')}: branch {branch!r} not found in tree "
                    f"{metadata.get('treename', 'Events')!r}{why}; the e-mu processor needs "
                    f"{self.required_branches(mc)}"
                )

    def _event_cuts(
        self, events: ak.Array, metadata: Mapping[str, Any], mc: bool
    ) -> dict[str, np.ndarray]:
        """``lumi_mask`` (data) and ``trigger`` (an OR of the paths), in that order."""
        cuts: dict[str, np.ndarray] = {}
        where = metadata.get("filename", "<events>")
        if self.lumi_mask is not None and not mc:
            missing = [b for b in ("run", "luminosityBlock") if b not in events.fields]
            if missing:
                raise InputError(
                    f"{where}: branch(es) {missing} not found; the lumi mask needs them"
                )
            cuts["lumi_mask"] = np.asarray(
                self.lumi_mask(ak.to_numpy(events.run), ak.to_numpy(events.luminosityBlock)),
                dtype=bool,
            )
        dataset = metadata.get("dataset", "?")
        triggers = hlt_paths(
            metadata.get("triggers", self.triggers), f"dataset {dataset!r}: triggers"
        )
        if triggers:
            have = set(events.HLT.fields) if "HLT" in events.fields else set()
            absent = [f"HLT_{t}" for t in triggers if t not in have]
            if absent:
                raise InputError(
                    f"{where}: trigger branch(es) {absent} not found in tree "
                    f"{metadata.get('treename', 'Events')!r} (dataset {dataset!r})"
                )
            fired = np.zeros(len(events), dtype=bool)
            for path in triggers:
                fired |= ak.to_numpy(events.HLT[path]).astype(bool)
            cuts["trigger"] = fired
        return cuts

    def _finite_inputs(self, events: ak.Array, mc: bool) -> np.ndarray:
        """Events whose lepton, jet and MET kinematics (and simulation weight) are finite.

        A NaN pT fails every cut and an infinite one passes them, so a corrupted object
        would silently remove an event or change which lepton is selected: such events
        are skipped whole, counted per file (``nonfinite_inputs``) and in the cutflow.
        """
        finite = np.ones(len(events), dtype=bool)
        for collection in ("Electron", "Muon"):
            for f in ("pt", "eta", "phi", "mass"):
                finite &= ak.to_numpy(ak.all(np.isfinite(events[collection][f]), axis=1))
        if self._has_jets(events):
            for f in ("pt", "eta", "phi"):
                finite &= ak.to_numpy(ak.all(np.isfinite(events.Jet[f]), axis=1))
        for f in ("pt", "phi"):
            finite &= np.isfinite(ak.to_numpy(events[self.met][f]))
        if mc and "genWeight" in events.fields:
            finite &= np.isfinite(ak.to_numpy(events.genWeight))
        return finite

    @staticmethod
    def _leptons(events: ak.Array, collection: str, cuts: LeptonCuts) -> ak.Array:
        """Plain records with the kinematics and the cut fields (checked by :meth:`_check`)."""
        source = events[collection]
        # kinematics in float64: NanoAOD stores float32, the features are computed in double
        fields = {f: ak.values_astype(source[f], np.float64) for f in ("pt", "eta", "phi", "mass")}
        fields |= {f: source[f] for f in ("charge", *cuts.fields)}
        return ak.zip(fields)

    @staticmethod
    def _has_jets(events: ak.Array) -> bool:
        # without all four fields coffea cannot even build the Jet collection
        if "Jet" not in events.fields:
            return False
        try:
            return set(_JET_FIELDS) <= set(events.Jet.fields)
        except (AttributeError, ValueError):
            return False

    def _event_weights(
        self, events: ak.Array, metadata: Mapping[str, Any], mc: bool
    ) -> tuple[np.ndarray, str]:
        """Per-event weights and how they were made (recorded in the output)."""
        if not mc:
            return np.ones(len(events)), "1 (data)"
        weights = ak.to_numpy(events.genWeight).astype(np.float64)
        if "xsec" not in metadata:
            return weights, "genWeight (no xsec in the metadata: not normalised)"
        if "sumw" not in metadata:
            raise InputError(
                f"dataset {metadata['dataset']!r}: metadata has 'xsec' but no 'sumw'; add it, "
                "or run through symnplm.processors.runner.process_fileset, which sums "
                "Runs/genEventSumw"
            )
        if self.luminosity_fb is None:
            raise InputError(
                f"dataset {metadata['dataset']!r}: no luminosity to normalise its cross section; "
                "give EMuProcessor(luminosity_fb=...) or run through process_fileset"
            )
        norm = float(metadata["xsec"]) * 1000.0 * self.luminosity_fb / float(metadata["sumw"])
        return weights * norm, "genWeight * xsec * luminosity / sumw"

    def _variants(
        self, electrons: ak.Array, muons: ak.Array, met_pt: np.ndarray, met_phi: np.ndarray
    ) -> Iterator[tuple[str, ak.Array, ak.Array, np.ndarray, np.ndarray]]:
        """The nominal leptons and MET, then each momentum-scale variation of them."""
        yield NOMINAL, electrons, muons, met_pt, met_phi
        for name, scale, nu in self.scale_variations:
            before = electrons if scale.flavour == "electron" else muons
            after = scale_momenta(before, scale, nu)
            pt, phi = propagate_to_met(met_pt, met_phi, before, after)
            if scale.flavour == "electron":
                yield name, after, muons, pt, phi
            else:
                yield name, electrons, after, pt, phi

    def process(self, events: ak.Array) -> dict[str, Any]:
        """Select, compute columns and fill histograms for one chunk (see the module docstring)."""
        metadata = events.metadata
        try:
            return self._process(events, metadata)
        except READ_ERRORS as err:  # data are read lazily, here: say which file failed
            if isinstance(err, DamagedFileError):
                raise
            start = metadata.get("entrystart", 0)
            stop = metadata.get("entrystop", start + len(events))
            reason = " ".join(str(err).split())  # one line: uproot's messages span several
            raise DamagedFileError(
                f"{metadata.get('filename', '<events>')} (entries {start}-{stop}): "
                f"cannot read the data ({type(err).__name__}: {reason})"
            ) from err

    def _process(self, events: ak.Array, metadata: Mapping[str, Any]) -> dict[str, Any]:
        dataset = metadata["dataset"]
        if "is_data" in metadata:
            mc = not metadata["is_data"]
        else:  # a cross section means simulation (genWeight then required); else look for it
            mc = "xsec" in metadata or "genWeight" in events.fields
        self._check(events, metadata, mc)
        n_all = len(events)
        if self.events != "all":  # one half of the sample by event-number parity
            odd = ak.to_numpy(events.event) % 2 == 1
            events = events[odd if self.events == "odd" else ~odd]
        parity_events = len(events)
        event_cuts = self._event_cuts(events, metadata, mc)
        event_cuts["finite_inputs"] = self._finite_inputs(events, mc)
        # skipped by the finite-input rule alone (after the data-quality and trigger cuts)
        n_nonfinite = int(
            (
                np.logical_and.reduce(list(event_cuts.values())[:-1], initial=True)
                & ~event_cuts["finite_inputs"]
            ).sum()
        )
        if event_cuts:  # data quality and trigger, before any object is looked at
            events = events[np.logical_and.reduce(list(event_cuts.values()))]

        missing: set[str] = set()
        electrons = self._leptons(events, "Electron", self.electron)
        muons = self._leptons(events, "Muon", self.muon)
        has_jets = self._has_jets(events)
        if not has_jets:
            missing.add("Jet_" + "/".join(_JET_FIELDS))
        elif self.jets.btag_field not in events.Jet.fields:
            missing.add(f"Jet_{self.jets.btag_field}")
        met_pt = ak.to_numpy(events[self.met].pt).astype(np.float64)
        met_phi = ak.to_numpy(events[self.met].phi).astype(np.float64)
        weights, weighting = self._event_weights(events, metadata, mc)

        chunk = (str(metadata.get("filename", "")), int(metadata.get("entrystart", 0)))
        out: dict[str, Any] = {
            "hists": book_histograms(),
            "cutflow": {dataset: {"all": n_all}},
            "columns": {},
            "column_files": {},
            "missing": {dataset: missing},
            "weighting": {dataset: {weighting}},
            "nonfinite_inputs": {dataset: {chunk[0]: n_nonfinite}} if n_nonfinite else {},
        }
        if self.events != "all":
            out["cutflow"][dataset][f"{self.events}_events"] = parity_events
        out["cutflow"][dataset] |= cutflow(event_cuts)
        for variation, e, mu, mpt, mphi in self._variants(electrons, muons, met_pt, met_phi):
            sel = select_emu(e, mu, self.electron, self.muon, self.charge)
            cols = emu_features(
                sel.electron, sel.muon, mpt[sel.mask], mphi[sel.mask], self.collinear_form
            )
            cols |= (
                jet_multiplicities(events.Jet[sel.mask], [sel.electron, sel.muon], self.jets)
                if has_jets
                else {k: np.full(int(sel.mask.sum()), -1.0) for k in ("n_jets", "n_bjets")}
            )
            base = weights[sel.mask]
            accepted = None
            if self.efficiency is not None:
                # both leptons where the map saw both flavours: the common acceptance
                inside = self.efficiency.accepts(cols["pt_e"], cols["eta_e"])
                inside &= self.efficiency.accepts(cols["pt_mu"], cols["eta_mu"])
                cols, base = {k: v[inside] for k, v in cols.items()}, base[inside]
                accepted = int(inside.sum())
            event_weights = self.event_weights(cols, base, mc)
            cols[WEIGHT] = event_weights.weight()
            masks = emu_categories(
                cols["pt_e"], cols["pt_mu"], cols["charge_e"], cols["charge_mu"], self.charge
            )
            # the weight-only variations of the nominal events, for the files and histograms
            reweighted = self.weight_variations(event_weights) if variation == NOMINAL else []
            if self.columns_dir is None:
                kept = {n: w for n, w in reweighted if isinstance(w, np.ndarray)}
                out["columns"][(dataset, variation)] = {
                    chunk: cols | {WEIGHT_PREFIX + n: w for n, w in kept.items()}
                }
            else:
                out["column_files"][(dataset, variation)] = {
                    chunk: self._write_chunk(dataset, variation, metadata, cols, masks, reweighted)
                }
            factors: list[tuple[str, Any]] = [(variation, 1.0), *reweighted]
            weight_of = _weights_of(cols[WEIGHT])
            if variation == NOMINAL:
                out["cutflow"][dataset] |= cutflow(sel.cuts)
                if accepted is not None:  # after the selection steps
                    out["cutflow"][dataset]["map_acceptance"] = accepted
                for category, mask in masks.items():
                    out["cutflow"][dataset][category] = int(mask.sum())
            for category, mask in masks.items():
                selected = {k: v[mask] for k, v in cols.items()}
                for name, factor in factors:
                    fill_histograms(
                        out["hists"], dataset, category, name, selected, weight_of(factor, mask)
                    )
        return out

    def _write_chunk(
        self,
        dataset: str,
        variation: str,
        metadata: Mapping[str, Any],
        cols: Mapping[str, np.ndarray],
        masks: Mapping[str, np.ndarray],
        reweighted: Sequence[tuple[str, Any]],
    ) -> dict[str, Any]:
        """Write one chunk's events of one variation; what the manifest needs of them.

        The file holds every selected event (the categories are filters on its columns)
        and the weights of the weight-only variations ``reweighted`` (name, factor) of
        the nominal sample with a factor per event (``weight:<name>``); a factor that is
        one number is returned in ``factors``, for the manifest. Its name is fixed by the
        chunk, so a retried or rerun chunk replaces its own file.
        """
        assert self.columns_dir is not None
        key = f"{metadata.get('filename', '')}:{metadata.get('entrystart', 0)}"
        key += f"-{metadata.get('entrystop', 0)}"
        name = hashlib.sha1(key.encode()).hexdigest()[:16]
        path = Path(self.columns_dir) / dataset / variation / f"{name}.parquet"
        # a per-event factor (efficiency) is a weight column; a number (normalisation) is
        # recorded in the manifest, not stored as a copy of the weights
        weights = {n: w for n, w in reweighted if isinstance(w, np.ndarray)}
        factors = {n: float(f) for n, f in reweighted if not isinstance(f, np.ndarray)}
        all_weights = {
            variation: cols[WEIGHT],
            **weights,
            **{n: cols[WEIGHT] * f for n, f in factors.items()},
        }
        finite = np.all([np.isfinite(cols[c]) for c in EMU_COLUMNS], axis=0)
        summary: dict[str, Any] = {
            "path": None,
            "n": {c: int(m.sum()) for c, m in masks.items()},
            "nonfinite": {c: int((m & ~finite).sum()) for c, m in masks.items()},
            "sumw": {
                v: {c: float(w[m].sum()) for c, m in masks.items()} for v, w in all_weights.items()
            },
            "factors": factors,
        }
        if len(cols[WEIGHT]):
            write_columns(
                path,
                # NanoAOD stores single precision: the features, computed in double, are
                # stored in single too (relative rounding 6e-8, far below any resolution)
                {c: cols[c].astype(np.float32) for c in EMU_COLUMNS},
                cols[WEIGHT],
                weights,
                f"{dataset}/{variation}",
                {"dataset": dataset, "variation": variation, "chunk": key},
            )
            summary["path"] = str(path)
        return summary

    # -- after accumulation ----------------------------------------------------------------
    def postprocess(self, accumulator: dict[str, Any]) -> dict[str, Any]:
        """Join each (dataset, variation)'s chunks in (file, first entry) order."""
        joined = {}
        for key, chunks in accumulator["columns"].items():
            order = sorted(chunks)
            joined[key] = {
                c: np.concatenate([chunks[k][c] for k in order]) for c in chunks[order[0]]
            }
        accumulator["columns"] = joined
        return accumulator

    def tables(
        self, output: Mapping[str, Any]
    ) -> Iterator[tuple[str, str, str, dict[str, np.ndarray]]]:
        """(dataset, category, variation, columns incl. ``weight``) of every sample in ``output``.

        ``output`` is the post-processed accumulator; the normalisation and efficiency
        variations are the nominal events with other weights.
        """
        for (dataset, variation), cols in output["columns"].items():
            masks = emu_categories(
                cols["pt_e"], cols["pt_mu"], cols["charge_e"], cols["charge_mu"], self.charge
            )
            weight_of = _weights_of(cols[WEIGHT])
            reweighted: list[tuple[str, Any]] = []
            if variation == NOMINAL:  # the efficiency variations' weights are columns here
                reweighted = list(self.norm_variations)
                reweighted += [(n, cols[WEIGHT_PREFIX + n]) for n, _ in self.efficiency_variations]
            plain = {k: v for k, v in cols.items() if not k.startswith(WEIGHT_PREFIX)}
            for category in self.categories:
                mask = masks[category]
                selected = {k: v[mask] for k, v in plain.items()}
                yield dataset, category, variation, selected
                for name, factor in reweighted:
                    yield dataset, category, name, {**selected, WEIGHT: weight_of(factor, mask)}
