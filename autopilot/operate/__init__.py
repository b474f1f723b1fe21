"""What a person drives: the starter's commands, session ids and settings, the live view and
the status record, and the demo."""
