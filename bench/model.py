"""The scripted model as the benchmark uses it: PlanFollower answering at once, or after a
fixed time per turn (the concurrency sweep)."""

from __future__ import annotations

from autopilot.agent.scripted_model import Conversation, PlanFollower, Reply, ScriptedModel


class SlowFollower:
    """PlanFollower whose every reply (agent and reviewer turns) takes `delay_s`."""

    def __init__(self, delay_s: float) -> None:
        self._follower = PlanFollower()
        self._delay_s = delay_s

    def __call__(self, conversation: Conversation) -> Reply:
        reply = self._follower(conversation)
        reply.delay_s = self._delay_s
        return reply


def scripted_model(delay_s: float = 0.0) -> ScriptedModel:
    """A model server (not started): at once, or `delay_s` per turn."""
    return ScriptedModel(SlowFollower(delay_s) if delay_s > 0 else PlanFollower())
