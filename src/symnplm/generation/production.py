"""Dataset production: plan, parallel chunk generation, resumability, the fileset.

A *dataset* is one process generated at a luminosity; it is split into *chunks*
of at most ``events_per_file`` generated events, one ROOT file each. A chunk is
generated from its own seeds (derived from the master seed, the dataset name and
the chunk number), so chunks can run in any order, on any number of processes,
and a re-run skips every file that exists: a file appears only when complete
(written under a temporary name and renamed), and an interrupted chunk leaves
nothing but a temporary file, which the next run deletes.

Weights. For a dataset of ``N`` planned events at luminosity ``L``, an event of
chunk c with ``n_τ`` forced τ decays gets

    genWeight = σ_c · K · B_τ^{n_τ} · L / N,

with σ_c Pythia's cross section estimate of the chunk. ``genWeight`` is then the
event's expected yield at ``L``, ``Runs/genEventSumw`` sums it over *all*
generated events of the file (also those removed by the skim), and the fileset
``xsec`` is Σ genEventSumw / L. Hence the usual NanoAOD normalisation
``xsec · L' · genWeight / Σ genEventSumw`` equals ``genWeight · L'/L``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import multiprocessing
import os
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from symnplm.generation import nanoaod, truth
from symnplm.generation.detector import Collection, RecoEvents, child_seed, simulate
from symnplm.generation.detector_config import DetectorConfig
from symnplm.generation.event_generator import PYTHIA_SEED_MAX, PythiaGenerator
from symnplm.generation.processes import ProcessSpec, all_processes, check_branching_ratio
from symnplm.io.files import write_json
from symnplm.io.provenance import package_versions

__all__ = [
    "BATCH_SIZE",
    "FILESET_NAME",
    "SKIM_PT_MIN",
    "ChunkOutput",
    "ChunkResult",
    "ChunkTask",
    "DatasetPlan",
    "GenerationConfig",
    "ProductionReport",
    "chunk_seed_sequence",
    "dataset_metadata",
    "generate_chunk",
    "plan_datasets",
    "produce",
    "pythia_seed",
    "write_fileset",
]

FILESET_NAME = "fileset.json"
#: Events per Pythia batch (memory: ~0.1 kB per particle, ~600 particles per tt̄ event).
BATCH_SIZE = 500
#: Default reconstructed-lepton pT for the skim (below the analysis' 15 GeV, so that
#: ±few % momentum-scale variations do not cross the skim threshold).
SKIM_PT_MIN = 13.0


# --------------------------------------------------------------------------- configuration
@dataclass(frozen=True)
class GenerationConfig:
    """Everything that determines the generated files.

    Parameters
    ----------
    processes
        Dataset names (see :func:`symnplm.generation.processes.all_processes`).
    luminosity_fb
        Integrated luminosity of the background datasets, fb⁻¹.
    signal_luminosity_fb
        Luminosity equivalent of the signal datasets, fb⁻¹ (``None``: same as background).
    lfv_branching_ratio
        B(H → τℓ) of the signal datasets.
    seed
        Master seed.
    events_per_file
        Maximum generated events per file (chunk).
    n_events
        If set, generate exactly this many events per dataset instead of σ × L
        (weights are then σ L / n_events).
    event_scale
        Multiplies the planned σ × L number of events (weights scale by 1/event_scale).
    skim_pt_min
        Keep events with ≥ 1 electron and ≥ 1 muon of at least this pT; ``None`` keeps all.
    truth_filter_pt
        Pass to the detector only events with a generated (FSR-dressed) electron and a
        muon of at least this pT (needs ``skim_pt_min``; well below it, e.g. 0.8 ×, so
        that no event the skim would keep is lost to resolution or scale offsets). It
        saves the detector simulation of most Z → ττ events; the files differ from an
        unfiltered production (other random numbers), not their distributions.
    gen_jets
        Write the particle-level jets of the reconstructed jets (``GenJet``).
    detector
        The detector parameters.
    """

    processes: tuple[str, ...]
    luminosity_fb: float
    signal_luminosity_fb: float | None = None
    lfv_branching_ratio: float = 0.01
    seed: int = 1
    events_per_file: int = 100_000
    n_events: int | None = None
    event_scale: float = 1.0
    skim_pt_min: float | None = SKIM_PT_MIN
    gen_jets: bool = True
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    truth_filter_pt: float | None = None

    def __post_init__(self) -> None:
        known = all_processes(self.lfv_branching_ratio)  # also validates the BR
        object.__setattr__(self, "processes", tuple(self.processes))
        if not self.processes:
            raise ValueError("no process selected")
        for name in self.processes:
            if name not in known:
                raise ValueError(f"unknown process {name!r}; known processes: {', '.join(known)}")
        if len(set(self.processes)) != len(self.processes):
            raise ValueError(f"processes listed twice: {list(self.processes)}")
        for name in ("luminosity_fb", "signal_luminosity_fb"):
            value = getattr(self, name)
            if value is not None and (not math.isfinite(value) or value <= 0):
                raise ValueError(f"{name} must be a positive number of fb^-1, got {value!r}")
        if not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        if self.events_per_file < 1:
            raise ValueError(f"events_per_file must be >= 1, got {self.events_per_file!r}")
        if self.n_events is not None and self.n_events < 1:
            raise ValueError(f"n_events must be >= 1, got {self.n_events!r}")
        if not math.isfinite(self.event_scale) or self.event_scale <= 0:
            raise ValueError(f"event_scale must be > 0, got {self.event_scale!r}")
        if self.skim_pt_min is not None and self.skim_pt_min < 0:
            raise ValueError(f"skim_pt_min must be >= 0 or None, got {self.skim_pt_min!r}")
        if self.truth_filter_pt is not None:
            if self.skim_pt_min is None:
                raise ValueError(
                    "truth_filter_pt needs skim_pt_min: without a skim every event is kept"
                )
            if self.detector.jet_fake_electron_rate > 0:
                raise ValueError(
                    "truth_filter_pt cannot be used with jet_fake_electron_rate > 0: it would "
                    "drop the events whose electron is a jet"
                )
            if not 0 <= self.truth_filter_pt <= self.skim_pt_min:
                raise ValueError(
                    f"truth_filter_pt must lie in [0, skim_pt_min = {self.skim_pt_min}], "
                    f"got {self.truth_filter_pt!r}"
                )
        check_branching_ratio(self.lfv_branching_ratio)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["processes"] = list(self.processes)
        out["detector"] = self.detector.to_dict()
        return out


@dataclass(frozen=True)
class DatasetPlan:
    """One dataset: the process, its luminosity and how many events in which files."""

    spec: ProcessSpec
    luminosity_fb: float
    n_events: int
    events_per_file: int

    @property
    def name(self) -> str:
        return self.spec.name

    def chunk_sizes(self) -> list[int]:
        full, rest = divmod(self.n_events, self.events_per_file)
        return [self.events_per_file] * full + ([rest] if rest else [])

    def file_name(self, chunk: int) -> str:
        return f"{self.name}/{self.name}_{chunk:04d}.root"


def plan_datasets(config: GenerationConfig) -> list[DatasetPlan]:
    """The datasets of ``config``; signal datasets with B = 0 are left out (nothing to generate)."""
    processes = all_processes(config.lfv_branching_ratio)
    plans = []
    for name in config.processes:
        spec = processes[name]
        lumi = config.luminosity_fb
        if spec.is_signal and config.signal_luminosity_fb is not None:
            lumi = config.signal_luminosity_fb
        if config.n_events is not None:
            n = config.n_events
        else:
            n = math.ceil(spec.planned_events(lumi) * config.event_scale)
        if n == 0:
            continue
        plans.append(DatasetPlan(spec, lumi, n, config.events_per_file))
    return plans


# --------------------------------------------------------------------------- seeds
def _dataset_key(name: str) -> int:
    return zlib.crc32(name.encode())


def chunk_seed_sequence(seed: int, dataset: str, chunk: int) -> np.random.SeedSequence:
    """The seed sequence of one chunk: a pure function of (master seed, dataset, chunk)."""
    return np.random.SeedSequence([int(seed), _dataset_key(dataset), int(chunk)])


def pythia_seed(sequence: np.random.SeedSequence) -> int:
    """A Pythia seed in [1, 900 000 000] drawn from ``sequence``."""
    return int(sequence.generate_state(1, dtype=np.uint32)[0]) % PYTHIA_SEED_MAX + 1


# --------------------------------------------------------------------------- one chunk
@dataclass(frozen=True)
class ChunkOutput:
    """One file of a chunk: the detector that makes it, where it goes, its metadata."""

    detector: DetectorConfig
    path: str
    metadata: Mapping[str, Any]


@dataclass(frozen=True)
class ChunkTask:
    """Everything a worker process needs to produce one chunk (one file per detector)."""

    plan: DatasetPlan
    chunk: int
    n_events: int
    first_event: int
    seed: int
    skim_pt_min: float | None
    truth_filter_pt: float | None
    gen_jets: bool
    outputs: tuple[ChunkOutput, ...]


@dataclass(frozen=True)
class ChunkResult:
    dataset: str
    chunk: int
    n_generated: int
    n_written: int
    sumw: float
    seconds: float


def _skim_mask(reco: RecoEvents, pt_min: float | None) -> np.ndarray:
    if pt_min is None:
        return np.ones(reco.n_events, dtype=bool)
    passing = []
    for name in ("Electron", "Muon"):
        col = reco.collections[name]
        event = np.repeat(np.arange(reco.n_events), col.counts)
        n_pass = np.bincount(event[col.fields["pt"] >= pt_min], minlength=reco.n_events)
        passing.append(n_pass > 0)
    return passing[0] & passing[1]


def _concatenate(parts: Sequence[RecoEvents]) -> RecoEvents:
    first = parts[0]
    collections = {
        name: Collection(
            np.concatenate([p.collections[name].counts for p in parts]),
            {
                f: np.concatenate([p.collections[name].fields[f] for p in parts])
                for f in first.collections[name].fields
            },
        )
        for name in first.collections
    }
    met = {k: np.concatenate([p.met[k] for p in parts]) for k in first.met}
    return RecoEvents(collections, met, np.concatenate([p.tau_decays for p in parts]))


def _select(reco: RecoEvents, mask: np.ndarray) -> RecoEvents:
    return RecoEvents(
        {name: col.select_events(mask) for name, col in reco.collections.items()},
        {k: v[mask] for k, v in reco.met.items()},
        reco.tau_decays[mask],
    )


def generate_chunk(task: ChunkTask, progress: Callable[[int], None] | None = None) -> ChunkResult:
    """Generate one chunk with Pythia once, pass it through every detector of
    ``task.outputs``, skim and write one file each (see the module docstring for weights).

    Each detector gets the same random streams, so a file is the same whether it is
    produced alone or beside other detector variants.
    """
    start = time.perf_counter()
    plan = task.plan
    sequence = chunk_seed_sequence(task.seed, plan.name, task.chunk)
    seed_for_pythia = pythia_seed(child_seed(sequence, 0))
    generator = PythiaGenerator(plan.spec, seed_for_pythia)
    detector_sequence = child_seed(sequence, 1)
    kept: list[list[RecoEvents]] = [[] for _ in task.outputs]
    kept_index: list[list[np.ndarray]] = [[] for _ in task.outputs]
    tau_all: list[np.ndarray] = []
    done = 0
    for batch in generator.batches(task.n_events, BATCH_SIZE):
        batch_seed = child_seed(detector_sequence, done // BATCH_SIZE)
        tau_all.append(truth.count_tau_decays(batch))
        index = np.arange(batch.n_events)
        if task.truth_filter_pt is not None:
            index = np.nonzero(truth.has_electron_and_muon(batch, task.truth_filter_pt))[0]
            batch = batch.select_events(np.isin(np.arange(batch.n_events), index))
        for k, output in enumerate(task.outputs):
            reco = simulate(batch, output.detector, batch_seed, task.gen_jets)
            mask = _skim_mask(reco, task.skim_pt_min)
            kept[k].append(_select(reco, mask))
            kept_index[k].append(done + index[mask])
        done += len(tau_all[-1])
        if progress is not None:
            progress(len(tau_all[-1]))
    sigma_pb = generator.sigma_pb()
    tau_br = generator.tau_branching_fraction
    norm = sigma_pb * plan.spec.k_factor * plan.luminosity_fb * 1000.0 / plan.n_events
    all_weights = (norm * tau_br ** np.concatenate(tau_all)).astype(np.float32)
    w64 = all_weights.astype(np.float64)
    runs = {
        "genEventCount": done,
        "genEventSumw": float(w64.sum()),
        "genEventSumw2": float((w64**2).sum()),
    }
    written = 0
    for k, output in enumerate(task.outputs):
        events = _concatenate(kept[k])
        index = np.concatenate(kept_index[k])
        ids = {
            "run": np.ones(len(index), dtype=np.uint32),
            "luminosityBlock": np.full(len(index), task.chunk + 1, dtype=np.uint32),
            "event": (task.first_event + index + 1).astype(np.uint64),
        }
        metadata = dict(output.metadata) | {
            "chunk": task.chunk,
            "n_generated": done,
            "first_event": task.first_event,
            "pythia_seed": seed_for_pythia,
            "sigma_lo_pb": sigma_pb,
            "sigma_lo_error_pb": generator.sigma_error_pb(),
            "tau_branching_fraction": tau_br,
        }
        arrays = nanoaod.events_arrays(events, ids, all_weights[index])
        nanoaod.write_file(output.path, arrays, runs, metadata)
        written += len(index)
    return ChunkResult(
        plan.name, task.chunk, done, written, runs["genEventSumw"], time.perf_counter() - start
    )


# --------------------------------------------------------------------------- workers
_PROGRESS_QUEUE: Any = None


def _init_worker(queue: Any) -> None:
    global _PROGRESS_QUEUE
    _PROGRESS_QUEUE = queue
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def _run_in_worker(task: ChunkTask) -> ChunkResult:
    def report(n: int) -> None:
        _PROGRESS_QUEUE.put((task.plan.name, n))

    return generate_chunk(task, report)


# --------------------------------------------------------------------------- production
@dataclass
class ProductionReport:
    """What a :func:`produce` call did."""

    fileset_path: Path
    generated: list[ChunkResult]
    skipped: list[str]

    def events_per_second(self) -> dict[str, float]:
        """Generated events per second of worker time, per dataset (this run only)."""
        out: dict[str, list[float]] = {}
        for r in self.generated:
            n, s = out.setdefault(r.dataset, [0.0, 0.0])
            out[r.dataset] = [n + r.n_generated, s + r.seconds]
        return {k: n / s for k, (n, s) in out.items() if s > 0}


def dataset_metadata(plan: DatasetPlan, config: GenerationConfig) -> dict[str, Any]:
    """Metadata of one dataset: its definition, ``config_hash`` of that, and versions."""
    defining = plan.spec.to_metadata() | {
        "luminosity_fb": plan.luminosity_fb,
        "n_planned": plan.n_events,
        "events_per_file": plan.events_per_file,
        "seed": config.seed,
        "skim_pt_min": config.skim_pt_min,
        "gen_jets": config.gen_jets,
        "detector": config.detector.to_dict(),
    }
    if config.truth_filter_pt is not None:
        defining["truth_filter_pt"] = config.truth_filter_pt
    # Hash of what determines this dataset's files (not of the other datasets of the
    # production), so that productions can be extended and subsets re-generated.
    digest = hashlib.sha256(json.dumps(defining, sort_keys=True).encode()).hexdigest()[:16]
    return defining | {
        "config_hash": digest,
        "generator": "symnplm.generation (Pythia 8, MPI off, parametric ATLAS-like detector)",
        "versions": package_versions(),
    }


def _variant_configs(
    config: GenerationConfig, output: Path, variants: Mapping[str, DetectorConfig] | None
) -> dict[Path, GenerationConfig]:
    """Output directory → configuration: ``output`` itself, or ``output/<name>`` per variant."""
    if variants is None:
        return {output: config}
    if not variants:
        raise ValueError("variants: give at least one detector")
    for name in variants:
        if not name or Path(name).name != name or name.startswith("."):
            raise ValueError(f"variant name {name!r} must be a plain directory name")
    return {output / name: dataclasses.replace(config, detector=d) for name, d in variants.items()}


def _tasks(
    config: GenerationConfig, outputs: Mapping[Path, GenerationConfig]
) -> tuple[list[ChunkTask], list[str]]:
    tasks, skipped = [], []
    for plan in plan_datasets(config):
        metas = {out: dataset_metadata(plan, cfg) for out, cfg in outputs.items()}
        first = 0
        for chunk, n in enumerate(plan.chunk_sizes()):
            missing = []
            for out, cfg in outputs.items():
                path = out / plan.file_name(chunk)
                expected = metas[out]["config_hash"]
                if path.exists():
                    recorded = nanoaod.read_metadata(path).get("config_hash")
                    if recorded != expected:
                        raise ValueError(
                            f"{path} exists but was generated with another configuration "
                            f"(config_hash {recorded} != {expected}); use another "
                            f"output directory or delete it"
                        )
                    skipped.append(str(path))
                    continue
                for stale in path.parent.glob(f".{path.name}.*.tmp"):
                    stale.unlink()  # left by an interrupted run
                missing.append(ChunkOutput(cfg.detector, str(path), metas[out]))
            if missing:
                tasks.append(
                    ChunkTask(
                        plan,
                        chunk,
                        n,
                        first,
                        config.seed,
                        config.skim_pt_min,
                        config.truth_filter_pt,
                        config.gen_jets,
                        tuple(missing),
                    )
                )
            first += n
    return tasks, skipped


def produce(
    config: GenerationConfig,
    output: str | os.PathLike[str],
    workers: int = 1,
    progress: bool = True,
    variants: Mapping[str, DetectorConfig] | None = None,
) -> ProductionReport:
    """Generate every missing file of ``config`` under ``output`` and write the fileset.

    Parameters
    ----------
    config
        What to generate.
    output
        Directory; gets one sub-directory per dataset and ``fileset.json``.
    workers
        Worker processes (1 runs in this process).
    progress
        Show a rich progress bar.
    variants
        Detector variants ``{name: detector}`` (replacing ``config.detector``): each
        event is generated once and simulated by every detector, and variant ``name``
        is written to ``output/name`` (its own files and fileset, the same as a
        production with that detector alone). ``fileset_path`` of the report is the
        first variant's.
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers!r}")
    output = Path(output)
    outputs = _variant_configs(config, output, variants)
    for out in outputs:
        out.mkdir(parents=True, exist_ok=True)
    tasks, skipped = _tasks(config, outputs)
    # Longest first: better packing of the chunks onto the workers.
    tasks.sort(key=lambda t: -t.n_events)
    totals: dict[str, int] = {}
    for t in tasks:
        totals[t.plan.name] = totals.get(t.plan.name, 0) + t.n_events
    results: list[ChunkResult] = []
    with _ProgressDisplay(totals, enabled=progress) as display:
        if workers == 1 or len(tasks) <= 1:
            for t in tasks:
                results.append(generate_chunk(t, lambda n, d=t.plan.name: display.advance(d, n)))
        else:
            results = _run_pool(tasks, workers, display)
    paths = [write_fileset(cfg, out) for out, cfg in outputs.items()]
    return ProductionReport(paths[0], results, skipped)


def _run_pool(tasks: list[ChunkTask], workers: int, display: _ProgressDisplay) -> list[ChunkResult]:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    results = []
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=ctx, initializer=_init_worker, initargs=(queue,)
    ) as pool:
        pending = {pool.submit(_run_in_worker, t) for t in tasks}
        try:
            while pending:
                done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                while not queue.empty():
                    display.advance(*queue.get())
                for future in done:
                    results.append(future.result())
        except BaseException:
            for future in pending:
                future.cancel()
            raise
    return results


class _ProgressDisplay:
    """A rich progress bar per dataset plus a total (no-op when disabled)."""

    def __init__(self, totals: Mapping[str, int], enabled: bool) -> None:
        self._enabled = enabled and bool(totals)
        self._totals = dict(totals)

    def __enter__(self) -> _ProgressDisplay:
        if self._enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._progress = Progress(
                TextColumn("{task.description:>14}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
            )
            self._progress.__enter__()
            self._total = self._progress.add_task("all", total=sum(self._totals.values()))
            self._ids = {d: self._progress.add_task(d, total=n) for d, n in self._totals.items()}
        return self

    def advance(self, dataset: str, n: int) -> None:
        if self._enabled:
            self._progress.advance(self._ids[dataset], n)
            self._progress.advance(self._total, n)

    def __exit__(self, *exc: object) -> None:
        if self._enabled:
            self._progress.__exit__(*exc)


# --------------------------------------------------------------------------- fileset
def write_fileset(config: GenerationConfig, output: str | os.PathLike[str]) -> Path:
    """Write ``fileset.json`` (coffea format) for the complete datasets of ``config``.

    Raises ValueError naming the first missing file if any chunk is absent: a
    fileset is only written for a complete production.
    """
    output = Path(output)
    fileset: dict[str, Any] = {}
    for plan in plan_datasets(config):
        files: dict[str, str] = {}
        sums = {"genEventCount": 0.0, "genEventSumw": 0.0, "genEventSumw2": 0.0}
        sigma_weighted = 0.0
        n_written = 0
        tau_br = None
        for chunk in range(len(plan.chunk_sizes())):
            rel = plan.file_name(chunk)
            path = output / rel
            if not path.exists():
                raise ValueError(f"{path}: missing; the production of {plan.name} is incomplete")
            runs = nanoaod.read_runs(path)
            meta = nanoaod.read_metadata(path)
            for k in sums:
                sums[k] += runs[k]
            sigma_weighted += meta["sigma_lo_pb"] * meta["n_generated"]
            n_written += _count_events(path)
            tau_br = meta["tau_branching_fraction"]
            files[rel] = "Events"
        n_gen = int(sums["genEventCount"])
        fileset[plan.name] = {
            "files": files,
            "metadata": dataset_metadata(plan, config)
            | {
                "xsec": sums["genEventSumw"] / (plan.luminosity_fb * 1000.0),
                "sumw": sums["genEventSumw"],
                "sumw2": sums["genEventSumw2"],
                "n_generated": n_gen,
                "n_events": n_written,
                "sigma_lo_pb": sigma_weighted / n_gen,
                "tau_branching_fraction": tau_br,
            },
        }
    return write_json(output / FILESET_NAME, fileset)


def _count_events(path: Path) -> int:
    import uproot

    with uproot.open(path) as f:
        return int(f["Events"].num_entries)
