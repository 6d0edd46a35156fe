"""The sans-I/O cryptographic core: bytes, values and an explicit ``at`` time in; values out.

Nothing here reads the clock, opens files or sockets.  Verification functions take the
time to verify at as a parameter and raise :class:`crossroad.errors.XRoadError` with the
NIIS fault code on failure.
"""
