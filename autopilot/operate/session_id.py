"""Deterministic, readable session ids: the same repo, plan and batch range give the same id,
so starting a session twice attaches to it instead of running the plan twice."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from autopilot.git import repo_name


def _slug(text: str, limit: int = 24) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:limit].strip("-") or "x"


def session_id(
    repo: Path | str, plan_path: Path, start_batch: int | None, end_batch: int | None
) -> str:
    """`repo`: a local repository's path, or a remote's normalised URL (remote mode)."""
    span = f"{start_batch if start_batch is not None else 'first'}-"
    span += f"{end_batch if end_batch is not None else 'last'}"
    if isinstance(repo, Path):
        where, name = str(repo.resolve()), repo.resolve().name
    else:
        where, name = repo, repo_name(repo)
    key = "\0".join([where, str(plan_path.resolve()), span])
    digest = hashlib.sha256(key.encode()).hexdigest()[:8]
    batches = "all" if start_batch is None and end_batch is None else f"b{span}"
    return f"{_slug(name)}-{_slug(plan_path.stem)}-{batches}-{digest}"
