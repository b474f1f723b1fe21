"""README's Layout section names only paths that exist, and every package and module folder of
the product is named there, so that the layout a reader follows is the tree."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# A path in backticks: a folder (`activities/`) or a file with its extension (`worker.py`).
PATH = re.compile(r"`([\w./-]+(?:/|\.py|\.md|\.toml))`")
# The folders whose modules the section names by their bare file names.
BARE_NAMES_UNDER = ("activities", "workflows", "autopilot/models", "autopilot/steps")


def _layout() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("\n## Layout\n")
    return text[start : text.index("\n## ", start + 1)]


def _exists(name: str) -> bool:
    if (ROOT / name).exists():
        return True
    # A bare module name (`site.py`) inside an entry that names its folder.
    return any((ROOT / folder / name).exists() for folder in (*BARE_NAMES_UNDER, "autopilot"))


def test_every_path_the_layout_names_exists() -> None:
    named = PATH.findall(_layout())
    assert named, "README has no Layout section naming paths"
    missing = [name for name in named if not _exists(name) and not _nested(name)]
    assert missing == []


def _nested(name: str) -> bool:
    """A module named under its package's entry (`kinds.py` under `autopilot/git/`)."""
    return any(found.is_file() for found in ROOT.glob(f"autopilot/*/{name}"))


def test_every_package_and_module_of_the_flow_is_named() -> None:
    layout = _layout()
    packages = sorted(
        f"{path.parent.relative_to(ROOT).as_posix()}/"
        for path in ROOT.glob("autopilot/*/__init__.py")
    )
    unnamed = [package for package in packages if f"`{package}`" not in layout]
    for folder in BARE_NAMES_UNDER:
        for module in sorted((ROOT / folder).glob("*.py")):
            if module.name != "__init__.py" and not re.search(
                rf"`({re.escape(folder)}/)?{re.escape(module.name)}`", layout
            ):
                unnamed.append(f"{folder}/{module.name}")
    assert unnamed == []
