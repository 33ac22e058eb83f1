"""Anti-kT jet clustering (Cacciari, Salam, Soyez 2008), E-scheme, in numba.

The nearest-neighbour bookkeeping is FastJet's "N²-plain" strategy: every
pseudojet remembers its geometric nearest neighbour within R, so one clustering
step costs O(N) and an event O(N²). Distances use rapidity y and azimuth φ:
d_ij = min(1/kT_i², 1/kT_j²) ΔR_ij² / R², d_iB = 1/kT_i².
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["JET_RADIUS", "anti_kt"]

#: Default jet radius (ATLAS/CMS standard small-R jets).
JET_RADIUS = 0.4


@numba.njit(cache=True)
def _rap_phi(px, py, pz, e):
    pt2 = px * px + py * py
    if pt2 <= 0.0:
        return (1e5 if pz >= 0 else -1e5), 0.0
    ee = max(e, abs(pz) + 1e-300)
    return 0.5 * np.log((ee + pz) / (ee - pz)), np.arctan2(py, px)


@numba.njit(cache=True)
def _dr2(y1, p1, y2, p2):
    dphi = abs(p1 - p2)
    if dphi > np.pi:
        dphi = 2 * np.pi - dphi
    dy = y1 - y2
    return dy * dy + dphi * dphi


@numba.njit(cache=True)
def _cluster_event(px, py, pz, e, radius, labels):
    """Cluster one event in place: ``labels[k]`` becomes the jet number of input k.

    Returns the jet four-momenta as an (n_jets, 4) array in clustering order.
    """
    n = len(px)
    r2 = radius * radius
    jpx = px.copy()
    jpy = py.copy()
    jpz = pz.copy()
    je = e.copy()
    y = np.empty(n)
    phi = np.empty(n)
    kt2inv = np.empty(n)
    for i in range(n):
        y[i], phi[i] = _rap_phi(jpx[i], jpy[i], jpz[i], je[i])
        pt2 = jpx[i] * jpx[i] + jpy[i] * jpy[i]
        kt2inv[i] = 1.0 / pt2 if pt2 > 0 else 1e300
        labels[i] = i
    active = np.ones(n, dtype=np.bool_)
    nn = np.full(n, -1, dtype=np.int64)
    nndist = np.full(n, r2)
    for i in range(n):
        for j in range(i + 1, n):
            d = _dr2(y[i], phi[i], y[j], phi[j])
            if d < nndist[i]:
                nndist[i] = d
                nn[i] = j
            if d < nndist[j]:
                nndist[j] = d
                nn[j] = i
    jets = np.empty((n, 4))
    n_jets = 0
    owner_jet = np.full(n, -1, dtype=np.int64)
    for _ in range(n):
        best = 1e308
        ib = -1
        for i in range(n):
            if not active[i]:
                continue
            k = kt2inv[i]
            if nn[i] >= 0 and kt2inv[nn[i]] < k:
                k = kt2inv[nn[i]]
            d = nndist[i] * k / r2
            if d < best:
                best = d
                ib = i
        if ib < 0:
            break
        jb = nn[ib]
        if jb < 0:
            # Closest to the beam: a final jet.
            jets[n_jets, 0] = jpx[ib]
            jets[n_jets, 1] = jpy[ib]
            jets[n_jets, 2] = jpz[ib]
            jets[n_jets, 3] = je[ib]
            owner_jet[ib] = n_jets
            n_jets += 1
            active[ib] = False
            changed_a, changed_b = ib, ib
        else:
            jpx[ib] += jpx[jb]
            jpy[ib] += jpy[jb]
            jpz[ib] += jpz[jb]
            je[ib] += je[jb]
            y[ib], phi[ib] = _rap_phi(jpx[ib], jpy[ib], jpz[ib], je[ib])
            pt2 = jpx[ib] * jpx[ib] + jpy[ib] * jpy[ib]
            kt2inv[ib] = 1.0 / pt2 if pt2 > 0 else 1e300
            active[jb] = False
            for k in range(n):
                if labels[k] == jb:
                    labels[k] = ib
            changed_a, changed_b = ib, jb
        # Update nearest neighbours of the survivors.
        for k in range(n):
            if not active[k]:
                continue
            if nn[k] == changed_a or nn[k] == changed_b or k == changed_a:
                nndist[k] = r2
                nn[k] = -1
                for m in range(n):
                    if m == k or not active[m]:
                        continue
                    d = _dr2(y[k], phi[k], y[m], phi[m])
                    if d < nndist[k]:
                        nndist[k] = d
                        nn[k] = m
            elif jb >= 0 and active[changed_a]:
                d = _dr2(y[k], phi[k], y[changed_a], phi[changed_a])
                if d < nndist[k]:
                    nndist[k] = d
                    nn[k] = changed_a
    for k in range(n):
        labels[k] = owner_jet[labels[k]]
    return jets[:n_jets]


@numba.njit(cache=True)
def _cluster_batch(offsets, px, py, pz, e, radius, pt_min):
    n_events = len(offsets) - 1
    labels = np.full(len(px), -1, dtype=np.int64)
    counts = np.zeros(n_events, dtype=np.int64)
    out = np.empty((len(px), 4))  # never more jets than inputs
    n_out = 0
    for ev in range(n_events):
        o, end = offsets[ev], offsets[ev + 1]
        lab = np.empty(end - o, dtype=np.int64)
        jets = _cluster_event(px[o:end], py[o:end], pz[o:end], e[o:end], radius, lab)
        pts = np.sqrt(jets[:, 0] ** 2 + jets[:, 1] ** 2)
        order = np.argsort(-pts)
        rank = np.full(len(jets), -1, dtype=np.int64)
        for r in range(len(order)):
            if pts[order[r]] >= pt_min:
                rank[order[r]] = r
                out[n_out] = jets[order[r]]
                n_out += 1
                counts[ev] += 1
        for k in range(end - o):
            labels[o + k] = rank[lab[k]] if lab[k] >= 0 else -1
    return out[:n_out].copy(), counts, labels


def anti_kt(
    offsets: np.ndarray,
    px: np.ndarray,
    py: np.ndarray,
    pz: np.ndarray,
    energy: np.ndarray,
    radius: float = JET_RADIUS,
    pt_min: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cluster the particles of every event into anti-kT jets.

    Parameters
    ----------
    offsets
        Event boundaries into the flat particle arrays (length n_events + 1).
    px, py, pz, energy
        Flat four-momenta of the inputs in GeV.
    radius
        Jet radius R.
    pt_min
        Jets below this pT are dropped (their constituents get label -1).

    Returns
    -------
    jets
        (n_jets_total, 4) array of (px, py, pz, E), pT-ordered within each event.
    counts
        Number of jets per event.
    labels
        For every input, the index of its jet within the event's list, -1 if in none.
    """
    if radius <= 0:
        raise ValueError(f"jet radius must be positive, got {radius!r}")
    return _cluster_batch(
        np.asarray(offsets, dtype=np.int64),
        np.ascontiguousarray(px, dtype=np.float64),
        np.ascontiguousarray(py, dtype=np.float64),
        np.ascontiguousarray(pz, dtype=np.float64),
        np.ascontiguousarray(energy, dtype=np.float64),
        float(radius),
        float(pt_min),
    )
