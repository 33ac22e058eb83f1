"""Files: samples, result bookkeeping, provenance and atomic writes.

``samples``
    :class:`~symnplm.io.samples.Sample` (columns + weights) and the parquet files of
    ``symnplm process`` with their manifest.
``booking``
    Result directories: ``run.json``, ``result.json``, ``arrays.npz`` and ``hist``
    objects as UHI JSON (never pickled).
``provenance``
    Seeds, configuration and package versions recorded with every output.
``files``
    Atomic writes, JSON with non-finite numbers, writable-directory checks.
"""

__all__: list[str] = []
