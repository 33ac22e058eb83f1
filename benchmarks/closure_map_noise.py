"""Are the binned diagnostics calibrated when the efficiency map is as noisy as the data?

The whole-sample closure tests (20 fb⁻¹ corrected with a map measured on another
20 fb⁻¹) give one draw each, and not independent ones: the three detectors simulate
the *same* generated events, and "test corrected with the calibration map" and
"calibration corrected with the test map" carry the same difference of the two
productions' fluctuations. The pseudo-experiments of ``benchmarks.closure`` are many
and independent, but small (0.4 fb⁻¹) against the 20 fb⁻¹ map, so the map's noise
hardly matters there.

This study fills the gap: each production of a detector is split at random into
``--pieces`` disjoint pieces, and piece i of one production is corrected with a map
measured (with its bootstrap uncertainty) on piece i of the other — map and sample of
the same size, the regime where the map's noise is as large as the sample's own.
Every binned diagnostic of every pair is calibrated by relabellings with the map's
uncertainty redrawn (:func:`symnplm.inference.diagnostics.binned_diagnostics`), and
over the pairs the p-values must be uniform (KS) with a rate below 0.05 within
5 % ± 2σ. The same pieces without any map show what the check can see.

Reads the uncorrected outputs written by ``python -m benchmarks.closure``
(``results/closure/<detector>/{test,calibration}_uncorrected``) and writes
``benchmarks/output/closure/map_noise.json``::

    python -m benchmarks.closure_map_noise --detectors default efficiency response
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from symnplm.inference.diagnostics import binned_diagnostics
from symnplm.io.files import write_json
from symnplm.io.provenance import provenance
from symnplm.io.samples import Sample
from symnplm.physics.efficiency import measure_efficiency_ratio
from symnplm.workflow.runs import DIAGNOSTICS, emu_vs_mue, load_inputs, map_reweighting

OUTPUT = Path(__file__).resolve().parent / "output" / "closure" / "map_noise.json"


@dataclasses.dataclass(frozen=True)
class _Events:
    """emu (electron leads) and mue (muon leads) events of one production."""

    emu: Sample
    mue: Sample

    @classmethod
    def load(cls, processed: Path) -> _Events:
        cfg = emu_vs_mue(processed, "5d", permutations=1, max_iter=1, seed=0)
        inputs = load_inputs(dataclasses.replace(cfg, map_uncertainty=False))
        assert inputs.columns_a is not None and inputs.columns_b is not None
        return cls(inputs.columns_a, inputs.columns_b)

    def pieces(self, n: int, rng: np.random.Generator) -> list[_Events]:
        """``n`` disjoint random pieces (every event in exactly one)."""
        ia = np.array_split(rng.permutation(len(self.emu)), n)
        ib = np.array_split(rng.permutation(len(self.mue)), n)
        return [
            _Events(self.emu.take(np.sort(a), "emu"), self.mue.take(np.sort(b), "mue"))
            for a, b in zip(ia, ib, strict=True)
        ]

    def leptons(self) -> tuple[np.ndarray, ...]:
        """(pT, η) of the electron and of the muon of every event, emu then mue."""

        def both(lead: bool, col: str) -> np.ndarray:
            a, b = ("lead", "sublead") if lead else ("sublead", "lead")
            return np.concatenate([self.emu.column(f"{col}_{a}"), self.mue.column(f"{col}_{b}")])

        return both(True, "pt"), both(True, "eta"), both(False, "pt"), both(False, "eta")


def _corrected(events: _Events, calibration: _Events, seed: int) -> tuple[Sample, Sample, Any]:
    """``events`` weighted by the map of ``calibration``, with that map's uncertainty."""
    weights = np.concatenate([calibration.emu.weights, calibration.mue.weights])
    ratio = measure_efficiency_ratio(*calibration.leptons(), weights, n_bootstrap=50, seed=seed)
    out = []
    for s, electron, muon in ((events.emu, "lead", "sublead"), (events.mue, "sublead", "lead")):
        # as the processor does: both leptons outside the map's masked bins
        keep = ratio.accepts(s.column(f"pt_{electron}"), s.column(f"eta_{electron}"))
        keep &= ratio.accepts(s.column(f"pt_{muon}"), s.column(f"eta_{muon}"))
        s = s.take(np.flatnonzero(keep), s.name)
        w = s.weights * ratio(s.column(f"pt_{electron}"), s.column(f"eta_{electron}"))
        out.append(Sample(s.features, w, s.names, s.provenance, s.name))
    a, b = out
    return a, b, map_reweighting(ratio, a, b, ("lead", "sublead"))


def _summary(p: np.ndarray) -> dict[str, Any]:
    n = len(p)
    return {
        "n": n,
        "ks_uniform_p": float(stats.kstest(p, "uniform").pvalue),
        "rate_p_below_0.05": float(np.mean(p < 0.05)),
        "rate_sigma": float(np.sqrt(0.05 * 0.95 / n)),
        "p_values": p.tolist(),
    }


def study(work: Path, detector: str, pieces: int, relabellings: int, seed: int) -> dict[str, Any]:
    """Diagnostics of every (piece, other production's piece) pair, with and without a map."""
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    test = _Events.load(work / detector / "test_uncorrected").pieces(pieces, rng)
    calib = _Events.load(work / detector / "calibration_uncorrected").pieces(pieces, rng)
    rows: dict[str, dict[str, list[float]]] = {"map": {}, "no map": {}}
    for i in range(pieces):
        # alternate which production is tested, so that both are
        events, other = (test[i], calib[i]) if i % 2 == 0 else (calib[i], test[i])
        a, b, reweighting = _corrected(events, other, seed + i)
        for key, (sa, sb, rw) in {
            "map": (a, b, reweighting),
            "no map": (events.emu, events.mue, None),
        }.items():
            for d in binned_diagnostics(
                sa, sb, DIAGNOSTICS, n=relabellings, seed=seed + i, reweighting=rw
            ):
                rows[key].setdefault(d.name, []).append(d.p_value)
    return {
        key: {name: _summary(np.array(p)) for name, p in per.items()} for key, per in rows.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("results/closure"))
    parser.add_argument("--detectors", nargs="+", default=["default", "efficiency", "response"])
    parser.add_argument("--pieces", type=int, default=20)
    parser.add_argument("--relabellings", type=int, default=100)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    result = {}
    for det in args.detectors:
        result[det] = study(args.work, det, args.pieces, args.relabellings, args.seed)
        for key, per in result[det].items():
            cells = ", ".join(
                f"{name} {s['rate_p_below_0.05']:.2f}/KS {s['ks_uniform_p']:.2g}"
                for name, s in per.items()
            )
            print(f"{det} ({key}): rate(p<0.05)/KS p per diagnostic: {cells}", flush=True)
    write_json(
        args.output,
        {"detectors": result, "args": {k: str(v) for k, v in vars(args).items()},
         "provenance": provenance()},
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
