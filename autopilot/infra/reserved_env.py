"""Environment variables that mean something to the worker itself, so that a repository's
settings may not pass them to a check: the model's credentials (the egress proxy puts them in
its requests) and the variables that would point git at another repository.

They live here, below git and the agent, because the repository's settings refuse them too.
"""

from __future__ import annotations

# The worker's credential variables and the header each goes in.
CREDENTIALS = {
    "ANTHROPIC_API_KEY": "x-api-key",
    "ANTHROPIC_AUTH_TOKEN": "authorization",
    "CLAUDE_CODE_OAUTH_TOKEN": "authorization",
}

# Variables that would point git at another repository than the one we name with -C.
GIT_LOCATION_VARS = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
    "GIT_PREFIX",
)
