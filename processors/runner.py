"""Run the e-mu processor over a fileset with a chosen executor and write its outputs.

Output directory layout (``symnplm.io.samples`` reads it back)::

    OUTDIR/columns/<dataset>/<category>/<variation>.parquet   one Sample each: the columns
                                                              of EMU_COLUMNS as features,
                                                              the event weight as ``weight``
    OUTDIR/hists.json      dict of hist.Hist (UHI JSON, symnplm.io.booking.read_hists): m_coll,
                           m_ll, dphi, met, n_jets, lepton_pt/eta/phi; axes dataset,
                           category, variation, …
    OUTDIR/cutflow.json    events after each selection step, per dataset
    OUTDIR/efficiency_map.json   the efficiency-ratio map applied (if any), with its
                           measurement record and uncertainties
    OUTDIR/manifest.json   written last, so its presence means the run completed:
                           configuration, seed, package versions, executor and timing,
                           the fileset, skipped files, and every sample with its path,
                           number of events and sum of weights
    OUTDIR/processed.json  (:func:`process_once` only) the fileset and processor
                           configuration of a complete output, for reuse

Every file is written atomically (``symnplm.io.files.atomic_path``). An existing
manifest is removed before anything else is written, so an interrupted re-run never
leaves a directory that looks complete; parquet files of an earlier run that the new
run does not produce are removed before the new manifest is written.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import json
import os
import re
import time
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from coffea import processor

from symnplm.io.booking import HISTS_JSON, HISTS_ROOT, RUN_JSON, write_hists, write_hists_root
from symnplm.io.files import check_writable_directory, directory_lock, read_json, write_json
from symnplm.io.provenance import provenance
from symnplm.io.samples import (
    COLUMNS_DIR,
    MANIFEST_NAME,
    WEIGHT_PREFIX,
    sample_parts,
)
from symnplm.physics.kinematics import EMU_COLUMNS
from symnplm.physics.selection import category_filters
from symnplm.processors.efficiency_map import check_independent
from symnplm.processors.emu import (
    EMuNanoAODSchema,
    EMuProcessor,
    hlt_paths,
)
from symnplm.processors.histograms import book_histograms
from symnplm.processors.inputs import (
    READ_ERRORS,
    BadFile,
    DamagedFileError,
    InputError,
    check_fileset,
    is_mc,
    load_fileset,
    sum_generator_weights,
)

__all__ = [
    "EFFICIENCY_MAP_NAME",
    "EXECUTORS",
    "PROCESSED_MARKER",
    "Execution",
    "Executor",
    "ProcessingReport",
    "process_fileset",
    "process_once",
    "run_processor",
    "write_output",
]

#: File name of the applied efficiency map inside an output directory.
EFFICIENCY_MAP_NAME = "efficiency_map.json"
Executor = Literal["iterative", "futures", "dask"]
EXECUTORS: tuple[str, ...] = ("iterative", "futures", "dask")


@dataclass
class ProcessingReport:
    """What :func:`process_fileset` did.

    Attributes
    ----------
    outdir
        The output directory.
    samples
        Manifest entries: dataset, category, variation, path, n_events, sum_weights.
    skipped
        Files (or chunks of files) left out, with the reason.
    notes
        Things the user should know (unnormalised simulation, missing optional branches,
        empty selections, normalisation after skipped files).
    cutflow
        Events after each selection step, per dataset.
    wall_s
        Wall time of the processing (executor) step in seconds.
    """

    outdir: Path
    samples: list[dict[str, Any]]
    skipped: list[BadFile] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    cutflow: dict[str, dict[str, int]] = field(default_factory=dict)
    wall_s: float = 0.0

    def counts(self, variation: str = "nominal") -> dict[tuple[str, str], int]:
        """Selected events per (dataset, category) for one variation."""
        return {
            (s["dataset"], s["category"]): s["n_events"]
            for s in self.samples
            if s["variation"] == variation
        }


@contextlib.contextmanager
def _executor(
    kind: str, workers: int, client: Any, scheduler: str | None, status: bool, retries: int
) -> Iterator[processor.executor.ExecutorBase]:
    """A coffea executor; a dask client is made (and closed) here unless one is given."""
    if kind == "iterative":
        yield processor.IterativeExecutor(status=status, retries=retries)
    elif kind == "futures":
        yield processor.FuturesExecutor(workers=workers, status=status, retries=retries)
    elif kind == "dask":
        if client is not None:
            yield processor.DaskExecutor(client=client, status=status, retries=retries)
            return
        # the same local cluster (this machine only, Ctrl-C left to this process) or
        # scheduler connection (one error if it does not answer) as the statistics use
        from symnplm.workflow.cluster import dask_client

        with dask_client(workers, scheduler) as own:
            yield processor.DaskExecutor(client=own, status=status, retries=retries)
    else:
        raise ValueError(f"executor must be one of {EXECUTORS}, got {kind!r}")


#: coffea's futures executor re-raises a worker's error as text: "... The error was: X('...')."
_WORKER_ERROR = re.compile(r"The error was: (\w+)\((.*)\)\.?\s*$", re.DOTALL)


def _cause(err: BaseException, types: tuple[type[BaseException], ...]) -> BaseException | None:
    """The first exception of one of ``types`` in the chain of ``err``.

    An error raised in a worker process reaches the futures executor's caller only as
    the text of a plain ``Exception``; one of ``types`` named there is rebuilt from it.
    """
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, types):
            return err
        match = _WORKER_ERROR.search(str(err))
        if match is not None:
            kind = next((t for t in types if t.__name__ == match.group(1)), None)
            if kind is not None:
                try:
                    message = ast.literal_eval(match.group(2))
                except (ValueError, SyntaxError):
                    message = match.group(2)
                return kind(str(message))
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def _metadata_triggers(fileset: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The HLT paths the datasets' metadata asks for (their branches must be read); a
    ``triggers`` entry that is not a list of names is an error naming the dataset."""
    paths: list[str] = []
    for dataset, entry in fileset.items():
        requested = entry.get("metadata", {}).get("triggers", [])
        paths += hlt_paths(requested, f"dataset {dataset!r}: metadata 'triggers'")
    return paths


def _empty_output(datasets: list[str]) -> dict[str, Any]:
    return {
        "hists": book_histograms(),
        "cutflow": {d: {"all": 0} for d in datasets},
        "columns": {},
        "missing": {d: set() for d in datasets},
        "weighting": {d: set() for d in datasets},
        "nonfinite_inputs": {},
    }


def run_processor(
    fileset: Mapping[str, Mapping[str, Any]],
    proc: EMuProcessor,
    *,
    executor: Executor = "iterative",
    workers: int = 1,
    chunksize: int = 100_000,
    maxchunks: int | None = None,
    skip_bad_files: bool = False,
    client: Any = None,
    scheduler: str | None = None,
    status: bool = False,
    retries: int = 0,
) -> tuple[dict[str, Any], list[BadFile]]:
    """Run ``proc`` with a coffea ``Runner``; returns (post-processed output, skipped chunks).

    ``fileset`` is in the form of :func:`~symnplm.processors.inputs.load_fileset`
    (checked files; metadata complete). With ``skip_bad_files``, chunks failing with a
    read error (:data:`READ_ERRORS`) are left out and returned as skipped.
    """
    if workers < 1 or chunksize < 1:
        raise ValueError(f"workers and chunksize must be ≥ 1, got {workers} and {chunksize}")
    coffea_fileset = {
        d: {"files": dict(e["files"]), "metadata": dict(e["metadata"])}
        for d, e in fileset.items()
        if e["files"]
    }
    if not coffea_fileset:
        return proc.postprocess(_empty_output(list(fileset))), []
    with _executor(executor, workers, client, scheduler, status, retries) as exe:
        runner = processor.Runner(
            executor=exe,
            chunksize=chunksize,
            maxchunks=maxchunks,
            schema=EMuNanoAODSchema,
            skipbadfiles=READ_ERRORS if skip_bad_files else False,
            # coffea's default cache outlives the run: a file processed again in this
            # process would keep its first metadata (e.g. triggers, xsec) otherwise
            metadata_cache={},
        )
        chunks = list(runner.preprocess(coffea_fileset))
        if not chunks:  # every file is empty
            return proc.postprocess(_empty_output(list(fileset))), []
        with warnings.catch_warnings():
            # coffea warns "Skipping bad file" per skipped chunk; we report them below
            warnings.filterwarnings("ignore", message="Skipping bad file")
            try:
                wrapped = runner.run(
                    chunks,
                    proc,
                    iteritems_options={"filter_name": proc.branches(_metadata_triggers(fileset))},
                )
            except Exception as err:
                if skip_bad_files and "No chunks returned results" in str(err):
                    raise InputError(
                        f"every chunk of every file failed to read; files: "
                        f"{sorted({c.filename for c in chunks})}"
                    ) from err
                # coffea wraps the processor's error: surface ours, which names the file
                cause = _cause(err, (InputError, DamagedFileError))
                if cause is not None:
                    raise cause from err
                raise
    processed = wrapped.get("processed", set())
    skipped = [
        BadFile(c.dataset, c.filename, f"entries {c.entrystart}-{c.entrystop} failed to read")
        for c in chunks
        if c not in processed
    ]
    out = wrapped["out"]
    for dataset in fileset:  # datasets whose files were all skipped or empty
        out["cutflow"].setdefault(dataset, {"all": 0})
        out["missing"].setdefault(dataset, set())
        out["weighting"].setdefault(dataset, set())
    return out, skipped


def _complete_metadata(fileset: dict[str, dict[str, Any]]) -> None:
    """Fill ``sumw`` from the Runs trees where simulation has ``xsec`` but no ``sumw``."""
    for dataset, entry in fileset.items():
        meta = entry["metadata"]
        if is_mc(meta) and "xsec" in meta and "sumw" not in meta and entry["files"]:
            meta["sumw"] = sum_generator_weights(entry["files"], dataset)
            meta["sumw_source"] = "Runs/genEventSumw of the processed files"


def _variation_weight(chunk: Mapping[str, Any], name: str, variation: str) -> dict[str, Any]:
    """How a chunk file holds variation ``name`` of its events: the file's own weights
    (``variation``), a number times them (``scale``) or a weight column (``weight``)."""
    if name == variation:
        return {}
    if name in chunk.get("factors", {}):
        return {"scale": chunk["factors"][name]}
    return {"weight": WEIGHT_PREFIX + name}


def write_output(
    output: Mapping[str, Any],
    proc: EMuProcessor,
    outdir: str | os.PathLike[str],
    fileset: Mapping[str, Mapping[str, Any]],
    run_info: Mapping[str, Any],
    previous: set[Path] | None = None,
) -> list[dict[str, Any]]:
    """Write the sample entries, histograms, cutflow and (last) the manifest of the
    column files the workers wrote; returns the sample entries.

    ``run_info`` goes into the manifest; its ``notes`` list gets a line for every sample
    that cannot be read as one (e.g. a negative total weight). ``previous``: the column
    files of the processing this one replaces, deleted unless rewritten.
    """
    outdir = Path(outdir)
    filters = category_filters(proc.charge)
    entries: dict[tuple[str, str, str], dict[str, Any]] = {}
    written: set[Path] = set()
    # The workers wrote one file per chunk and event variation holding every selected
    # event (proc.streaming_to): the categories are filters on its columns, the
    # weight-only variations weight columns (efficiency) or factors (normalisation) of
    # the nominal files. A sample is the list of its chunks' files, in (file, first entry) order.
    for (dataset, variation), chunks in output["column_files"].items():
        files = sorted(fileset[dataset]["files"])
        order = [chunks[k] for k in sorted(chunks)]
        written |= {Path(c["path"]).resolve() for c in order if c["path"]}
        for name in order[0]["sumw"] if order else []:
            for category in proc.categories:
                n = sum(c["n"][category] for c in order)
                entry: dict[str, Any] = {
                    "dataset": dataset,
                    "category": category,
                    "variation": name,
                    "parts": [],
                    "n_events": n,
                    "sum_weights": float(sum(c["sumw"][name][category] for c in order)),
                    "files": files,
                }
                nonfinite = sum(c["nonfinite"][category] for c in order)
                if n and nonfinite:  # what a Sample refuses, said here rather than on loading
                    entry["error"] = f"{nonfinite} event(s) with a non-finite column value"
                elif n and not entry["sum_weights"] > 0:  # e.g. NLO simulation's negative weights
                    entry["error"] = f"total weight is {entry['sum_weights']}, must be positive"
                elif n:
                    entry["parts"] = [
                        {
                            "path": str(Path(c["path"]).resolve().relative_to(outdir.resolve())),
                            "where": filters[category],
                            **_variation_weight(c, name, variation),
                            "n_events": c["n"][category],
                        }
                        for c in order
                        if c["n"][category]
                    ]
                entries[dataset, category, name] = entry
    # every requested combination is listed, also where no chunk was processed
    for dataset in fileset:
        for category in proc.categories:
            for variation in proc.variations:
                entries.setdefault(
                    (dataset, category, variation),
                    {
                        "dataset": dataset,
                        "category": category,
                        "variation": variation,
                        "parts": [],
                        "n_events": 0,
                        "sum_weights": 0.0,
                        "files": sorted(fileset[dataset]["files"]),
                    },
                )
    unwritten: dict[tuple[str, str], list[str]] = {}
    for (dataset, category, variation), entry in entries.items():
        if entry.get("error"):
            unwritten.setdefault((dataset, category), []).append(variation)
    for (dataset, category), variations in unwritten.items():
        reason = entries[dataset, category, variations[0]]["error"]
        run_info["notes"].append(
            f"{dataset}/{category}: {len(variations)} variation(s) not written ({variations}); "
            f"e.g. {reason}"
        )
    if proc.efficiency is not None:
        proc.efficiency.write(outdir / EFFICIENCY_MAP_NAME)
    write_hists(outdir, dict(output["hists"]))
    write_hists_root(outdir, dict(output["hists"]))
    write_json(outdir / "cutflow.json", dict(output["cutflow"]))
    for stale in (previous or set()) - written:
        if stale.is_relative_to(outdir.resolve() / COLUMNS_DIR):
            stale.unlink(missing_ok=True)
    samples = sorted(entries.values(), key=lambda e: (e["dataset"], e["category"], e["variation"]))
    write_json(
        outdir / MANIFEST_NAME,
        {
            "format": "symnplm-processor-output/1",
            "layout": f"{COLUMNS_DIR}/<dataset>/<variation>/<chunk>.parquet; categories are "
            "row filters (parts.where), weight-only variations weight columns (parts.weight) "
            "or factors on the weight (parts.scale)",
            # the processing is deterministic: no random choice is made anywhere
            "seed": None,
            "config": proc.config(),
            "columns": list(EMU_COLUMNS),
            "hists": HISTS_JSON,
            "hists_root": HISTS_ROOT,
            "cutflow": dict(output["cutflow"]),
            "efficiency_map": EFFICIENCY_MAP_NAME if proc.efficiency is not None else None,
            **run_info,
            "samples": samples,
            "provenance": provenance(),
        },
    )
    return samples


def process_fileset(
    fileset: str | os.PathLike[str] | Mapping[str, Any],
    outdir: str | os.PathLike[str],
    proc: EMuProcessor | None = None,
    *,
    executor: Executor = "iterative",
    workers: int = 1,
    chunksize: int = 100_000,
    maxchunks: int | None = None,
    skip_bad_files: bool = False,
    client: Any = None,
    scheduler: str | None = None,
    status: bool = False,
    retries: int = 0,
    allow_map_overlap: bool = False,
    overwrite: bool = False,
) -> ProcessingReport:
    """Check the inputs, run the processor and write the outputs (module docstring).

    Parameters
    ----------
    fileset
        Path of a coffea fileset JSON, or the mapping itself (:mod:`~symnplm.processors.inputs`).
    outdir
        Output directory (created).
    proc
        The processor; default :class:`EMuProcessor` with its defaults.
    executor
        ``"iterative"``, ``"futures"`` (``workers`` processes) or ``"dask"`` (``client``, or a
        ``LocalCluster`` of ``workers`` processes made here, or ``scheduler`` address).
    chunksize, maxchunks
        Events per chunk; maximum chunks per dataset (for quick looks).
    skip_bad_files
        Leave out missing, unreadable or incomplete files (and chunks failing to read)
        and report them, instead of stopping at the first.
    status
        Show coffea's progress bar.
    retries
        Retries of a failing chunk (useful for remote files).
    allow_map_overlap
        Apply the processor's efficiency map even to events it was measured on
        (recorded in the notes); refused otherwise.
    overwrite
        Replace the output of a *different* processing (other datasets or processor
        configuration) found in ``outdir``; refused otherwise. Rerunning the same
        processing always replaces its own output.

    Raises
    ------
    InputError
        A bad file (named, with the reason) when ``skip_bad_files`` is false, or when
        no good file is left, or an efficiency map measured on these events.
    """
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {EXECUTORS}, got {executor!r}")
    files = load_fileset(fileset)
    proc = (proc if proc is not None else EMuProcessor()).for_fileset(files)
    check_writable_directory(outdir)
    execution = Execution(
        executor, workers, chunksize, maxchunks, skip_bad_files, client, scheduler, status, retries
    )
    with directory_lock(outdir):
        return _process_locked(files, Path(outdir), proc, overwrite, execution, allow_map_overlap)


@dataclass(frozen=True)
class Execution:
    """How :func:`process_fileset` runs the processor (its arguments of the same names)."""

    executor: Executor = "iterative"
    workers: int = 1
    chunksize: int = 100_000
    maxchunks: int | None = None
    skip_bad_files: bool = False
    client: Any = None
    scheduler: str | None = None
    status: bool = False
    retries: int = 0


def _process_locked(
    files: dict[str, dict[str, Any]],
    outdir: Path,
    proc: EMuProcessor,
    overwrite: bool,
    execution: Execution,
    allow_map_overlap: bool,
) -> ProcessingReport:
    """:func:`process_fileset` once the caller holds the lock of ``outdir``."""
    if (outdir / RUN_JSON).exists():
        raise InputError(f"{outdir}: holds a test result ({RUN_JSON}); process into another folder")
    _check_owner(outdir, files, proc, overwrite)
    return _process(files, outdir, proc, execution, allow_map_overlap)


def _check_owner(
    outdir: Path, files: Mapping[str, Any], proc: EMuProcessor, overwrite: bool
) -> None:
    """Refuse a directory that holds another processing's output (unless ``overwrite``)."""
    if not (outdir / MANIFEST_NAME).exists() or overwrite:
        return
    old = read_json(outdir / MANIFEST_NAME)
    same_data = sorted(old.get("fileset", {})) == sorted(files)
    same_config = _config_json(old.get("config")) == _config_json(proc.config())
    if not (same_data and same_config):
        what = "datasets" if not same_data else "processor configuration"
        raise InputError(
            f"{outdir}: holds the output of another processing (its {what} differ); "
            "write elsewhere, or replace it with --overwrite (process_fileset(overwrite=True))"
        )


def _config_json(config: Any) -> str:
    """A processor configuration as canonical JSON: what "the same processing" compares."""
    return json.dumps(config, sort_keys=True, default=str)


def _process(
    files: dict[str, dict[str, Any]],
    outdir: str | os.PathLike[str],
    proc: EMuProcessor,
    execution: Execution,
    allow_map_overlap: bool,
) -> ProcessingReport:
    skip_bad_files, maxchunks = execution.skip_bad_files, execution.maxchunks
    required = {d: proc.required_branches(is_mc(e["metadata"])) for d, e in files.items()}
    good, bad, entries = check_fileset(files, required)
    if bad and not skip_bad_files:
        raise InputError("bad input file(s):\n  " + "\n  ".join(str(b) for b in bad))
    if not any(e["files"] for e in good.values()):
        raise InputError("no readable input file left:\n  " + "\n  ".join(str(b) for b in bad))
    notes: list[str] = []
    if proc.efficiency is not None:
        try:
            check_independent(proc.efficiency, good, proc.events)
        except InputError as err:
            if not allow_map_overlap:
                raise
            notes.append(f"applied anyway (--allow-map-overlap): {err}")
    _complete_metadata(good)
    if maxchunks is not None:
        notes.append(
            f"at most {maxchunks} chunk(s) per dataset processed: simulation weights are "
            "normalised to the full sum of weights, so yields are those of the processed part"
        )

    # the previous processing's files: the only ones this run may delete if not rewritten;
    # its manifest goes first, as the workers write into the columns it lists
    outdir = Path(outdir)
    previous: set[Path] = set()
    if (outdir / MANIFEST_NAME).exists():
        previous = {
            (outdir / part["path"]).resolve()
            for entry in read_json(outdir / MANIFEST_NAME).get("samples", [])
            for part in sample_parts(entry)
        }
    (outdir / MANIFEST_NAME).unlink(missing_ok=True)  # incomplete until the new one is written
    start = time.perf_counter()
    # vars, not dataclasses.asdict, which would deep-copy a dask client
    output, skipped_chunks = run_processor(good, proc.streaming_to(outdir), **vars(execution))
    wall = time.perf_counter() - start
    skipped = bad + skipped_chunks
    # a sumw summed here from the Runs trees leaves out the files skipped before processing,
    # not those failing during it; a sumw from the fileset covers every file
    failed_during = {b.dataset for b in skipped_chunks}
    for dataset in sorted({b.dataset for b in skipped}):
        meta = files[dataset]["metadata"]
        if is_mc(meta) and "xsec" in meta and ("sumw" in meta or dataset in failed_during):
            notes.append(
                f"dataset {dataset!r}: part of its input was skipped but its sum of weights "
                "includes it, so its weights are too small by the skipped fraction"
            )

    weighting = {d: sorted(w) for d, w in sorted(output["weighting"].items())}
    for dataset, schemes in weighting.items():
        if any(w.startswith("genWeight (") for w in schemes):
            notes.append(f"dataset {dataset!r}: event weights are {schemes}")
    for dataset, missing in sorted(output["missing"].items()):
        if missing:
            notes.append(
                f"dataset {dataset!r}: input lacks {sorted(missing)}; n_jets (without jets) "
                "or n_bjets (without the b-tag score) is -1"
            )
    nonfinite = {d: dict(sorted(f.items())) for d, f in sorted(output["nonfinite_inputs"].items())}
    for dataset, per_file in nonfinite.items():
        notes.append(
            f"dataset {dataset!r}: {sum(per_file.values())} event(s) with a non-finite lepton, "
            f"jet, MET or weight value skipped (cutflow step 'finite_inputs'; per file: "
            f"{per_file})"
        )
    for dataset, flow in sorted(output["cutflow"].items()):
        if not any(flow.get(c, 0) for c in proc.categories):
            notes.append(f"dataset {dataset!r}: no event passed the selection (cutflow {flow})")
    run_info = {
        "executor": {
            "name": execution.executor,
            "workers": execution.workers,
            "chunksize": execution.chunksize,
            "maxchunks": maxchunks,
            "wall_s": wall,
        },
        "weighting": weighting,
        "nonfinite_inputs": nonfinite,
        "fileset": good,
        "entries": entries,
        "skipped": [vars(b) for b in skipped],
        "notes": notes,
    }
    samples = write_output(output, proc, outdir, good, run_info, previous)
    return ProcessingReport(Path(outdir), samples, skipped, notes, dict(output["cutflow"]), wall)


#: Written beside a complete output by :func:`process_once`: the fileset and processing.
PROCESSED_MARKER = "processed.json"


def process_once(
    fileset: str | os.PathLike[str],
    outdir: str | os.PathLike[str],
    proc: EMuProcessor,
    **kwargs: Any,
) -> bool:
    """Process ``fileset`` into ``outdir`` unless it holds a complete output of it already.

    Complete means: a manifest, the histograms, and a :data:`PROCESSED_MARKER` (written
    after the processing) naming the same fileset and processor configuration. ``kwargs`` go to
    :func:`process_fileset`. Returns whether the existing output was reused.
    """
    out = Path(outdir)
    files = load_fileset(fileset)
    proc = proc.for_fileset(files)
    config = _config_json(proc.config())
    what = {
        "fileset": str(Path(fileset).resolve()),
        "processor": hashlib.sha256(config.encode()).hexdigest()[:16],
    }
    marker = out / PROCESSED_MARKER
    check_writable_directory(out)
    allow_map_overlap = bool(kwargs.pop("allow_map_overlap", False))
    execution = Execution(**kwargs)
    with directory_lock(out):  # the check, the processing and the marker under one lock
        if (out / MANIFEST_NAME).exists() and (out / HISTS_JSON).exists() and marker.exists():
            if {k: read_json(marker).get(k) for k in what} == what:
                return True
        # an output this function made (its marker) is its own to replace when the
        # configuration changed; any other processing found there is refused
        own = marker.exists() or not (out / MANIFEST_NAME).exists()
        marker.unlink(missing_ok=True)
        _process_locked(files, out, proc, own, execution, allow_map_overlap)
        write_json(marker, what)
    return False
