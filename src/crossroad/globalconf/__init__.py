"""The global configuration (protocols.md §5): shared and private parameters V2–V6, anchors,
optional parts, and the configuration directory on disk.

``model`` holds the values, ``sharedparams`` / ``privateparams`` the XML codecs (sans-I/O core);
``directory`` is the shell that reads the directory the configuration client writes (import it
explicitly: this package does not pull it in, so the core stays free of file access).
"""

from crossroad.globalconf.model import (
    ConfigurationAnchor,
    CostType,
    OcspPreference,
    PrivateParameters,
    SharedParameters,
)

__all__ = [
    "ConfigurationAnchor",
    "CostType",
    "OcspPreference",
    "PrivateParameters",
    "SharedParameters",
]
