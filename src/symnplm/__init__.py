"""symnplm: model-agnostic two-sample tests for LHC data.

The New Physics Learning Machine (NPLM, D'Agnolo & Wulzer) and its symmetrized
generalisation (Bressler, Savoray & Zurgil, arXiv:2401.09530), with coffea
processors for e-mu / mu-e lepton-flavour-universality scans.

Layers, from data to figures: ``physics`` and ``processors`` make columns from
NanoAOD; ``io`` carries them as samples and books results; ``engine`` fits with torch;
``inference`` turns fits into calibrated p-values; ``systematics`` adds nuisances;
``workflow`` runs the chain from a run description; ``plotting`` draws; ``cli`` is the
``symnplm`` command; ``generation`` makes Pythia 8 samples with a parametric detector.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
from pathlib import Path

__version__ = "0.1.0"

__all__ = ["__version__"]


class _CheckoutProcessors(importlib.abc.MetaPathFinder):
    """``symnplm.processors`` from a source checkout's top-level ``processors/`` folder.

    A wheel ships the coffea processors inside the package (``symnplm/processors``);
    an editable install points at ``src/``, where they are not, so this finder serves
    them from the repository itself and edits take effect without reinstalling.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def find_spec(self, fullname, path=None, target=None):  # type: ignore[no-untyped-def]
        if fullname != f"{__name__}.processors":
            return None
        return importlib.util.spec_from_file_location(
            fullname,
            self.folder / "__init__.py",
            submodule_search_locations=[str(self.folder)],
        )


_here = Path(__file__).resolve().parent
_checkout = _here.parents[1] / "processors"
if not (_here / "processors").is_dir() and (_checkout / "__init__.py").is_file():
    sys.meta_path.insert(0, _CheckoutProcessors(_checkout))
