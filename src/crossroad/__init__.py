"""crossroad: the X-Road data exchange layer, wire-compatible with NIIS X-Road 7.x."""

__version__ = "0.1.0"

#: The X-Road software version this implementation announces (``x-proxy-version``).
XROAD_VERSION = "7.8.1"
