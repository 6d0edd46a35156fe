"""Persistent stores: one SQLAlchemy Core schema on SQLite (default) or PostgreSQL, with migrations."""
