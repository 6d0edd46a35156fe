"""Migration scripts of the message log schema (one per revision)."""
