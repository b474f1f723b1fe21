"""What every process shares: settings and options, the Temporal connection and search
attributes, logs, private files, secret scrubbing and fault injection."""
