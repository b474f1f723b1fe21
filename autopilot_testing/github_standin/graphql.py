"""The one GraphQL mutation the pipeline sends: enqueuePullRequest (the merge queue). GraphQL
is not in the REST description, so these requests are not OpenAPI-validated."""

from __future__ import annotations

import re
from typing import Any

from autopilot_testing.github_standin import payloads
from autopilot_testing.github_standin.state import Person, Refused, World

_ARG = r"{name}\s*:\s*(?:\"(?P<lit>[^\"]*)\"|\$(?P<var>\w+))"


def _argument(query: str, variables: dict[str, Any], name: str) -> str:
    found = re.search(_ARG.format(name=name), query)
    if found is None:
        return str(variables.get("input", {}).get(name, "") or variables.get(name, "") or "")
    if found.group("lit") is not None:
        return found.group("lit")
    return str(variables.get(found.group("var"), ""))


def answer(world: World, person: Person, body: dict[str, Any]) -> dict[str, Any]:
    query = str(body.get("query", ""))
    variables = body.get("variables") or {}
    if "enqueuePullRequest" not in query:
        return {"errors": [{"message": "The stand-in answers only enqueuePullRequest"}]}
    if person.permission == "read":
        return {"errors": [{"type": "FORBIDDEN", "message": "Resource not accessible"}]}
    node = _argument(query, variables, "pullRequestId")
    expected = _argument(query, variables, "expectedHeadOid")
    method = _argument(query, variables, "mergeMethod") or "SQUASH"
    for repo in list(world.repos.values()):
        for pull in list(repo.pulls):
            if payloads.node_id("PullRequest", pull.id) != node:
                continue
            try:
                world.enqueue(repo, pull, expected, method.lower())
            except Refused as refused:
                return {"errors": [{"type": "UNPROCESSABLE", "message": refused.message}]}
            entry = {
                "id": payloads.node_id("MergeQueueEntry", pull.id),
                "position": 0 if pull.merged else 1,
                "state": "MERGEABLE" if not pull.merged else "MERGED",
            }
            return {"data": {"enqueuePullRequest": {"mergeQueueEntry": entry}}}
    return {
        "errors": [
            {
                "type": "NOT_FOUND",
                "message": f"Could not resolve to a node with the global id of '{node}'",
            }
        ]
    }
