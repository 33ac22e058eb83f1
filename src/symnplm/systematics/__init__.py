"""Systematic uncertainties: nuisance-aware NPLM (t = τ - Δ) and its symmetrized extension.

* :mod:`.delta_learning` — δ_k(x) of r(x; ν) = exp(Σ_k δ_k ν^k) learned from nominal and
  varied samples with the quadratic loss of arXiv:2007.10356 (as in arXiv:2111.13633);
* :mod:`.nuisances` — nuisances (learned shape, analytic normalisation, A/B asymmetry)
  and their Gaussian auxiliary constraints;
* :mod:`.objectives` — the engine objective fitting f and ν jointly (or ν alone);
* :mod:`.nuisance_test` — :class:`NuisanceNPLMTest` and :class:`NuisanceSymmetrizedTest`;
* :mod:`.toys` — one-dimensional toys with known nuisance effects.
"""

from symnplm.systematics.delta_learning import (
    DEFAULT_DELTA_FIT,
    DeltaObjective,
    LearnedNuisance,
    VariationSet,
    learn_deltas,
    variation_set_from_processor,
)
from symnplm.systematics.nuisance_test import NuisanceNPLMTest, NuisanceSymmetrizedTest
from symnplm.systematics.nuisances import (
    AsymmetryNuisance,
    NormalisationNuisance,
    Nuisance,
    NuisanceSet,
)
from symnplm.systematics.objectives import NuisanceObjective

__all__ = [
    "DEFAULT_DELTA_FIT",
    "AsymmetryNuisance",
    "DeltaObjective",
    "LearnedNuisance",
    "NormalisationNuisance",
    "Nuisance",
    "NuisanceNPLMTest",
    "NuisanceObjective",
    "NuisanceSet",
    "NuisanceSymmetrizedTest",
    "VariationSet",
    "learn_deltas",
    "variation_set_from_processor",
]
