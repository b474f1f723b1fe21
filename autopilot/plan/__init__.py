"""The master plan: parsing its markdown, its blocks and modes, the dry-run report, and the
snapshots that carry it to the session by reference."""
