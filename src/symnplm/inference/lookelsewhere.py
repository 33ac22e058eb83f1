"""Global significance of a scan: the look-elsewhere effect by the min-p method.

A scan tests many cells (regions × observables × statistics) on the same events. Its
null ensemble is *joint*: replica r relabels every event once, and every cell sees
that one relabelling, so the correlations between overlapping cells are in the
ensemble. For each member of the ensemble (the observation and the R replicas) the
local p-value of cell c is its rank among the R + 1 members,

    p_c(m) = #{m' : t_c(m') ≥ t_c(m)} / (R + 1),

and the scan's statistic is the smallest local p, min_c p_c(m) (the max-statistic
method on p-values, so that cells of different scales compete fairly). The global
p-value is the rank of the observation's min-p among the R + 1 members — an exact
permutation p-value whatever the correlations (Westfall & Young, 1993). Bonferroni,
C · min p, is reported as the cross-check: equal to the global p for independent
cells when both are small, larger (conservative) when the cells are correlated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from symnplm.inference.significance import p_to_z

__all__ = ["GlobalSignificance", "global_significance", "local_pvalues"]


def _ranks_ge(values: np.ndarray) -> np.ndarray:
    """For each entry of each row: how many entries of the row are ≥ it (itself included)."""
    s = np.sort(values, axis=1)
    m = values.shape[1]
    return np.stack([m - np.searchsorted(row, v, side="left") for row, v in zip(s, values)])


def _ensemble(t_obs: np.ndarray, t_null: np.ndarray) -> np.ndarray:
    """(C, R + 1): the observation first, non-finite values made conservative.

    A diverged null fit (t = inf or NaN) counts as larger than any observation; an
    observation that is NaN counts as the smallest value (p = 1).
    """
    t_obs = np.asarray(t_obs, dtype=np.float64).reshape(-1)
    t_null = np.atleast_2d(np.asarray(t_null, dtype=np.float64))
    if t_null.shape[0] != t_obs.size:
        raise ValueError(f"{t_obs.size} observed cells but null of shape {t_null.shape}")
    if t_null.shape[1] < 1:
        raise ValueError("the null ensemble has no replica")
    obs = np.where(np.isnan(t_obs), -np.inf, t_obs)
    null = np.where(np.isnan(t_null), np.inf, t_null)
    return np.concatenate([obs[:, None], null], axis=1)


def local_pvalues(t_obs: np.ndarray, t_null: np.ndarray) -> np.ndarray:
    """Local p of every cell: (1 + #{null ≥ observed}) / (R + 1).

    >>> local_pvalues([2.0, 0.0], [[0.0, 1.0, 3.0], [1.0, 1.0, 1.0]]).tolist()
    [0.5, 1.0]
    """
    members = _ensemble(t_obs, t_null)
    return _ranks_ge(members)[:, 0] / members.shape[1]


@dataclass(frozen=True)
class GlobalSignificance:
    """Local and global p-values of a scan.

    Attributes
    ----------
    local_p, local_z
        Per cell, from the cell's own null (the joint ensemble's marginal).
    local_bound
        Per cell: no null replica reached the observation, so ``local_p`` is the
        floor 1/(R + 1) and only a bound (p ≤, Z ≥).
    min_p
        The smallest local p (the scan's observed statistic).
    global_p, global_z
        The probability, under the null, of a min-p at least as small anywhere in the scan.
    global_bound
        ``global_p`` is the floor 1/(R + 1).
    bonferroni_p, sidak_p
        ``min(1, C · min_p)`` and ``1 − (1 − min_p)^C``: the cross-checks for C cells.
    trial_factor
        ``global_p / min_p``: how many independent looks the scan is worth.
    n_cells, n_replicas
        C and R.
    """

    local_p: np.ndarray
    local_z: np.ndarray
    local_bound: np.ndarray
    min_p: float
    global_p: float
    global_z: float
    global_bound: bool
    bonferroni_p: float
    sidak_p: float
    trial_factor: float
    n_cells: int
    n_replicas: int

    def to_dict(self) -> dict[str, object]:
        """JSON-able summary (per-cell arrays as lists)."""
        return {
            "min_p": self.min_p,
            "global_p": self.global_p,
            "global_z": self.global_z,
            "global_bound": self.global_bound,
            "bonferroni_p": self.bonferroni_p,
            "sidak_p": self.sidak_p,
            "trial_factor": self.trial_factor,
            "n_cells": self.n_cells,
            "n_replicas": self.n_replicas,
        }


def global_significance(t_obs: np.ndarray, t_null: np.ndarray) -> GlobalSignificance:
    """Local and global p-values from the observed t per cell and the joint null.

    Parameters
    ----------
    t_obs
        (C,) observed statistic of every cell.
    t_null
        (C, R): column r is replica r of the *joint* ensemble (one relabelling of the
        events shared by every cell); larger t means less compatible with the null.

    Examples
    --------
    Two identical cells are one look: the global p equals the local one, while
    Bonferroni doubles it.

    >>> null = np.arange(99.0)[None, :].repeat(2, axis=0)
    >>> g = global_significance([97.5, 97.5], null)
    >>> g.min_p, g.global_p, g.bonferroni_p
    (0.02, 0.02, 0.04)
    """
    members = _ensemble(t_obs, t_null)
    c, m = members.shape
    p = _ranks_ge(members) / m  # (C, R + 1)
    min_p = p.min(axis=0)
    observed = float(min_p[0])
    global_p = float(np.count_nonzero(min_p <= observed) / m)
    local_p = p[:, 0]
    return GlobalSignificance(
        local_p=local_p,
        local_z=np.array([p_to_z(v) for v in local_p]),
        local_bound=local_p <= 1.0 / m,
        min_p=observed,
        global_p=global_p,
        global_z=float(p_to_z(global_p)),
        global_bound=global_p <= 1.0 / m,
        bonferroni_p=float(min(1.0, c * observed)),
        sidak_p=float(1.0 - (1.0 - observed) ** c),
        trial_factor=float(global_p / observed),
        n_cells=int(c),
        n_replicas=int(m - 1),
    )
