"""A task's steps as plain functions, over git, the agent, the review and the setup: the
activities are a few lines over them, and these are tested without Temporal."""
