"""Whole-sample binned diagnostics of corrected closure samples, overall and per pT balance.

For each corrected sample ``results/closure/<detector>/<sample>`` (default: the
``test_corrected`` and ``calibration_corrected`` outputs of ``python -m
benchmarks.closure``; any output of ``symnplm process --efficiency-map`` works) every
binned symmetrized G-test of emu against mue (:data:`symnplm.workflow.DIAGNOSTICS`)
is computed on the whole sample, and the η_lead one also in bins of the pT balance
r = pT_lead / pT_sub, each against ``--relabellings`` relabellings of the same events
with the map's uncertainty redrawn
(:func:`symnplm.inference.diagnostics.binned_diagnostics`): p-value and pull
(G − mean) / std. A residual from which lepton *leads* — decided by both leptons'
momentum responses, which a per-electron efficiency weight cannot undo — would sit
at r ≈ 1. Samples simulated from the same generated events (the detector variants
of one production) share their fluctuations: compare productions, not detectors.

Writes ``benchmarks/output/closure/balance.json``::

    python -m benchmarks.closure_balance --detectors default efficiency response
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
from pathlib import Path
from typing import Any

import numpy as np

from symnplm.inference.diagnostics import binned_diagnostics
from symnplm.io.files import write_json
from symnplm.io.provenance import provenance
from symnplm.io.samples import Sample
from symnplm.workflow.runs import DIAGNOSTICS, emu_vs_mue, load_inputs, map_uncertainty

OUTPUT = Path(__file__).resolve().parent / "output" / "closure" / "balance.json"


def _residuals(processed: Path, edges: list[float], relabellings: int, seed: int) -> dict[str, Any]:
    """Every whole-sample diagnostic, and the η_lead one in every bin of pT_lead / pT_sub."""
    cfg = emu_vs_mue(processed, "5d", permutations=1, max_iter=1, seed=seed)
    inputs = load_inputs(dataclasses.replace(cfg, map_uncertainty=False))
    a, b = inputs.columns_a, inputs.columns_b
    assert a is not None and b is not None

    def diagnostics(sa: Sample, sb: Sample, specs: dict[str, tuple[str, ...]]) -> list[Any]:
        reweighting = map_uncertainty(cfg, sa, sb)
        return binned_diagnostics(sa, sb, specs, n=relabellings, seed=seed, reweighting=reweighting)

    whole = {
        d.name: {"g": d.t, "p_value": d.p_value, "pull": d.pull}
        for d in diagnostics(a, b, DIAGNOSTICS)
    }
    rows = []
    for lo, hi in itertools.pairwise(edges):

        def in_bin(s: Sample, lo: float = lo, hi: float = hi) -> Sample:
            r = s.column("pt_lead") / s.column("pt_sublead")
            return s.take(np.flatnonzero((r >= lo) & (r < hi)), s.name)

        sa, sb = in_bin(a), in_bin(b)
        (eta,) = diagnostics(sa, sb, {"eta_lead": ("eta_lead",)})
        rows.append(
            {
                "balance_low": lo,
                "balance_high": hi,
                "events": len(sa) + len(sb),
                "g": eta.t,
                "null_mean": eta.null_mean,
                "null_std": eta.null_std,
                "pull": eta.pull,
            }
        )
    return {"whole_sample": whole, "eta_lead_per_balance": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("results/closure"))
    parser.add_argument("--detectors", nargs="+", default=["default", "efficiency", "response"])
    parser.add_argument("--samples", nargs="+", default=["test_corrected", "calibration_corrected"])
    parser.add_argument("--edges", type=float, nargs="+", default=[1.0, 1.15, 1.5, 1e9])
    parser.add_argument("--relabellings", type=int, default=100)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    result = {}
    for det, sample in itertools.product(args.detectors, args.samples):
        res = _residuals(args.work / det / sample, args.edges, args.relabellings, args.seed)
        result[f"{det}/{sample}"] = res
        whole = ", ".join(f"{k} {v['pull']:+.1f}" for k, v in res["whole_sample"].items())
        balance = ", ".join(
            f"[{r['balance_low']:g}, {r['balance_high']:g}): {r['pull']:+.1f}"
            for r in res["eta_lead_per_balance"]
        )
        print(f"{det}/{sample}: pulls {whole}; η_lead per pT_lead/pT_sub: {balance}", flush=True)
    write_json(
        args.output,
        {"samples": result, "args": {k: str(v) for k, v in vars(args).items()},
         "provenance": provenance()},
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
