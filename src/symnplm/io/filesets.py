"""Filesets: the coffea JSON that names a sample's files and its metadata.

A fileset is::

    {"<dataset>": {"files": {"<path>": "Events"} or ["<path>", ...],
                   "treename": "Events",                      # optional, default Events
                   "metadata": {"xsec": 6077.2, "sumw": 1.5e10, "is_data": false, ...}}}

or ``{"<dataset>": ["<path>", ...]}``. Relative paths are resolved against the
directory of the JSON file, then against the working directory. Metadata keys read
by symnplm: ``xsec`` (pb), ``sumw`` (sum of generator weights), ``is_data``,
``is_signal``, ``luminosity_fb``, ``lfv_branching_ratio`` (of a signal sample),
``triggers``. Reading a fileset opens no ROOT file.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from symnplm.exceptions import InputError

__all__ = [
    "DEFAULT_TREE",
    "background_luminosity_fb",
    "is_mc",
    "is_signal",
    "load_fileset",
]

DEFAULT_TREE = "Events"
#: metadata that must be a positive finite number where given
_POSITIVE_METADATA = ("xsec", "sumw", "luminosity_fb", "lfv_branching_ratio")
#: a directory name: these characters, and not "." or ".." (which would leave the folder)
_DATASET_NAME = re.compile(r"^(?!\.+$)[A-Za-z0-9_.+-]+$")


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
        for key in _POSITIVE_METADATA:
            value = metadata.get(key)
            # lfv_branching_ratio may be null (no LFV signal); a bool is not a number here
            if key not in metadata or (key == "lfv_branching_ratio" and value is None):
                continue
            if isinstance(value, bool) or not (
                isinstance(value, (int, float)) and np.isfinite(value) and value > 0
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
