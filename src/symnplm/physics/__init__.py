"""Physics layer: e-mu kinematics, collinear mass, variations, efficiency weights.

Plain functions of awkward / numpy arrays (awkward + vector, no coffea, no torch),
used by the coffea processor in ``symnplm.processors`` and testable on their own.

- :mod:`~symnplm.physics.selection`: lepton and e-mu event selection, categories, jets;
- :mod:`~symnplm.physics.kinematics`: roles, the five two-body features, m_ll, m_coll;
- :mod:`~symnplm.physics.variations`: momentum-scale and normalisation nuisances;
- :mod:`~symnplm.physics.efficiency`: ε_μ/ε_e maps (correctionlib) restoring e ↔ μ symmetry;
- :mod:`~symnplm.physics.scale_factors`: the experiments' lepton scale factors (correctionlib).
"""

from __future__ import annotations

from symnplm.physics.efficiency import EfficiencyRatio, measure_efficiency_ratio
from symnplm.physics.kinematics import (
    EMU_COLUMNS,
    TWO_BODY_FEATURES,
    by_role,
    collinear_mass,
    delta_phi,
    emu_features,
    invariant_mass,
)
from symnplm.physics.selection import (
    ELECTRON_CUTS,
    ETA_VETOES,
    JET_CUTS,
    MUON_CUTS,
    SELECTIONS,
    EMuSelection,
    JetCuts,
    LeptonCuts,
    category_filters,
    category_names,
    count_jets,
    emu_categories,
    jet_multiplicities,
    lepton_cuts,
    lepton_mask,
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

__all__ = [
    "ELECTRON_CUTS",
    "ELECTRON_SCALE",
    "EMU_COLUMNS",
    "ETA_VETOES",
    "JET_CUTS",
    "MUON_CUTS",
    "MUON_SCALE",
    "NOMINAL",
    "NORMALISATION",
    "SELECTIONS",
    "TWO_BODY_FEATURES",
    "EMuSelection",
    "EfficiencyRatio",
    "JetCuts",
    "LeptonCuts",
    "MomentumScale",
    "Normalisation",
    "by_role",
    "category_filters",
    "category_names",
    "collinear_mass",
    "count_jets",
    "delta_phi",
    "emu_categories",
    "emu_features",
    "invariant_mass",
    "jet_multiplicities",
    "lepton_cuts",
    "lepton_mask",
    "measure_efficiency_ratio",
    "propagate_to_met",
    "scale_momenta",
    "select_emu",
    "variation_name",
]
