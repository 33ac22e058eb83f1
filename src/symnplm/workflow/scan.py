"""Region scans: many cells (region × observable × statistic), one global significance.

An LFUV search does not run one test: it looks at the e-mu vs mu-e asymmetry in
several regions (jet multiplicity, m_ll windows, the e⁺μ⁻ / e⁻μ⁺ charge split —
itself a symmetry to test, arXiv:2401.09530 Sec. VII), with several observables and
statistics. Each cell is calibrated by permutations of the A/B labels, and the scan
as a whole by the *same* permutations: replica r relabels every event once and every
cell sees that relabelling, so the null ensemble keeps the correlations of
overlapping cells and the min-p method gives an exact global p-value
(:mod:`symnplm.inference.lookelsewhere`).

A scan is described in a YAML or TOML file, validated like run files (an unknown key
or a bad value is an error naming the key)::

    input: results/closure/default/test_corrected   # output of `symnplm process`
    a: {category: emu}                              # default: emu against mue
    b: {category: mue}
    regions:                                        # cuts on processor columns, ANDed:
      inclusive: {}                                 #   value -> equality,
      0j: {n_jets: 0}                               #   [lo, hi] -> lo <= x < hi (null: open)
      ge2j: {n_jets: [2, null]}
      e+mu-: {charge_e: 1}
    observables: {m_coll: [m_coll], 5d: 5d}
    statistics:
      symmetrized: {method: symmetrized, max_iter: 100}
      binned: {method: binned, bins: 20}
    calibration: {permutations: 200, workers: 2}
    seed: 1

Result directory::

    scan.json          the definition, seed, data fingerprint, package versions
    cells/<cell>/      observed.json and one npz per finished batch of replicas
    table.json, table.csv   per cell: events, t, local p and Z, global p and Z
    hists.json         local Z per cell as a hist (UHI JSON)
    summary.png        local Z per cell with the global Z marked

A killed scan resumes from its directory: finished batches are kept (each written
atomically) and only the missing ones are computed.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import StrictBool, StrictFloat, StrictInt, StrictStr, model_validator

from symnplm.exceptions import ConfigError
from symnplm.inference.calculators import default_batch_size, joint_permutation_labels
from symnplm.inference.calculators import labelled_batch as _labelled_batch
from symnplm.inference.lookelsewhere import GlobalSignificance, global_significance
from symnplm.inference.reweighting import ReweightingUncertainty
from symnplm.inference.test_statistics import TwoSampleTest
from symnplm.io.files import atomic_path, read_json, write_json, write_npz
from symnplm.io.provenance import provenance
from symnplm.io.samples import Sample
from symnplm.workflow.config import (
    FEATURE_SETS,
    Count,
    InjectionSpec,
    Positive,
    RunConfig,
    SampleSpec,
    StatisticSpec,
    default_sides,
    from_mapping,
    read_dict,
    validated,
)

__all__ = [
    "Cell",
    "ScanCalibration",
    "ScanConfig",
    "ScanData",
    "ScanResult",
    "build_cells",
    "load_data",
    "load_scan",
    "run_scan",
]

SCAN_JSON = "scan.json"
Progress = Callable[[int, int], None]
#: names of regions, observables and statistics become directory names
_NAME = re.compile(r"^(?!\.+$)[A-Za-z0-9_.+-]+$")


# ---------------------------------------------------------------------------------------
# the scan description
# ---------------------------------------------------------------------------------------
@validated
class ScanCalibration:
    """Permutations shared by every cell, and where they run."""

    #: replicas of the joint null (the same relabelling for every cell)
    permutations: Count = 200
    #: replicas per task (default: a tenth of the permutations, ≲ 128 MB of weights)
    batch_size: Count | None = None
    #: dask workers of the local cluster (ignored with ``scheduler``)
    workers: Count = 1
    #: address of a running dask scheduler
    scheduler: StrictStr | None = None


@validated
class ScanConfig:
    """A scan: samples, regions, observables, statistics, calibration and seed."""

    input: StrictStr | None = None
    a: SampleSpec = field(default_factory=lambda: SampleSpec(category="emu"))
    b: SampleSpec = field(default_factory=lambda: SampleSpec(category="mue"))
    luminosity_fb: Positive | None = None
    unweight: Literal["none", "thin"] = "none"
    inject: InjectionSpec | None = None
    map_uncertainty: StrictBool = True
    scale: dict[StrictStr, Positive] | None = None
    regions: dict[StrictStr, dict[StrictStr, list[StrictFloat | None] | StrictFloat]] = field(
        default_factory=lambda: {"inclusive": {}}
    )
    observables: dict[StrictStr, list[StrictStr] | StrictStr] = field(
        default_factory=lambda: {"m_coll": "m_coll"}
    )
    statistics: dict[StrictStr, StatisticSpec] = field(
        default_factory=lambda: {
            "symmetrized": StatisticSpec(method="symmetrized"),
            "binned": StatisticSpec(method="binned", bins=20),
        }
    )
    calibration: ScanCalibration = field(default_factory=ScanCalibration)
    seed: StrictInt = 0

    @model_validator(mode="after")
    def _check(self) -> ScanConfig:
        """Names, ranges and observables; the samples as a single run checks them."""
        self.a, self.b = default_sides(self.a, self.b)
        for key, names in (
            ("regions", self.regions),
            ("observables", self.observables),
            ("statistics", self.statistics),
        ):
            if not names:
                raise ConfigError(f"{key}: give at least one")
            for name in names:
                if not _NAME.match(name):
                    raise ConfigError(
                        f"{key}.{name}: names use letters, digits and _ . + - only "
                        "(they become directory names)"
                    )
        for name, cuts in self.regions.items():
            for column, cut in cuts.items():
                if isinstance(cut, list):
                    if len(cut) != 2 or cut == [None, None]:
                        raise ConfigError(
                            f"regions.{name}.{column}: a range is [low, high] with at most "
                            f"one null, got {cut}"
                        )
                    lo, hi = cut
                    if lo is not None and hi is not None and not lo < hi:
                        raise ConfigError(f"regions.{name}.{column}: empty range [{lo}, {hi})")
        for name in self.observables:
            self.observable_columns(name)
        self.run_config()  # the checks of RunConfig across samples, scale and injection
        return self

    def observable_columns(self, name: str) -> tuple[str, ...]:
        """The columns of observable ``name`` (aliases such as ``5d`` resolved)."""
        spec = self.observables[name]
        if isinstance(spec, str):
            return FEATURE_SETS.get(spec.lower(), (spec,))
        if not spec:
            raise ConfigError(f"observables.{name}: give at least one column")
        if len(set(spec)) != len(spec):
            raise ConfigError(f"observables.{name}: a column is listed twice in {spec}")
        return tuple(spec)

    def run_config(self, statistic: str | None = None, features: Sequence[str] = ()) -> RunConfig:
        """The single-test description this scan's samples (and one statistic) amount to."""
        return RunConfig(
            input=self.input,
            a=self.a,
            b=self.b,
            features=list(features) or None,
            scale=self.scale,
            luminosity_fb=self.luminosity_fb,
            unweight=self.unweight,
            inject=self.inject,
            map_uncertainty=self.map_uncertainty,
            statistic=self.statistics[statistic] if statistic else StatisticSpec(),
            seed=self.seed,
        )

    def feature_scale(self, columns: Sequence[str]) -> np.ndarray:
        """Factor per column, as a run with these features applies them
        (:meth:`~symnplm.workflow.config.RunConfig.feature_scale`)."""
        factors = self.run_config(features=columns).feature_scale()
        return np.array([factors[c] for c in columns])

    def region_columns(self) -> list[str]:
        """Every column a region cuts on."""
        return list(dict.fromkeys(c for cuts in self.regions.values() for c in cuts))

    def check_columns(self, available: Sequence[str], source: str) -> None:
        """Every region's and observable's column is one of ``available`` (of ``source``)."""
        have = set(available)
        for region, cuts in self.regions.items():
            for column in cuts:
                if column not in have:
                    raise ConfigError(
                        f"regions.{region}.{column}: not a column of {source} "
                        f"(columns: {sorted(have)})"
                    )
        for observable in self.observables:
            missing = [c for c in self.observable_columns(observable) if c not in have]
            if missing:
                raise ConfigError(
                    f"observables.{observable}: {missing} not columns of {source} "
                    f"(columns: {sorted(have)})"
                )

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON/YAML-able)."""
        return dataclasses.asdict(self)


def load_scan(path: str | Path) -> ScanConfig:
    """Read and validate a scan file (YAML or TOML); errors name the file and the key."""
    data = read_dict(path)
    try:
        return from_mapping(ScanConfig, data)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None


# ---------------------------------------------------------------------------------------
# data and cells
# ---------------------------------------------------------------------------------------
@dataclass
class ScanData:
    """The pooled events of A then B with every column the scan needs.

    Attributes
    ----------
    columns
        A ∪ B (A's events first) with the observables' and the regions' columns.
    n_a
        Events of A (the relabelling keeps this count).
    reweighting
        The efficiency map's uncertainty for the pooled events, redrawn per replica.
    """

    columns: Sample
    n_a: int
    reweighting: ReweightingUncertainty | None = None
    luminosity_fb: float | None = None

    @classmethod
    def from_samples(
        cls, a: Sample, b: Sample, reweighting: ReweightingUncertainty | None = None
    ) -> ScanData:
        """Pool ``a`` and ``b`` (same columns)."""
        if a.names != b.names:
            raise ValueError(f"A and B have different columns: {a.names} and {b.names}")
        return cls(Sample.concatenate([a, b], name="A+B"), len(a), reweighting)

    @property
    def is_a(self) -> np.ndarray:
        """The observed labels."""
        out = np.zeros(len(self.columns), dtype=bool)
        out[: self.n_a] = True
        return out

    def fingerprint(self) -> str:
        """SHA-256 of the pooled columns, weights and labels."""
        h = hashlib.sha256(json.dumps([list(self.columns.names), self.n_a]).encode())
        h.update(np.ascontiguousarray(self.columns.features).tobytes())
        h.update(np.ascontiguousarray(self.columns.weights).tobytes())
        if self.reweighting is not None:
            h.update(self.reweighting.describe()["fingerprint"].encode())
        return h.hexdigest()[:32]

    def region_index(self, cuts: dict[str, Any]) -> np.ndarray:
        """Indices of the pooled events passing ``cuts`` (columns checked by the caller)."""
        keep = np.ones(len(self.columns), dtype=bool)
        for column, cut in cuts.items():
            x = self.columns.column(column)
            if isinstance(cut, list):
                lo, hi = cut
                if lo is not None:
                    keep &= x >= lo
                if hi is not None:
                    keep &= x < hi
            else:
                keep &= x == cut
        return np.flatnonzero(keep)


@dataclass
class Cell:
    """One test of the scan: a region, an observable and a statistic."""

    region: str
    observable: str
    statistic: str
    index: np.ndarray  # pooled events in the region
    x: np.ndarray  # their observable columns, scaled
    names: tuple[str, ...]
    test: TwoSampleTest

    @property
    def key(self) -> str:
        """The cell's directory name."""
        return f"{self.region}__{self.observable}__{self.statistic}"


def build_cells(cfg: ScanConfig, data: ScanData) -> tuple[list[Cell], list[str]]:
    """Every region × observable × statistic, and the combinations left out (why).

    A binned statistic tests one-dimensional observables only; its combinations with
    multi-dimensional ones are left out (and reported), not an error, so that one scan
    can hold m_coll and the five features with both statistics.
    """
    from symnplm.workflow.runs import build_test

    cfg.check_columns(data.columns.names, "the samples")
    cells, skipped = [], []
    is_a = data.is_a
    for region, cuts in cfg.regions.items():
        index = data.region_index(cuts)
        n_a = int(np.count_nonzero(is_a[index]))
        if n_a == 0 or n_a == index.size:
            raise ConfigError(
                f"regions.{region}: {n_a} events of A and {index.size - n_a} of B; "
                "a region needs events of both"
            )
        for observable in cfg.observables:
            cols = cfg.observable_columns(observable)
            x = data.columns.select(list(cols)).features[index] * cfg.feature_scale(cols)
            w = data.columns.weights[index]
            a = Sample(x[is_a[index]], w[is_a[index]], cols, name="A")
            b = Sample(x[~is_a[index]], w[~is_a[index]], cols, name="B")
            for statistic, spec in cfg.statistics.items():
                if spec.method == "binned" and len(cols) > 1:
                    skipped.append(
                        f"{region}__{observable}__{statistic}: the binned statistic needs a "
                        f"one-dimensional observable ({len(cols)} columns)"
                    )
                    continue
                test = build_test(
                    spec, a, b, key=f"statistics.{statistic} (regions.{region}, {observable})"
                )
                cells.append(Cell(region, observable, statistic, index, x, cols, test))
    if not cells:
        raise ConfigError("no cell left: every statistic/observable combination was left out")
    return cells, skipped


def load_data(cfg: ScanConfig) -> ScanData:
    """The pooled processed samples with the observables' and regions' columns."""
    from symnplm.io.samples import read_manifest
    from symnplm.workflow.runs import load_processed

    if cfg.input is None:
        raise ConfigError("input: the output directory of `symnplm process` is required")
    # name the scan file's key before any parquet file is opened
    available = read_manifest(cfg.input).get("columns")
    if available:
        cfg.check_columns(available, cfg.input)
    columns = list(
        dict.fromkeys(
            [c for o in cfg.observables for c in cfg.observable_columns(o)] + cfg.region_columns()
        )
    )
    a, b, reweighting = load_processed(cfg.run_config(), columns)
    # load_processed adds the leptons' columns; the scan needs only its own
    keep = [c for c in a.names if c in columns]
    data = ScanData.from_samples(a.select(keep), b.select(keep), reweighting)
    data.luminosity_fb = a.provenance.get("luminosity_fb")
    return data


# ---------------------------------------------------------------------------------------
# execution
# ---------------------------------------------------------------------------------------
def _observed_task(cell: Cell, w: np.ndarray, is_a: np.ndarray, seed: int) -> dict[str, Any]:
    a = Sample(cell.x[is_a], w[is_a], cell.names, name="A")
    b = Sample(cell.x[~is_a], w[~is_a], cell.names, name="B")
    start = time.perf_counter()
    res = cell.test.fit(a, b, seed=seed)
    return {
        "t": float(res.t),
        "dof": int(res.dof),
        "converged": bool(res.converged) and not res.diverged,
        "n_a": len(a),
        "n_b": len(b),
        "sum_weights_a": a.sum_weights,
        "sum_weights_b": b.sum_weights,
        "seconds": time.perf_counter() - start,
    }


def _null_task(
    cell: Cell,
    w: np.ndarray,
    n_events: int,
    n_a: int,
    seed: int,
    replica_ids: Sequence[int],
    reweighting: ReweightingUncertainty | None,
) -> dict[str, np.ndarray]:
    labels = joint_permutation_labels(n_events, n_a, seed, replica_ids)[:, cell.index]
    out = _labelled_batch(cell.test, cell.x, w, labels, seed, replica_ids, cell.names, reweighting)
    return {
        "replica_ids": np.asarray(replica_ids, dtype=np.int64),
        "t": out.t,
        "converged": np.asarray(out.converged, dtype=bool),
        "seconds": np.array(out.seconds),
    }


@dataclass
class ScanResult:
    """A finished scan: per-cell observations and nulls, and the global significance."""

    cells: list[dict[str, Any]]
    t_null: np.ndarray  # (C, R)
    significance: GlobalSignificance
    directory: Path
    seconds: float
    skipped: list[str] = field(default_factory=list)

    def table(self) -> list[dict[str, Any]]:
        """One row per cell: events, t, local p and Z (bound flag), global p and Z."""
        g = self.significance
        rows = []
        for k, cell in enumerate(self.cells):
            rows.append(
                {
                    **cell,
                    "local_p": float(g.local_p[k]),
                    "local_z": float(g.local_z[k]),
                    "local_p_is_bound": bool(g.local_bound[k]),
                    "global_p": g.global_p,
                    "global_z": g.global_z,
                    "global_p_is_bound": g.global_bound,
                    "bonferroni_p": g.bonferroni_p,
                }
            )
        return rows


class _Directory:
    """The scan's result directory: what is done, and atomic writes of new work."""

    def __init__(self, path: Path, identity: dict[str, Any]) -> None:
        self.path = path
        self.identity = identity

    def claim(self) -> None:
        """Create it, or check that it holds this very scan (then its batches are reused)."""
        from symnplm.io.files import check_writable_directory

        check_writable_directory(self.path)
        record = self.path / SCAN_JSON
        if record.exists():
            old = read_json(record).get("identity")
            if old != self.identity:
                raise ConfigError(
                    f"{self.path}: holds a different scan (definition, data or seed differ); "
                    "choose another --output or remove it"
                )
        elif self.path.exists() and any(self.path.iterdir()):
            raise ConfigError(f"{self.path}: not empty and not a scan directory")
        write_json(record, {"identity": self.identity, "provenance": provenance()})

    def observed(self, cell: Cell) -> Path:
        return self.path / "cells" / cell.key / "observed.json"

    def batch(self, cell: Cell, start: int, stop: int) -> Path:
        return self.path / "cells" / cell.key / f"null_{start:06d}_{stop:06d}.npz"


def _batches(n: int, size: int) -> list[tuple[int, int]]:
    return [(s, min(s + size, n)) for s in range(0, n, size)]


def run_scan(
    cfg: ScanConfig,
    output: str | Path,
    *,
    data: ScanData | None = None,
    progress: Progress | None = None,
    client: Any = None,
) -> ScanResult:
    """Run (or resume) the scan ``cfg`` into ``output``.

    Parameters
    ----------
    cfg
        The scan description.
    output
        Result directory; a directory holding the same scan resumes it.
    data
        The pooled samples (default: loaded from ``cfg.input``); given directly for
        toy studies.
    progress
        ``progress(done, total)`` over the cells' tasks.
    client
        A dask client; default: a local cluster of ``cfg.calibration.workers``
        (or the scheduler at ``cfg.calibration.scheduler``).
    """
    from symnplm.workflow.cluster import dask_client

    start_time = time.perf_counter()
    data = load_data(cfg) if data is None else data
    cells, skipped = build_cells(cfg, data)
    keys = [c.key for c in cells]
    identity = {
        "definition": cfg.to_dict() | {"calibration": None},
        "permutations": cfg.calibration.permutations,
        "data": data.fingerprint(),
        "seed": cfg.seed,
        "cells": keys,
    }
    directory = _Directory(Path(output), json.loads(json.dumps(identity, default=str)))
    directory.claim()

    n = cfg.calibration.permutations
    # at least ~10 batches per cell: finer resumption, progress and load balance
    size = cfg.calibration.batch_size or min(
        default_batch_size(len(data.columns), n), max(1, -(-n // 10))
    )
    todo: list[tuple[str, Cell, tuple[int, int] | None]] = []
    for cell in cells:
        if not directory.observed(cell).exists():
            todo.append(("observed", cell, None))
        todo += [
            ("null", cell, b) for b in _batches(n, size) if not directory.batch(cell, *b).exists()
        ]
    total = len(cells) * (1 + len(_batches(n, size)))
    done = total - len(todo)
    if progress is not None:
        progress(done, total)

    if todo:
        with (
            dask_client(cfg.calibration.workers, cfg.calibration.scheduler)
            if client is None
            else _given(client)
        ) as c:
            done = _execute(c, todo, directory, data, cfg.seed, progress, done, total)

    seconds = time.perf_counter() - start_time
    return _collect(cfg, cells, skipped, directory, n, size, seconds, data.luminosity_fb)


class _given:
    """A client the caller owns: used, not closed."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def __enter__(self) -> Any:
        return self.client

    def __exit__(self, *exc: object) -> None:
        return None


def _execute(
    client: Any,
    todo: Iterable[tuple[str, Cell, tuple[int, int] | None]],
    directory: _Directory,
    data: ScanData,
    seed: int,
    progress: Progress | None,
    done: int,
    total: int,
) -> int:
    from distributed import as_completed

    w, is_a = data.columns.weights, data.is_a
    # every cell's arrays travel to the workers once, not once per task
    shipped: dict[str, Any] = {}
    futures = {}
    for _, cell, batch in todo:
        if cell.key not in shipped:
            rw = None if data.reweighting is None else data.reweighting.take(cell.index)
            shipped[cell.key] = client.scatter(
                (cell, w[cell.index], is_a[cell.index], rw), broadcast=False
            )
        payload = shipped[cell.key]
        if batch is None:  # the observed fit
            fut = client.submit(_observed_remote, payload, seed, pure=False)
        else:
            fut = client.submit(
                _null_remote, payload, len(w), data.n_a, seed, range(*batch), pure=False
            )
        futures[fut] = (cell, batch)
    for fut in as_completed(futures):
        cell, batch = futures[fut]
        result = fut.result()
        if batch is None:
            write_json(directory.observed(cell), result)
        else:
            write_npz(directory.batch(cell, *batch), **result)
        done += 1
        if progress is not None:
            progress(done, total)
    return done


def _observed_remote(payload: tuple, seed: int) -> dict[str, Any]:
    cell, w, is_a, _ = payload
    return _observed_task(cell, w, is_a, seed)


def _null_remote(
    payload: tuple, n_events: int, n_a: int, seed: int, replica_ids: Sequence[int]
) -> dict[str, np.ndarray]:
    cell, w, _, rw = payload
    return _null_task(cell, w, n_events, n_a, seed, list(replica_ids), rw)


def _collect(
    cfg: ScanConfig,
    cells: list[Cell],
    skipped: list[str],
    directory: _Directory,
    n: int,
    size: int,
    seconds: float,
    luminosity_fb: float | None,
) -> ScanResult:
    rows, nulls = [], []
    for cell in cells:
        obs = read_json(directory.observed(cell))
        t = np.full(n, np.nan)
        converged = np.ones(n, dtype=bool)
        for start, stop in _batches(n, size):
            with np.load(directory.batch(cell, start, stop)) as part:
                t[part["replica_ids"]] = part["t"]
                converged[part["replica_ids"]] = part["converged"]
        nulls.append(t)
        rows.append(
            {
                "cell": cell.key,
                "region": cell.region,
                "observable": cell.observable,
                "statistic": cell.statistic,
                "t": obs["t"],
                "dof": obs["dof"],
                "n_a": obs["n_a"],
                "n_b": obs["n_b"],
                "converged": obs["converged"],
                "null_unconverged": int(np.count_nonzero(~converged)),
                "null_mean": float(np.nanmean(t)),
                "null_std": float(np.nanstd(t)),
            }
        )
    t_null = np.stack(nulls)
    significance = global_significance(np.array([r["t"] for r in rows]), t_null)
    result = ScanResult(rows, t_null, significance, directory.path, seconds, skipped)
    _write_outputs(cfg, result, luminosity_fb)
    return result


def _write_outputs(cfg: ScanConfig, result: ScanResult, luminosity_fb: float | None) -> None:
    from symnplm.io.booking import write_hists

    table = result.table()
    summary = {
        "global": result.significance.to_dict(),
        "cells": table,
        "skipped": result.skipped,
        "seed": cfg.seed,
        "luminosity_fb": luminosity_fb,
        "config": cfg.to_dict(),
        "seconds": result.seconds,
        "provenance": provenance(),
    }
    write_json(result.directory / "table.json", summary)
    with atomic_path(result.directory / "table.csv") as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table)
    write_hists(result.directory, {"local_z": _local_z_hist(cfg, table)})
    from symnplm.plotting import plot_scan

    plot_scan(table, result.significance, result.directory / "summary.png", luminosity_fb)


def _local_z_hist(cfg: ScanConfig, table: list[dict[str, Any]]) -> Any:
    import hist

    h = hist.Hist(
        hist.axis.StrCategory(list(cfg.regions), name="region", label="region"),
        hist.axis.StrCategory(list(cfg.observables), name="observable", label="observable"),
        hist.axis.StrCategory(list(cfg.statistics), name="statistic", label="statistic"),
        storage=hist.storage.Double(),
        label="local Z",
    )
    for row in table:
        h[row["region"], row["observable"], row["statistic"]] = row["local_z"]
    return h
