"""Cut GitHub's REST description down to the operations the pipeline uses (run by hand).

    .venv/bin/python -m autopilot_testing.github_standin.trim_spec \
        /tmp/octo/package/generated/api.github.com.json \
        autopilot_testing/github_standin/github-rest.trimmed.json

Keeps those operations and every component they reference, transitively, so the result is a
self-contained OpenAPI document openapi-core can load.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

OPERATIONS = (
    "repos/get",
    "repos/get-branch",
    "repos/get-branch-protection",
    "repos/get-branch-rules",
    "pulls/list",
    "pulls/create",
    "pulls/get",
    "pulls/update",
    "pulls/merge",
    "pulls/list-reviews",
    "pulls/list-review-comments",
    "pulls/list-comments-for-review",
    "pulls/create-review",
    "pulls/list-files",
    "issues/add-labels",
    "issues/create-comment",
    "repos/get-combined-status-for-ref",
    "repos/create-commit-status",
    "checks/list-for-ref",
    "checks/create",
    "git/delete-ref",
    "repos/get-collaborator-permission-level",
    "users/get-authenticated",
    "apps/get-repo-installation",
    "apps/create-installation-access-token",
    "rate-limit/get",
)
METHODS = ("get", "put", "post", "patch", "delete")


def _refs(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            found.add(ref)
        for value in node.values():
            _refs(value, found)
    elif isinstance(node, list):
        for value in node:
            _refs(value, found)


def trim(spec: dict[str, Any]) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for path, item in spec["paths"].items():
        kept = {
            method: op
            for method, op in item.items()
            if method in METHODS and op.get("operationId") in OPERATIONS
        }
        if kept:
            shared = {k: v for k, v in item.items() if k not in METHODS}
            paths[path] = {**shared, **kept}
    found_ops = {
        op["operationId"] for item in paths.values() for m, op in item.items() if m in METHODS
    }
    missing = set(OPERATIONS) - found_ops
    if missing:
        raise SystemExit(f"not in the description: {sorted(missing)}")
    wanted: set[str] = set()
    _refs(paths, wanted)
    components: dict[str, dict[str, Any]] = {}
    seen: set[str] = set()
    while wanted - seen:
        ref = sorted(wanted - seen)[0]
        seen.add(ref)
        _, _, kind, name = ref.split("/", 3)
        node = spec["components"][kind][name]
        components.setdefault(kind, {})[name] = node
        _refs(node, wanted)
    return {
        "openapi": spec["openapi"],
        "info": spec["info"],
        "servers": spec.get("servers", []),
        "paths": paths,
        "components": {kind: dict(sorted(v.items())) for kind, v in sorted(components.items())},
    }


def main(argv: list[str]) -> None:
    source, target = Path(argv[1]), Path(argv[2])
    trimmed = trim(json.loads(source.read_text()))
    target.write_text(json.dumps(trimmed, indent=1, sort_keys=False) + "\n")


if __name__ == "__main__":
    main(sys.argv)
