"""The coding agent: the Claude CLI invocation, its prompts, the run and its stream, and what
contains it (sandbox, network egress, process guard)."""
