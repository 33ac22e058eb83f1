"""Every module of symnplm and symnplm.processors declares its public names in ``__all__``."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import ModuleType

import pytest

import symnplm
import symnplm.processors


def _modules() -> list[str]:
    names = ["symnplm", "symnplm.processors"]
    for package in (symnplm, symnplm.processors):
        for info in pkgutil.walk_packages(package.__path__, prefix=package.__name__ + "."):
            # `python -m` entry points run the command on import
            if not info.name.endswith(".__main__"):
                names.append(info.name)
    return sorted(set(names))


MODULES = _modules()

#: modules (not packages) that list imported names in ``__all__`` on purpose, and why
RE_EXPORTS = {
    "symnplm.inference.test_statistics": "every statistic importable from one place, as "
    "its docstring says (the batch types of .batches, the binned test of .binned)",
    "symnplm.processors.inputs": "the fileset readers of symnplm.io.filesets, for processor "
    "code (its docstring)",
    "symnplm.processors.histograms": "the binning rules of symnplm.physics.binning that it "
    "books histograms with",
}


def test_the_walk_finds_every_layer():
    for layer in ("cli", "engine", "generation", "inference", "io", "physics", "processors"):
        assert f"symnplm.{layer}" in MODULES
    for module in ("symnplm.plotting", "symnplm.processors.emu", "symnplm.workflow.config"):
        assert module in MODULES
    assert not any(name.endswith("__main__") for name in MODULES)


def _defined_here(module: ModuleType) -> dict[str, object]:
    """The public functions and classes whose home is ``module`` (not imported ones)."""
    return {
        name: obj
        for name, obj in vars(module).items()
        if not name.startswith("_")
        and (inspect.isfunction(obj) or inspect.isclass(obj))
        and obj.__module__ == module.__name__
    }


@pytest.mark.parametrize("name", MODULES)
def test_all_lists_the_public_names_the_module_defines(name):
    module = importlib.import_module(name)
    assert hasattr(module, "__all__"), f"{name} has no __all__"
    listed = list(module.__all__)
    assert len(listed) == len(set(listed)), f"{name}.__all__ lists a name twice"
    missing = [n for n in listed if not hasattr(module, n)]
    assert not missing, f"{name}.__all__ names what the module does not have: {missing}"
    unlisted = sorted(set(_defined_here(module)) - set(listed))
    assert not unlisted, f"{name} defines public {unlisted} not in __all__"
    if not hasattr(module, "__path__"):  # a package may re-export its modules' names
        imported = [
            n
            for n in listed
            if (inspect.isfunction(obj := getattr(module, n)) or inspect.isclass(obj))
            and obj.__module__ != name
        ]
        if name in RE_EXPORTS:
            assert imported, f"{name} re-exports nothing: drop it from RE_EXPORTS"
        else:
            assert not imported, f"{name}.__all__ re-exports imported {imported}"
