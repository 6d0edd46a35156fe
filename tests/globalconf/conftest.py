"""Fixtures for globalconf tests: the official NIIS XSDs, loaded with an import resolver."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from lxml import etree

_RES = Path("schemas/src/lib/globalconf-core/src/main/resources")
_IDENTIFIERS = Path("schemas/src/common/common-domain/src/main/resources/identifiers.xsd")


class _Resolver(etree.Resolver):
    """Maps the class-path style schemaLocations of the NIIS XSDs to files (schemas/README.md)."""

    def __init__(self, vectors: Path) -> None:
        super().__init__()
        self.vectors = vectors

    def resolve(self, system_url, public_id, context):  # type: ignore[no-untyped-def,override]
        if system_url.endswith("identifiers.xsd"):
            path = str(self.vectors / _IDENTIFIERS)
            return self.resolve_filename(path, context)  # type: ignore[attr-defined]
        return None


@pytest.fixture(scope="session")
def globalconf_schema(vectors: Path) -> Callable[[str, int], etree.XMLSchema]:
    """``schema("shared", 6)`` / ``schema("private", 3)``: the official XSD as an XMLSchema."""
    cache: dict[tuple[str, int], etree.XMLSchema] = {}

    def load(kind: str, version: int) -> etree.XMLSchema:
        key = (kind, version)
        if key not in cache:
            parser = etree.XMLParser(no_network=True)
            parser.resolvers.add(_Resolver(vectors))
            path = vectors / _RES / "globalconf" / f"v{version}" / f"{kind}-parameters.xsd"
            cache[key] = etree.XMLSchema(etree.parse(str(path), parser))
        return cache[key]

    return load


@pytest.fixture(scope="session")
def optional_part_schema(vectors: Path) -> Callable[[str], etree.XMLSchema]:
    """``schema("monitoring-conf")`` / ``schema("ocsp-fetchinterval-conf")``."""

    def load(name: str) -> etree.XMLSchema:
        parser = etree.XMLParser(no_network=True)
        parser.resolvers.add(_Resolver(vectors))
        return etree.XMLSchema(etree.parse(str(vectors / _RES / f"{name}.xsd"), parser))

    return load
