"""symnplm side by side with the NPLM reference implementation (``nplm`` on PyPI, TensorFlow).

The reference (Grosso et al., ``NPLM.NNutils``: the network ``BSMfinderNet`` and
the loss ``imperfect_loss``) runs in its own environment, because it needs
TensorFlow and Keras 2 (``tf_keras``)::

    python3 -m venv .venv-nplm
    .venv-nplm/bin/pip install nplm==0.0.6 tensorflow-cpu tf_keras h5py

Both fit the same problem from the same initial parameters with full-batch Adam
(lr 1e-3, ε 1e-8): the f-term of the symmetrized statistic (Eq. 23), events
x = A ∪ B with reference coefficient c = N_A/N on every event and data weight 1 on the
A events. In the reference's format that is every event once as reference
(y = 0, w = c) and each A event once more as data (y = 1, w = 1), so its loss
Σ(1−y)w(e^f − 1) − Σ y w f equals ours. Reported: seconds and event-epochs/s of each
(one fit; symnplm also with R fits batched), the ratio, and the final t of both.

Usage::

    python -m benchmarks.nplm_reference --events 1e5 --epochs 2000 --threads 1
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._common import (
    REPO_ROOT,
    add_common_arguments,
    count,
    emit_worker_result,
    new_parser,
    print_table,
    run_worker,
)

REFERENCE_PYTHON = REPO_ROOT / ".venv-nplm" / "bin" / "python"


def reference_worker(payload: dict[str, Any]) -> dict[str, Any]:
    """Inside the TensorFlow environment: train the reference model, time it, return t."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # NPLM.NNutils needs Keras 2 APIs
    import tensorflow as tf

    threads = payload["threads"] or 0
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    from NPLM.NNutils import BSMfinderNet, imperfect_loss

    data = np.load(payload["data"])
    x, a_mask, c = data["x"], data["a_mask"].astype(bool), float(data["c"])
    # every event as reference (y=0, w=c), the A events again as data (y=1, w=1)
    feature = np.concatenate([x, x[a_mask]]).astype(np.float32)
    y = np.concatenate([np.zeros(len(x)), np.ones(int(a_mask.sum()))])
    w = np.concatenate([np.full(len(x), c), np.ones(int(a_mask.sum()))])
    target = np.stack([y, w], axis=1).astype(np.float32)
    arch = payload["architecture"]
    start = time.perf_counter()
    # NPLM's own network and loss. Its wrapper ``imperfect_model`` calls ``add_metric``
    # while building, which tf_keras 2.21 rejects in eager mode; without nuisances the
    # wrapper only appends a zero auxiliary column, which this small model does.
    net = BSMfinderNet((None, x.shape[1]), arch, None)

    class Reference(tf.keras.Model):
        def __init__(self, network: tf.keras.Model) -> None:
            super().__init__()
            self.network = network  # an attribute, so that Keras trains its weights

        def call(self, inputs):
            f = self.network(inputs)
            return tf.concat([f, tf.zeros_like(f)], axis=1)

    model = Reference(net)
    # the same initial parameters as symnplm (Dense kernels are (in, out): transpose)
    for k, layer in enumerate([*net.hidden_layers, net.output_layer]):
        layer.set_weights([data[f"w{k}"].T, data[f"b{k}"]])

    def t_now() -> float:
        pred = model.predict(feature, batch_size=len(feature), verbose=0)
        return -2 * float(imperfect_loss(target, pred))

    t_initial = t_now()
    opt = tf.keras.optimizers.Adam(learning_rate=1e-3, epsilon=1e-8)
    model.compile(loss=imperfect_loss, optimizer=opt)
    model.fit(feature, target, batch_size=len(feature), epochs=payload["epochs"], verbose=0)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "t": t_now(), "t_initial": t_initial, "tensorflow": tf.__version__}


def run(args: argparse.Namespace) -> dict[str, Any]:
    """symnplm (eager, compiled) and the reference on one problem; print the comparison."""
    import torch

    from benchmarks._common import describe_machine, machine_info, set_threads, write_result
    from benchmarks.throughput import make_problem, runner

    if not REFERENCE_PYTHON.exists():
        raise SystemExit(f"no reference environment at {REFERENCE_PYTHON}: see this module's doc")
    set_threads(args.threads)
    machine = machine_info()
    rows, results = [], {}
    problem = make_problem(1, args.events, 1, args.seed, "cpu")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "problem.npz"
        params = {f"w{k // 2}" if k % 2 == 0 else f"b{k // 2}": p[0].numpy()
                  for k, p in enumerate(problem.params0)}  # fmt: skip
        np.savez(path, x=problem.x.numpy(), a_mask=problem.data[0].numpy(),
                 c=problem.ref_coefficient, **params)  # fmt: skip
        payload = {"data": str(path), "epochs": args.epochs, "threads": args.threads,
                   "architecture": list(problem.architecture)}  # fmt: skip
        env = {"TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
        results["nplm (TensorFlow)"] = run_worker(
            "benchmarks.nplm_reference", payload, python=REFERENCE_PYTHON, env=env
        )
    for backend in ("eager", "compiled"):
        run_fit = runner(backend, problem, 1)
        run_fit(2)  # warm-up (and compilation)
        loss, seconds = run_fit(args.epochs)
        results[f"symnplm {backend}"] = {"seconds": seconds, "t": -2 * loss}
    batched = make_problem(1, args.events, args.replicas, args.seed, "cpu")
    run_fit = runner("compiled", batched, 1)
    run_fit(2)
    loss, seconds = run_fit(args.epochs)
    results[f"symnplm compiled, R={args.replicas}"] = {
        "seconds": seconds / args.replicas,
        "t": -2 * loss,
        "per_fit_of_batch": True,
    }
    ref = results["nplm (TensorFlow)"]["seconds"]
    for name, r in results.items():
        r["event_epochs_per_s"] = problem.n_events * args.epochs / r["seconds"]
        r["speedup_vs_nplm"] = ref / r["seconds"]
        rows.append({"impl": name, **r})
    print_table(
        f"NPLM reference vs symnplm: 1-4-1, N = {problem.n_events}, {args.epochs} Adam epochs "
        f"(time per fit)\n{describe_machine(machine)}",
        [("impl", "", ""), ("seconds", "s / fit", ".3g"),
         ("event_epochs_per_s", "event-epochs/s", ".3g"), ("speedup_vs_nplm", "× nplm", ".1f"),
         ("t", "t (fit 0)", ".4f")],
        rows,
    )  # fmt: skip
    out = {"n_events": problem.n_events, "epochs": args.epochs, "torch": torch.__version__,
           "results": results}  # fmt: skip
    write_result("nplm_reference", out, args, machine)
    return out


def parser() -> argparse.ArgumentParser:
    """Command-line options."""
    p = new_parser(__doc__)
    p.add_argument("--events", type=count, default=100_000, help="events in A ∪ B")
    p.add_argument("--epochs", type=count, default=2000)
    p.add_argument("--replicas", type=count, default=64, help="R of the batched symnplm run")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    add_common_arguments(p)
    return p


def main(argv: Sequence[str] | None = None) -> dict[str, Any] | None:
    """Entry point (also the TensorFlow worker, with ``--worker JSON``)."""
    args = parser().parse_args(argv)
    if args.worker is not None:
        import json

        emit_worker_result(reference_worker(json.loads(args.worker)))
        return None
    return run(args)


if __name__ == "__main__":
    main()
