"""Payloads recorded before the vocabulary's renames still load, their values under the new
names: `worktree` -> `workspace_path`, `place` -> `origin`, `worktree_removed` ->
`workspace_removed` (tests/histories holds them as the workers of the time sent them)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel

from autopilot.models import (
    AgentInput,
    ChecksInput,
    CommitInput,
    MergeInput,
    MergeResult,
    Plan,
    SessionRequest,
    SetupInput,
    TargetMergeInput,
    VerifyMergeInput,
)
from tests.record_histories import HISTORIES

RENAMED = {"worktree": "workspace_path", "place": "origin", "worktree_removed": "workspace_removed"}
# A TaskSite's `place` is its ExecutionPlace, not a renamed field: it is kept as recorded.
KEPT_UNDER = frozenset({"site"})
INPUTS: dict[str, type[BaseModel]] = {
    "merge_task": MergeInput,
    "run_agent": AgentInput,
    "merge_target": TargetMergeInput,
    "run_checks": ChecksInput,
    "commit_changes": CommitInput,
    "set_up_workspace": SetupInput,
    "verify_merge": VerifyMergeInput,
}
RESULTS: dict[str, type[BaseModel]] = {"merge_task": MergeResult}


def _decoded(payloads: dict[str, Any]) -> Any:
    data = base64.b64decode(payloads["payloads"][0].get("data", ""))
    return json.loads(data) if data else None  # no data: an activity that returned None


def _recorded(kind: str) -> Iterator[tuple[str, Any]]:
    """(activity name, decoded payload) of every recorded activity input or result."""
    for path in sorted(HISTORIES.rglob("*.json")):
        names: dict[str, str] = {}
        for event in json.loads(path.read_text())["events"]:
            scheduled = event.get("activityTaskScheduledEventAttributes")
            if scheduled is not None:
                names[event["eventId"]] = scheduled["activityType"]["name"]
                if kind == "input" and "input" in scheduled:
                    yield scheduled["activityType"]["name"], _decoded(scheduled["input"])
            completed = event.get("activityTaskCompletedEventAttributes")
            if kind == "result" and completed is not None and "result" in completed:
                yield names[completed["scheduledEventId"]], _decoded(completed["result"])


def _renamed(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            RENAMED.get(key, key): item if key in KEPT_UNDER else _renamed(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_renamed(item) for item in value]
    return value


def _holds(loaded: Any, recorded: Any) -> bool:
    """Every value `recorded` has is in `loaded` under the same (new) name."""
    if isinstance(recorded, dict):
        return isinstance(loaded, dict) and all(
            key in loaded and _holds(loaded[key], item) for key, item in recorded.items()
        )
    if isinstance(recorded, list):
        return (
            isinstance(loaded, list)
            and len(loaded) == len(recorded)
            and all(_holds(a, b) for a, b in zip(loaded, recorded, strict=True))
        )
    return bool(loaded == recorded)


def _old_names_in(value: Any) -> bool:
    if isinstance(value, dict):
        return any(
            key in RENAMED or (key not in KEPT_UNDER and _old_names_in(item))
            for key, item in value.items()
        )
    if isinstance(value, list):
        return any(_old_names_in(item) for item in value)
    return False


def _check(kind: str, models: dict[str, type[BaseModel]]) -> int:
    old = 0
    for name, payload in _recorded(kind):
        if name not in models or not _old_names_in(payload):
            continue
        loaded = models[name].model_validate(payload).model_dump(mode="json")
        assert _holds(loaded, _renamed(payload)), (name, payload)
        old += 1
    return old


def test_recorded_activity_inputs_load_under_the_new_names() -> None:
    assert _check("input", INPUTS) > 0


def test_recorded_merge_results_load_under_the_new_names() -> None:
    assert _check("result", RESULTS) > 0


def test_recorded_sessions_and_plans_load_their_execution_place() -> None:
    """`mode` (a session's input) and a batch's `execution_mode` are its `execution_place`;
    the plan's own `execution_mode` (the text of its default field) keeps its name."""
    sessions = plans = 0
    for path in sorted(HISTORIES.rglob("*.json")):
        started = json.loads(path.read_text())["events"][0]
        attributes = started["workflowExecutionStartedEventAttributes"]
        if attributes["workflowType"]["name"] != "SessionWorkflow":
            continue
        recorded = _decoded(attributes["input"])
        if "mode" in recorded:
            loaded = SessionRequest.model_validate(recorded)
            assert loaded.execution_place == recorded["mode"]
            sessions += 1
    for name, recorded in _recorded("result"):
        if name in ("parse_plan", "load_plan") and recorded and "batches" in recorded:
            plan = Plan.model_validate(recorded)
            assert plan.execution_mode == recorded.get("execution_mode", "")
            assert [batch.execution_place for batch in plan.batches] == [
                batch.get("execution_mode") for batch in recorded["batches"]
            ]
            plans += 1
    assert sessions > 0 and plans > 0
