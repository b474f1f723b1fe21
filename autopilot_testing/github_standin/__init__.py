"""A loopback GitHub for the forge tests: REST validated against GitHub's own description,
git's smart HTTP over real bare repositories, mergeability and merges by real git."""

from autopilot_testing.github_standin.server import GitHubStandIn, RecordedRequest

__all__ = ["GitHubStandIn", "RecordedRequest"]
