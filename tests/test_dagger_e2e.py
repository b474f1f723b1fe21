"""End to end in a real Dagger engine: a 3-task plan with `--execution-place dagger`, each task's
agent (the real claude CLI, talking to the scripted model on the worker's loopback through a host
service) in its own container, reviewed by the repo's check run in the same image, merged.

It runs wherever an engine is reachable (a dagger CLI on PATH, or DAGGER_SESSION_PORT and
DAGGER_SESSION_TOKEN of a live session) and is skipped, with the preflight's reason, anywhere
else. The first run builds the image (pulls node, apt-get, npm ci): allow it minutes.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from autopilot import git as gitops
from autopilot.agent import EngineUnavailable, engine_preflight
from autopilot.models import SessionState
from autopilot_testing import PlanFollower, ScriptedModel
from tests.gitutil import git
from tests.harness import autopilot

pytestmark = [pytest.mark.dagger, pytest.mark.timeout(1800)]

PLAN = """\
# Three tasks in containers

## Batch 1: Modules

### Task 1.1: Alpha

**Files:**
- Create: `alpha.py`

```python
ALPHA = 1
```

### Task 1.2: Beta

**Files:**
- Create: `beta.py`

```python
BETA = 2
```

### Task 1.3: Gamma

**Files:**
- Create: `gamma.py`

```python
GAMMA = 3
```
"""
FILES = {"alpha.py": "ALPHA = 1", "beta.py": "BETA = 2", "gamma.py": "GAMMA = 3"}


def test_a_plan_runs_with_each_agent_in_a_container(tmp_path: Path, repo: Path) -> None:
    try:
        engine = engine_preflight(os.environ)
    except EngineUnavailable as err:
        pytest.skip(f"no Dagger engine: {str(err).removeprefix('no Dagger engine: ')}")
    plan = tmp_path / "plan.md"
    plan.write_text(PLAN)
    with (
        ScriptedModel(PlanFollower()) as model,
        autopilot(tmp_path / "autopilot", model.env()) as installation,
    ):
        done = installation.starter(
            str(plan),
            "--repo", str(repo),
            "--execution-place", "dagger",
            "--concurrency", "3",
            "--review", "checks",
            "--check", "git diff --quiet HEAD",  # in the image: git is there, the tree committed
            timeout=1500,
        )  # fmt: skip
        assert done.returncode == 0, f"{engine.describe()}\n{done.stdout}\n{done.stderr}"
        session_id = done.stdout.split("session ", 1)[1].split()[0]
        status = installation.status(session_id)
        assert status.status == SessionState.COMPLETED
        assert status.tasks_completed == status.tasks_total == 3
        merged = dict(gitops.list_merges(str(repo), "main", session_id))
        assert sorted(merged) == ["1.1", "1.2", "1.3"]
    for name, text in FILES.items():
        assert git(repo, "show", f"main:{name}") == text
