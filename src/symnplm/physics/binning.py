"""Bin edges on round numbers and detector boundaries, for histograms and figures.

η is binned symmetrically with edges at the ECAL barrel-endcap crack
(|η| = 1.37, 1.52), the central gap (|η| = 0.1) and the acceptance (|η| = 2.3, 2.5),
so no bin straddles a boundary; momenta and masses start on a round multiple of a
round width.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["ABS_ETA_EDGES", "ETA_EDGES", "feature_edges", "nice_step"]

#: |η| edges: the central gap (0.1), the barrel/endcap split of the momentum scale (1.2),
#: the ECAL crack (1.37-1.52), the lepton acceptance (2.3) and the tracker's reach (2.5)
ABS_ETA_EDGES: tuple[float, ...] = (
    0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.05, 1.2, 1.37, 1.52, 1.7, 1.9, 2.1, 2.3, 2.5,
)  # fmt: skip
#: η edges, symmetric about 0
ETA_EDGES: tuple[float, ...] = tuple(-e for e in ABS_ETA_EDGES[:0:-1]) + ABS_ETA_EDGES


def nice_step(width: float) -> float:
    """The smallest of 1, 2, 2.5, 5 × 10^k that is at least ``width`` (> 0)."""
    power = 10.0 ** math.floor(math.log10(width))
    for mantissa in (1.0, 2.0, 2.5, 5.0, 10.0):
        # a relative tolerance: 0.3 / 0.1 must give 3, not 3.0000000000000004
        if mantissa * power >= width * (1 - 1e-9):
            return mantissa * power
    raise AssertionError("unreachable: 10 × 10^k >= width")


def feature_edges(name: str, values: np.ndarray, bins: int = 40) -> np.ndarray:
    """Bin edges of a feature for figures: round numbers and detector boundaries.

    Parameters
    ----------
    name
        Feature name (``eta_*``, ``phi_*``, ``dphi`` are angles; anything else,
        e.g. a momentum or mass in GeV, gets a round lower edge and bin width).
    values
        The feature's values; they set the range of non-angular features (the
        minimum and the 99.5th percentile, so that a far tail does not squeeze the
        bulk into a few bins) and the reach in |η|.
    bins
        About how many bins (non-angular features and ``dphi``/``phi_*``).

    Returns
    -------
    numpy.ndarray
        Increasing edges.
    """
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if name.startswith("eta"):
        reach = float(np.max(np.abs(values))) if values.size else ABS_ETA_EDGES[-1]
        # up to the first boundary at or beyond the data: |η| <= 2.3 ends at 2.3, not 2.5
        top = next((e for e in ABS_ETA_EDGES[1:] if e >= reach - 1e-9), ABS_ETA_EDGES[-1])
        half = [e for e in ABS_ETA_EDGES if e <= top]
        return np.array([-e for e in half[:0:-1]] + half)
    if name == "dphi" or name.startswith("dphi"):
        return np.linspace(0.0, np.pi, bins + 1)  # |Δφ| in [0, π]
    if name.startswith("phi"):
        return np.linspace(-np.pi, np.pi, bins + 1)
    if values.size == 0:
        return np.linspace(0.0, 1.0, bins + 1)
    lo, hi = float(np.min(values)), float(np.percentile(values, 99.5))
    if not hi > lo:
        hi = lo + 1.0
    step = nice_step((hi - lo) / bins)
    first = math.floor(lo / step + 1e-9)  # the tolerance keeps 15.0 / 5 on the edge 15
    last = max(math.ceil(hi / step - 1e-9), first + 1)
    return np.round(np.arange(first, last + 1) * step, 12)  # 3 × 0.1 is 0.3, not 0.30…04
