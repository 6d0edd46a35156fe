"""The configuration proxy (protocols.md §5.1, §11.2): mirrors configuration sources through the
configuration client, re-signs every version with its own keys and serves the result as
``/<NAME>/conf?version=N``.

``config`` holds the proxy directory and its settings and keys, ``mirror`` one download → sign →
publish cycle, ``server`` the HTTP side and the run loop.
"""
