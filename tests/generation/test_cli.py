"""``symnplm generate``: help, argument errors, a tiny run."""

from __future__ import annotations

import argparse

import pytest

from symnplm.cli.generate import add_parser, build_config
from symnplm.generation.presets import ALL_PROCESSES
from symnplm.io.filesets import load_fileset


@pytest.fixture
def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="symnplm")
    add_parser(top.add_subparsers(dest="command"))
    return top


def test_help_works(parser, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args(["generate", "--help"])
    assert exit_info.value.code == 0
    assert "--preset" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--processes", "ttbar", "zprime"], "unknown process 'zprime'"),
        (["--luminosity", "-2"], "luminosity_fb must be a positive number of fb^-1, got -2.0"),
        (["--lfv-br", "1.2"], "must lie in [0, 1], got 1.2"),
        (["--detector", "muon_scale_ofset=0.1"], "unknown detector parameter(s): muon_scale_ofset"),
        (["--detector", "muon_scale_offset"], "not of the form name=value"),
    ],
)
def test_bad_arguments_exit_2_naming_the_value(parser, capsys, tmp_path, argv, message):
    args = parser.parse_args(["generate", "--output", str(tmp_path), *argv])
    assert args.func(args) == 2
    assert message in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # nothing written


def test_presets_and_overrides(parser):
    args = parser.parse_args(
        [
            "generate",
            "--preset",
            "paper",
            "--processes",
            "signal",
            "ww",
            "--lfv-br",
            "0.02",
            "--detector",
            "muon_scale_offset=-0.002",
        ]
    )
    config = build_config(args)
    assert config.luminosity_fb == 20.0
    assert config.processes[-1] == "ww" and len(config.processes) == 5
    assert config.lfv_branching_ratio == 0.02
    assert config.detector.muon_scale_offset == -0.002
    demo = build_config(parser.parse_args(["generate"]))
    assert demo.processes == ALL_PROCESSES and demo.luminosity_fb == 5.0
    assert not demo.gen_jets


def test_list_processes(parser, capsys):
    args = parser.parse_args(["generate", "--list-processes"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    for name in ALL_PROCESSES:
        assert name in out


def test_tiny_run_writes_a_fileset(parser, tmp_path, capsys):
    args = parser.parse_args(
        [
            "generate",
            "--output",
            str(tmp_path),
            "--processes",
            "ww",
            "--events",
            "30",
            "--workers",
            "1",
            "--no-progress",
            "--seed",
            "5",
        ]
    )
    assert args.func(args) == 0
    fileset = load_fileset(tmp_path / "fileset.json")
    assert list(fileset) == ["ww"]
    assert fileset["ww"]["metadata"]["n_generated"] == 30
    assert "1 file(s) generated" in capsys.readouterr().out


def test_help_shows_what_the_presets_give(parser, capsys, monkeypatch):
    """Options that override the preset show each preset's value, read from PRESETS."""
    from symnplm.generation.presets import PRESETS

    monkeypatch.setenv("COLUMNS", "10000")  # one line per option
    with pytest.raises(SystemExit):
        parser.parse_args(["generate", "--help"])
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.strip()}
    demo, paper = PRESETS["demo"]["luminosity_fb"], PRESETS["paper"]["luminosity_fb"]
    assert demo != paper
    assert (
        f"(default from --preset: {demo:g} for demo, {paper:g} for paper)" in lines["--luminosity"]
    )
    assert PRESETS["demo"]["seed"] == PRESETS["paper"]["seed"]  # one value for both
    assert f"(default from --preset: {PRESETS['demo']['seed']})" in lines["--seed"]
    assert "default" not in lines["--events"]  # n_events: no preset sets it
