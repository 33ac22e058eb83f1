"""Fits from several starting points: how much t depends on the seed, and the power.

On the paper's toy model (arXiv:2401.09530 Eq. 25, signal S3 of Eq. 28 in A), the
symmetrized 1-4-1 test with ``n_starts`` = 1 and 4 (and more, ``--starts``):

* the spread of the observed t over initialisation seeds on one sample;
* null and signal replicas (independent toys, one batched fit each), the empirical
  p-value of every signal replica against the null, its median and the fraction
  below 0.05.

Observation and null are fitted alike for every k, so each p-value is exact; the
question is whether more starts make t less seed-dependent and the test stronger.
Writes ``benchmarks/output/bench/starts.json``::

    python -m benchmarks.starts --events 2000 --signal 100 --replicas 100
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from symnplm.generation.toymodels import ToyModel
from symnplm.inference import SymmetrizedTest
from symnplm.inference.batches import ReplicaBatch
from symnplm.io.files import write_json
from symnplm.io.provenance import provenance

OUTPUT = Path(__file__).resolve().parent / "output" / "bench" / "starts.json"


def toy_batch(n: int, n_signal: float, replicas: int, seed: int) -> ReplicaBatch:
    """``replicas`` independent toy pairs as one batch (events per replica, zero-padded)."""
    signal = "S3" if n_signal > 0 else None
    pairs = [
        ToyModel(n, n, signal=signal, n_signal=n_signal)(np.random.default_rng([seed, i]))
        for i in range(replicas)
    ]
    width = max(len(a) + len(b) for a, b in pairs)
    x = np.zeros((replicas, width, 1))
    wa, wb = np.zeros((replicas, width)), np.zeros((replicas, width))
    for r, (a, b) in enumerate(pairs):
        x[r, : len(a) + len(b)] = np.concatenate([a.features, b.features])
        wa[r, : len(a)] = 1.0
        wb[r, len(a) : len(a) + len(b)] = 1.0
    return ReplicaBatch(x, wa, wb, ("x",))


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=2000, help="expected events per sample")
    p.add_argument("--signal", type=float, default=100.0, help="expected S3 events in A")
    p.add_argument("--replicas", type=int, default=100, help="null and signal replicas")
    p.add_argument("--seeds", type=int, default=8, help="seeds of the spread study")
    p.add_argument("--starts", type=int, nargs="+", default=[1, 4])
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--output", type=Path, default=OUTPUT)
    args = p.parse_args(argv)
    null_batch = toy_batch(args.events, 0.0, args.replicas, args.seed)
    signal_batch = toy_batch(args.events, args.signal, args.replicas, args.seed + 1)
    a, b = ToyModel(args.events, args.events, signal="S3", n_signal=args.signal)(
        np.random.default_rng([args.seed, 10**6])
    )
    ids = list(range(args.replicas))
    out: dict = {"settings": vars(args) | {"output": str(args.output)}, "starts": {}}
    for k in args.starts:
        test = SymmetrizedTest((1, 4, 1), n_starts=k)
        start = time.perf_counter()
        spread = [test.fit(a, b, seed=s).t for s in range(args.seeds)]
        null = test.fit_batch(null_batch, args.seed, ids).t
        sig = test.fit_batch(signal_batch, args.seed + 1, ids).t
        p_sig = (1 + (null[None, :] >= sig[:, None]).sum(1)) / (len(null) + 1)
        row = {
            "observed_t_over_seeds": [float(t) for t in spread],
            "observed_t_sd": float(np.std(spread)),
            "null_median": float(np.median(null)),
            "null_sd": float(np.std(null)),
            "signal_median": float(np.median(sig)),
            "median_p": float(np.median(p_sig)),
            "fraction_p_below_0.05": float(np.mean(p_sig < 0.05)),
            "seconds": time.perf_counter() - start,
        }
        out["starts"][str(k)] = row
        print(f"n_starts={k}: " + ", ".join(f"{key} {v:.3g}" for key, v in row.items()
                                            if not isinstance(v, list)), flush=True)  # fmt: skip
    out["provenance"] = provenance()
    write_json(args.output, out)
    return out


if __name__ == "__main__":
    main()
