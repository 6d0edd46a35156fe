"""Test doubles shipped with the package: an in-memory PKI and a frozen clock.

They are used by the project's tests, benchmarks and the demo; operators never need them.
"""
