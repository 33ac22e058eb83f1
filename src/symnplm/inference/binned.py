"""The binned statistic: f piecewise constant on bins, maximised analytically.

The bin-wise maximum of the extended likelihood (arXiv:2401.09530, Eq. 11 for
NPLM, Eq. 22 for the symmetrized statistic with bin-wise f and g) needs no fit;
it calibrates the network statistics and serves one-dimensional observables.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from symnplm.engine import BinwiseFunction
from symnplm.inference.batches import BatchFit, ReplicaBatch, TwoSampleTest
from symnplm.io.samples import Sample, as_sample

__all__ = ["BinnedTest", "quantile_edges"]


def quantile_edges(sample: Sample | np.ndarray, n_bins: int) -> np.ndarray:
    """Bin edges with equal (unweighted) population of ``sample``'s first feature."""
    s = as_sample(sample)
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    edges = np.quantile(s.features[:, 0], np.linspace(0, 1, n_bins + 1))
    edges = np.unique(edges)
    if edges.size < 2:
        raise ValueError("cannot build bins: the feature takes a single value")
    return edges


def _xlogx_ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a log(a/b) with 0 log 0 = 0 and a log(a/0) = +inf."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(a > 0, a * np.log(np.where(a > 0, a, 1.0) / b), 0.0)


class BinnedTest(TwoSampleTest):
    """Bin-wise statistic: f piecewise constant on bins, maximised analytically.

    For each bin k with data weight β_k and reference coefficient c_k the loss term
    c_k(e^{f_k} - 1) - β_k f_k is minimised at e^{f_k} = β_k / c_k, giving
    t = 2 Σ_k [β_k log(β_k / c_k) - β_k + c_k]. For the symmetrized statistic this is
    the G-test of the 2×K table of A and B counts (the same value as the binned
    cross-entropy statistic); for NPLM it diverges if A populates a bin B leaves empty.

    Parameters
    ----------
    edges
        Bin edges of the (one-dimensional) observable; under/overflow go to the edge bins.
    statistic
        ``"symmetrized"`` (Eq. 22 with bin-wise f, g) or ``"nplm"`` (Eq. 11).
    n_a_expected
        For ``"nplm"``: fixed N_A(H0) (see :class:`NPLMTest`).
    """

    def __init__(
        self,
        edges: Sequence[float] | np.ndarray,
        statistic: str = "symmetrized",
        n_a_expected: float | None = None,
    ) -> None:
        self.binning = BinwiseFunction(tuple(np.asarray(edges, dtype=np.float64)))
        if statistic not in ("symmetrized", "nplm"):
            raise ValueError(f"binned statistic must be 'symmetrized' or 'nplm', got {statistic!r}")
        if n_a_expected is not None and statistic != "nplm":
            raise ValueError("n_a_expected applies to the nplm statistic only")
        self.kind = statistic
        self.n_a_expected = n_a_expected
        self.statistic = f"binned-{statistic}"

    @property
    def edges(self) -> np.ndarray:
        """Bin edges."""
        return np.asarray(self.binning.edges)

    @property
    def n_parameters(self) -> int:
        """One value per bin."""
        return self.binning.n_bins

    @property
    def dof(self) -> int:
        """K - 1 (K for NPLM with a fixed expectation)."""
        return self.n_parameters - (0 if (self.kind == "nplm" and self.n_a_expected) else 1)

    def model_description(self) -> dict[str, Any]:
        """The binning."""
        return self.binning.describe()

    def config(self) -> dict[str, Any]:
        """Statistic and binning."""
        return {
            "statistic": self.statistic,
            "model": self.binning.describe(),
            "n_a_expected": self.n_a_expected,
        }

    def check_input(self, batch: ReplicaBatch) -> None:
        """One-dimensional observable only."""
        if batch.dim != 1:
            raise ValueError(
                "the binned test needs a one-dimensional observable, "
                f"got {batch.dim} features {list(batch.names)}"
            )

    def histograms(self, batch: ReplicaBatch) -> tuple[np.ndarray, np.ndarray]:
        """Weighted A and B histograms per replica, ``(R, K)`` each."""
        k = self.binning.n_bins
        idx = self.binning.bin_index(torch.as_tensor(batch.x)).numpy()
        idx = np.broadcast_to(idx, batch.weight_a.shape)
        flat = (np.arange(batch.n_replicas)[:, None] * k + idx).ravel()
        size = batch.n_replicas * k
        ha = np.bincount(flat, weights=batch.weight_a.ravel(), minlength=size).reshape(-1, k)
        hb = np.bincount(flat, weights=batch.weight_b.ravel(), minlength=size).reshape(-1, k)
        for label, h in (("A", ha), ("B", hb)):
            if np.any(h < 0):
                r, b = np.argwhere(h < 0)[0]
                raise ValueError(
                    f"bin {b} of sample {label} has negative total weight "
                    f"{h[r, b]:.4g} (replica {r})"
                )
        return ha, hb

    @staticmethod
    def _one_sided(beta: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(t, f) of one extended-likelihood fit with bin-wise f."""
        t = 2 * (_xlogx_ratio(beta, c) - beta + c).sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            f = np.log(beta / c)
        return t, f

    def fit_batch(
        self,
        batch: ReplicaBatch,
        seed: int,
        replica_ids: Sequence[int],
        keep_functions: bool = False,
    ) -> BatchFit:
        """Analytic maximum for every replica (``seed`` is unused: nothing is random)."""
        self.check_input(batch)
        start = time.perf_counter()
        ha, hb = self.histograms(batch)
        na, nb = ha.sum(1, keepdims=True), hb.sum(1, keepdims=True)
        empty_steps = np.zeros(0, dtype=np.int64)
        if self.kind == "symmetrized":
            n = na + nb
            t_a, f = self._one_sided(ha, (na / n) * (ha + hb))
            t_b, g = self._one_sided(hb, (nb / n) * (ha + hb))
            t = t_a + t_b
            diverged = ~np.isfinite(t)
            return BatchFit(
                t=t,
                parts={"t_A": t_a, "t_B": t_b},
                diverged=diverged,
                converged=~diverged,
                history_steps=empty_steps,
                history={},
                functions={"f": [f], "g": [g]} if keep_functions else {},
                log_ratio_terms=[[1.0, "f"], [-1.0, "g"]],
                log_ratio_constant=np.log(na[:, 0] / nb[:, 0]),
                seconds=time.perf_counter() - start,
            )
        n_a = np.full_like(na, self.n_a_expected) if self.n_a_expected else na
        t, f = self._one_sided(ha, (n_a / nb) * hb)
        diverged = ~np.isfinite(t)
        return BatchFit(
            t=np.where(diverged, np.inf, t),
            parts={},
            diverged=diverged,
            converged=~diverged,
            history_steps=empty_steps,
            history={},
            functions={"f": [f]} if keep_functions else {},
            log_ratio_terms=[[1.0, "f"]],
            log_ratio_constant=np.log(n_a[:, 0] / nb[:, 0]),
            seconds=time.perf_counter() - start,
        )
