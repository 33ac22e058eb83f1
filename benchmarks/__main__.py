"""``python -m benchmarks`` (``make bench``): the speed benchmarks, one command.

Runs, in order, each writing its JSON to ``benchmarks/output/bench/``:

1. :mod:`benchmarks.throughput` — fixed-epoch Adam, symnplm (eager autograd, the
   native C kernels and ``torch.compile``) side by side with a plain PyTorch loop,
   ratios per cell;
2. :mod:`benchmarks.nplm_reference` — against the NPLM reference (TensorFlow), when its
   environment ``.venv-nplm`` exists (skipped with a message otherwise);
3. :mod:`benchmarks.calibration_time` — observed t + permutations for the 1D LFUV
   configuration, extrapolated to 1000 permutations from the measured batches.

``--quick`` (the default of ``make bench``, about 10 minutes on 2 cores) runs a
reduced grid; ``--full`` the whole grid (1D and 5D, N = 10^4…2.2×10^5,
R = 1…256; about an hour). The long studies (1000 permutations, Newton against
5×10^5-epoch Adam) have their own commands, listed in docs/performance.md.
"""

from __future__ import annotations

import argparse
import sys

from benchmarks import calibration_time, nplm_reference, throughput

QUICK = {
    "throughput": ["--dims", "1", "5", "--events", "1e4", "1e5", "--replicas", "1", "64"],
    "nplm_reference": ["--events", "1e5", "--epochs", "1000", "--replicas", "64"],
    "calibration_time": ["--events", "2.2e5", "--permutations", "32", "--batch-size", "32"],
}
FULL = {
    "throughput": [],  # the module's defaults are the full grid
    "nplm_reference": ["--events", "2.2e5", "--epochs", "2000", "--replicas", "256"],
    "calibration_time": ["--events", "2.2e5", "--permutations", "128", "--batch-size", "64"],
}


def main(argv: list[str] | None = None) -> None:
    """Run the suite; ``--threads`` and ``--tag`` are passed to every benchmark."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", dest="full", action="store_false", help="reduced grid (default)")
    size.add_argument("--full", dest="full", action="store_true", help="the whole grid")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--tag", default="", help="suffix of the output files")
    args = p.parse_args(argv)
    plan = FULL if args.full else QUICK
    common = [*(["--threads", str(args.threads)] if args.threads else [])]
    common += ["--tag", args.tag or ("full" if args.full else "quick")]
    throughput.main([*plan["throughput"], *common])
    if nplm_reference.REFERENCE_PYTHON.exists():
        nplm_reference.main([*plan["nplm_reference"], *common])
    else:
        print(
            f"NPLM reference skipped: no environment at {nplm_reference.REFERENCE_PYTHON} "
            "(see benchmarks/nplm_reference.py)",
            file=sys.stderr,
        )
    calibration_time.main([*plan["calibration_time"], *common])


if __name__ == "__main__":
    main()
