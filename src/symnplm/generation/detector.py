"""The parametric detector: Pythia particles → reconstructed NanoAOD-like collections.

Per event, from the stable particles of a :class:`~symnplm.generation.event_record.ParticleBatch`:

* **electrons**: stable e± with their FSR photons (ΔR < 0.1) added, as the
  calorimeter cluster would; energy smeared with the ECAL resolution; momentum-scale
  offset and charge flips; efficiency (crack excluded) applied by random rejection;
* **muons**: stable μ±, pT smeared with the tracking resolution, scale offset and
  sagitta bias; efficiency by random rejection;
* **isolation**: ``pfRelIso03_all`` = (Σ pT of stable visible particles with
  pT > 0.5 GeV in ΔR < 0.3, excluding the lepton and its FSR photons, plus an
  emulated underlying event) / pT — the emulation stands in for the MPI that is
  switched off for speed;
* **jets**: anti-kT R = 0.4 on calorimeter-visible stable particles (no neutrinos,
  no muons, no prompt leptons and their FSR photons) gives particle-level jets; a
  reconstructed ``Jet`` is one smeared with the jet energy resolution, and its
  particle-level jet is written as ``GenJet`` (``Jet_genJetIdx``); hadron flavour
  from weakly decaying b/c hadrons (pT > 5 GeV, ΔR < 0.3); a b-tag score whose cut
  at 0.5 is the 77% working point; optional jet → e fakes;
* **MET**: minus the vector sum of the calorimeter-visible particles (|η| < 4.9)
  and of the reconstructed muons, corrected for the electron and jet mismeasurement,
  plus Gaussian noise σ = 5 GeV ⊕ 0.5 √ΣE_T per component.

Every random stream (electrons, muons, isolation, jets, MET) is a separate child of
the chunk's seed, so changing an asymmetry knob changes which leptons pass or their
scale, never the random numbers drawn elsewhere: samples with different knobs are
event-by-event correlated, which makes the knobs' effect a clean known truth.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numba
import numpy as np

from symnplm.generation import truth
from symnplm.generation.detector_config import DetectorConfig
from symnplm.generation.event_record import ParticleBatch, pseudorapidity
from symnplm.generation.jets import anti_kt

__all__ = [
    "CUT_BASED_MEDIUM",
    "ELECTRON_MASS",
    "JET_ID_TIGHT",
    "MUON_MASS",
    "Collection",
    "RecoEvents",
    "child_seed",
    "simulate",
]

ELECTRON_MASS = 0.000511
MUON_MASS = 0.105658
#: NanoAOD Electron_cutBased value written for every reconstructed electron (Medium).
CUT_BASED_MEDIUM = 3
#: Jet_jetId written for every jet (passes tight + lepton veto).
JET_ID_TIGHT = 6
_B_TAG_CUT = 0.5
_HADRON_LABEL_CONE = 0.3
_HADRON_LABEL_PT = 5.0
_MATCH_CONE = 0.4
_STREAMS = ("electrons", "muons", "isolation", "jets", "met")


@dataclass
class Collection:
    """A jagged collection: per-event ``counts`` and flat per-object ``fields``."""

    counts: np.ndarray
    fields: dict[str, np.ndarray] = field(default_factory=dict)

    def select_events(self, mask: np.ndarray) -> Collection:
        """The objects of the events where ``mask`` is True."""
        per_object = np.repeat(mask, self.counts)
        return Collection(self.counts[mask], {k: v[per_object] for k, v in self.fields.items()})


@dataclass
class RecoEvents:
    """The detector output for one batch."""

    collections: dict[str, Collection]
    met: dict[str, np.ndarray]
    #: Number of (forced) τ decays per event, for the branching-ratio weight.
    tau_decays: np.ndarray

    @property
    def n_events(self) -> int:
        return len(self.met["MET_pt"])


def _sort_within_events(event: np.ndarray, pt: np.ndarray) -> np.ndarray:
    """Order that groups by event and sorts by decreasing pT inside each event."""
    return np.lexsort((-pt, event))


def _counts(event: np.ndarray, n_events: int) -> np.ndarray:
    return np.bincount(event, minlength=n_events).astype(np.int64)


def _sum_by_event(event: np.ndarray, weights: np.ndarray, n_events: int) -> np.ndarray:
    # astype: np.bincount returns integers when the input is empty.
    return np.bincount(event, weights=weights, minlength=n_events).astype(np.float64)


@numba.njit(cache=True)
def _cone_sums(
    cand_event, cand_eta, cand_phi, cand_self, offsets, pt, eta, phi, usable, owner, cone
):
    out = np.zeros(len(cand_event))
    c2 = cone * cone
    for c in range(len(cand_event)):
        ev = cand_event[c]
        for g in range(offsets[ev], offsets[ev + 1]):
            if not usable[g] or g == cand_self[c] or owner[g] == cand_self[c]:
                continue
            dphi = abs(phi[g] - cand_phi[c])
            if dphi > np.pi:
                dphi = 2 * np.pi - dphi
            deta = eta[g] - cand_eta[c]
            if deta * deta + dphi * dphi < c2:
                out[c] += pt[g]
    return out


@numba.njit(cache=True)
def _match_nearest(a_offsets, a_eta, a_phi, b_offsets, b_eta, b_phi, cone):
    """For each a, index (within its event) of the nearest b with ΔR < cone, else -1."""
    out = np.full(len(a_eta), -1, dtype=np.int32)
    for ev in range(len(a_offsets) - 1):
        for i in range(a_offsets[ev], a_offsets[ev + 1]):
            best = cone * cone
            for j in range(b_offsets[ev], b_offsets[ev + 1]):
                dphi = abs(a_phi[i] - b_phi[j])
                if dphi > np.pi:
                    dphi = 2 * np.pi - dphi
                d = (a_eta[i] - b_eta[j]) ** 2 + dphi * dphi
                if d < best:
                    best = d
                    out[i] = j - b_offsets[ev]
    return out


@numba.njit(cache=True)
def _match_first_two(a_offsets, a_eta, a_phi, b_offsets, b_eta, b_phi, cone):
    """For each a, the first two b (in b order) within ΔR < cone; -1 where absent."""
    out = np.full((len(a_eta), 2), -1, dtype=np.int32)
    for ev in range(len(a_offsets) - 1):
        for i in range(a_offsets[ev], a_offsets[ev + 1]):
            k = 0
            for j in range(b_offsets[ev], b_offsets[ev + 1]):
                dphi = abs(a_phi[i] - b_phi[j])
                if dphi > np.pi:
                    dphi = 2 * np.pi - dphi
                if (a_eta[i] - b_eta[j]) ** 2 + dphi * dphi < cone * cone and k < 2:
                    out[i, k] = j - b_offsets[ev]
                    k += 1
    return out


def child_seed(seed: np.random.SeedSequence, k: int) -> np.random.SeedSequence:
    """The k-th child of ``seed``, independent of how often ``seed.spawn`` was called."""
    return np.random.SeedSequence(
        seed.entropy, spawn_key=(*seed.spawn_key, k), pool_size=seed.pool_size
    )


def _offsets(counts: np.ndarray) -> np.ndarray:
    out = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=out[1:])
    return out


def _is_heavy_hadron(abs_id: np.ndarray, quark: int) -> np.ndarray:
    hadron = (abs_id >= 100) & ((abs_id // 10) % 10 != 0)
    return hadron & (((abs_id // 100) % 10 == quark) | ((abs_id // 1000) % 10 == quark))


def _weakly_decaying(batch: ParticleBatch, heavy: np.ndarray) -> np.ndarray:
    """Heavy hadrons none of whose daughters is a heavy hadron of the same kind."""
    event = batch.event_index
    out = heavy.copy()
    idx = np.nonzero(heavy)[0]
    base = batch.offsets[event[idx]]
    d1, d2 = batch.daughter1[idx], batch.daughter2[idx]
    # Daughters of a decay form the range d1..d2; check up to 8 of them (B/D decays are short).
    for k in range(8):
        d = d1 + k
        valid = (d1 > 0) & (d <= np.maximum(d1, d2))
        g = np.where(valid, base + d, 0)
        out[idx] &= ~(valid & heavy[g])
    return out


class _Streams:
    """Independent random streams, one per detector component."""

    def __init__(self, seed: np.random.SeedSequence) -> None:
        # Children built from the spawn key, not seed.spawn(): spawn() is stateful, and the
        # same seed must always give the same streams.
        self._gens = {
            name: np.random.default_rng(child_seed(seed, k)) for k, name in enumerate(_STREAMS)
        }

    def __getitem__(self, name: str) -> np.random.Generator:
        return self._gens[name]


@dataclass
class _Leptons:
    """Reconstructed leptons of one flavour before sorting (flat, with event numbers)."""

    event: np.ndarray
    pt: np.ndarray
    eta: np.ndarray
    phi: np.ndarray
    charge: np.ndarray
    #: Global particle index of the generated lepton; -1 for fakes.
    particle: np.ndarray
    #: Particle-level transverse momentum (dressed for electrons), for the MET correction.
    true_px: np.ndarray
    true_py: np.ndarray
    rel_iso: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def extend(self, other: _Leptons) -> _Leptons:
        return _Leptons(
            *(
                np.concatenate([getattr(self, f), getattr(other, f)])
                for f in self.__dataclass_fields__
            )
        )


def _underlying_event(rng: np.random.Generator, n: int, cfg: DetectorConfig) -> np.ndarray:
    """Emulated underlying-event ΣpT in the isolation cones of ``n`` leptons."""
    n_part = rng.poisson(cfg.ue_density * np.pi * cfg.isolation_cone**2, size=n)
    # Exponential spectrum above the isolation threshold with the configured mean pT.
    slope = max(cfg.ue_mean_pt - cfg.isolation_pt_min, 1e-6)
    pts = cfg.isolation_pt_min + rng.exponential(slope, size=int(n_part.sum()))
    return _sum_by_event(np.repeat(np.arange(n), n_part), pts, n)


class _Detector:
    """One batch through the detector; each method is one subsystem."""

    def __init__(
        self,
        batch: ParticleBatch,
        cfg: DetectorConfig,
        seed: np.random.SeedSequence,
        write_gen_jets: bool,
    ) -> None:
        self.batch = batch
        self.write_gen_jets = write_gen_jets
        self.cfg = cfg
        self.rng = _Streams(seed)
        self.n_ev = batch.n_events
        self.event = batch.event_index
        self.pt, self.eta, self.phi = batch.pt, batch.eta, batch.phi
        self.aid = np.abs(batch.pdg_id)
        self.visible = batch.is_visible
        self.flags = truth.status_flags(batch)
        self.prompt_lepton = truth.is_prompt_lepton(batch, self.flags)
        self.owner = truth.dressing_owner(batch)

    # -- truth ---------------------------------------------------------------------
    def gen_particles(self) -> tuple[Collection, np.ndarray]:
        """The GenPart collection and, for every particle, its index in it (-1 if absent)."""
        b = self.batch
        keep = truth.gen_particle_mask(b, self.flags)
        mother = truth.gen_particle_mothers(b, keep)
        kept = np.nonzero(keep)[0]
        counts = _counts(self.event[kept], self.n_ev)
        local = np.full(len(keep), -1, dtype=np.int32)
        local[kept] = np.arange(len(kept)) - np.repeat(_offsets(counts)[:-1], counts)
        fields = {
            "pt": self.pt[kept],
            "eta": self.eta[kept],
            "phi": self.phi[kept],
            "mass": b.mass[kept],
            "pdgId": b.pdg_id[kept],
            "status": b.status[kept],
            "statusFlags": self.flags[kept],
            "genPartIdxMother": mother[kept],
        }
        return Collection(counts, fields), local

    # -- leptons ---------------------------------------------------------------------
    def electrons(self) -> _Leptons:
        b, cfg, rng = self.batch, self.cfg, self.rng["electrons"]
        dressed = np.stack([b.px, b.py, b.pz, b.energy])
        photon = self.owner >= 0
        np.add.at(dressed.T, self.owner[photon], dressed.T[photon])
        cand = np.nonzero(self.visible & (self.aid == 11))[0]
        px, py, pz, energy = dressed[:, cand]
        eta = pseudorapidity(px, py, pz)
        noise = rng.standard_normal(len(cand))
        u_eff = rng.random(len(cand))
        u_flip = rng.random(len(cand))
        e_reco = energy * (1.0 + cfg.electron_energy_resolution(energy) * noise)
        pt = e_reco / np.cosh(eta) * (1.0 + cfg.electron_scale_offset)
        keep = (pt >= cfg.electron_pt_min) & (u_eff < cfg.electron_efficiency(pt, eta))
        charge = -np.sign(b.pdg_id[cand]).astype(np.int32)
        charge = np.where(u_flip < cfg.electron_charge_flip_rate, -charge, charge)
        return _Leptons(
            event=self.event[cand][keep],
            pt=pt[keep],
            eta=eta[keep],
            phi=np.arctan2(py, px)[keep],
            charge=charge[keep],
            particle=cand[keep],
            true_px=px[keep],
            true_py=py[keep],
        )

    def muons(self) -> _Leptons:
        cfg, rng = self.cfg, self.rng["muons"]
        cand = np.nonzero(self.visible & (self.aid == 13))[0]
        pt_true, eta = self.pt[cand], self.eta[cand]
        noise = rng.standard_normal(len(cand))
        u_eff = rng.random(len(cand))
        charge = -np.sign(self.batch.pdg_id[cand]).astype(np.int32)
        pt = pt_true * (1.0 + cfg.muon_pt_resolution(pt_true, eta) * noise)
        # Sagitta bias acts on the curvature q/pT (δ in TeV⁻¹).
        with np.errstate(divide="ignore"):
            curvature = 1.0 / pt + charge * cfg.muon_sagitta_bias * 1e-3
        pt = np.where(curvature > 0, 1.0 / np.where(curvature > 0, curvature, 1.0), 0.0)
        pt = pt * (1.0 + cfg.muon_scale_offset)
        keep = (
            (pt >= cfg.muon_pt_min)
            & (np.abs(eta) < cfg.muon_eta_max)
            & (u_eff < cfg.muon_efficiency(pt, eta))
        )
        sel = cand[keep]
        return _Leptons(
            event=self.event[sel],
            pt=pt[keep],
            eta=eta[keep],
            phi=self.phi[sel],
            charge=charge[keep],
            particle=sel,
            true_px=self.batch.px[sel],
            true_py=self.batch.py[sel],
        )

    def isolate(self, leptons: _Leptons) -> None:
        """Fill ``rel_iso``: particles in the cone (not the lepton, not its FSR) + emulated UE."""
        cfg = self.cfg
        usable = self.visible & (self.pt >= cfg.isolation_pt_min)
        cone = _cone_sums(
            leptons.event,
            leptons.eta,
            leptons.phi,
            leptons.particle,
            self.batch.offsets,
            self.pt,
            self.eta,
            self.phi,
            usable,
            self.owner,
            cfg.isolation_cone,
        )
        ue = _underlying_event(self.rng["isolation"], len(leptons.pt), cfg)
        leptons.rel_iso = (cone + ue) / leptons.pt

    def finish(
        self, leptons: _Leptons, gen_local: np.ndarray, mass: float, flavour_id: int
    ) -> Collection:
        """pT-ordered NanoAOD collection with truth matching."""
        order = _sort_within_events(leptons.event, leptons.pt)
        particle = leptons.particle[order]
        real = particle >= 0
        f = self.flags[np.where(real, particle, 0)]
        flav = np.where(
            f & truth.IS_PROMPT, 1, np.where(f & truth.IS_PROMPT_TAU_DECAY_PRODUCT, 15, 3)
        )
        charge = leptons.charge[order]
        return Collection(
            _counts(leptons.event, self.n_ev),
            {
                "pt": leptons.pt[order],
                "eta": leptons.eta[order],
                "phi": leptons.phi[order],
                "mass": np.full(len(order), mass),
                "charge": charge,
                "pdgId": (-flavour_id * charge).astype(np.int32),
                "pfRelIso03_all": leptons.rel_iso[order],
                "genPartIdx": np.where(real, gen_local[np.where(real, particle, 0)], -1).astype(
                    np.int32
                ),
                "genPartFlav": np.where(real, flav, 0).astype(np.uint8),
            },
        )

    # -- jets -------------------------------------------------------------------------
    def jets(self) -> dict[str, np.ndarray]:
        """Particle-level jets with flavour, their reconstructed response and fake decisions."""
        b, cfg, rng = self.batch, self.cfg, self.rng["jets"]
        fsr_of_prompt = (self.owner >= 0) & self.prompt_lepton[np.maximum(self.owner, 0)]
        calo = self.visible & (self.aid != 13) & (np.abs(self.eta) < cfg.calo_eta_max)
        inputs = np.nonzero(calo & ~self.prompt_lepton & ~fsr_of_prompt)[0]
        p4, counts, _ = anti_kt(
            _offsets(_counts(self.event[inputs], self.n_ev)),
            b.px[inputs],
            b.py[inputs],
            b.pz[inputs],
            b.energy[inputs],
            cfg.jet_radius,
            cfg.gen_jet_pt_min,
        )
        jet = {
            "event": np.repeat(np.arange(self.n_ev), counts),
            "px": p4[:, 0],
            "py": p4[:, 1],
            "gen_pt": np.hypot(p4[:, 0], p4[:, 1]),
            "eta": pseudorapidity(p4[:, 0], p4[:, 1], p4[:, 2]),
            "phi": np.arctan2(p4[:, 1], p4[:, 0]),
            "gen_mass": np.sqrt(np.maximum(p4[:, 3] ** 2 - (p4[:, :3] ** 2).sum(axis=1), 0.0)),
        }
        flavour = np.zeros(len(p4), dtype=np.int32)
        for quark in (4, 5):  # a b hadron overrides a c hadron
            heavy = _weakly_decaying(b, _is_heavy_hadron(self.aid, quark))
            h = np.nonzero(heavy & (self.pt > _HADRON_LABEL_PT))[0]
            match = _match_nearest(
                _offsets(counts),
                jet["eta"],
                jet["phi"],
                _offsets(_counts(self.event[h], self.n_ev)),
                self.eta[h],
                self.phi[h],
                _HADRON_LABEL_CONE,
            )
            flavour[match >= 0] = quark
        n = len(p4)
        noise, u_tag, u_fake = rng.standard_normal(n), rng.random(n), rng.random(n)
        z_fake, u_charge = rng.uniform(0.6, 1.0, n), rng.random(n)
        pt = jet["gen_pt"] * np.maximum(1.0 + cfg.jet_pt_resolution(jet["gen_pt"]) * noise, 0.0)
        eff = np.select(
            [flavour == 5, flavour == 4], [cfg.btag_eff_b, cfg.btag_eff_c], cfg.btag_eff_light
        )
        # A monotone map of one uniform: the score exceeds 0.5 with probability eff.
        btag = np.where(
            u_tag < eff,
            1.0 - 0.5 * u_tag / np.maximum(eff, 1e-12),
            0.5 * (1.0 - (u_tag - eff) / np.maximum(1.0 - eff, 1e-12)),
        )
        abs_eta = np.abs(jet["eta"])
        lo, hi = cfg.electron_crack
        reco = (pt >= cfg.jet_pt_min) & (abs_eta < cfg.jet_eta_max)
        fake = (
            reco
            & (abs_eta < cfg.electron_eta_max)
            & ~((abs_eta > lo) & (abs_eta < hi))
            & (u_fake < cfg.jet_fake_electron_rate)
            & (z_fake * pt >= cfg.electron_pt_min)
        )
        jet.update(
            pt=pt,
            flavour=flavour,
            btag=btag,
            reco=reco & ~fake,
            fake=fake,
            fake_pt=z_fake * pt,
            fake_iso=0.7 * (1.0 - z_fake) / z_fake,
            fake_charge=np.where(u_charge < 0.5, -1, 1).astype(np.int32),
        )
        # Generator jets are written only where a reconstructed jet points to them.
        jet["gen_written"] = jet["reco"] & self.write_gen_jets
        return jet

    # -- MET ----------------------------------------------------------------------------
    def met(
        self, electrons: _Leptons, muons: _Leptons, jet: dict[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        cfg, n_ev, b = self.cfg, self.n_ev, self.batch

        def vsum(event: np.ndarray, w: np.ndarray) -> np.ndarray:
            return _sum_by_event(event, w, n_ev)

        calo = np.nonzero(self.visible & (self.aid != 13) & (np.abs(self.eta) < cfg.calo_eta_max))[
            0
        ]
        ev = self.event[calo]
        sx, sy, sum_et = vsum(ev, b.px[calo]), vsum(ev, b.py[calo]), vsum(ev, self.pt[calo])
        # Muons are seen by the spectrometer only, with their measured momentum.
        sx += vsum(muons.event, muons.pt * np.cos(muons.phi))
        sy += vsum(muons.event, muons.pt * np.sin(muons.phi))
        sum_et += vsum(muons.event, muons.pt)
        # Electrons and jets: replace the particle-level momentum by the measured one
        # (fake electrons carry their parent jet's particle-level momentum).
        sx += vsum(electrons.event, electrons.pt * np.cos(electrons.phi) - electrons.true_px)
        sy += vsum(electrons.event, electrons.pt * np.sin(electrons.phi) - electrons.true_py)
        j = np.nonzero(jet["reco"])[0]
        response = jet["pt"][j] / np.maximum(jet["gen_pt"][j], 1e-9) - 1.0
        sx += vsum(jet["event"][j], jet["px"][j] * response)
        sy += vsum(jet["event"][j], jet["py"][j] * response)
        rng = self.rng["met"]
        sigma = np.hypot(cfg.met_noise, cfg.met_resolution_sqrt_sumet * np.sqrt(sum_et))
        met_x = -sx + sigma * rng.standard_normal(n_ev)
        met_y = -sy + sigma * rng.standard_normal(n_ev)
        nu = np.nonzero(b.is_final & np.isin(self.aid, (12, 14, 16)))[0]
        gx, gy = vsum(self.event[nu], b.px[nu]), vsum(self.event[nu], b.py[nu])
        return {
            "MET_pt": np.hypot(met_x, met_y),
            "MET_phi": np.arctan2(met_y, met_x),
            "MET_sumEt": sum_et,
            "GenMET_pt": np.hypot(gx, gy),
            "GenMET_phi": np.arctan2(gy, gx),
        }


def simulate(
    batch: ParticleBatch,
    cfg: DetectorConfig,
    seed: np.random.SeedSequence,
    write_gen_jets: bool = True,
) -> RecoEvents:
    """Truth and detector response for ``batch`` (see the module docstring).

    With ``write_gen_jets=False`` the ``GenJet`` collection is left empty (and
    ``Jet_genJetIdx`` is -1) to save space; nothing else changes.
    """
    det = _Detector(batch, cfg, seed, write_gen_jets)
    n_ev = det.n_ev
    genpart, gen_local = det.gen_particles()
    electrons, muons = det.electrons(), det.muons()
    det.isolate(electrons)
    det.isolate(muons)
    jet = det.jets()
    f = np.nonzero(jet["fake"])[0]
    if len(f):
        electrons = electrons.extend(
            _Leptons(
                event=jet["event"][f],
                pt=jet["fake_pt"][f],
                eta=jet["eta"][f],
                phi=jet["phi"][f],
                charge=jet["fake_charge"][f],
                particle=np.full(len(f), -1),
                true_px=jet["px"][f],
                true_py=jet["py"][f],
                rel_iso=jet["fake_iso"][f],
            )
        )
    met = det.met(electrons, muons, jet)
    ele = det.finish(electrons, gen_local, ELECTRON_MASS, 11)
    mu = det.finish(muons, gen_local, MUON_MASS, 13)
    ele.fields["cutBased"] = np.full(len(ele.fields["pt"]), CUT_BASED_MEDIUM, dtype=np.int32)
    for name in ("looseId", "mediumId", "tightId"):
        mu.fields[name] = np.ones(len(mu.fields["pt"]), dtype=bool)

    # Written jets (pT-ordered) point to written generator jets.
    gw = np.nonzero(jet["gen_written"])[0]
    gen_counts = _counts(jet["event"][gw], n_ev)
    gen_index = np.full(len(jet["pt"]), -1, dtype=np.int32)
    gen_index[gw] = np.arange(len(gw)) - np.repeat(_offsets(gen_counts)[:-1], gen_counts)
    genjet = Collection(
        gen_counts,
        {
            "pt": jet["gen_pt"][gw],
            "eta": jet["eta"][gw],
            "phi": jet["phi"][gw],
            "mass": jet["gen_mass"][gw],
            "hadronFlavour": jet["flavour"][gw].astype(np.uint8),
        },
    )
    jr = np.nonzero(jet["reco"])[0]
    jr = jr[_sort_within_events(jet["event"][jr], jet["pt"][jr])]
    response = jet["pt"][jr] / np.maximum(jet["gen_pt"][jr], 1e-9)
    reco_jet = Collection(
        _counts(jet["event"][jr], n_ev),
        {
            "pt": jet["pt"][jr],
            "eta": jet["eta"][jr],
            "phi": jet["phi"][jr],
            "mass": jet["gen_mass"][jr] * response,
            "btagDeepFlavB": jet["btag"][jr],
            "hadronFlavour": jet["flavour"][jr],
            "jetId": np.full(len(jr), JET_ID_TIGHT, np.int32),
            "genJetIdx": gen_index[jr],
        },
    )
    # Lepton ↔ jet cross-references (ΔR < 0.4), as NanoAOD indices within the event.
    j_off, jf = _offsets(reco_jet.counts), reco_jet.fields
    for name, lep in (("electron", ele), ("muon", mu)):
        off, lf = _offsets(lep.counts), lep.fields
        two = _match_first_two(j_off, jf["eta"], jf["phi"], off, lf["eta"], lf["phi"], _MATCH_CONE)
        jf[f"{name}Idx1"], jf[f"{name}Idx2"] = two[:, 0], two[:, 1]
        lf["jetIdx"] = _match_nearest(
            off, lf["eta"], lf["phi"], j_off, jf["eta"], jf["phi"], _MATCH_CONE
        )
    return RecoEvents(
        collections={
            "Electron": ele,
            "Muon": mu,
            "Jet": reco_jet,
            "GenJet": genjet,
            "GenPart": genpart,
        },
        met=met,
        tau_decays=truth.count_tau_decays(batch),
    )
