"""The forge: pull requests, their gate and their merge (GitHub first)."""

from autopilot.forge.interface import (
    Forge,
    ForgeDenied,
    ForgeError,
    ForgeRateLimited,
    ForgeRefused,
    ForgeUnavailable,
)

__all__ = [
    "Forge",
    "ForgeDenied",
    "ForgeError",
    "ForgeRateLimited",
    "ForgeRefused",
    "ForgeUnavailable",
]
