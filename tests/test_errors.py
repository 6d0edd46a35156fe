from __future__ import annotations

import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crossroad.errors import Code, XRoadError, legacy_code, normalize_code


@pytest.mark.parametrize(
    ("legacy", "current"),
    [
        ("Server.ClientProxy.AccessDenied", "server.clientproxy.access_denied"),
        (
            "Server.ServerProxy.ServiceFailed.InvalidSignatureValue",
            "server.serverproxy.service_failed.invalid_signature_value",
        ),
        ("Client.InvalidClientIdentifier", "client.invalid_client_identifier"),
        ("InvalidXml", "invalid_xml"),
        (
            "malformed_signature.invalid_hash_chain_ref",
            "malformed_signature.invalid_hash_chain_ref",
        ),
        ("SslAuthenticationFailed", "ssl_authentication_failed"),
    ],
)
def test_legacy_codes_are_accepted(legacy: str, current: str) -> None:
    assert normalize_code(legacy) == current
    assert XRoadError(legacy).code == current


def test_legacy_rendering_round_trips() -> None:
    code = "server.clientproxy.access_denied"
    assert legacy_code(code) == "Server.ClientProxy.AccessDenied"
    assert normalize_code(legacy_code(code)) == code


_WORDS = st.from_regex(r"[a-z]{2,8}(_[a-z]{2,8}){0,3}", fullmatch=True).filter(
    lambda s: s.replace("_", "") not in {"clientproxy", "serverproxy"}
)


@given(st.lists(_WORDS, min_size=1, max_size=4))
def test_snake_codes_survive_legacy_round_trip(segments: list[str]) -> None:
    code = ".".join(segments)
    assert normalize_code(code) == code
    assert normalize_code(legacy_code(code)) == code


def test_prefix_is_added_once() -> None:
    err = XRoadError(Code.INVALID_SIGNATURE_VALUE, "bad")
    prefixed = err.with_prefix("signature_verification").with_prefix("server.serverproxy")
    assert prefixed.code == "server.serverproxy.signature_verification.invalid_signature_value"
    assert prefixed.with_prefix("server.serverproxy") is prefixed
    assert prefixed.matches("InvalidSignatureValue")
    assert prefixed.base_code == "invalid_signature_value"
    assert prefixed.detail == "bad"


def test_errors_pickle() -> None:
    err = XRoadError(Code.ACCESS_DENIED, "no")
    again = pickle.loads(pickle.dumps(err))
    assert again.code == err.code
    assert again.detail == "no"
