"""Container mode wired end to end, up to the engine: the real starter, worker, Temporal dev
server and task workflow, with the Dagger engine answered by the GraphQL stand-in of
tests/dagger_standin.py on a loopback session port.

A plan whose first batch says `**Execution Mode:** dagger` and whose second runs locally: the
first batch's agent runs in the stand-in's "container" (its exec answers with the agent's
stream, its export writes the agent's file into the workspace), its check runs in the same
image, and it merges like any task; the second batch's agent is the real claude CLI in the
sandbox with the scripted model. Judged by git, and by the engine's recorded requests.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from autopilot import git as gitops
from autopilot.agent import PORT_VAR, TOKEN_VAR
from autopilot.models import SessionState
from autopilot_testing import PlanFollower, ScriptedModel
from tests.dagger_standin import Container, Directory, ExecResult, StandIn
from tests.gitutil import commit_file, git
from tests.harness import ROOT, autopilot, clean_env, free_port, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

KEY = "sk-ant-container-e2e-0123456789"
WORKDIR = "/workspace/repo"  # the fixture repository's fixed path (TaskSite.inside, steps/site.py)
PLAN = """\
# Two places

## Batch 1: In a container

**Execution Mode:** dagger

### Task 1.1: Alpha

**Files:**
- Create: `alpha.txt`

```
alpha
```

## Batch 2: Here

### Task 2.1: Beta

**Files:**
- Create: `beta.txt`

```
beta
```
"""


def agent_stream(session_id: str) -> str:
    lines: list[dict[str, Any]] = [
        {"type": "system", "subtype": "init", "session_id": session_id},
        {"type": "assistant", "message": {"id": "m1", "usage": {"output_tokens": 5}}},
        {
            "type": "result",
            "subtype": "success",
            "is_error": False,
            "num_turns": 1,
            "total_cost_usd": 0.01,
            "result": "wrote alpha.txt",
        },
    ]
    return "".join(json.dumps(line) + "\n" for line in lines)


class Engine:
    """The stand-in's answers: the agent's exec writes alpha.txt in its copy of the
    workspace, a check's exec passes, and the export brings the copy back."""

    def __init__(self, engine: StandIn, tmp_path: Path) -> None:
        self.engine = engine
        self.tmp_path = tmp_path
        self.copies: dict[str, Path] = {}
        self.execs: list[list[str]] = []
        engine.on_exec, engine.on_export = self.on_exec, self.on_export

    def workspace_of(self, container: Container) -> Path:
        mounted = [a["source"] for a in container.op("withDirectory") if a["path"] == WORKDIR]
        source = self.engine.objects[mounted[-1]]
        assert isinstance(source, Directory)
        return Path(source.source)

    def on_exec(self, container: Container) -> ExecResult:
        argv = container.op("withExec")[-1]["args"]
        self.execs.append(argv)
        if "-p" not in argv:  # a check in the same image
            return ExecResult(0, "check passed\n", "")
        host = self.workspace_of(container)
        copy = self.tmp_path / f"container-{len(self.copies)}"
        shutil.copytree(host, copy, symlinks=True)
        (copy / "alpha.txt").write_text("alpha\n")
        self.copies[str(host)] = copy
        session = next(a.split("=", 1)[1] for a in argv if a.startswith("--session-id="))
        return ExecResult(0, agent_stream(session), "")

    def on_export(self, directory: Directory, path: str, wipe: bool) -> None:
        copy = self.copies[path]
        shutil.rmtree(path)
        shutil.copytree(copy, path, symlinks=True)


def test_a_dagger_batch_runs_in_the_container_and_the_next_one_here(
    tmp_path: Path, repo: Path
) -> None:
    commit_file(repo, ".autopilot.toml", '[review]\nmode = "checks"\nchecks = ["true"]\n')
    plan = tmp_path / "plan.md"
    plan.write_text(PLAN)
    engine = StandIn().start()
    Engine(engine, tmp_path)
    try:
        with (
            ScriptedModel(PlanFollower()) as model,
            autopilot(tmp_path / "autopilot", model.env() | {"ANTHROPIC_API_KEY": KEY}) as ap,
        ):
            ap.extra_env.update({PORT_VAR: str(engine.port), TOKEN_VAR: engine.token})
            dry = ap.starter(str(plan), "--repo", str(repo), "--dry-run")
            assert "execution mode: parallel, dagger" in dry.stdout, dry.stdout
            assert "execution mode: parallel, local" in dry.stdout
            session = ap.start_detached(plan, repo)
            done = ap.starter("watch", session, timeout=150)
            assert done.returncode == 0, done.stdout + done.stderr
            assert ap.status(session).status == SessionState.COMPLETED
    finally:
        engine.stop()

    assert [t for t, _ in gitops.list_merges(str(repo), "main", session)] == ["1.1", "2.1"]
    assert git(repo, "show", "main:alpha.txt") == "alpha"
    assert git(repo, "show", "main:beta.txt") == "beta"
    # Batch 1's agent and check ran in the engine, batch 2's did not: one agent exec, one check.
    agent_runs = [argv for argv in engine_execs(engine) if "-p" in argv]
    assert len(agent_runs) == 1
    assert any(argv == ["true"] for argv in engine_execs(engine))
    # The key went in once, as a secret, and is named by reference everywhere else.
    carrying = [query for query in engine.pipeline() if KEY in query]
    assert len(carrying) == 1 and "setSecret" in carrying[0]


def engine_execs(engine: StandIn) -> list[list[str]]:
    return [c.op("withExec")[-1]["args"] for c in engine.executed()]


def test_mode_dagger_without_an_engine_starts_nothing(tmp_path: Path, repo: Path) -> None:
    plan = tmp_path / "plan.md"
    plan.write_text(PLAN.replace("**Execution Mode:** dagger\n", ""))
    env = clean_env() | {
        "AUTOPILOT_STATE_DIR": str(tmp_path / "state"),
        "PATH": "/usr/bin:/bin",  # no dagger CLI
        PORT_VAR: str(free_port()),  # a session port where nothing answers
        TOKEN_VAR: "token",
    }
    for extra, said in (
        (
            ["--execution-place", "dagger"],
            "--execution-place dagger runs tasks in containers, but nothing answers",
        ),
    ):
        done = subprocess.run(
            [sys.executable, str(ROOT / "starter.py"), str(plan), "--repo", str(repo), *extra],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        assert done.returncode == 2, done.stdout + done.stderr
        assert said in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "state" / "temporal").exists()  # no server was started
    batch = tmp_path / "batch.md"
    batch.write_text(PLAN)
    done = subprocess.run(
        [sys.executable, str(ROOT / "starter.py"), str(batch), "--repo", str(repo)],
        env=env | {PORT_VAR: ""},
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "**Execution Mode:** dagger in batch 1 runs tasks in containers" in done.stderr
    assert "no Dagger engine" in done.stderr and "dl.dagger.io" in done.stderr


def test_an_engine_lost_mid_session_pauses_it_with_the_reason(tmp_path: Path, repo: Path) -> None:
    plan = tmp_path / "plan.md"
    plan.write_text(PLAN)
    engine = StandIn().start()
    engine.hang_on = lambda query: "sync" in query  # the agent's exec never ends by itself
    with (
        ScriptedModel(PlanFollower()) as model,
        autopilot(tmp_path / "autopilot", model.env() | {"ANTHROPIC_API_KEY": KEY}) as ap,
    ):
        ap.extra_env.update({PORT_VAR: str(engine.port), TOKEN_VAR: engine.token})
        session = ap.start_detached(plan, repo)
        wait_until(lambda: bool(engine.in_flight), 120, "the agent's exec to reach the engine")
        engine.stop()  # the engine goes away while the agent runs

        def paused() -> bool:
            return ap.status(session).paused

        wait_until(paused, 120, "the session to pause")
        status = ap.status(session)
        assert "ContainerSetup" in (status.pause_reason or ""), status.pause_reason
        assert "nothing answers" in (status.pause_reason or "")
        # The engine's, or [container]'s: the pause names both ways on.
        assert f"`starter.py resume {session}`;" in (status.pause_reason or "")
        assert f"`starter.py resume --reload-config {session}`" in (status.pause_reason or "")
        first = next(task for task in status.tasks if task.id == "1.1")
        assert first.lost_runs >= 1  # the run cut off by the engine was lost, not failed
    assert gitops.list_merges(str(repo), "main", session) == []
