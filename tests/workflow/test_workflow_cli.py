"""Every ``symnplm`` command has ``--help`` naming its main options."""

from __future__ import annotations

import pytest

from symnplm.cli import main


@pytest.mark.parametrize(
    ("command", "options"),
    [
        ("test", ["--config", "--input", "--a-category", "--features", "--calibration",
                  "--scheduler", "--unweight", "--inject-br", "--optimizer", "--architecture"]),
        ("plot", ["RESULT", "--kinematics", "--formats"]),
        ("demo", ["--permutations", "--inject-br", "--workers", "--outdir"]),
        ("sensitivity", ["--brs", "--toys", "--null-toys", "--config"]),
        ("process", ["--executor", "--luminosity"]),
    ],
)  # fmt: skip
def test_help(command, options, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for option in options:
        assert option in text, option


def test_no_command_prints_the_commands(capsys):
    assert main([]) == 2
    out = capsys.readouterr().out
    for command in ("generate", "process", "test", "plot", "demo", "sensitivity"):
        assert command in out


def test_help_texts_are_plain_text():
    """--help shows no reStructuredText roles or literals taken over from docstrings."""
    import argparse

    from symnplm.cli import build_parser

    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert len(sub.choices) >= 8
    for name, command in sub.choices.items():
        text = command.format_help()
        assert "``" not in text and ":mod:`" not in text and ":func:`" not in text, name
