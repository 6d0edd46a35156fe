"""Alembic migrations: ``env.py`` shared by every component, one folder of scripts per component.

Run them with :func:`crossroad.storage.engine.migrate`; there is no ``alembic.ini``.
"""
