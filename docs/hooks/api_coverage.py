"""MkDocs hook: every module of the documented packages has a place in the API reference.

The API pages (``docs/api/*.md``) list their modules by hand, one ``::: module`` block
each. A module added to one of the packages they cover (``symnplm.<package>``, the
top-level ``processors/`` folder) but to no page is reported as a warning, which
``mkdocs build --strict`` turns into an error.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
log = logging.getLogger("mkdocs.hooks.api_coverage")


def package_modules(package: str) -> set[str]:
    """Dotted names of the modules of ``symnplm.<package>`` (``__main__`` excepted)."""
    folder = ROOT / "processors" if package == "processors" else ROOT / "src/symnplm" / package
    return {
        f"symnplm.{package}.{path.stem}"
        for path in folder.glob("*.py")
        if not path.stem.startswith("__")
    }


def on_files(files: Any, config: Any, **kwargs: Any) -> Any:
    """Warn about modules of a documented package that no API page renders."""
    api = Path(config["docs_dir"]) / "api"
    rendered: set[str] = set()
    for page in api.glob("*.md"):
        rendered |= set(re.findall(r"^::: ([\w.]+)", page.read_text(), re.MULTILINE))
    packages = {name.split(".")[1] for name in rendered if name.count(".") >= 1}
    for package in sorted(packages):
        if (ROOT / "src/symnplm" / f"{package}.py").is_file():
            continue  # a single module (plotting)
        for module in sorted(package_modules(package) - rendered):
            log.warning("API reference: %s is on no page of docs/api/", module)
    return files
