"""Making a task's workspace ready: copied files, setup commands and their cache."""
