"""Packaging: the wheel holds every file once, the statistics need only numpy/scipy/torch."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: what a core-only install lacks (the hep, plot, dask, generate extras and the CLI's)
OPTIONAL = (
    "awkward uproot vector coffea correctionlib pyarrow hist uhi matplotlib mplhep "
    "dask distributed numba yaml rich pydantic pythia8mc"
).split()

_BLOCKER = textwrap.dedent(
    f"""
    import importlib.abc, sys
    class _Absent(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {set(OPTIONAL)!r}:
                raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
    sys.meta_path.insert(0, _Absent())
    for name in [m for m in sys.modules if m.split(".")[0] in {set(OPTIONAL)!r}]:
        del sys.modules[name]
    """
)


def _run(code: str, cwd: Path, env_path: str | None = None) -> subprocess.CompletedProcess:
    env = None
    if env_path is not None:
        import os

        env = os.environ | {"PYTHONPATH": env_path}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, env=env, timeout=300
    )


def test_statistics_run_with_the_core_dependencies_only(tmp_path):
    """Without any optional package, a seeded symmetrized test runs end to end."""
    code = _BLOCKER + textwrap.dedent(
        """
        import numpy as np
        from symnplm.engine import FitConfig
        from symnplm.generation.toymodels import ToyModel
        from symnplm.inference import SymmetrizedTest
        import symnplm.systematics
        a, b = ToyModel(300, 3000, signal="S3", n_signal=30)(np.random.default_rng(1))
        test = SymmetrizedTest((1, 3, 1), fit=FitConfig(optimizer="newton", max_iter=30))
        res = test.fit(a, b, seed=1)
        assert np.isfinite(res.t) and res.t > 0, res
        hep = [m for m in sys.modules if m.split(".")[0] in {"awkward", "coffea", "matplotlib"}]
        assert not hep, hep
        print("t =", res.t)
        """
    )
    out = _run(code, tmp_path)
    assert out.returncode == 0, out.stderr
    assert "t =" in out.stdout


def test_cli_names_the_missing_extra_in_one_line(tmp_path):
    """``symnplm --help`` on a core-only install: one line naming the package and extra."""
    code = _BLOCKER + "from symnplm.cli import main\nsys.exit(main(['--help']))\n"
    out = _run(code, tmp_path)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert "pip install 'symnplm[all]'" in lines[0]
    assert "Traceback" not in out.stderr


@pytest.mark.slow
def test_wheel_has_each_file_once_and_runs_outside_the_checkout(tmp_path):
    """The wheel ships processors/ as symnplm.processors, once, with LICENSE and py.typed."""
    pytest.importorskip("hatchling")
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path / "dist"), str(ROOT)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    (wheel,) = (tmp_path / "dist").glob("symnplm-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert len(names) == len(set(names))
    sources = [n for n in names if n.endswith(".py")]
    assert all(n.startswith("symnplm/") for n in sources), sources
    plugin = sorted(p.name for p in (ROOT / "processors").glob("*.py"))
    shipped = sorted(n.rsplit("/", 1)[1] for n in sources if n.startswith("symnplm/processors/"))
    assert shipped == plugin
    assert "symnplm/py.typed" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    # the version is written once, in symnplm/__init__.py
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    import symnplm

    assert f"Version: {symnplm.__version__}" in zipfile.ZipFile(wheel).read(metadata).decode()

    unpacked = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(unpacked)
    code = (
        "import symnplm, symnplm.processors.emu as emu, symnplm.cli as cli\n"
        "print(symnplm.__file__); print(emu.__file__)\n"
        "raise SystemExit(cli.main(['process', '--help']))\n"
    )
    out = _run(code, tmp_path, env_path=str(unpacked))
    assert out.returncode == 0, out.stderr
    first, second = out.stdout.splitlines()[:2]
    assert first.startswith(str(unpacked)) and second.startswith(str(unpacked))
