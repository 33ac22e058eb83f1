"""Histograms of the e-mu processor: one ``hist.Hist`` per observable.

Every histogram has the ``StrCategory`` axes ``dataset``, ``category`` and
``variation`` (growing, so chunks of different datasets merge by addition), then
the observable; the lepton histograms have a ``lepton`` axis (``leading``,
``subleading``, ``electron``, ``muon``). Storage is ``Weight`` (sum of weights and
of squared weights).

Bin edges sit on round numbers and detector boundaries: η is binned symmetrically
with edges at the ECAL barrel-endcap crack (|η| = 1.37, 1.52), the central gap
(|η| = 0.1) and the acceptance (|η| = 2.3, 2.5), so no bin straddles a boundary.
:func:`symnplm.physics.binning.feature_edges` applies the same rules to the features
of a test result.
"""

from __future__ import annotations

from collections.abc import Mapping

import hist
import numpy as np

from symnplm.physics.binning import ABS_ETA_EDGES, ETA_EDGES, feature_edges, nice_step

__all__ = [
    "ABS_ETA_EDGES",
    "ETA_EDGES",
    "LEPTONS",
    "book_histograms",
    "feature_edges",
    "fill_histograms",
    "nice_step",
]

#: lepton axis label -> column suffix
LEPTONS: dict[str, str] = {
    "leading": "lead",
    "subleading": "sublead",
    "electron": "e",
    "muon": "mu",
}

# observable -> (axis, column); axes in GeV
_EVENT_AXES: dict[str, tuple[hist.axis.AxesMixin, str]] = {
    "m_coll": (
        hist.axis.Regular(100, 0.0, 500.0, name="m_coll", label=r"$m_{coll}$ [GeV]"),
        "m_coll",
    ),
    "m_ll": (hist.axis.Regular(100, 0.0, 500.0, name="m_ll", label=r"$m_{e\mu}$ [GeV]"), "m_ll"),
    "dphi": (
        hist.axis.Regular(32, 0.0, np.pi, name="dphi", label=r"$|\Delta\phi_{\ell\ell}|$"),
        "dphi",
    ),
    "met": (hist.axis.Regular(100, 0.0, 250.0, name="met", label=r"$E_T^{miss}$ [GeV]"), "met"),
    "n_jets": (hist.axis.Integer(0, 10, name="n_jets", label="jet multiplicity"), "n_jets"),
    "n_bjets": (
        hist.axis.Integer(0, 5, name="n_bjets", label="b-tagged jet multiplicity"),
        "n_bjets",
    ),
}
_LEPTON_AXES: dict[str, hist.axis.AxesMixin] = {
    "pt": hist.axis.Regular(100, 0.0, 250.0, name="pt", label=r"$p_T$ [GeV]"),
    "eta": hist.axis.Variable(ETA_EDGES, name="eta", label=r"$\eta$"),
    "phi": hist.axis.Regular(64, -np.pi, np.pi, name="phi", label=r"$\phi$"),
}


def _bookkeeping_axes() -> list[hist.axis.StrCategory]:
    return [
        hist.axis.StrCategory([], growth=True, name=name, label=name)
        for name in ("dataset", "category", "variation")
    ]


def book_histograms() -> dict[str, hist.Hist]:
    """Empty histograms: m_coll, m_ll, dphi, met, n_jets, n_bjets, lepton_pt, lepton_eta,
    lepton_phi."""
    hists = {
        name: hist.Hist(*_bookkeeping_axes(), axis, storage=hist.storage.Weight())
        for name, (axis, _) in _EVENT_AXES.items()
    }
    for var, axis in _LEPTON_AXES.items():
        lepton = hist.axis.StrCategory(list(LEPTONS), name="lepton", label="lepton")
        hists[f"lepton_{var}"] = hist.Hist(
            *_bookkeeping_axes(), lepton, axis, storage=hist.storage.Weight()
        )
    return hists


def fill_histograms(
    hists: Mapping[str, hist.Hist],
    dataset: str,
    category: str,
    variation: str,
    columns: Mapping[str, np.ndarray],
    weight: np.ndarray,
) -> None:
    """Fill every histogram from the per-event ``columns`` of one category and variation."""
    where = {"dataset": dataset, "category": category, "variation": variation}
    for name, (axis, column) in _EVENT_AXES.items():
        values = columns[column]
        if isinstance(axis, hist.axis.Integer):  # integer axes take integer arrays only
            values = values.astype(np.int64)
        hists[name].fill(**where, **{name: values}, weight=weight)
    for var in _LEPTON_AXES:
        for label, suffix in LEPTONS.items():
            hists[f"lepton_{var}"].fill(
                **where, lepton=label, **{var: columns[f"{var}_{suffix}"]}, weight=weight
            )
