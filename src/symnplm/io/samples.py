"""Samples: the bridge between processor output and the statistical engine.

A :class:`Sample` is a set of events, each a point ``x`` in a d-dimensional
feature space with a weight ``w``, plus the provenance of where the events came
from. The engine sees only ``features`` (N x d) and ``weights`` (N); "sums of
weights replace counts" everywhere (``Ñ_A = Σ_{x∈A} w``).

Samples are stored as parquet: one column per feature, a ``weight`` column, and
the provenance as JSON in the file's key-value metadata, so that any parquet
reader can open them. A file may hold further weight columns, ``weight:<name>``
(the same events with other weights, e.g. a normalisation variation), and a sample
may be a selection of a file's rows (:func:`load_sample` follows the manifest).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from symnplm.exceptions import EmptySelectionError
from symnplm.io.files import atomic_path

__all__ = [
    "COLUMNS_DIR",
    "MANIFEST_NAME",
    "WEIGHT_COLUMN",
    "WEIGHT_PREFIX",
    "Sample",
    "as_sample",
    "efficiency_map_path",
    "inside",
    "is_weight_column",
    "load_sample",
    "read_manifest",
    "read_rows",
    "sample_parts",
    "sample_path",
    "write_columns",
]

WEIGHT_COLUMN = "weight"
#: prefix of further weight columns: ``weight:efficiency_up1`` holds that variation's weights
WEIGHT_PREFIX = "weight:"
_META_KEY = b"symnplm.provenance"


def is_weight_column(name: str) -> bool:
    """The nominal or a variation's weight column (never a feature)."""
    return name == WEIGHT_COLUMN or name.startswith(WEIGHT_PREFIX)


def _as_features(features: Any, name: str) -> np.ndarray:
    x = np.asarray(features, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise ValueError(f"sample {name!r}: features must have shape (N,) or (N, d), got {x.shape}")
    return x


@dataclass(frozen=True)
class Sample:
    """Weighted events in a d-dimensional feature space.

    Parameters
    ----------
    features
        Array of shape ``(N, d)`` (or ``(N,)`` for d = 1), finite values.
    weights
        Per-event weights, shape ``(N,)``; ``None`` means unit weights. Negative
        weights (NLO generators) are allowed, a non-positive total is not.
    names
        Feature names (``d`` of them); default ``x0, x1, ...``.
    provenance
        Free-form description of the origin (dataset, category, variation, seed...).
    name
        Short label used in error messages and results.
    """

    features: np.ndarray
    weights: np.ndarray
    names: tuple[str, ...]
    provenance: Mapping[str, Any] = field(default_factory=dict)
    name: str = "sample"

    def __init__(
        self,
        features: Any,
        weights: Any | None = None,
        names: Sequence[str] | None = None,
        provenance: Mapping[str, Any] | None = None,
        name: str = "sample",
    ) -> None:
        x = _as_features(features, name)
        n, d = x.shape
        if n == 0:
            raise ValueError(f"sample {name!r} is empty (0 events)")
        if not np.all(np.isfinite(x)):
            bad = np.argwhere(~np.isfinite(x))[0]
            col = names[bad[1]] if names is not None and len(names) == d else f"x{bad[1]}"
            raise ValueError(
                f"sample {name!r}: feature {col!r} has a non-finite value "
                f"({x[bad[0], bad[1]]}) at event {bad[0]}"
            )
        if weights is None:
            w = np.ones(n, dtype=np.float64)
        else:
            w = np.asarray(weights, dtype=np.float64)
            if w.shape != (n,):
                raise ValueError(
                    f"sample {name!r}: weights have shape {w.shape}, expected ({n},) "
                    "to match the features"
                )
            if not np.all(np.isfinite(w)):
                i = int(np.argwhere(~np.isfinite(w))[0, 0])
                raise ValueError(f"sample {name!r}: weight of event {i} is {w[i]}")
        if not w.sum() > 0:
            raise ValueError(f"sample {name!r}: total weight is {w.sum()}, must be positive")
        if names is None:
            names = tuple(f"x{i}" for i in range(d))
        names = tuple(str(s) for s in names)
        if len(names) != d:
            raise ValueError(f"sample {name!r}: {len(names)} feature names for {d} features")
        if any(is_weight_column(n) for n in names):
            raise ValueError(
                f"sample {name!r}: {WEIGHT_COLUMN!r} and {WEIGHT_PREFIX!r}… are reserved for "
                "weights, not feature names"
            )
        x.setflags(write=False)
        w.setflags(write=False)
        object.__setattr__(self, "features", x)
        object.__setattr__(self, "weights", w)
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "provenance", dict(provenance or {}))
        object.__setattr__(self, "name", name)

    # -- basic properties -------------------------------------------------------------
    def __len__(self) -> int:
        return self.features.shape[0]

    @property
    def dim(self) -> int:
        """Number of features d."""
        return self.features.shape[1]

    @property
    def sum_weights(self) -> float:
        """Ñ = Σ w, the weighted event count."""
        return float(self.weights.sum())

    @property
    def is_weighted(self) -> bool:
        """Whether any weight differs from one."""
        return bool(np.any(self.weights != 1.0))

    def column(self, name: str) -> np.ndarray:
        """One feature column by name."""
        try:
            return self.features[:, self.names.index(name)]
        except ValueError:
            raise KeyError(
                f"sample {self.name!r} has no feature {name!r}; has {self.names}"
            ) from None

    # -- derived samples --------------------------------------------------------------
    def select(self, features: Sequence[str]) -> Sample:
        """A sample with only the named features (in that order)."""
        cols = [self.column(f) for f in features]
        return Sample(np.stack(cols, axis=1), self.weights, features, self.provenance, self.name)

    def take(self, index: np.ndarray, name: str | None = None) -> Sample:
        """Events ``index`` (an integer or boolean index array)."""
        return Sample(
            self.features[index],
            self.weights[index],
            self.names,
            self.provenance,
            name or self.name,
        )

    def scaled(self, factor: float, name: str | None = None) -> Sample:
        """All weights multiplied by ``factor``."""
        return Sample(
            self.features, self.weights * factor, self.names, self.provenance, name or self.name
        )

    @staticmethod
    def concatenate(samples: Sequence[Sample], name: str = "sample") -> Sample:
        """Union of samples with the same features."""
        if not samples:
            raise ValueError("concatenate needs at least one sample")
        names = samples[0].names
        for s in samples[1:]:
            if s.names != names:
                raise ValueError(
                    f"cannot concatenate {s.name!r} with features {s.names} to {names}"
                )
        return Sample(
            np.concatenate([s.features for s in samples]),
            np.concatenate([s.weights for s in samples]),
            names,
            {"concatenated": [s.provenance for s in samples]},
            name,
        )

    def bootstrap(
        self, rng: np.random.Generator, size: int | None = None, name: str | None = None
    ) -> Sample:
        """Resample with replacement (``size`` events, default N) — Efron's bootstrap."""
        size = len(self) if size is None else int(size)
        idx = rng.integers(0, len(self), size=size)
        return self.take(idx, name)

    # -- parquet I/O --------------------------------------------------------------------
    def to_parquet(
        self,
        path: str | os.PathLike[str],
        weights: Mapping[str, np.ndarray] | None = None,
    ) -> Path:
        """Write features, weights and provenance to ``path`` (atomically, zstd).

        ``weights`` adds other weights of the same events as columns ``weight:<name>``.
        """
        cols = {n: self.features[:, i] for i, n in enumerate(self.names)}
        return write_columns(path, cols, self.weights, weights, self.name, self.provenance)

    @classmethod
    def from_parquet(
        cls,
        path: str | os.PathLike[str],
        features: Sequence[str] | None = None,
        name: str | None = None,
        *,
        weight: str | None = None,
        where: Mapping[str, float] | None = None,
    ) -> Sample:
        """Read a sample.

        ``features`` selects columns (default: all but the weight columns); ``weight``
        names the weight column (default ``weight``; e.g. ``weight:norm_up1``);
        ``where`` keeps the rows whose columns equal the given values (all of them).
        """
        x, w, wanted, meta = read_rows(path, features, weight=weight, where=where)
        prov = dict(meta.get("provenance", {}))
        prov.setdefault("file", str(path))
        return cls(x, w, wanted, prov, name or meta.get("name", Path(path).stem))


def read_rows(
    path: str | os.PathLike[str],
    features: Sequence[str] | None = None,
    *,
    weight: str | None = None,
    where: Mapping[str, float] | None = None,
) -> tuple[np.ndarray, np.ndarray | None, list[str], dict[str, Any]]:
    """Features (N, d), weights (or None), feature names and metadata of a parquet file's
    rows (see :meth:`Sample.from_parquet`); any number of rows, nothing checked beyond
    the columns: a sample stored in several files is a :class:`Sample` once joined."""
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such sample file")
    try:
        table = pq.read_table(path)
    except Exception as err:  # pyarrow raises several types for corrupt files
        raise ValueError(f"{path}: not a readable parquet file ({err})") from None
    available = [c for c in table.column_names if not is_weight_column(c)]
    wanted = list(features) if features is not None else available
    missing = [f for f in [*wanted, *(where or {})] if f not in table.column_names]
    if missing:
        raise KeyError(f"{path}: no column(s) {missing}; columns are {table.column_names}")
    if weight is not None and weight not in table.column_names:
        raise KeyError(f"{path}: no weight column {weight!r}; columns are {table.column_names}")
    meta_raw = (table.schema.metadata or {}).get(_META_KEY)
    meta = json.loads(meta_raw) if meta_raw else {}

    def column(key: str) -> np.ndarray:
        return table.column(key).to_numpy().astype(np.float64)

    keep = np.ones(table.num_rows, dtype=bool)
    for key, value in (where or {}).items():
        keep &= column(key) == float(value)
    x = np.stack([column(f)[keep] for f in wanted], axis=1).reshape(int(keep.sum()), len(wanted))
    weight = weight or (WEIGHT_COLUMN if WEIGHT_COLUMN in table.column_names else None)
    w = column(weight)[keep] if weight is not None else None
    return x, w, wanted, meta


def write_columns(
    path: str | os.PathLike[str],
    columns: Mapping[str, np.ndarray],
    weights: np.ndarray,
    other_weights: Mapping[str, np.ndarray] | None = None,
    name: str = "sample",
    provenance: Mapping[str, Any] | None = None,
) -> Path:
    """Write events as parquet (atomically; zstd, byte-stream-split floats).

    ``columns``, the ``weight`` column and ``weight:<name>`` for each of
    ``other_weights``; ``name`` and ``provenance`` in the file's metadata. Columns given
    in single precision stay single (readers get doubles back), the others and the
    weights are doubles. Any number of events, any weights: what a :class:`Sample`
    requires is checked when one is read.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = len(weights)
    cols = {
        k: np.asarray(v, dtype=np.float32 if np.asarray(v).dtype == np.float32 else np.float64)
        for k, v in columns.items()
    }
    cols[WEIGHT_COLUMN] = np.asarray(weights, dtype=np.float64)
    for key, values in (other_weights or {}).items():
        cols[WEIGHT_PREFIX + key] = np.asarray(values, dtype=np.float64)
    for key, values in cols.items():
        if values.shape != (n,):
            raise ValueError(f"{path}: column {key!r} has shape {values.shape} for {n} events")
    table = pa.table(cols)
    meta = {"name": name, "provenance": dict(provenance or {})}
    table = table.replace_schema_metadata({_META_KEY: json.dumps(meta, default=str).encode()})
    path = Path(path)
    with atomic_path(path) as tmp:
        # byte-stream-split floats compress ~20 % better than dictionaries of doubles
        pq.write_table(
            table, tmp, compression="zstd", use_dictionary=False, use_byte_stream_split=True
        )
    return path


def as_sample(obj: Any, name: str = "sample") -> Sample:
    """Coerce an array (N,) / (N, d) or a :class:`Sample` to a :class:`Sample`."""
    if isinstance(obj, Sample):
        return obj
    return Sample(obj, name=name)


# -- processor output: one parquet file per dataset × category × variation ------------------
#
#   OUTDIR/manifest.json                                   written last: the run is complete
#   OUTDIR/columns/<dataset>/<category>/<variation>.parquet  a Sample (features + weight)
#   OUTDIR/hists.json, OUTDIR/cutflow.json                 hist objects and the cutflow
#
# The manifest lists every (dataset, category, variation) with its file and event
# count; a sample with no selected event has no parquet file, only its manifest entry.

#: Name of the file that marks a complete processor output directory.
MANIFEST_NAME = "manifest.json"
#: Sub-directory of the processor output holding the parquet samples.
COLUMNS_DIR = "columns"


def sample_path(
    outdir: str | os.PathLike[str], dataset: str, category: str, variation: str
) -> Path:
    """Where the processor writes the sample ``dataset`` / ``category`` / ``variation``."""
    return Path(outdir) / COLUMNS_DIR / dataset / category / f"{variation}.parquet"


def read_manifest(outdir: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest of a processor output directory; an error if the run did not complete."""
    from symnplm.io.files import read_json

    path = Path(outdir) / MANIFEST_NAME
    if not path.exists():
        raise FileNotFoundError(
            f"{outdir}: no {MANIFEST_NAME}, so not a complete processor output "
            "(wrong directory, or the run was interrupted)"
        )
    return read_json(path)


def inside(outdir: str | os.PathLike[str], relative: str, what: str) -> Path:
    """``outdir / relative``, refused (``ValueError``) if it resolves outside ``outdir``.

    A manifest is read, not trusted: its paths are never followed out of the directory.
    """
    path = (Path(outdir) / relative).resolve()
    if not path.is_relative_to(Path(outdir).resolve()):
        raise ValueError(f"{outdir}: {what} points outside the directory ({relative!r})")
    return path


def efficiency_map_path(outdir: str | os.PathLike[str]) -> Path | None:
    """The efficiency map a processor output applied (``None`` if none), inside ``outdir``."""
    name = read_manifest(outdir).get("efficiency_map")
    return inside(outdir, name, "efficiency_map") if name else None


def load_sample(
    outdir: str | os.PathLike[str],
    dataset: str,
    category: str,
    variation: str = "nominal",
    features: Sequence[str] | None = None,
) -> Sample:
    """Read one sample written by the processor (``symnplm process``).

    Parameters
    ----------
    outdir
        The processor output directory (it holds ``manifest.json``).
    dataset, category, variation
        E.g. ``"data"``, ``"emu"``, ``"muon_scale_up1"``.
    features
        Columns to use as features, in order (e.g. ``["m_coll"]`` or the five
        two-body features); default all columns.

    Raises
    ------
    KeyError
        The combination was not produced (the message lists what exists).
    EmptySelectionError
        No event passed the selection into this category (the message shows the cutflow).
    ValueError
        The events could not form a Sample (e.g. a negative total weight of simulation with
        negative generator weights); the message says why.
    """
    manifest = read_manifest(outdir)
    entries = {(s["dataset"], s["category"], s["variation"]): s for s in manifest["samples"]}
    entry = entries.get((dataset, category, variation))
    if entry is None:
        have = {
            "datasets": sorted({k[0] for k in entries}),
            "categories": sorted({k[1] for k in entries}),
            "variations": sorted({k[2] for k in entries}),
        }
        raise KeyError(
            f"{outdir}: no sample dataset={dataset!r} category={category!r} "
            f"variation={variation!r}; the output has {have}"
        )
    name = f"{dataset}/{category}/{variation}"
    if entry["n_events"] == 0:
        cutflow = manifest.get("cutflow", {}).get(dataset)
        raise EmptySelectionError(
            f"{outdir}: no event of {name} passed the selection "
            f"(cutflow of {dataset!r}: {cutflow}; input files: {entry.get('files')})"
        )
    parts = sample_parts(entry)
    if not parts:
        raise ValueError(f"{outdir}: {name} was not written: {entry.get('error')}")
    xs: list[np.ndarray] = []
    ws: list[np.ndarray] = []
    meta: dict[str, Any] = {}
    names = list(features or [])
    for part in parts:
        path = inside(outdir, part["path"], name)
        x, w, names, meta = read_rows(
            path, features, weight=part.get("weight"), where=part.get("where")
        )
        xs.append(x)
        ws.append((w if w is not None else np.ones(len(x))) * float(part.get("scale", 1.0)))
    # what the sample is and how it was made: the processing is recorded once, in the
    # manifest (files written by the per-category layout carry it themselves)
    provenance = {
        **manifest.get("provenance", {}),
        "processor": manifest.get("config"),
        "metadata": manifest.get("fileset", {}).get(dataset, {}).get("metadata"),
        "seed": manifest.get("seed"),
        **meta.get("provenance", {}),
        "dataset": dataset,
        "category": category,
        "variation": variation,
        "files": entry.get("files"),
        "columns": [p["path"] for p in parts],
    }
    # a sample is checked whole: one chunk's part may have, e.g., no positive weight
    sample = Sample(np.concatenate(xs), np.concatenate(ws), names, provenance, name)
    if len(sample) != entry["n_events"]:
        raise ValueError(
            f"{outdir}: {[p['path'] for p in parts]} hold {len(sample)} events of {name}, the "
            f"manifest says {entry['n_events']}: the directory mixes outputs of different runs"
        )
    return sample


def sample_parts(entry: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Where a manifest entry's events are: ``[{"path", "weight", "scale", "where"}, ...]``.

    ``path`` is a parquet file inside the output, ``weight`` its weight column (default
    ``weight``), ``scale`` a factor on it (default 1: a normalisation variation is the
    nominal weight times a number), ``where`` the column values its rows must have
    (default: every row); an entry with a single ``path`` is that whole file.
    """
    if entry.get("parts"):
        return [dict(p) for p in entry["parts"]]
    return [{"path": entry["path"]}] if entry.get("path") else []
