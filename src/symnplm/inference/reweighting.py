"""The uncertainty of a label-dependent reweighting, carried into null replicas.

An e-mu vs mu-e test weights every event by an efficiency ratio R̂ measured on
another sample: R̂ at the electron, which is the leading lepton of an ``emu`` event
and the subleading one of a ``mue`` event. R̂ has a statistical error ε (per bin of
the map), so the corrected samples differ by exp(ε(lead)) against exp(ε(sub)) even
when nothing else does — a difference a permutation null does not contain, because
permuted samples are symmetric whatever the weights. The observed t then carries
the map's noise and the null does not: with a map measured on a sample no larger
than the one tested, that alone gives false discoveries.

:class:`ReweightingUncertainty` puts the noise into every null replica: replica r
draws ε_r ~ N(0, σ²) per bin (σ from the map's bootstrap) and multiplies the weight
of each event by exp(ε_r) at the bin that applies to it under the label the replica
gives it (``bin_if_a`` / ``bin_if_b``). The replicas then fluctuate like the
observed, corrected samples, and the calibration stays valid whatever the size of
the sample the map was measured on (a smaller one costs power, not validity).
The draws come from their own seed stream, so the relabellings are those of the
plain permutation null.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from symnplm.inference.streams import STREAM_REWEIGHTING

__all__ = ["STREAM_REWEIGHTING", "ReweightingUncertainty"]


@dataclass(frozen=True)
class ReweightingUncertainty:
    """Per-bin log-normal uncertainties of a weight that depends on an event's label.

    Parameters
    ----------
    bin_if_a, bin_if_b
        For every event of the pooled sample (A's events, then B's), the bin whose
        factor applies when the event is labelled A, and when labelled B.
    log_sigma
        σ of log R per bin.
    label
        What the reweighting is (e.g. the map's file), for provenance.
    """

    bin_if_a: np.ndarray
    bin_if_b: np.ndarray
    log_sigma: np.ndarray
    label: str = ""

    def __post_init__(self) -> None:
        a = np.asarray(self.bin_if_a, dtype=np.int64)
        b = np.asarray(self.bin_if_b, dtype=np.int64)
        sigma = np.asarray(self.log_sigma, dtype=np.float64)
        if a.shape != b.shape or a.ndim != 1:
            raise ValueError(f"bin_if_a {a.shape} and bin_if_b {b.shape} must be equal 1D shapes")
        if sigma.ndim != 1 or not np.all(np.isfinite(sigma) & (sigma >= 0)):
            raise ValueError("log_sigma must be a 1D array of finite values >= 0")
        if a.size and (min(a.min(), b.min()) < 0 or max(a.max(), b.max()) >= sigma.size):
            raise ValueError(f"bins must index log_sigma (0..{sigma.size - 1})")
        object.__setattr__(self, "bin_if_a", a)
        object.__setattr__(self, "bin_if_b", b)
        object.__setattr__(self, "log_sigma", sigma)

    def __len__(self) -> int:
        return int(self.bin_if_a.size)

    def take(self, index: np.ndarray) -> ReweightingUncertainty:
        """The same uncertainty for a subset of the pooled events (e.g. a region).

        The bins and their σ are unchanged, so one ``rng`` draws the same map for the
        subset as for the whole sample.
        """
        return ReweightingUncertainty(
            self.bin_if_a[index], self.bin_if_b[index], self.log_sigma, self.label
        )

    def factors(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """One replica's weight factors of every event if labelled A, and if labelled B."""
        eps = rng.standard_normal(self.log_sigma.size) * self.log_sigma
        return np.exp(eps[self.bin_if_a]), np.exp(eps[self.bin_if_b])

    def describe(self) -> dict[str, Any]:
        """JSON-able summary (with a fingerprint: part of a campaign's identity)."""
        h = hashlib.sha256()
        for arr in (self.bin_if_a, self.bin_if_b, self.log_sigma):
            h.update(np.ascontiguousarray(arr).tobytes())
        used = np.unique(np.concatenate([self.bin_if_a, self.bin_if_b]))
        return {
            "label": self.label,
            "events": len(self),
            "bins": int(self.log_sigma.size),
            "bins_used": int(used.size),
            "mean_log_sigma": float(self.log_sigma[used].mean()) if used.size else 0.0,
            "fingerprint": h.hexdigest()[:16],
        }
