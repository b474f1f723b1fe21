"""Review of a task's branch before it merges: the repository's checks, the agent reviewer,
and the verdict made of both."""
