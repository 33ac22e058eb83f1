"""Where does the η_lead residual of the closure study sit? A G-test per pT-balance bin.

For each corrected closure sample (``results/closure/<detector>/<source>_corrected``,
written by ``python -m benchmarks.closure``) the binned symmetrized G-test of η_lead,
emu against mue, is computed in bins of the pT balance r = pT_lead / pT_sub and
compared with ``--relabellings`` relabellings of the same events, the map's
uncertainty redrawn (:func:`symnplm.inference.diagnostics.binned_diagnostics`): the
pull (G − mean) / std per bin. A residual from which lepton *leads* — decided by both
leptons' momentum responses, which a per-electron efficiency weight cannot undo —
sits at r ≈ 1.

Writes ``benchmarks/output/closure/balance.json``::

    python -m benchmarks.closure_balance --detectors default efficiency response
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
from pathlib import Path

import numpy as np

from symnplm.fileio import write_json
from symnplm.inference.diagnostics import binned_diagnostics
from symnplm.provenance import provenance
from symnplm.samples import Sample
from symnplm.workflow import emu_vs_mue, load_inputs, map_uncertainty

OUTPUT = Path(__file__).resolve().parent / "output" / "closure" / "balance.json"


def _balance_pulls(
    processed: Path, edges: list[float], relabellings: int, seed: int
) -> list[dict[str, float]]:
    """η_lead G-test pull in every bin of pT_lead / pT_sub."""
    cfg = emu_vs_mue(processed, "5d", permutations=1, max_iter=1, seed=seed)
    inputs = load_inputs(dataclasses.replace(cfg, map_uncertainty=False))
    a, b = inputs.columns_a, inputs.columns_b
    assert a is not None and b is not None
    rows = []
    for lo, hi in itertools.pairwise(edges):

        def in_bin(s: Sample, lo: float = lo, hi: float = hi) -> Sample:
            r = s.column("pt_lead") / s.column("pt_sublead")
            return s.take(np.flatnonzero((r >= lo) & (r < hi)), s.name)

        sa, sb = in_bin(a), in_bin(b)
        (eta,) = binned_diagnostics(
            sa,
            sb,
            {"eta_lead": ("eta_lead",)},
            n=relabellings,
            seed=seed,
            reweighting=map_uncertainty(cfg, sa, sb),
        )
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
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("results/closure"))
    parser.add_argument("--detectors", nargs="+", default=["default", "efficiency", "response"])
    parser.add_argument("--edges", type=float, nargs="+", default=[1.0, 1.15, 1.5, 1e9])
    parser.add_argument("--relabellings", type=int, default=40)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    result = {}
    for det in args.detectors:
        for source in ("test", "calibration"):
            processed = args.work / det / f"{source}_corrected"
            rows = _balance_pulls(processed, args.edges, args.relabellings, args.seed)
            result[f"{det}/{source}"] = rows
            pulls = ", ".join(
                f"[{r['balance_low']:g}, {r['balance_high']:g}): {r['pull']:+.1f}" for r in rows
            )
            print(f"{det}/{source}: η_lead pull per pT_lead/pT_sub bin: {pulls}", flush=True)
    write_json(
        args.output,
        {"pulls": result, "args": {k: str(v) for k, v in vars(args).items()},
         "provenance": provenance()},
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
