"""The parsed plan as a content-addressed snapshot under the state dir.

The session keeps only the plan's outline (ids, titles, dependencies, files): with every task's
body a 1,000-task plan is megabytes, and Temporal refuses payloads over 2 MB. The texts stay in
`<state_dir>/plans/<sha256 of the file>.json`, where every worker of this state dir reads them;
a task's activities read only their own task. A snapshot that went missing is made again from
the plan file, but only if the file still has the same hash: the session runs what it parsed.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from autopilot.models import Plan, TaskRequest
from autopilot.plan.parser import parse_plan

SNAPSHOT_DIR = "plans"


class SnapshotMissing(Exception):
    """Neither the snapshot nor a plan file with its hash is there any more."""


def snapshot_path(state_dir: str | Path, sha256: str) -> Path:
    if len(sha256) != 64 or not all(c in "0123456789abcdef" for c in sha256):
        raise ValueError(f"not a sha256: {sha256!r}")
    return Path(state_dir) / SNAPSHOT_DIR / f"{sha256}.json"


def save(state_dir: str | Path, plan: Plan) -> None:
    """Write the whole parsed plan (all batches) once; a snapshot never changes."""
    path = snapshot_path(state_dir, plan.sha256)
    if path.is_file():
        return
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # Written aside and renamed: a reader never sees half a snapshot.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".snapshot-")
    try:
        with os.fdopen(fd, "w") as out:
            out.write(plan.model_dump_json())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load(state_dir: str | Path, sha256: str, plan_path: str) -> Plan:
    path = snapshot_path(state_dir, sha256)
    try:
        return Plan.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        pass
    try:
        raw = Path(plan_path).read_bytes()
    except OSError as err:
        raise SnapshotMissing(
            f"the plan snapshot {path} is gone and the plan file cannot be read ({err}); "
            "start the plan again"
        ) from err
    if hashlib.sha256(raw).hexdigest() != sha256:
        raise SnapshotMissing(
            f"the plan snapshot {path} is gone and {plan_path} has changed since the session "
            "parsed it; cancel the session and start the plan again"
        )
    plan = parse_plan(raw.decode("utf-8"), plan_path)
    plan.sha256 = sha256
    save(state_dir, plan)
    return plan


def outline(plan: Plan) -> Plan:
    """The plan without its texts: what the session keeps and carries."""
    return plan.model_copy(
        update={
            "context": "",
            "front_matter": "",
            "ignored": [],
            "kept_fields": [],
            "warnings": [],  # the dry run's; the done tasks stay (the status lists them)
            "outline": True,
            "batches": [
                batch.model_copy(
                    update={
                        "description": "",
                        "tasks": [task.model_copy(update={"body": ""}) for task in batch.tasks],
                    }
                )
                for batch in plan.batches
            ],
        }
    )


def full_request(request: TaskRequest) -> TaskRequest:
    """The request with its task's body, the plan context and the batch description, read
    from the snapshot when the session sent only the outline."""
    if not request.plan_sha256:
        return request  # the texts came inline (sessions recorded before snapshots)
    plan = load(request.state_dir, request.plan_sha256, request.plan_path)
    for batch in plan.batches:
        for task in batch.tasks:
            if task.id == request.task.id:
                return request.model_copy(
                    update={
                        "task": task,
                        "plan_context": plan.context,
                        "batch_description": batch.description,
                    }
                )
    raise SnapshotMissing(f"Task {request.task.id} is not in the plan snapshot {plan.sha256}")
