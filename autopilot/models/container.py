"""Container mode: [container] in .autopilot.toml (autopilot/agent/container.py)."""

from __future__ import annotations

from pydantic import BaseModel, Field

# Pinned by exact tag: Node for the CLI, Debian's apt-get for git. Another image must have
# node, npm and git (and `packages = []` when it has no apt-get).
DEFAULT_CONTAINER_IMAGE = "node:22.12.0-bookworm-slim"


class ContainerSettings(BaseModel):
    """How a task's agent and checks run in a Dagger container."""

    image: str = DEFAULT_CONTAINER_IMAGE
    # Installed with apt-get as root before anything else; [] for an image without apt-get.
    packages: list[str] = Field(default_factory=lambda: ["git", "ca-certificates"])
    # The CLI runs as this user so that its permission flags behave as documented (as root it
    # refuses some of them); the node images have `node` (uid 1000).
    user: str = "node"
    home: str = "/home/node"  # the user's home: Claude's config and sessions live there
    # Unread: the workspace is at the sandbox's fixed path (TaskSite.inside, steps/site.py); kept
    # so that recorded settings still load.
    workdir: str = "/workspace"
    # Each engine call but the run itself (ids, secrets, the image build, the export).
    engine_timeout_s: float = 900.0
    connect_timeout_s: float = 10.0
