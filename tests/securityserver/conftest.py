"""A configuration anchor (of a central server that is initialised but not running) and free
loopback addresses for security servers started by the tests."""

from __future__ import annotations

import random
import socket
from pathlib import Path

import pytest

PIN = "test-pin-5678"


@pytest.fixture(scope="session")
def anchor_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from crossroad.central import server as central
    from crossroad.central.keys import KeySource
    from crossroad.identifiers import ClientId

    cs = tmp_path_factory.mktemp("central")
    central.initialize(
        cs,
        instance="DEV",
        address="127.0.0.1",
        distribution_port=free_port(),
        management_provider=ClientId("DEV", "GOV", "1000", "MANAGEMENT"),
    )
    with central.CentralState.open(cs) as state:
        exported = central.export_anchor(state, KeySource.INTERNAL)
    path = cs / "anchor.xml"
    path.write_bytes(exported.data)
    return path


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def loopback() -> str:
    """A loopback address where every security server port is free."""
    for _ in range(50):
        address = f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(2, 254)}"
        try:
            for port in (8080, 8443, 5500, 5577, 4000):
                with socket.create_server((address, port)):
                    pass
        except OSError:
            continue
        return address
    raise RuntimeError("no free loopback address")


@pytest.fixture
def address() -> str:
    return loopback()
