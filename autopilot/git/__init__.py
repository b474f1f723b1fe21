"""The git layer, in parts; `autopilot.gitops` is its face."""
