"""The documentation: the site builds with ``mkdocs build --strict``; the README's example runs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    """This checkout's sources first, whatever is installed."""
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT / "src"), env.get("PYTHONPATH", "")) if p
    )
    return env


@pytest.mark.slow
def test_site_builds_strict(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs")
    pytest.importorskip("material")
    pytest.importorskip("mkdocstrings_handlers.python")
    if not (ROOT / "mkdocs.yml").is_file():
        pytest.skip("no mkdocs.yml (not a source checkout)")
    site = tmp_path / "site"
    command = [sys.executable, "-m", "mkdocs", "build", "--strict"]
    proc = subprocess.run(
        [*command, "-f", str(ROOT / "mkdocs.yml"), "--site-dir", str(site)],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # the generated pages: every sub-command, every run-file key, the API reference
    cli = (site / "cli" / "index.html").read_text()
    for command in ("test", "generate", "process", "plot", "demo", "sensitivity", "closure"):
        assert f'id="symnplm-{command}"' in cli, command
    assert "--calibration" in cli
    schema = (site / "run-files" / "index.html").read_text()
    for key in ("calibration.batch_size", "statistic.max_iter", "a.variation", "toy.n_signal"):
        assert key in schema, key
    assert (
        'id="symnplm.processors.emu.EMuProcessor"'
        in (site / "api" / "processors" / "index.html").read_text()
    )


@pytest.mark.slow
def test_readme_example_runs(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.DOTALL)
    assert len(blocks) == 1, "the README has one Python example"
    proc = subprocess.run(
        [sys.executable, "-c", blocks[0]],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    t, dof, p, _ = re.fullmatch(
        r"t = (\S+), dof = (\d+), p = (\S+), Z = (\S+)\n", proc.stdout
    ).groups()
    assert int(dof) == 12
    assert float(t) > 0 and 0 < float(p) <= 1
