"""Every workspace at one fixed path in the sandbox, end to end: the real worker, server,
sandbox and CLI (scripted model). A Python package with an editable install in a cached venv
(README.md, "Ready workspaces"): the venv records its workspace's absolute path, and a later
task's workspace that gets the venv from the cache imports the package through it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from autopilot.models import TaskState
from autopilot.steps.site import workspace_inside
from autopilot_testing import PlanFollower, ScriptedModel
from tests.gitutil import commit_file, git
from tests.harness import autopilot

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

# No network in the sandbox: the venv takes the machine's pip from the interpreter it is
# made from and this test run's pytest through a .pth; the package's own build backend (in
# the repository, PEP 660) makes the editable wheel without setuptools or wheel.
SITE = next(Path(entry) for entry in sys.path if entry.endswith("site-packages"))
BASE_PYTHON = Path(sys.base_prefix) / "bin" / "python3"
VENV_SITE = f".venv/lib/python{sys.version_info[0]}.{sys.version_info[1]}/site-packages"
SETUP = [
    f"{BASE_PYTHON} -m venv --system-site-packages --without-pip .venv",
    f"sh -c 'echo {SITE} > {VENV_SITE}/machine-pytest.pth'",
    ".venv/bin/python -m pip install -q --no-deps --no-build-isolation --no-index -e .",
]
CHECK = ".venv/bin/python -m pytest -q -p no:cacheprovider"
# After a restore: the venv imports the package before anything else runs.
AFTER_RESTORE = ".venv/bin/python -c 'import calc.core'"

PYPROJECT = """\
[build-system]
requires = []
build-backend = "editable_backend"
backend-path = ["."]

[project]
name = "calc"
version = "0.1"
"""
# An in-tree PEP 660 backend: the editable wheel holds a .pth naming src/ by its absolute
# path, as setuptools' does; pip runs it in the workspace, so the path is where the
# workspace is inside the sandbox.
BACKEND = """\
import base64, hashlib, os, zipfile

NAME, VERSION = "calc", "0.1"
INFO = f"{NAME}-{VERSION}.dist-info"


def _record(files):
    lines = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        lines.append(f"{name},sha256={digest},{len(data)}")
    return "\\n".join(lines + [f"{INFO}/RECORD,,"]) + "\\n"


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    files = {
        f"__editable__.{NAME}.pth": (os.path.abspath("src") + "\\n").encode(),
        f"{INFO}/METADATA": f"Metadata-Version: 2.1\\nName: {NAME}\\n"
        f"Version: {VERSION}\\n".encode(),
        f"{INFO}/WHEEL": b"Wheel-Version: 1.0\\nGenerator: editable_backend\\n"
        b"Root-Is-Purelib: true\\nTag: py3-none-any\\n",
    }
    wheel = f"{NAME}-{VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, wheel), "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
        archive.writestr(f"{INFO}/RECORD", _record(files))
    return wheel
"""
MODULES = {
    "src/calc/__init__.py": '"""A small calculator."""\n',
    "src/calc/core.py": "def add(a: int, b: int) -> int:\n    return a + b\n",
    "tests/test_core.py": (
        "from calc.core import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"
    ),
}


def task(number: int) -> str:
    """Task 1.<number>: a module of the package and its test (which imports the package)."""
    module = f"def times{number}(x: int) -> int:\n    return x * {number}\n"
    test = (
        f"from calc.core import add\nfrom calc.m{number} import times{number}\n\n\n"
        f"def test_times{number}():\n    assert times{number}(add(1, 1)) == {2 * number}\n"
    )
    return (
        f"\n### Task 1.{number}: Module m{number}\n\n**Files:**\n"
        f"- Create: `src/calc/m{number}.py`\n- Create: `tests/test_m{number}.py`\n\n"
        f"```python\n{module}```\n\n```python\n{test}```\n"
    )


def make_package(repo: Path) -> None:
    commit_file(repo, "pyproject.toml", PYPROJECT)
    commit_file(repo, "editable_backend.py", BACKEND)
    for name, text in MODULES.items():
        commit_file(repo, name, text)
    commit_file(
        repo,
        ".autopilot.toml",
        f'[review]\nmode = "checks"\nchecks = {json.dumps([CHECK])}\nverify_merged = true\n\n'
        f"[workspace]\nsetup = {json.dumps(SETUP)}\n"
        'cache_key = ["pyproject.toml"]\ncache_dirs = [".venv"]\n'
        f"after_restore = {json.dumps([AFTER_RESTORE])}\n",
    )


@pytest.mark.reliability(
    "a cached venv holds an editable install, recorded by its workspace's absolute path",
    "real session, concurrency 2, verify_merged: every workspace is at /workspace/<repo> in "
    "the sandbox; the third task's venv comes from the cache and its check imports the package",
)
def test_a_cached_editable_install_works_in_a_later_workspace(tmp_path: Path, repo: Path) -> None:
    make_package(repo)
    plan = tmp_path / "plan.md"
    plan.write_text("# Modules\n\n## Batch 1: All\n" + "".join(task(n) for n in (1, 2, 3)))
    with (
        ScriptedModel(PlanFollower()) as model,
        autopilot(tmp_path / "autopilot", model.env()) as installation,
    ):
        done = installation.starter(str(plan), "--repo", str(repo), "--concurrency", "2")
        assert done.returncode == 0, done.stdout + done.stderr
        session = done.stdout.split("Started session ", 1)[1].split()[0]
        tasks = {task.id: task for task in installation.status(session).tasks}

    assert all(task.state == TaskState.MERGED for task in tasks.values()), tasks
    third = tasks["1.3"]
    assert third.setup == "from cache" and third.setup_runs[0].from_cache
    [restored] = third.setup_runs[0].commands  # after_restore alone: the setup did not run
    assert restored.command == AFTER_RESTORE and restored.passed, restored.output_tail
    assert [run.command for run in tasks["1.1"].setup_runs[0].commands] == SETUP
    assert third.reviews[-1].checks[0].passed, third.reviews[-1].checks[0].output_tail
    assert " passed" in third.reviews[-1].checks[0].output_tail
    # What the cache holds names the fixed path, not the workspace of the task that made it.
    key = third.setup_runs[0].key
    cached = installation.state_dir / "setup-cache" / key / "tree" / VENV_SITE
    recorded = (cached / "__editable__.calc.pth").read_text().strip()
    assert recorded == f"{workspace_inside(str(repo))}/src"
    merged = git(repo, "ls-tree", "-r", "--name-only", "main").split()
    assert {f"src/calc/m{n}.py" for n in (1, 2, 3)} <= set(merged)
    assert not any(path.startswith(".venv/") for path in merged)


# A Node project (README.md's recipe, offline): a local package with a bin, linked by npm ci
# into node_modules and node_modules/.bin; `npm test` runs the bin.
NODE_FILES = {
    "package.json": json.dumps(
        {
            "name": "shop",
            "version": "1.0.0",
            "private": True,
            "scripts": {"test": "greet && node test.js"},
            "devDependencies": {"greet": "file:tools/greet"},
        }
    ),
    "tools/greet/package.json": json.dumps(
        {"name": "greet", "version": "1.0.0", "bin": {"greet": "bin.js"}}
    ),
    "tools/greet/bin.js": '#!/usr/bin/env node\nconsole.log("hello from greet");\n',
    "test.js": 'console.log("shop tested");\n',
}
NODE_SETUP = "npm ci --offline --no-audit --no-fund"


def make_node_project(repo: Path) -> None:
    for name, text in NODE_FILES.items():
        commit_file(repo, name, text)
    (repo / "tools/greet/bin.js").chmod(0o755)
    subprocess.run(
        ["npm", "install", "--package-lock-only", "--offline", "--no-audit", "--no-fund"],
        cwd=repo,
        check=True,
        capture_output=True,
        timeout=120,
    )
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "The project's lock file")
    commit_file(
        repo,
        ".autopilot.toml",
        '[review]\nmode = "checks"\nchecks = ["npm test"]\n\n'
        f"[workspace]\nsetup = {json.dumps([NODE_SETUP])}\n"
        'cache_key = ["package-lock.json"]\ncache_dirs = ["node_modules"]\n',
    )


@pytest.mark.skipif(shutil.which("npm") is None, reason="needs npm")
def test_a_cached_node_modules_runs_its_bin_in_a_later_workspace(
    tmp_path: Path, repo: Path
) -> None:
    make_node_project(repo)
    plan = tmp_path / "plan.md"
    plan.write_text(
        "# Notes\n\n## Batch 1: All\n"
        + "".join(
            f"\n### Task 1.{n}: Note {n}\n\n**Files:**\n- Create: `note{n}.txt`\n\n```\n{n}\n```\n"
            for n in (1, 2)
        )
    )
    with (
        ScriptedModel(PlanFollower()) as model,
        autopilot(tmp_path / "autopilot", model.env()) as installation,
    ):
        done = installation.starter(str(plan), "--repo", str(repo))
        assert done.returncode == 0, done.stdout + done.stderr
        session = done.stdout.split("Started session ", 1)[1].split()[0]
        tasks = {task.id: task for task in installation.status(session).tasks}

    first, second = tasks["1.1"], tasks["1.2"]
    assert first.state == second.state == TaskState.MERGED
    assert first.setup.startswith("ran 1 command(s)") and second.setup == "from cache"
    check = second.reviews[-1].checks[0]
    assert check.passed and "hello from greet" in check.output_tail, check.output_tail
    merged = git(repo, "ls-tree", "-r", "--name-only", "main").split()
    assert not any(path.startswith("node_modules/") for path in merged)
