"""symnplm: model-agnostic two-sample tests for LHC data.

The New Physics Learning Machine (NPLM, D'Agnolo & Wulzer) and its symmetrized
generalisation (Bressler, Savoray & Zurgil, arXiv:2401.09530), with coffea
processors for e-mu / mu-e lepton-flavour-universality scans.

Layers: ``physics`` and ``processors`` make columns from NanoAOD,
``samples`` carries them to the torch ``engine``, ``inference`` turns fits into
calibrated p-values, ``booking``/``plotting`` make hist objects and figures.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
