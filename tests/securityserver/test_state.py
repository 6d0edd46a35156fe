"""``security-server init``: the state directory it creates, and what it refuses."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509

from crossroad.errors import Code, XRoadError
from crossroad.identifiers import ClientId, SecurityServerId
from crossroad.securityserver.settings import SecurityServerSettings
from crossroad.securityserver.state import initialize

from .conftest import PIN

OWNER = ClientId("DEV", "COM", "1111")
COMMAND = [sys.executable, "-m", "crossroad.securityserver"]


def test_initialize_creates_the_layout(tmp_path: Path, anchor_file: Path) -> None:
    from crossroad.serverconf.store import ServerConfStore
    from crossroad.signer.keyconf import KeyConfStore
    from crossroad.storage.engine import create_engine

    state = tmp_path / "ss"
    done = initialize(
        state,
        owner=OWNER,
        server_code="SS1",
        anchor=anchor_file.read_bytes(),
        pin=PIN,
        autologin=True,
    )
    assert done.server_id == SecurityServerId(OWNER, "SS1")
    assert done.instance == "DEV"
    assert len(done.anchor_hash.split(":")) == 28  # SHA-224 in hex pairs
    settings = SecurityServerSettings.load(state)
    assert settings.anchor_path.read_bytes() == anchor_file.read_bytes()
    assert settings.pin_path is not None
    assert settings.pin_path.read_text().strip() == PIN
    assert stat.S_IMODE(settings.pin_path.stat().st_mode) == 0o600
    key = settings.tls_dir / "internal.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    cert = x509.load_pem_x509_certificate((settings.tls_dir / "internal.crt").read_bytes())
    assert cert.subject.rfc4514_string() == "CN=SS1"
    assert KeyConfStore(settings.signer_dir).exists()
    store = ServerConfStore(create_engine(settings.resolved_database_url()))
    assert store.server_id() == done.server_id
    assert [c.id for c in store.snapshot().clients] == [OWNER]  # the owner is the first client


def test_initialize_twice_is_refused(tmp_path: Path, anchor_file: Path) -> None:
    kwargs = {"owner": OWNER, "server_code": "SS1", "anchor": anchor_file.read_bytes(), "pin": PIN}
    initialize(tmp_path / "ss", **kwargs)  # type: ignore[arg-type]
    with pytest.raises(XRoadError) as err:
        initialize(tmp_path / "ss", **kwargs)  # type: ignore[arg-type]
    assert err.value.code == Code.INIT_ALREADY_INITIALIZED


@pytest.mark.parametrize(
    ("owner", "anchor", "code"),
    [
        (ClientId("OTHER", "COM", "1111"), None, Code.INVALID_CLIENT_IDENTIFIER),
        (ClientId("DEV", "COM", "1111", "SUB"), None, Code.INVALID_CLIENT_IDENTIFIER),
        (OWNER, b"<not-an-anchor/>", Code.MALFORMED_ANCHOR),
        (OWNER, b"", Code.MALFORMED_ANCHOR),
    ],
)
def test_bad_input_leaves_nothing_behind(
    tmp_path: Path, anchor_file: Path, owner: ClientId, anchor: bytes | None, code: str
) -> None:
    state = tmp_path / "ss"
    with pytest.raises(XRoadError) as err:
        initialize(
            state,
            owner=owner,
            server_code="SS1",
            anchor=anchor_file.read_bytes() if anchor is None else anchor,
            pin=PIN,
        )
    assert err.value.code == code
    assert not state.exists()


def test_a_failure_half_way_removes_what_it_created(tmp_path: Path, anchor_file: Path) -> None:
    state = tmp_path / "ss"
    with pytest.raises(XRoadError):
        initialize(
            state,
            owner=OWNER,
            server_code="SS1",
            anchor=anchor_file.read_bytes(),
            pin=PIN,
            database_url="nosuchdb://x",  # fails after the anchor was written
        )
    assert not state.exists()
    initialize(state, owner=OWNER, server_code="SS1", anchor=anchor_file.read_bytes(), pin=PIN)


def test_init_command(tmp_path: Path, anchor_file: Path) -> None:
    pin = tmp_path / "pin"
    pin.write_text(PIN + "\n")
    state = tmp_path / "ss"
    done = subprocess.run(
        [*COMMAND, "init", str(state), "--owner", "MEMBER:DEV/COM/1111", "--server-code", "SS1",
         "--anchor", str(anchor_file), "--pin-file", str(pin), "--host", "127.0.0.9",
         "--server-port", "5501", "--workers", "3"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "initialised security server SERVER:DEV/COM/1111/SS1" in done.stdout
    settings = SecurityServerSettings.load(state)
    assert (settings.server_host, settings.server_port, settings.workers) == ("127.0.0.9", 5501, 3)
    assert settings.pin_path is None  # no --autologin: the PIN is not kept
    again = subprocess.run(
        [*COMMAND, "init", str(state), "--owner", "MEMBER:DEV/COM/1111", "--server-code", "SS1",
         "--anchor", str(anchor_file), "--pin-file", str(pin)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert again.returncode == 1
    assert again.stderr.startswith("error: init_already_initialized:")
