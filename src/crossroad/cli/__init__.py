"""The ``crossroad`` command line (shell layer)."""
