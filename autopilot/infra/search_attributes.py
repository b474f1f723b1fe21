"""The custom search attributes a session keeps up to date, so the Web UI's filter and
`temporal workflow list --query "AutopilotStatus='Running'"` find sessions.

The embedded server registers them at start (`--search-attribute`); on a cluster the worker
registers any that are missing, or stops with the `temporal operator` lines to run. A workflow
that upserts an unregistered attribute would fail its workflow task over and over, so this is
checked before any workflow runs.
"""

from __future__ import annotations

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.common import SearchAttributeKey
from temporalio.service import RPCError

STATUS = SearchAttributeKey.for_keyword("AutopilotStatus")  # Running, Paused, Completed, ...
BATCH = SearchAttributeKey.for_int("AutopilotBatch")  # the batch being worked on
PLAN = SearchAttributeKey.for_keyword("AutopilotPlan")  # plan file name
REPO = SearchAttributeKey.for_keyword("AutopilotRepo")  # repository path
# Forge mode: the session's pull requests, by their links (set once the first is opened).
PULL_REQUESTS = SearchAttributeKey.for_keyword_list("AutopilotPullRequests")

# name -> the type's name for `--search-attribute` and `temporal operator search-attribute`
ATTRIBUTES = {
    STATUS.name: "Keyword",
    BATCH.name: "Int",
    PLAN.name: "Keyword",
    REPO.name: "Keyword",
    PULL_REQUESTS.name: "KeywordList",
}
INDEXED_TYPES = {
    "Keyword": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    "Int": IndexedValueType.INDEXED_VALUE_TYPE_INT,
    "KeywordList": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD_LIST,
}


class SearchAttributesMissing(Exception):
    """The namespace lacks our search attributes and we may not add them."""


def dev_server_args() -> list[str]:
    """Flags for `temporal server start-dev` that register every attribute."""
    args: list[str] = []
    for name, kind in ATTRIBUTES.items():
        args += ["--search-attribute", f"{name}={kind}"]
    return args


def operator_commands(namespace: str) -> list[str]:
    return [
        f"temporal operator search-attribute create --namespace {namespace} "
        f"--name {name} --type {kind}"
        for name, kind in ATTRIBUTES.items()
    ]


async def ensure_registered(client: Client) -> list[str]:
    """Register what is missing; returns the names added. Raises SearchAttributesMissing
    with the commands to run when the server does not let us add them."""
    listed = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=client.namespace)
    )
    known = set(listed.custom_attributes) | set(listed.system_attributes)
    missing = {name: kind for name, kind in ATTRIBUTES.items() if name not in known}
    if not missing:
        return []
    try:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=client.namespace,
                search_attributes={name: INDEXED_TYPES[kind] for name, kind in missing.items()},
            )
        )
    except RPCError as err:
        commands = "\n  ".join(operator_commands(client.namespace))
        raise SearchAttributesMissing(
            f"the namespace {client.namespace} lacks the search attributes "
            f"{', '.join(missing)} and they could not be added ({err.message}); "
            f"ask an operator to run:\n  {commands}"
        ) from err
    return sorted(missing)
