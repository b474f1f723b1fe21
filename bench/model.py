"""The scripted model as the benchmark uses it: PlanFollower answering at once, or after a
fixed time per turn (the concurrency sweep)."""

from __future__ import annotations

from autopilot_testing import PlanFollower, ScriptedModel, SlowFollower


def scripted_model(delay_s: float = 0.0) -> ScriptedModel:
    """A model server (not started): at once, or `delay_s` per turn."""
    return ScriptedModel(SlowFollower(delay_s) if delay_s > 0 else PlanFollower())
