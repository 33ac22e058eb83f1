"""How far from converged is t at a Newton iteration cap? (bootstrap replicas, m_coll)

Draws null replicas of the paper's bootstrap protocol (emu pool of the paper-preset
sample at ``--luminosity``) and fits the same replicas with several ``max_iter`` caps
of the damped Newton optimiser, recording t, convergence and wall time. A cap that
leaves t far below its converged value makes a weaker (though still exactly
calibrated) statistic. Writes ``benchmarks/output/bench/newton_cap.json``::

    python -m benchmarks.newton_cap --input results/closure/default/test_corrected
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np

from symnplm.inference.calculators import toy_null
from symnplm.io.files import write_json
from symnplm.io.provenance import provenance
from symnplm.workflow.config import InjectionSpec, RunConfig, SampleSpec, StatisticSpec
from symnplm.workflow.runs import build_test
from symnplm.workflow.sensitivity import bootstrap_model

OUTPUT = Path(__file__).resolve().parent / "output" / "bench" / "newton_cap.json"


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--input", default="results/closure/default/test_corrected")
    p.add_argument("--luminosity", type=float, default=10.0, help="fb⁻¹ per sample")
    p.add_argument("--replicas", type=int, default=8)
    p.add_argument("--caps", type=int, nargs="+", default=[50, 200, 1000])
    p.add_argument("--seed", type=int, default=3)
    args = p.parse_args(argv)
    cfg = RunConfig(
        input=args.input,
        features="m_coll",
        a=SampleSpec(category="emu"),
        b=SampleSpec(category="emu"),
        inject=InjectionSpec(datasets=["ggh_htaue", "vbfh_htaue"]),
        statistic=StatisticSpec(method="symmetrized", optimizer="newton"),
        seed=args.seed,
    )
    model = bootstrap_model(cfg)
    generator = model.experiments(args.luminosity, 0.0)
    a, b = generator(np.random.default_rng(0))  # the shape of the test only
    rows = []
    for cap in args.caps:
        test = build_test(dataclasses.replace(cfg.statistic, max_iter=cap), a, b)
        start = time.perf_counter()
        null = toy_null(test, args.replicas, generator=generator, seed=args.seed)
        rows.append(
            {
                "max_iter": cap,
                "t": null.t.tolist(),
                "converged": np.asarray(null.converged, dtype=bool).tolist(),
                "seconds": time.perf_counter() - start,
            }
        )
        print(cap, np.round(null.t, 3), f"{np.mean(null.converged):.0%} converged", flush=True)
    out = {"luminosity_fb": args.luminosity, "seed": args.seed, "rows": rows, **provenance()}
    write_json(OUTPUT, out)
    return out


if __name__ == "__main__":
    main()
