"""The workflows read as a story and the activities stay thin: no function in either is longer
than a screen (issue 27). A longer one is a sign that a step's logic belongs in autopilot/."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LONGEST = 60  # lines, from `def` to its last line, decorators not counted


def long_functions(folder: Path) -> list[str]:
    found = []
    for path in sorted(folder.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > LONGEST:
                    found.append(f"{path}:{node.lineno} {node.name} ({lines})")
    return found


def test_no_function_in_workflows_or_activities_is_longer_than_a_screen() -> None:
    found = long_functions(ROOT / "workflows") + long_functions(ROOT / "activities")
    assert not found, f"functions over {LONGEST} lines: {found}"


def test_the_check_sees_a_long_function(tmp_path: Path) -> None:
    body = "\n".join(f"    x{n} = {n}" for n in range(LONGEST))
    (tmp_path / "long.py").write_text(f"def long() -> None:\n{body}\n")
    assert [line.split(" ")[1] for line in long_functions(tmp_path)] == ["long"]
