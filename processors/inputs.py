"""Input files: filesets, checks that name the bad file / tree / branch, sums of weights.

A fileset is the coffea JSON format::

    {"<dataset>": {"files": {"<path>": "Events"} or ["<path>", ...],
                   "treename": "Events",                      # optional, default Events
                   "metadata": {"xsec": 6077.2, "sumw": 1.5e10, "is_data": false, ...}}}

or ``{"<dataset>": ["<path>", ...]}``. Relative paths are resolved against the
directory of the JSON file, then against the working directory. Metadata keys used
by the processor: ``xsec`` (pb), ``sumw`` (sum of generator weights; summed from
the ``Runs`` trees when absent), ``is_data``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import uproot

DEFAULT_TREE = "Events"
#: a directory name: these characters, and not "." or ".." (which would leave the folder)
_DATASET_NAME = re.compile(r"^(?!\.+$)[A-Za-z0-9_.+-]+$")


class InputError(ValueError):
    """Bad input; the message names the file, tree, branch or metadata key."""


class DamagedFileError(OSError):
    """Data of a file that opened fine could not be read (e.g. a corrupt basket)."""


#: Errors of damaged input, skipped with ``skip_bad_files`` while processing (bugs still raise).
READ_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    uproot.exceptions.KeyInFileError,
    uproot.deserialization.DeserializationError,
    zlib.error,
)


@dataclass(frozen=True)
class BadFile:
    """A file (or part of one) left out of the processing, and why."""

    dataset: str
    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path} (dataset {self.dataset!r}): {self.reason}"


def _resolve(path: str, base: Path | None) -> str:
    if "://" in path or os.path.isabs(path):
        return path
    if base is not None and (base / path).exists():
        return str((base / path).resolve())
    return str(Path(path).resolve())


def load_fileset(fileset: str | os.PathLike[str] | Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Read a fileset (JSON path or mapping) as ``{dataset: {"files": {path: tree}, ...}}``."""
    base = None
    if isinstance(fileset, (str, os.PathLike)):
        path = Path(fileset)
        try:
            fileset = json.loads(path.read_text())
        except FileNotFoundError:
            raise InputError(f"{path}: no such fileset file") from None
        except json.JSONDecodeError as err:
            raise InputError(f"{path}: not a valid fileset JSON ({err})") from None
        base = path.resolve().parent
        where = str(path)
    else:
        where = "fileset"
    if not isinstance(fileset, Mapping) or not fileset:
        raise InputError(f"{where}: a fileset is a non-empty mapping of dataset names to files")
    out: dict[str, dict[str, Any]] = {}
    for dataset, entry in fileset.items():
        if not _DATASET_NAME.match(str(dataset)):
            raise InputError(
                f"{where}: dataset name {dataset!r} must use only letters, digits and _ . + - "
                "and not be only dots (it becomes a directory name)"
            )
        if isinstance(entry, Mapping):
            files, tree = entry.get("files"), entry.get("treename", DEFAULT_TREE)
            metadata = dict(entry.get("metadata") or {})
        else:
            files, tree, metadata = entry, DEFAULT_TREE, {}
        if isinstance(files, Mapping):
            pairs = [(str(f), str(t or tree)) for f, t in files.items()]
        elif isinstance(files, (list, tuple)):
            pairs = [(str(f), tree) for f in files]
        else:
            raise InputError(f"{where}: dataset {dataset!r} has no list or mapping of 'files'")
        if not pairs:
            raise InputError(f"{where}: dataset {dataset!r} has no files")
        for key in ("xsec", "sumw"):
            if key in metadata and not (
                isinstance(metadata[key], (int, float))
                and np.isfinite(metadata[key])
                and metadata[key] > 0
            ):
                raise InputError(
                    f"{where}: dataset {dataset!r} metadata {key!r} = {metadata[key]!r}, "
                    "expected a positive number"
                )
        for key in ("is_data", "is_signal"):
            # a string "false" would be truthy: data without weights, or a signal left out
            if metadata.get(key) is not None and not isinstance(metadata[key], bool):
                raise InputError(
                    f"{where}: dataset {dataset!r} metadata {key!r} = {metadata[key]!r}, "
                    "expected true or false"
                )
        out[str(dataset)] = {
            "files": {_resolve(f, base): t for f, t in pairs},
            "metadata": metadata,
        }
    return out


def is_mc(metadata: Mapping[str, Any]) -> bool:
    """Whether a dataset is simulation: ``is_data`` false, or a cross section given."""
    if "is_data" in metadata:
        return not metadata["is_data"]
    return "xsec" in metadata


def is_signal(metadata: Mapping[str, Any]) -> bool:
    """Signal simulation: ``is_signal`` true or an ``lfv_branching_ratio`` recorded."""
    return bool(metadata.get("is_signal")) or metadata.get("lfv_branching_ratio") is not None


def background_luminosity_fb(fileset: Mapping[str, Mapping[str, Any]]) -> float | None:
    """The ``luminosity_fb`` shared by the non-signal datasets of a fileset, or ``None``.

    Generated filesets record the luminosity each sample corresponds to; signal is
    often generated at a higher equivalent luminosity, so the background's is the
    luminosity of the (pseudo-)data. Different background values are an error.
    """
    values = {
        float(entry["metadata"]["luminosity_fb"])
        for entry in fileset.values()
        if isinstance(entry, Mapping)
        and not is_signal(entry.get("metadata", {}))
        and entry.get("metadata", {}).get("luminosity_fb")
    }
    if len(values) > 1:
        raise InputError(
            f"background datasets record different luminosity_fb {sorted(values)}; "
            "give the luminosity explicitly"
        )
    return values.pop() if values else None


#: Branches read to fingerprint a file's content (the first entries of each).
FINGERPRINT_BRANCHES = ("run", "luminosityBlock", "event", "MET_pt")
_FINGERPRINT_ENTRIES = 1000


def _fingerprint(ttree: Any) -> str:
    """A hash of the tree's size and its first event ids and MET values.

    It identifies a file's content wherever the file lies (copies, other paths), so
    that a sample is recognised as the same events: event ids alone repeat between
    simulated productions, their MET values do not.
    """
    h = hashlib.sha256(str(int(ttree.num_entries)).encode())
    for branch in FINGERPRINT_BRANCHES:
        if branch in ttree:
            h.update(branch.encode())
            h.update(
                np.ascontiguousarray(
                    ttree[branch].array(library="np", entry_stop=_FINGERPRINT_ENTRIES)
                ).tobytes()
            )
    return h.hexdigest()[:32]


def check_file(path: str, tree: str, branches: Iterable[str]) -> tuple[int, str | None, str | None]:
    """Open ``path`` and check ``tree`` and ``branches``.

    Returns (entries, problem or None, content fingerprint or None).
    """
    if "://" not in path and not Path(path).exists():
        return 0, "no such file", None
    try:
        with uproot.open(path) as handle:
            if tree not in handle:
                return 0, f"no tree {tree!r} (keys: {sorted(handle.keys(cycle=False))})", None
            ttree = handle[tree]
            missing = [b for b in branches if b not in ttree]
            if missing:
                return 0, f"tree {tree!r} lacks the branch(es) {missing}", None
            return int(ttree.num_entries), None, _fingerprint(ttree)
    except Exception as err:  # uproot raises many types for damaged files
        return 0, f"not a readable ROOT file ({type(err).__name__}: {err})", None


def check_fileset(
    fileset: Mapping[str, Mapping[str, Any]],
    required: Mapping[str, Iterable[str]],
) -> tuple[dict[str, dict[str, Any]], list[BadFile], dict[str, int]]:
    """Check every file; returns (fileset of good files, bad files, entries per dataset).

    ``required`` maps each dataset to the branches its files must have. Each dataset
    of the returned fileset has ``fingerprints`` (path → content fingerprint) beside
    its files and metadata.
    """
    good: dict[str, dict[str, Any]] = {}
    bad: list[BadFile] = []
    entries: dict[str, int] = {}
    for dataset, entry in fileset.items():
        files, prints = {}, {}
        entries[dataset] = 0
        for path, tree in entry["files"].items():
            n, problem, fingerprint = check_file(path, tree, required[dataset])
            if problem is None:
                files[path] = tree
                prints[path] = fingerprint
                entries[dataset] += n
            else:
                bad.append(BadFile(dataset, path, problem))
        good[dataset] = {
            "files": files,
            "metadata": dict(entry["metadata"]),
            "fingerprints": prints,
        }
    return good, bad, entries


def sum_generator_weights(files: Mapping[str, str], dataset: str) -> float:
    """Σ genEventSumw over the ``Runs`` trees of ``files`` (``genEventSumw_`` before NanoAOD v7)."""
    total = 0.0
    for path in files:
        try:
            with uproot.open(path) as handle:
                if "Runs" not in handle:
                    raise InputError(
                        f"{path}: no 'Runs' tree to sum generator weights for dataset "
                        f"{dataset!r}; add 'sumw' to its fileset metadata"
                    )
                runs = handle["Runs"]
                branch = next((b for b in ("genEventSumw", "genEventSumw_") if b in runs), None)
                if branch is None:
                    raise InputError(
                        f"{path}: tree 'Runs' has no branch 'genEventSumw' (keys: {runs.keys()}); "
                        f"add 'sumw' to the metadata of dataset {dataset!r}"
                    )
                total += float(np.sum(runs[branch].array(library="np")))
        except InputError:
            raise
        except Exception as err:
            raise InputError(
                f"{path}: cannot read the Runs tree ({type(err).__name__}: {err})"
            ) from None
    if not total > 0:
        raise InputError(f"dataset {dataset!r}: the Runs trees sum to genEventSumw = {total}")
    return total
