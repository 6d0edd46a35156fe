"""Migration scripts of the security server configuration schema (one per revision)."""
