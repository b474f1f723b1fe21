"""The environment variable names the project's code reads, found in its source, so that what
deploy/ sets is checked against the code itself rather than a list kept by hand.

A name counts when a string literal (or a module-level constant holding one, from any module)
is used where an environment is read: the key of a call on an environment (`env.get(NAME)`,
`os.environ.pop(NAME)`), an argument of a call that is handed an environment
(`_port(env, "AUTOPILOT_TEMPORAL_PORT", ...)`), a subscript of one (`os.environ[NAME]`) or the
left side of `NAME in env`. An environment is an expression whose text names `env` or `environ`.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VARIABLE = re.compile(r"[A-Z][A-Z0-9_]*")
_ENVIRONMENT = re.compile(r"\benv\b|environ")


def code_files(root: Path = ROOT) -> list[Path]:
    """The code a worker or a starter runs: the two entry points and the three packages."""
    files = [root / "worker.py", root / "starter.py"]
    for package in ("autopilot", "activities", "workflows"):
        files += sorted((root / package).rglob("*.py"))
    return files


def _is_environment(node: ast.expr) -> bool:
    return bool(_ENVIRONMENT.search(ast.unparse(node)))


def _keys_read(node: ast.AST) -> Iterator[ast.expr]:
    """The expressions `node` uses as the name of an environment variable, if it reads one."""
    if isinstance(node, ast.Call):
        receiver = node.func.value if isinstance(node.func, ast.Attribute) else None
        if (receiver is not None and _is_environment(receiver)) or any(
            _is_environment(arg) for arg in node.args
        ):
            yield from (arg for arg in node.args if not _is_environment(arg))
    elif (
        isinstance(node, ast.Subscript)
        and isinstance(node.ctx, ast.Load)  # `env[NAME] = ...` sets, for a child
        and _is_environment(node.value)
    ):
        yield node.slice
    elif isinstance(node, ast.Compare) and len(node.ops) == 1:
        if isinstance(node.ops[0], ast.In | ast.NotIn) and _is_environment(node.comparators[0]):
            yield node.left


def _module_constants(tree: ast.Module) -> dict[str, str]:
    constants: dict[str, str] = {}
    for node in tree.body:
        targets: list[ast.expr]
        value: ast.expr | None
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign):
            targets, value = [node.target], node.value
        else:
            continue
        if not (isinstance(value, ast.Constant) and isinstance(value.value, str)):
            continue
        for target in targets:
            if isinstance(target, ast.Name):
                constants[target.id] = value.value
    return constants


def names_read(files: Iterable[Path] | None = None) -> set[str]:
    """Every environment variable name the code in `files` (default: code_files()) reads."""
    trees = [ast.parse(path.read_text(), str(path)) for path in files or code_files()]
    constants: dict[str, str] = {}
    for tree in trees:
        constants |= _module_constants(tree)  # constants are imported across modules by name
    names: set[str] = set()
    for tree in trees:
        for node in ast.walk(tree):
            for key in _keys_read(node):
                if isinstance(key, ast.Constant) and isinstance(key.value, str):
                    name = key.value
                elif isinstance(key, ast.Name) and key.id in constants:
                    name = constants[key.id]
                else:
                    continue
                if VARIABLE.fullmatch(name):
                    names.add(name)
    return names
