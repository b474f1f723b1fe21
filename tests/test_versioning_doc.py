"""docs/VERSIONING.md's table matches the code: every patch the workflows use has a row of its
kind, every row's patch is in the code (or, marked removed, is not), and every history
directory the document names exists, as every recorded one is named."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.harness import ROOT
from tests.record_histories import HISTORIES

DOC = ROOT / "docs" / "VERSIONING.md"
WORKFLOWS = ROOT / "workflows"
# workflow.<call>(ID) -> the kind of its row in the table.
PATCH_CALLS = {"patched": "patch", "deprecate_patch": "patch (deprecated)"}
REMOVED = "patch (removed)"
PATCH_KINDS = {*PATCH_CALLS.values(), REMOVED}
HISTORY_DIR = re.compile(r"`(tests/histories/[\w./-]+)`")
CODE_PATH = re.compile(r"`((?:workflows|activities|autopilot|tests)/[\w/]+\.py)")


def string_constants(tree: ast.Module) -> dict[str, str]:
    """The module's NAME = "text" assignments."""
    found = {}
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            found[node.targets[0].id] = node.value.value
    return found


def patch_calls(path: Path) -> list[tuple[str, ast.expr]]:
    """Each `workflow.patched(...)` / `workflow.deprecate_patch(...)`: its call's name and
    argument."""
    return [
        (node.func.attr, node.args[0])
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in PATCH_CALLS
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "workflow"
        and len(node.args) == 1
    ]


def patches_in_code() -> dict[str, str]:
    """Patch id -> the kind of row it needs, over every module of workflows/."""
    found: dict[str, str] = {}
    for path in sorted(WORKFLOWS.glob("*.py")):
        constants = string_constants(ast.parse(path.read_text()))
        for call, argument in patch_calls(path):
            assert isinstance(argument, ast.Name) and argument.id in constants, (
                f"{path.relative_to(ROOT)}: workflow.{call} takes a named constant of its module"
            )
            found[constants[argument.id]] = PATCH_CALLS[call]
    return found


def table_rows(heading: str) -> list[list[str]]:
    """The cells of each row of the table under `heading`, without its header."""
    section = DOC.read_text().split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    return [
        [cell.strip() for cell in re.split(r"(?<!\\)\|", row)[1:-1]]
        for row in rows[2:]  # the header and its |---| line
    ]


def patch_rows() -> dict[str, str]:
    """Patch id -> its kind, for the table's patch rows."""
    rows = {}
    for cells in table_rows("Patches and fallbacks"):
        name, kind = cells[0].strip("`"), cells[1]
        if kind in PATCH_KINDS:
            assert name not in rows, f"two rows for {name}"
            rows[name] = kind
    return rows


def recorded_directories() -> set[str]:
    """Each directory right under tests/histories that holds recorded histories."""
    return {
        (HISTORIES / history.relative_to(HISTORIES).parts[0]).relative_to(ROOT).as_posix()
        for history in HISTORIES.rglob("*.json")
    }


def test_the_workflows_use_patches() -> None:
    assert len(patches_in_code()) >= 5


def test_every_patch_in_the_workflows_has_a_row_of_its_kind() -> None:
    rows = patch_rows()
    wrong = {
        patch: (kind, rows.get(patch))
        for patch, kind in patches_in_code().items()
        if rows.get(patch) != kind
    }
    assert wrong == {}, "patch: (kind in the code, kind in docs/VERSIONING.md)"


def test_every_patch_row_is_in_the_code_unless_removed() -> None:
    in_code = patches_in_code()
    stale = [
        patch for patch, kind in patch_rows().items() if kind != REMOVED and patch not in in_code
    ]
    removed_but_used = [
        patch for patch, kind in patch_rows().items() if kind == REMOVED and patch in in_code
    ]
    assert stale == [] and removed_but_used == []


def test_every_history_directory_the_doc_names_exists() -> None:
    named = set(HISTORY_DIR.findall(DOC.read_text()))
    assert named
    missing = [name for name in sorted(named) if not any((ROOT / name).rglob("*.json"))]
    assert missing == []


def test_every_recorded_history_directory_is_in_the_doc() -> None:
    named = set(HISTORY_DIR.findall(DOC.read_text()))
    assert sorted(recorded_directories() - named) == []


def test_every_module_the_doc_names_exists() -> None:
    named = set(CODE_PATH.findall(DOC.read_text()))
    assert named
    assert sorted(name for name in named if not (ROOT / name).is_file()) == []
