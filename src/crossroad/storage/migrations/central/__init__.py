"""Migration scripts of the central server schema (one per revision)."""
