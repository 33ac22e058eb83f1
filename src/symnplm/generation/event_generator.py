"""Configure and run Pythia 8 for one process.

Common settings: pp at 13 TeV, multiparton interactions off (about ten times
faster; the detector emulates the underlying event in the isolation cones),
hadronisation on, isotropic τ decays (``TauDecays:mode = 0``, spin-correlated
decays are ~35× slower). The process's own settings add the hard process and the
forced resonance decays; τ decays are forced to the process's lepton flavours.

:meth:`PythiaGenerator.sigma_pb` returns the cross section of what was generated
(forced resonance decays included, τ branching fractions *not*: those are the
per-event weight ``tau_branching_fraction ** n_tau_decays``), before the K-factor.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pythia8mc

from symnplm.generation.event_record import ParticleBatch
from symnplm.generation.processes import (
    HIGGS_MASS_GEV,
    SQRT_S_GEV,
    TOP_MASS_GEV,
    ProcessSpec,
)
from symnplm.generation.tw_process import SigmaGB2TW

__all__ = ["COMMON_SETTINGS", "PYTHIA_SEED_MAX", "PythiaGenerator"]

COMMON_SETTINGS: tuple[str, ...] = (
    f"Beams:eCM = {SQRT_S_GEV}",
    "PartonLevel:MPI = off",
    "HadronLevel:all = on",
    "TauDecays:mode = 0",
    f"6:m0 = {TOP_MASS_GEV}",
    f"25:m0 = {HIGGS_MASS_GEV}",
    "Print:quiet = on",
    "Next:numberCount = 0",
    "Random:setSeed = on",
)
_MB_TO_PB = 1e9
_TAU = 15
#: Pythia accepts seeds in [0, 900 000 000]; 0 would mean "from the clock".
PYTHIA_SEED_MAX = 900_000_000


class PythiaGenerator:
    """A Pythia instance set up for ``spec``.

    Parameters
    ----------
    spec
        The process.
    seed
        Pythia random seed, 1 … 900 000 000.
    extra_settings
        Additional ``readString`` lines (applied last; for tests and studies).
    """

    def __init__(self, spec: ProcessSpec, seed: int, extra_settings: Sequence[str] = ()) -> None:
        if not 1 <= int(seed) <= PYTHIA_SEED_MAX:
            raise ValueError(f"Pythia seed must be in [1, {PYTHIA_SEED_MAX}], got {seed!r}")
        self.spec = spec
        self.pythia = pythia8mc.Pythia("", False)
        self.settings = (
            *COMMON_SETTINGS,
            f"Random:seed = {int(seed)}",
            *spec.settings,
            *spec.tau_settings(),
            *extra_settings,
        )
        for line in self.settings:
            if not self.pythia.readString(line):
                raise ValueError(f"process {spec.name}: Pythia rejected the setting {line!r}")
        self._semi_internal = None
        if spec.semi_internal == "gb2tW":
            self._semi_internal = SigmaGB2TW()
            self.pythia.setSigmaPtr(self._semi_internal)
        elif spec.semi_internal is not None:
            raise ValueError(
                f"process {spec.name}: unknown semi-internal process {spec.semi_internal!r}"
            )
        if not self.pythia.init():
            raise RuntimeError(f"process {spec.name}: Pythia initialisation failed")
        self.n_generated = 0

    @property
    def tau_branching_fraction(self) -> float:
        """Open fraction of the τ decay table: the weight of one forced τ decay."""
        entry = self.pythia.particleData.particleDataEntryPtr(_TAU)
        total = opened = 0.0
        for i in range(entry.sizeChannels()):
            channel = entry.channel(i)
            total += channel.bRatio()
            if channel.onMode() > 0:
                opened += channel.bRatio()
        return opened / total

    def batches(self, n_events: int, batch_size: int) -> Iterator[ParticleBatch]:
        """Generate ``n_events`` events, ``batch_size`` at a time."""
        done = 0
        while done < n_events:
            n = min(batch_size, n_events - done)
            events = self.pythia.nextBatch(n, "skip")
            done += n
            self.n_generated += n
            yield ParticleBatch.from_pythia(events)

    def sigma_pb(self) -> float:
        """Cross section of the generated sample in pb, before K-factor and τ weights."""
        sigma = self.pythia.infoPython().sigmaGen() * _MB_TO_PB
        data = self.pythia.particleData
        if self._semi_internal is not None:
            # The Python process cannot fold in the forced t and W decays itself.
            sigma *= data.resOpenFrac(6, -24, 0)
        if self.spec.lfv_branching_ratio is not None:
            # Replace Pythia's H → τℓ fraction by the requested branching ratio.
            sigma *= self.spec.lfv_branching_ratio / data.resOpenFrac(25, 0, 0)
        return sigma

    def sigma_error_pb(self) -> float:
        """Statistical uncertainty of Pythia's cross-section estimate, same scaling."""
        info = self.pythia.infoPython()
        if info.sigmaGen() <= 0:
            return 0.0
        return self.sigma_pb() * info.sigmaErr() / info.sigmaGen()
