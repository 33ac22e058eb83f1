"""Same seed ⇒ identical files; resumed productions never rewrite a finished file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from symnplm.generation.production import GenerationConfig, produce


def _config(seed: int = 11, **kw) -> GenerationConfig:
    base = dict(
        processes=("ztautau", "ggh_htaumu"),
        luminosity_fb=1.0,
        n_events=60,
        events_per_file=30,
        seed=seed,
        skim_pt_min=None,
    )
    return GenerationConfig(**(base | kw))


def _contents(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reference")
    produce(_config(), out, workers=1, progress=False)
    return out


def test_same_seed_gives_bit_identical_files(reference, tmp_path):
    produce(_config(), tmp_path, workers=1, progress=False)
    first, second = _contents(reference), _contents(tmp_path)
    assert list(first) == list(second)
    assert len([k for k in first if k.endswith(".root")]) == 4
    for name in first:
        assert first[name] == second[name], name


def test_a_different_seed_gives_different_events(reference, tmp_path):
    produce(_config(seed=12), tmp_path, workers=1, progress=False)
    a = (reference / "ztautau" / "ztautau_0000.root").read_bytes()
    b = (tmp_path / "ztautau" / "ztautau_0000.root").read_bytes()
    assert a != b


def test_a_dataset_does_not_depend_on_the_other_datasets_produced(reference, tmp_path):
    produce(_config(processes=("ztautau",)), tmp_path, workers=1, progress=False)
    for name in ("ztautau_0000.root", "ztautau_0001.root"):
        ours = (tmp_path / "ztautau" / name).read_bytes()
        assert ours == (reference / "ztautau" / name).read_bytes()


def test_resume_regenerates_only_missing_files_identically(reference, tmp_path):
    produce(_config(), tmp_path, workers=1, progress=False)
    kept = tmp_path / "ztautau" / "ztautau_0000.root"
    missing = tmp_path / "ztautau" / "ztautau_0001.root"
    os.utime(kept, (1_000_000_000, 1_000_000_000))
    missing.unlink()
    # An interrupted write leaves a temporary file behind; the next run removes it.
    stale = missing.parent / f".{missing.name}.abc123.tmp"
    stale.write_bytes(b"half a file")
    report = produce(_config(), tmp_path, workers=1, progress=False)
    assert [(r.dataset, r.chunk) for r in report.generated] == [("ztautau", 1)]
    assert len(report.skipped) == 3
    assert not stale.exists()
    assert kept.stat().st_mtime == 1_000_000_000  # never rewritten
    assert missing.read_bytes() == (reference / "ztautau" / missing.name).read_bytes()
    assert _contents(tmp_path) == _contents(reference)


def test_resume_with_another_configuration_is_refused(reference, tmp_path):
    produce(_config(), tmp_path, workers=1, progress=False)
    (tmp_path / "ztautau" / "ztautau_0001.root").unlink()
    with pytest.raises(
        ValueError, match=r"ztautau_0000\.root exists but was generated with another"
    ):
        produce(_config(seed=99), tmp_path, workers=1, progress=False)


def test_parallel_workers_give_the_same_files(reference, tmp_path):
    produce(_config(), tmp_path, workers=2, progress=False)
    assert _contents(tmp_path) == _contents(reference)
