"""Random streams: one id per kind of randomness.

Every random draw of a result comes from ``SeedSequence(seed, spawn_key=(stream, ...))``
with the run's seed and one of the ids below, so that a replica's draws depend only on
(seed, stream, replica id), never on batching, workers or the order of work. The ids
are part of the results' reproducibility: never renumber them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "STREAM_CLOSURE_RELABEL",
    "STREAM_CLOSURE_SIGNAL",
    "STREAM_CLOSURE_SIGNAL_NULL",
    "STREAM_CLOSURE_SPLIT",
    "STREAM_INIT",
    "STREAM_NUISANCE",
    "STREAM_PERMUTATION",
    "STREAM_REWEIGHTING",
    "STREAM_SCAN",
    "STREAM_SENSITIVITY",
    "STREAM_SENSITIVITY_BOOTSTRAP",
    "STREAM_TOYS",
    "STREAM_UNWEIGHT",
    "replica_rng",
    "stream_rng",
    "stream_seeds",
]

STREAM_INIT = 0  #: network initialisations
STREAM_PERMUTATION = 1  #: relabellings of A ∪ B
STREAM_TOYS = 2  #: toys and bootstrap replicas
STREAM_UNWEIGHT = 3  #: pseudo-data: thinning weighted simulation to events
STREAM_SENSITIVITY = 4  #: signal-injection replicas of a sensitivity scan
STREAM_REWEIGHTING = 5  #: redraws of an efficiency map within its uncertainty
STREAM_NUISANCE = 6  #: fits of learned nuisance shapes
STREAM_CLOSURE_SPLIT = 11  #: closure study: split of a production into pieces
STREAM_CLOSURE_RELABEL = 12  #: closure study: relabelled pseudo-experiments
STREAM_CLOSURE_SIGNAL = 13  #: closure study: injected-signal pseudo-experiments
STREAM_CLOSURE_SIGNAL_NULL = 14  #: closure study: their nulls
STREAM_SCAN = 21  #: region scans: one relabelling shared by every cell of a replica
STREAM_SENSITIVITY_BOOTSTRAP = 31  #: sensitivity, bootstrap protocol: replicas per (L, BR)


def stream_rng(seed: int, stream: int, *key: int) -> np.random.Generator:
    """The generator of ``stream`` (and an optional further ``key``) for ``seed``."""
    return np.random.default_rng(
        np.random.SeedSequence(int(seed), spawn_key=(int(stream), *map(int, key)))
    )


def replica_rng(seed: int, stream: int, replica_id: int) -> np.random.Generator:
    """The random generator of one replica of one stream."""
    return stream_rng(seed, stream, replica_id)


def stream_seeds(
    seed: int, stream: int, replica_ids: Sequence[int], k: int = 0, start: int = 0
) -> list[int]:
    """Independent integer seeds for replicas ``replica_ids`` (e.g. for torch).

    A replica's seed depends only on (seed, stream, replica id, k, start), never on how
    the replicas are batched. ``start`` numbers the starting points of a fit started
    several times; start 0 has the key of a single start, so ``starts=1`` keeps its seeds.
    """
    extra = () if start == 0 else (int(start),)
    return [
        int(
            np.random.SeedSequence(int(seed), spawn_key=(stream, int(r), k, *extra)).generate_state(
                1
            )[0]
        )
        for r in replica_ids
    ]
