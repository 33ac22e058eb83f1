"""Resumable calibration campaigns: null replicas in batches on a dask cluster.

A campaign of n permutations (Sec. III E of arXiv:2401.09530) or toys is cut into
batches of consecutive replica ids. Every replica's randomness depends only on
(seed, replica id) (see :mod:`symnplm.inference.calculators`), so batches are
independent tasks: they run on a ``distributed`` cluster (a ``LocalCluster`` by
default, or the scheduler at an address) and each finished batch is written to
its own file, atomically, by the submitting process (no shared file system needed).

Directory layout::

    DIR/campaign.json                 what is computed: method, n, seed, batch size,
                                      statistic configuration, fingerprints of A and B
    DIR/batch-000000-000025.npz       replicas 0..24 (NullDistribution arrays + meta)

A rerun with the same description finds the finished batch files and submits only
the missing batches, so an interrupted campaign loses at most the batches in flight
and never recomputes a finished one. A directory holding a *different* campaign is
an error, never silently mixed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from symnplm.exceptions import CampaignIncomplete
from symnplm.inference.calculators import (
    bootstrap_batch,
    default_batch_size,
    permutation_batch,
)
from symnplm.inference.results import NullDistribution
from symnplm.inference.reweighting import ReweightingUncertainty
from symnplm.inference.test_statistics import TwoSampleTest
from symnplm.io.files import read_json, write_json, write_npz
from symnplm.io.samples import Sample
from symnplm.workflow.cluster import dask_client

__all__ = ["CAMPAIGN_JSON", "DEFAULT_BATCH", "Campaign", "Progress", "fingerprint"]

CAMPAIGN_JSON = "campaign.json"
#: replicas per batch when none is given (bounded by memory, see default_batch_size)
DEFAULT_BATCH = 25

Progress = Callable[[int, int], None]


def fingerprint(sample: Sample) -> str:
    """SHA-256 of a sample's features, weights and feature names."""
    h = hashlib.sha256()
    h.update(json.dumps(list(sample.names)).encode())
    h.update(np.ascontiguousarray(sample.features).tobytes())
    h.update(np.ascontiguousarray(sample.weights).tobytes())
    return h.hexdigest()


def _batch_task(
    test: TwoSampleTest,
    a: Sample,
    b: Sample,
    method: str,
    seed: int,
    ids: Sequence[int],
    reweighting: ReweightingUncertainty | None = None,
) -> NullDistribution:
    """One batch, run on a dask worker (a module-level function: picklable)."""
    run = permutation_batch if method == "permutations" else bootstrap_batch
    return run(test, a, b, seed, list(ids), reweighting)


class Campaign:
    """A null distribution computed batch by batch, resumable from its directory.

    Parameters
    ----------
    directory
        Where batch files go; ``None`` keeps everything in memory (no resumption).
    test
        The statistic.
    a, b
        The observed samples (pooled and relabelled, or bootstrapped).
    method
        ``"permutations"`` or ``"toys"`` (Poisson bootstrap of A ∪ B).
    n
        Number of replicas.
    seed
        Campaign seed (labels, toy data and network initialisations of every replica).
    batch_size
        Replicas per batch; default :data:`DEFAULT_BATCH` bounded by memory. Part of the
        campaign's identity: a Newton fit's last bits can depend on the batch layout.
    reweighting
        Uncertainty of label-dependent weights, redrawn in every replica
        (:mod:`symnplm.inference.reweighting`).
    """

    def __init__(
        self,
        directory: str | os.PathLike[str] | None,
        test: TwoSampleTest,
        a: Sample,
        b: Sample,
        *,
        method: str,
        n: int,
        seed: int,
        batch_size: int | None = None,
        reweighting: ReweightingUncertainty | None = None,
    ) -> None:
        if method not in ("permutations", "toys"):
            raise ValueError(f"campaign method must be 'permutations' or 'toys', got {method!r}")
        if n < 1:
            raise ValueError(f"need at least one null replica, got n = {n}")
        self.directory = Path(directory) if directory is not None else None
        self.test, self.a, self.b = test, a, b
        self.method, self.n, self.seed = method, int(n), int(seed)
        self.reweighting = reweighting
        self.batch_size = int(
            batch_size or min(DEFAULT_BATCH, default_batch_size(len(a) + len(b), n))
        )
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")

    # -- identity -----------------------------------------------------------------------
    def description(self) -> dict[str, Any]:
        """What this campaign computes; a directory only resumes an identical one."""
        return {
            "format": "symnplm-campaign/1",
            "method": self.method,
            "n": self.n,
            "seed": self.seed,
            "batch_size": self.batch_size,
            "test": self.test.config(),
            "samples": {"A": fingerprint(self.a), "B": fingerprint(self.b)},
            "reweighting": None if self.reweighting is None else self.reweighting.describe(),
        }

    def batches(self) -> list[tuple[int, int]]:
        """Replica id ranges [start, stop) of all batches."""
        return [(s, min(s + self.batch_size, self.n)) for s in range(0, self.n, self.batch_size)]

    def batch_path(self, start: int, stop: int) -> Path:
        """File of batch [start, stop)."""
        assert self.directory is not None
        return self.directory / f"batch-{start:06d}-{stop:06d}.npz"

    def _claim_directory(self) -> None:
        """Write ``campaign.json``, or check that the one there describes this campaign."""
        assert self.directory is not None
        path = self.directory / CAMPAIGN_JSON
        mine = json.loads(json.dumps(self.description(), default=str))
        if path.exists():
            theirs = read_json(path)
            if theirs != mine:
                differ = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
                raise ValueError(
                    f"{path}: the directory holds a different campaign ({', '.join(differ)} "
                    "differ); use another output directory or remove it"
                )
        else:
            write_json(path, mine)

    # -- batch files --------------------------------------------------------------------
    def _save(self, part: NullDistribution, start: int, stop: int) -> None:
        meta = json.dumps(part.summary() | {"start": start, "stop": stop}, default=str)
        write_npz(self.batch_path(start, stop), meta=np.array(meta), **part.arrays())

    def load_batch(self, start: int, stop: int) -> NullDistribution | None:
        """A finished batch, or ``None`` if its file does not exist."""
        path = self.batch_path(start, stop)
        if not path.exists():
            return None
        with np.load(path) as arrays:
            meta = json.loads(str(arrays["meta"]))
            return NullDistribution.from_arrays(meta, arrays)

    def finished(self) -> list[tuple[int, int]]:
        """Batches whose files exist."""
        if self.directory is None:
            return []
        return [r for r in self.batches() if self.batch_path(*r).exists()]

    # -- running ------------------------------------------------------------------------
    def run(
        self,
        *,
        client: Any = None,
        workers: int = 1,
        scheduler: str | None = None,
        progress: Progress | None = None,
        max_batches: int | None = None,
    ) -> NullDistribution:
        """Compute the missing batches and return the whole null distribution.

        Parameters
        ----------
        client
            A ``distributed.Client``; default :func:`dask_client` (``workers``,
            ``scheduler``).
        progress
            Called as ``progress(replicas done, n)`` after each batch (finished
            batches found on disk count from the start).
        max_batches
            Compute at most this many new batches, then raise :class:`CampaignIncomplete`
            (their files are written): a controlled interruption.
        """
        done: dict[tuple[int, int], NullDistribution] = {}
        if self.directory is not None:
            self._claim_directory()
            for r in self.finished():
                part = self.load_batch(*r)
                assert part is not None
                done[r] = part
        todo = [r for r in self.batches() if r not in done]
        if max_batches is not None:
            todo = todo[: max(0, max_batches)]
        count = sum(stop - start for start, stop in done)
        if progress is not None:
            progress(count, self.n)
        if todo:
            with contextlib.ExitStack() as stack:
                if client is None:
                    client = stack.enter_context(dask_client(workers, scheduler))
                self._submit(client, todo, done, progress, count)
        missing = [r for r in self.batches() if r not in done]
        if missing:
            raise CampaignIncomplete(
                f"{len(missing)} of {len(self.batches())} batches not computed "
                f"(first: replicas {missing[0][0]}-{missing[0][1] - 1}); rerun to resume"
            )
        return NullDistribution.concatenate([done[r] for r in self.batches()])

    def _submit(
        self,
        client: Any,
        todo: list[tuple[int, int]],
        done: dict[tuple[int, int], NullDistribution],
        progress: Progress | None,
        count: int,
    ) -> None:
        from distributed import as_completed

        # ship the test and the samples once, not once per batch; unique keys (hash=False),
        # so that a rerun never reuses the key of data being released by an earlier run
        test_f, a_f, b_f, rw_f = client.scatter(
            [self.test, self.a, self.b, self.reweighting], broadcast=True, hash=False
        )
        tag = uuid.uuid4().hex[:12]
        futures = {
            client.submit(
                _batch_task,
                test_f,
                a_f,
                b_f,
                self.method,
                self.seed,
                range(start, stop),
                rw_f,
                pure=False,
                key=f"symnplm-batch-{start}-{stop}-{tag}",
            ): (start, stop)
            for start, stop in todo
        }
        for future in as_completed(futures):
            start, stop = futures[future]
            part = future.result()
            if self.directory is not None:
                self._save(part, start, stop)  # before anything else: never lose a batch
            done[start, stop] = part
            count += stop - start
            if progress is not None:
                progress(count, self.n)
