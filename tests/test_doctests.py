"""The examples in docstrings (``>>>``) run and print what they say, in every module
that has some."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import symnplm


def _modules_with_examples() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(symnplm.__path__, "symnplm."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        if any(t.examples for t in doctest.DocTestFinder().find(module)):
            names.append(info.name)
    return sorted(names)


MODULES = _modules_with_examples()


def test_there_are_examples_to_run():
    assert len(MODULES) >= 7


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} examples failed"
