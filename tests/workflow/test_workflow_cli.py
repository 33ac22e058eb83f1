"""Every ``symnplm`` command: ``--help`` with options and defaults; errors, Ctrl-C: one line."""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import time

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
    from symnplm.cli import build_parser

    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert len(sub.choices) >= 8
    for name, command in sub.choices.items():
        text = command.format_help()
        assert "``" not in text and ":mod:`" not in text and ":func:`" not in text, name


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    from symnplm.cli import build_parser

    (sub,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def _run_file_defaults(name: str) -> tuple[dict[str, str], object]:
    """Options that override a run/scan file (argparse default SUPPRESS or None): their
    destination -> dotted key, and the description whose default they show."""
    from symnplm.cli import scan as scan_cli
    from symnplm.cli import test as test_cli
    from symnplm.workflow.config import InjectionSpec, RunConfig
    from symnplm.workflow.scan import ScanConfig

    if name in ("test", "sensitivity"):
        # inject is None by default; its keys take InjectionSpec's defaults once given
        return test_cli.FLAG_KEYS, RunConfig(inject=InjectionSpec())
    if name == "scan":
        return scan_cli.FLAG_KEYS, ScanConfig()
    return {}, None


def _parse_shown(action: argparse.Action, text: str) -> object:
    """The value ``text`` (as shown in the help) gives when typed after ``action``."""
    if isinstance(action, argparse.BooleanOptionalAction):
        return {"True": True, "False": False}[text]
    convert = action.type or str
    if action.nargs in ("+", "*") or isinstance(action.nargs, int):
        return [convert(v) for v in text.split()]
    return convert(text)


def test_every_default_is_shown_once_and_is_the_parsers(monkeypatch):
    """--help of every sub-command shows each option's default exactly once, as
    ``(default: VALUE)``, and VALUE typed back is the default the option really has
    (the argparse default, or the run/scan description's for flags that override a file).

    Flags without a value (``--quiet``) and defaults that are None or empty show none.
    """
    import functools

    monkeypatch.setenv("COLUMNS", "100000")  # no line wrapping (it may break at a hyphen)
    checked = 0
    for name, command in _subcommands().items():
        keys, root = _run_file_defaults(name)
        full = " ".join(command.format_help().split())
        assert "(default: None)" not in full, name
        for action in command._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            if action.dest in keys:
                expected = functools.reduce(getattr, keys[action.dest].split("."), root)
            else:
                expected = action.default
            if isinstance(expected, tuple):
                expected = list(expected)
            takes_value = action.nargs != 0 or isinstance(action, argparse.BooleanOptionalAction)
            if not takes_value or expected in (None, argparse.SUPPRESS, []):
                continue
            block = " ".join(command._get_formatter()._format_action(action).split())
            assert block in full
            where = f"{name} {'/'.join(action.option_strings) or action.dest}"
            assert len(re.findall("default", block, flags=re.IGNORECASE)) == 1, (where, block)
            shown = re.search(r"\(default: ([^()]*)\)", block)
            assert shown is not None, (where, block)
            assert _parse_shown(action, shown.group(1)) == expected, (where, shown.group(1))
            checked += 1
    assert checked > 60  # every sub-command's options, not an empty walk


def test_every_subcommand_ends_through_the_shared_wrapper():
    """Every registered sub-command runs inside :func:`symnplm.cli.errors.command`."""
    from symnplm.cli.errors import command

    shared = command()(lambda args: 0).__code__
    for name, parser in _subcommands().items():
        assert parser.get_default("func").__code__ is shared, name


TOY_PERMUTATIONS = [
    "--n-a", "400", "--n-b", "400", "--signal", "S3", "--n-signal", "50",
    "--max-iter", "15", "--seed", "2", "--calibration", "permutations:120",
    "--batch-size", "3", "--quiet",
]  # fmt: skip


@pytest.mark.slow
def test_ctrl_c_is_one_line_and_the_same_command_resumes(tmp_path):
    """Ctrl-C during the permutations of ``symnplm test`` on a local cluster of two worker
    processes (SIGINT to the whole process group, as a terminal sends it): exit 130 and
    the one ``interrupted`` line, no traceback of the command or of a worker, no dask log;
    the same command then finishes from the batches on disk without recomputing them."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "symnplm.cli", "test", *TOY_PERMUTATIONS, "--workers", "2"]
    cmd += ["--output", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,  # its own process group: the signal reaches no one else
    )  # fmt: skip
    deadline = time.monotonic() + 180
    while not list((out / "campaign").glob("batch-*.npz")) and time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "CRITICAL" not in stderr and "distributed" not in stderr
    assert stderr.splitlines() == [
        "interrupted: finished batches are kept; the same command resumes the run"
    ]
    done = sorted((out / "campaign").glob("batch-*.npz"))
    assert 1 <= len(done) < 40 and not (out / "run.json").exists()
    stamps = {p: p.stat().st_mtime_ns for p in done}

    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert "120 replicas" in rerun.stdout and (out / "run.json").is_file()
    assert {p: p.stat().st_mtime_ns for p in done} == stamps


@pytest.mark.parametrize("command", ["demo", "closure", "sensitivity"])
def test_an_os_error_is_one_line_naming_the_path(command, tmp_path, capsys):
    """An OSError (an output directory that is a file; a run file that is a directory)
    ends demo, closure and sensitivity with one ``error:`` line naming the path, exit 2."""
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the output directory should go")
    config = tmp_path / "run.yaml"
    config.mkdir()
    argv = {
        "demo": ["demo", "-o", str(blocked), "--workers", "1", "--quiet"],
        "closure": ["closure", "--test", str(config), "--calibration", str(config),
                    "-o", str(blocked), "--quiet"],
        "sensitivity": ["sensitivity", "--config", str(config), "--brs", "0.01"],
    }[command]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    path = config if command == "sensitivity" else blocked
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and str(path) in err, err


def test_the_traceback_of_an_error_line_on_request(tmp_path, capsys, monkeypatch):
    """``SYMNPLM_TRACEBACK=1`` raises what would be one ``error:`` line (a bug raising a
    ValueError is otherwise indistinguishable from a user's mistake); 0 or unset: the line."""
    from symnplm.cli.errors import TRACEBACK_VARIABLE

    config = tmp_path / "run.yaml"
    config.mkdir()
    argv = ["sensitivity", "--config", str(config), "--brs", "0.01"]
    monkeypatch.setenv(TRACEBACK_VARIABLE, "0")
    assert main(argv) == 2 and capsys.readouterr().err.startswith("error: ")
    monkeypatch.setenv(TRACEBACK_VARIABLE, "1")
    with pytest.raises(OSError, match="run.yaml"):
        main(argv)


def test_an_error_raised_by_an_interrupt_is_the_interrupt(capsys):
    """A ValueError raised while Ctrl-C unwinds (a zip file closed half-written) ends as
    the interrupt: exit 130 and the one ``interrupted`` line, not an error line."""
    from symnplm.cli.errors import command

    def run(args):
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise ValueError("Can't close the ZIP file while there is an open writing handle")  # noqa: B904 (as zipfile does)

    assert command("the same command resumes")(run)(argparse.Namespace()) == 130
    assert capsys.readouterr().err.strip() == "interrupted: the same command resumes"
