"""The security server's own configuration (protocols.md §10.4–10.6): model, access, store, API."""
