"""Input files: checks that name the bad file / tree / branch, sums of generator weights.

Filesets are read by :func:`symnplm.io.filesets.load_fileset` (re-exported here with
its metadata helpers). Metadata keys used by the processor: ``xsec`` (pb), ``sumw``
(sum of generator weights; summed from the ``Runs`` trees when absent), ``is_data``.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import uproot

from symnplm.exceptions import DamagedFileError, InputError
from symnplm.io.filesets import (
    DEFAULT_TREE,
    background_luminosity_fb,
    is_mc,
    is_signal,
    load_fileset,
)

__all__ = [
    "DEFAULT_TREE",
    "READ_ERRORS",
    "BadFile",
    "DamagedFileError",
    "InputError",
    "background_luminosity_fb",
    "check_file",
    "check_fileset",
    "is_mc",
    "is_signal",
    "load_fileset",
    "sum_generator_weights",
]

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
