"""Generator-level truth: ancestry flags, the pruned ``GenPart`` list, τ weights, dressing.

Flags follow the CMS NanoAOD ``GenPart_statusFlags`` bit convention so that
coffea's ``GenParticle.hasFlags`` works on generated files:

====  ===============================  ============================================
bit   name                             here
====  ===============================  ============================================
0     isPrompt                         no hadron and no τ among the ancestors
1     isDecayedLeptonHadron            a lepton or hadron that decayed
2     isTauDecayProduct                a τ among the ancestors
3     isPromptTauDecayProduct          ... and no hadron above that τ
4     isDirectTauDecayProduct          the first ancestor of another flavour is a τ
5     isDirectPromptTauDecayProduct    4 and 3
7     isHardProcess                    Pythia status ±21–29 (hard process, incl. resonance decays)
8     fromHardProcess                  itself or an ancestor has status ±21–29
9     isHardProcessTauDecayProduct     2 and 8
10    isDirectHardProcessTauDecayProd  4 and 8
12    isFirstCopy                      its mother is not a copy of it
13    isLastCopy                       none of its daughters is a copy of it
====  ===============================  ============================================

Bits 6, 11 and 14 are not filled.
"""

from __future__ import annotations

import numba
import numpy as np

from symnplm.generation.event_record import ParticleBatch

__all__ = [
    "DRESSING_CONE",
    "FROM_HARD_PROCESS",
    "IS_DECAYED_LEPTON_HADRON",
    "IS_DIRECT_HARD_PROCESS_TAU_DECAY_PRODUCT",
    "IS_DIRECT_PROMPT_TAU_DECAY_PRODUCT",
    "IS_DIRECT_TAU_DECAY_PRODUCT",
    "IS_FIRST_COPY",
    "IS_HARD_PROCESS",
    "IS_HARD_PROCESS_TAU_DECAY_PRODUCT",
    "IS_LAST_COPY",
    "IS_PROMPT",
    "IS_PROMPT_TAU_DECAY_PRODUCT",
    "IS_TAU_DECAY_PRODUCT",
    "count_tau_decays",
    "dressing_owner",
    "gen_particle_mask",
    "gen_particle_mothers",
    "has_electron_and_muon",
    "is_prompt_lepton",
    "status_flags",
]

IS_PROMPT = 1 << 0
IS_DECAYED_LEPTON_HADRON = 1 << 1
IS_TAU_DECAY_PRODUCT = 1 << 2
IS_PROMPT_TAU_DECAY_PRODUCT = 1 << 3
IS_DIRECT_TAU_DECAY_PRODUCT = 1 << 4
IS_DIRECT_PROMPT_TAU_DECAY_PRODUCT = 1 << 5
IS_HARD_PROCESS = 1 << 7
FROM_HARD_PROCESS = 1 << 8
IS_HARD_PROCESS_TAU_DECAY_PRODUCT = 1 << 9
IS_DIRECT_HARD_PROCESS_TAU_DECAY_PRODUCT = 1 << 10
IS_FIRST_COPY = 1 << 12
IS_LAST_COPY = 1 << 13

#: ΔR within which final-state photons are attached to a lepton (FSR dressing).
DRESSING_CONE = 0.1

_TAU = 15


@numba.njit(cache=True)
def _is_hadron(abs_id: int) -> bool:
    # Mesons and baryons; diquarks (xy0z) are partons, not hadrons.
    return 100 <= abs_id < 1_000_000 and (abs_id // 10) % 10 != 0


@numba.njit(cache=True)
def _is_copy(pdg_id, i, j):
    return j > 0 and pdg_id[j] == pdg_id[i]


@numba.njit(cache=True)
def _status_flags(offsets, pdg_id, status, mother1, daughter1, daughter2):
    flags = np.zeros(len(pdg_id), dtype=np.int32)
    for ev in range(len(offsets) - 1):
        o = offsets[ev]
        n = offsets[ev + 1] - o
        ids = pdg_id[o : o + n]
        st = status[o : o + n]
        mo = mother1[o : o + n]
        d1 = daughter1[o : o + n]
        d2 = daughter2[o : o + n]
        for i in range(3, n):
            f = 0
            aid = abs(ids[i])
            if 21 <= abs(st[i]) <= 29:
                f |= IS_HARD_PROCESS | FROM_HARD_PROCESS
            if not _is_copy(ids, i, mo[i]):
                f |= IS_FIRST_COPY
            if not (_is_copy(ids, i, d1[i]) or (d2[i] > 0 and _is_copy(ids, i, d2[i]))):
                f |= IS_LAST_COPY
                if st[i] < 0 and d1[i] > 0 and (_is_hadron(aid) or 11 <= aid <= 16):
                    f |= IS_DECAYED_LEPTON_HADRON
            # Walk up the first-mother chain, skipping the particle's own copies.
            tau_above = False
            direct_tau = False
            hadron_above = False
            hadron_above_tau = False
            own_copies = True
            j = mo[i]
            while j > 2:
                if own_copies and ids[j] == ids[i]:
                    if 21 <= abs(st[j]) <= 29:
                        f |= FROM_HARD_PROCESS
                    j = mo[j]
                    continue
                aj = abs(ids[j])
                if own_copies:
                    direct_tau = aj == _TAU
                    own_copies = False
                if _is_hadron(aj):
                    hadron_above = True
                    if tau_above:
                        hadron_above_tau = True
                    break
                if aj == _TAU:
                    tau_above = True
                if 21 <= abs(st[j]) <= 29:
                    f |= FROM_HARD_PROCESS
                if abs(st[j]) == 21:
                    break
                j = mo[j]
            if not hadron_above and not tau_above:
                f |= IS_PROMPT
            if tau_above:
                f |= IS_TAU_DECAY_PRODUCT
                if not hadron_above_tau:
                    f |= IS_PROMPT_TAU_DECAY_PRODUCT
                if f & FROM_HARD_PROCESS:
                    f |= IS_HARD_PROCESS_TAU_DECAY_PRODUCT
            if direct_tau:
                f |= IS_DIRECT_TAU_DECAY_PRODUCT
                if not hadron_above_tau:
                    f |= IS_DIRECT_PROMPT_TAU_DECAY_PRODUCT
                if f & FROM_HARD_PROCESS:
                    f |= IS_DIRECT_HARD_PROCESS_TAU_DECAY_PRODUCT
            flags[o + i] = f
    return flags


def status_flags(batch: ParticleBatch) -> np.ndarray:
    """NanoAOD-convention ``statusFlags`` for every particle of ``batch`` (see module docstring)."""
    return _status_flags(
        batch.offsets,
        batch.pdg_id,
        batch.status,
        batch.mother1,
        batch.daughter1,
        batch.daughter2,
    )


def is_prompt_lepton(batch: ParticleBatch, flags: np.ndarray) -> np.ndarray:
    """Stable e, μ and neutrinos that are prompt or come from a prompt τ decay."""
    aid = np.abs(batch.pdg_id)
    lepton = batch.is_final & (aid >= 11) & (aid <= 16)
    return lepton & ((flags & (IS_PROMPT | IS_PROMPT_TAU_DECAY_PRODUCT)) != 0)


def gen_particle_mask(batch: ParticleBatch, flags: np.ndarray) -> np.ndarray:
    """The pruned ``GenPart`` list: the leptons and where they come from.

    Last copies of W, Z/γ* and H bosons and of prompt τ leptons, and stable e and μ
    that are prompt or come from a prompt τ. Neutrinos (their sum is ``GenMET``) and
    top quarks are left out to keep the files small.
    """
    aid = np.abs(batch.pdg_id)
    last = (flags & IS_LAST_COPY) != 0
    boson = np.isin(aid, (23, 24, 25)) & last
    tau = (aid == _TAU) & last & ((flags & IS_PROMPT) != 0)
    charged = is_prompt_lepton(batch, flags) & ((aid == 11) | (aid == 13))
    return boson | tau | charged


@numba.njit(cache=True)
def _kept_mothers(offsets, mother1, keep):
    out = np.full(len(mother1), -1, dtype=np.int32)
    local = np.full(len(mother1), -1, dtype=np.int32)
    for ev in range(len(offsets) - 1):
        o = offsets[ev]
        k = 0
        for i in range(offsets[ev + 1] - o):
            if keep[o + i]:
                local[o + i] = k
                k += 1
        for i in range(offsets[ev + 1] - o):
            if not keep[o + i]:
                continue
            j = mother1[o + i]
            while j > 0:
                if keep[o + j]:
                    out[o + i] = local[o + j]
                    break
                j = mother1[o + j]
    return out


def gen_particle_mothers(batch: ParticleBatch, keep: np.ndarray) -> np.ndarray:
    """For kept particles, the index (within the kept list of the event) of the nearest kept
    first-mother ancestor, -1 if none; the NanoAOD ``genPartIdxMother``."""
    return _kept_mothers(batch.offsets, batch.mother1, keep)


def count_tau_decays(batch: ParticleBatch) -> np.ndarray:
    """Number of τ decays per event (τ whose daughters are not a copy of itself).

    Every such decay went through the forced τ decay table, so the event weight is
    ``B_open ** count``.
    """
    tau = (np.abs(batch.pdg_id) == _TAU) & (batch.daughter1 > 0)
    event = batch.event_index
    daughter = batch.offsets[event] + batch.daughter1
    decayed = tau.copy()
    decayed[tau] = np.abs(batch.pdg_id[daughter[tau]]) != _TAU
    return np.bincount(event[decayed], minlength=batch.n_events)


@numba.njit(cache=True)
def _dress(offsets, pdg_id, px, py, pz, visible, cone):
    owner = np.full(len(pdg_id), -1, dtype=np.int64)
    for ev in range(len(offsets) - 1):
        o, e = offsets[ev], offsets[ev + 1]
        leptons = []
        for ll in range(o, e):
            a = abs(pdg_id[ll])
            if (a == 11 or a == 13) and visible[ll] and (px[ll] != 0.0 or py[ll] != 0.0):
                leptons.append(ll)
        if len(leptons) == 0:
            continue
        n = len(leptons)
        l_eta = np.empty(n)
        l_phi = np.empty(n)
        for k in range(n):
            ll = leptons[k]
            l_eta[k] = np.arcsinh(pz[ll] / np.hypot(px[ll], py[ll]))
            l_phi[k] = np.arctan2(py[ll], px[ll])
        for g in range(o, e):
            if pdg_id[g] != 22 or not visible[g]:
                continue
            pt_g = np.hypot(px[g], py[g])
            if pt_g <= 0.0:
                continue
            eta_g = np.arcsinh(pz[g] / pt_g)
            phi_g = np.arctan2(py[g], px[g])
            best = cone * cone
            for k in range(n):
                dphi = abs(l_phi[k] - phi_g)
                if dphi > np.pi:
                    dphi = 2 * np.pi - dphi
                dr2 = (l_eta[k] - eta_g) ** 2 + dphi * dphi
                if dr2 < best:
                    best = dr2
                    owner[g] = leptons[k]
    return owner


def dressing_owner(batch: ParticleBatch, cone: float = DRESSING_CONE) -> np.ndarray:
    """For every stable photon, the global index of the nearest stable e/μ within ``cone``
    (-1 otherwise); -1 for all other particles."""
    return _dress(batch.offsets, batch.pdg_id, batch.px, batch.py, batch.pz, batch.is_visible, cone)


def has_electron_and_muon(batch: ParticleBatch, pt_min: float) -> np.ndarray:
    """Events with a stable electron (FSR-dressed, ΔR < 0.1) and a stable muon above ``pt_min``.

    A generator-level pre-selection: an event without both cannot give a reconstructed
    e-mu pair much above ``pt_min`` (resolution and scale offsets aside), so the
    detector simulation can skip it.
    """
    px, py = batch.px.copy(), batch.py.copy()
    owner = dressing_owner(batch)
    photon = owner >= 0
    np.add.at(px, owner[photon], batch.px[photon])
    np.add.at(py, owner[photon], batch.py[photon])
    pt = np.hypot(px, py)
    visible, abs_id, event = batch.is_visible, np.abs(batch.pdg_id), batch.event_index
    out = []
    for flavour in (11, 13):
        hit = visible & (abs_id == flavour) & (pt >= pt_min)
        out.append(np.bincount(event[hit], minlength=batch.n_events) > 0)
    return out[0] & out[1]
