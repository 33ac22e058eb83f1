"""``symnplm test`` / ``python -m symnplm.inference``: run one calibrated two-sample test.

Samples come from the toy model of 2401.09530 (``--toy``, the default) or from
parquet files written by the processors (``--a FILE --b FILE``). The result
directory holds ``result.json`` (t, p, Z, dof, seed, configuration, versions) and
``arrays.npz`` (fitted functions, training history, null distribution).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from symnplm.engine import FitConfig
from symnplm.inference.calculators import METHODS, calibrate
from symnplm.inference.results import CalibrationResult
from symnplm.inference.test_statistics import (
    BinnedTest,
    CrossEntropyTest,
    NPLMTest,
    SymmetrizedTest,
    TwoSampleTest,
    quantile_edges,
)
from symnplm.samples import Sample
from symnplm.toymodels import ToyModel


def _architecture(text: str) -> tuple[int, ...]:
    try:
        arch = tuple(int(v) for v in text.replace("-", ",").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"architecture must look like 1,4,1, got {text!r}"
        ) from None
    return arch


def _calibration(text: str) -> tuple[str, int | None]:
    name, _, count = text.partition(":")
    if name not in METHODS:
        raise argparse.ArgumentTypeError(
            f"calibration must be one of {METHODS} (e.g. permutations:200), got {text!r}"
        )
    if name == "asymptotic":
        return name, None
    try:
        n = int(count)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{name} needs a count, e.g. {name}:200") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"{name} count must be >= 1, got {n}")
    return name, n


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options shared by ``symnplm test`` and ``python -m symnplm.inference``."""
    src = p.add_argument_group("samples (default: the toy model b0 = e^-x, Eq. 25)")
    src.add_argument("--a", type=Path, help="parquet file of sample A (from `symnplm process`)")
    src.add_argument("--b", type=Path, help="parquet file of sample B")
    src.add_argument(
        "--features", nargs="+", help="feature columns of the parquet files (default: all)"
    )
    src.add_argument(
        "--n-a", type=float, default=2000, help="toy: expected events in A (default 2000)"
    )
    src.add_argument(
        "--n-b", type=float, default=2000, help="toy: expected events in B (default 2000)"
    )
    src.add_argument(
        "--signal", choices=["S1", "S2", "S3"], help="toy: signal added to A (Eqs. 26-28)"
    )
    src.add_argument("--n-signal", type=float, default=0.0, help="toy: expected signal events in A")
    st = p.add_argument_group("statistic")
    st.add_argument(
        "--statistic",
        choices=["symmetrized", "nplm", "crossentropy", "binned"],
        default="symmetrized",
    )
    st.add_argument(
        "--architecture", type=_architecture, default=None, help="e.g. 1,4,1 (default: d,4,1)"
    )
    st.add_argument("--bins", type=int, default=20, help="binned: number of quantile bins")
    st.add_argument("--optimizer", choices=["adam", "newton"], default="newton")
    st.add_argument("--epochs", type=int, default=20_000, help="Adam epochs (paper: 500000)")
    st.add_argument("--max-iter", type=int, default=200, help="Newton iterations cap")
    st.add_argument(
        "--clip", type=float, default=None, help="weight clipping bound (NPLM convention: 9)"
    )
    st.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    st.add_argument("--device", default="cpu")
    cal = p.add_argument_group("calibration")
    cal.add_argument(
        "--calibration",
        type=_calibration,
        default=("asymptotic", None),
        help="asymptotic | permutations:N | toys:N",
    )
    cal.add_argument("--seed", type=int, default=0)
    cal.add_argument(
        "--output", type=Path, help="write result.json + arrays.npz into this directory"
    )


def build_test(args: argparse.Namespace, dim: int, a: Sample, b: Sample) -> TwoSampleTest:
    """The statistic described by the command-line options."""
    if args.statistic == "binned":
        return BinnedTest(quantile_edges(Sample.concatenate([a, b]), args.bins))
    fit = FitConfig(
        optimizer=args.optimizer,
        epochs=args.epochs,
        max_iter=args.max_iter,
        clip=args.clip,
        dtype=args.dtype,
        device=args.device,
    )
    arch = args.architecture or (dim, 4, 1)
    cls = {"symmetrized": SymmetrizedTest, "nplm": NPLMTest, "crossentropy": CrossEntropyTest}[
        args.statistic
    ]
    return cls(arch, fit=fit)


def load_samples(args: argparse.Namespace) -> tuple[Sample, Sample]:
    """A and B from parquet files, or drawn from the toy model with ``args.seed``."""
    if (args.a is None) != (args.b is None):
        raise ValueError("give both --a and --b, or neither (toy model)")
    if args.a is not None:
        return Sample.from_parquet(args.a, args.features, "A"), Sample.from_parquet(
            args.b, args.features, "B"
        )
    model = ToyModel(args.n_a, args.n_b, args.signal, args.n_signal)
    return model(np.random.default_rng(args.seed))


def summary_line(result: CalibrationResult) -> str:
    """One line: statistic, t, dof, p, Z."""
    obs = result.observed
    return (
        f"{obs.statistic}: t = {result.t:.3f}  dof = {result.dof}  "
        f"p = {result.p_value:.3g}  Z = {result.z:.2f}  ({result.method}"
        + (f", {len(result.null)} replicas" if result.null is not None else "")
        + f"; asymptotic Z = {obs.z_asymptotic:.2f})"
    )


def run(args: argparse.Namespace) -> int:
    """Run the test described by ``args`` and print the summary."""
    a, b = load_samples(args)
    test = build_test(args, a.dim, a, b)
    method, n = args.calibration
    result = calibrate(test, a, b, method=method, n=n, seed=args.seed)
    print(
        f"A: {len(a)} events (Σw = {a.sum_weights:.6g}), "
        f"B: {len(b)} events (Σw = {b.sum_weights:.6g})"
    )
    print(summary_line(result))
    if args.output is not None:
        result.save(args.output)
        print(f"result written to {args.output}")
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``symnplm test``."""
    p = subparsers.add_parser(
        "test",
        help="run a calibrated two-sample test (symmetrized NPLM by default)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(p)
    p.set_defaults(func=run)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m symnplm.inference``."""
    parser = argparse.ArgumentParser(
        prog="python -m symnplm.inference",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
