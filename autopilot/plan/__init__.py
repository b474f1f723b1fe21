"""The master plan: parsing its markdown, its blocks and modes, the dry-run report, and the
snapshots that carry it to the session by reference."""

from __future__ import annotations

from autopilot.plan.batch_refs import (
    batch_numbers,
    batch_ref,
)
from autopilot.plan.blocks import (
    Block,
    ScanReport,
    top_level_blocks,
)
from autopilot.plan.parser import (
    PlanError,
    PlanIssue,
    decode_plan,
    load_plan,
    parse_plan,
    read_plan_bytes,
    select_batches,
)
from autopilot.plan.payload_size import (
    BLOB_SIZE_LIMIT,
    PAYLOAD_LIMIT,
    PayloadTooLarge,
    check_requests,
    encoded_size,
)
from autopilot.plan.report import (
    describe_plan,
    mode_text,
)

__all__ = [
    "BLOB_SIZE_LIMIT",
    "PAYLOAD_LIMIT",
    "Block",
    "PayloadTooLarge",
    "PlanError",
    "PlanIssue",
    "ScanReport",
    "batch_numbers",
    "batch_ref",
    "check_requests",
    "decode_plan",
    "describe_plan",
    "encoded_size",
    "load_plan",
    "mode_text",
    "parse_plan",
    "read_plan_bytes",
    "select_batches",
    "top_level_blocks",
]
