"""The management REST API through FastAPI's TestClient: OpenAPI document, API keys and roles,
every resource family, and errors as JSON with X-Road codes.  Mostly on SQLite; one flow runs on
both backends."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.serialization import Encoding
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from crossroad.central.api import create_app, status_for
from crossroad.central.api_auth import api_key_from_header
from crossroad.central.api_models import decode_client, decode_server, encode
from crossroad.central.registry import Registry
from crossroad.errors import Code, XRoadError
from crossroad.globalconf.model import AnchorSource, ConfigurationAnchor
from crossroad.globalconf.privateparams import render_anchor
from crossroad.identifiers import ClientId, SecurityServerId
from crossroad.storage.engine import create_engine, migrate
from crossroad.testing.pki import TestPKI as _PKI

PROFILE = "ee.ria.xroad.common.certificateprofile.impl.EjbcaCertificateProfileInfoProvider"
V1 = "/api/v1"


def pem(cert: Any) -> str:
    return cert.public_bytes(Encoding.PEM).decode("ascii")


def b64(cert: Any) -> str:
    return base64.b64encode(cert.public_bytes(Encoding.DER)).decode("ascii")


@pytest.fixture(scope="module")
def pki() -> _PKI:
    return _PKI.create()


@pytest.fixture(scope="module")
def setup(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[TestClient, dict[str, dict[str, str]], sa.Engine]]:
    engine = create_engine(f"sqlite:///{tmp_path_factory.mktemp('api') / 'central.db'}")
    migrate(engine)
    reg = Registry(engine, actor="setup")
    reg.initialize("EE", "cs.example.org")
    headers = {}
    for role in ("system_administrator", "registration_officer", "security_officer", "observer"):
        _, secret = reg.create_api_key(role, [role])
        headers[role] = {"Authorization": f"X-Road-ApiKey token={secret}"}
    with TestClient(create_app(engine)) as client:
        yield client, headers, engine
    engine.dispose()


@pytest.fixture
def client(setup: Any) -> TestClient:
    return setup[0]


@pytest.fixture
def keys(setup: Any) -> dict[str, dict[str, str]]:
    return setup[1]


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == status, body
    assert body["error"]["code"] == code, body
    return body


def test_openapi_document(client: TestClient) -> None:
    doc = ok(client.get(f"{V1}/openapi.json"))
    for path in (
        "/api/v1/members",
        "/api/v1/members/{member_id}",
        "/api/v1/subsystems",
        "/api/v1/security-servers/{server_id}/clients",
        "/api/v1/certification-services/{certification_service_id}/ocsp-responders",
        "/api/v1/intermediate-cas/{intermediate_ca_id}/ocsp-responders",
        "/api/v1/timestamping-services",
        "/api/v1/global-groups/{group_code}/members/add",
        "/api/v1/management-services-configuration",
        "/api/v1/trusted-anchors",
        "/api/v1/system/parameters",
        "/api/v1/api-keys",
        "/api/v1/history",
    ):
        assert path in doc["paths"], path
    assert "ErrorInfo" in doc["components"]["schemas"]
    assert client.get(f"{V1}/docs").status_code == 200


def test_authentication_and_roles(client: TestClient, keys: dict[str, dict[str, str]]) -> None:
    error(client.get(f"{V1}/members"), 401, Code.API_KEY_INVALID)
    error(
        client.get(f"{V1}/members", headers={"Authorization": "Bearer x"}),
        401,
        Code.API_KEY_INVALID,
    )
    bad = {"Authorization": "X-Road-ApiKey token=nope"}
    response = client.get(f"{V1}/members", headers=bad)
    error(response, 401, Code.API_KEY_INVALID)
    assert response.headers["WWW-Authenticate"] == "X-Road-ApiKey"
    ok(client.get(f"{V1}/members", headers=keys["observer"]))
    body = {"code": "OBS", "description": "Observer's class"}
    error(
        client.post(f"{V1}/member-classes", json=body, headers=keys["observer"]),
        403,
        Code.PERMISSION_DENIED,
    )
    error(
        client.post(
            f"{V1}/api-keys",
            json={"name": "x", "roles": ["observer"]},
            headers=keys["registration_officer"],
        ),
        403,
        Code.PERMISSION_DENIED,
    )
    error(
        client.put(
            f"{V1}/system/parameters/ocspFreshnessSeconds",
            json={"value": "100"},
            headers=keys["security_officer"],
        ),
        403,
        Code.PERMISSION_DENIED,
    )
    ok(client.get(f"{V1}/history", headers=keys["observer"]))
    # The history names the key.
    ok(client.post(f"{V1}/member-classes", json=body, headers=keys["registration_officer"]), 201)
    latest = ok(client.get(f"{V1}/history?limit=1", headers=keys["observer"]))[0]
    assert latest["actor"] == "api:registration_officer"
    assert latest["table_name"] == "member_classes"


def test_registry_resources(
    client: TestClient, keys: dict[str, dict[str, str]], pki: _PKI, setup: Any
) -> None:
    reg_h, admin = keys["registration_officer"], keys["system_administrator"]
    ok(
        client.post(
            f"{V1}/member-classes", json={"code": "GOV", "description": "Gov"}, headers=reg_h
        ),
        201,
    )
    error(
        client.post(
            f"{V1}/member-classes", json={"code": "GOV", "description": "Gov"}, headers=reg_h
        ),
        409,
        Code.MEMBER_CLASS_EXISTS,
    )
    member = ok(
        client.post(
            f"{V1}/members",
            json={
                "member_name": "Agency",
                "member_id": {"member_class": "GOV", "member_code": "1"},
            },
            headers=reg_h,
        ),
        201,
    )
    assert member["client_id"]["encoded_id"] == "EE:GOV:1"
    assert member["member_name"] == "Agency"
    ok(
        client.post(
            f"{V1}/members",
            json={"member_name": "Other", "member_id": {"member_class": "GOV", "member_code": "2"}},
            headers=reg_h,
        ),
        201,
    )
    ok(
        client.post(
            f"{V1}/subsystems",
            json={
                "subsystem_name": "Sub",
                "subsystem_id": {
                    "member_class": "GOV",
                    "member_code": "2",
                    "subsystem_code": "sub",
                },
            },
            headers=reg_h,
        ),
        201,
    )
    assert (
        ok(client.patch(f"{V1}/members/EE:GOV:1", json={"member_name": "Agency 2"}, headers=reg_h))[
            "member_name"
        ]
        == "Agency 2"
    )
    assert (
        ok(
            client.patch(
                f"{V1}/subsystems/EE:GOV:2:sub", json={"subsystem_name": "Renamed"}, headers=reg_h
            )
        )["subsystem_name"]
        == "Renamed"
    )
    subs = ok(client.get(f"{V1}/members/EE:GOV:2/subsystems", headers=reg_h))
    assert [s["client_id"]["subsystem_code"] for s in subs] == ["sub"]
    error(client.get(f"{V1}/members/EE:GOV:9", headers=reg_h), 404, Code.MEMBER_NOT_FOUND)
    error(client.get(f"{V1}/members/EE:GOV", headers=reg_h), 400, Code.INVALID_CLIENT_IDENTIFIER)
    error(client.get(f"{V1}/members/FI:GOV:1", headers=reg_h), 400, Code.INVALID_CLIENT_IDENTIFIER)

    server = ok(
        client.post(
            f"{V1}/security-servers",
            json={
                "server_id": {"member_class": "GOV", "member_code": "1", "server_code": "ss1"},
                "server_address": "ss1.example.org",
            },
            headers=reg_h,
        ),
        201,
    )
    assert server["server_id"]["encoded_id"] == "EE:GOV:1:ss1"
    assert not server["in_maintenance_mode"]
    ss = f"{V1}/security-servers/EE:GOV:1:ss1"
    assert (
        ok(client.patch(ss, json={"server_address": "10.1.1.1"}, headers=reg_h))["server_address"]
        == "10.1.1.1"
    )
    error(
        client.patch(ss, json={"server_address": "bad host!"}, headers=reg_h),
        400,
        Code.INVALID_SERVER_ADDRESS,
    )
    cert = ok(
        client.post(
            f"{ss}/authentication-certificates",
            json={"certificate": pem(pki.auth_cert("EE", "ss1").cert)},
            headers=reg_h,
        ),
        201,
    )
    assert cert["certificate"]["hash"] == cert["hash"]
    error(
        client.post(
            f"{ss}/authentication-certificates", json={"certificate": "garbage"}, headers=reg_h
        ),
        400,
        Code.INCORRECT_CERTIFICATE,
    )
    ok(client.post(f"{ss}/clients", json={"client_id": "EE:GOV:2:sub"}, headers=reg_h), 201)
    error(
        client.post(f"{ss}/clients", json={"client_id": "EE:GOV:2:sub"}, headers=reg_h),
        409,
        Code.SUBSYSTEM_ALREADY_REGISTERED_TO_SECURITY_SERVER,
    )
    assert (
        ok(client.patch(f"{ss}/clients/EE:GOV:2:sub", json={"enabled": False}, headers=reg_h))[
            "enabled"
        ]
        is False
    )
    assert ok(client.get(f"{ss}/clients", headers=reg_h))[0]["enabled"] is False
    maintenance = ok(
        client.put(
            f"{ss}/maintenance-mode",
            json={"in_maintenance_mode": True, "message": "upgrade"},
            headers=reg_h,
        )
    )
    assert maintenance["maintenance_mode_message"] == "upgrade"
    assert [
        s["server_id"]["server_code"]
        for s in ok(client.get(f"{V1}/members/EE:GOV:1/owned-servers", headers=reg_h))
    ] == ["ss1"]
    error(
        client.delete(f"{V1}/subsystems/EE:GOV:2:sub", headers=reg_h),
        409,
        Code.SUBSYSTEM_REGISTERED_AND_CANNOT_BE_DELETED,
    )

    ok(
        client.post(
            f"{V1}/global-groups", json={"code": "grp", "description": "Group"}, headers=reg_h
        ),
        201,
    )
    added = ok(
        client.post(
            f"{V1}/global-groups/grp/members/add",
            json={"items": ["EE:GOV:1", "EE:GOV:2:sub"]},
            headers=reg_h,
        ),
        201,
    )
    assert [m["client_id"]["encoded_id"] for m in added] == ["EE:GOV:1", "EE:GOV:2:sub"]
    ok(client.delete(f"{V1}/global-groups/grp/members/EE:GOV:1", headers=reg_h), 204)
    groups = {g["code"]: g for g in ok(client.get(f"{V1}/global-groups", headers=reg_h))}
    assert groups["grp"]["member_count"] == 1
    assert groups["security-server-owners"]["owners_group"]
    error(
        client.delete(f"{V1}/global-groups/security-server-owners", headers=reg_h),
        409,
        Code.OWNERS_GLOBAL_GROUP_CANNOT_BE_DELETED,
    )
    assert ok(client.get(f"{V1}/members/EE:GOV:1/global-groups", headers=reg_h)) == [
        "security-server-owners"
    ]

    # Certification and time-stamping services.
    ca = ok(
        client.post(
            f"{V1}/certification-services",
            json={
                "certificate": b64(pki.ca.cert),
                "certificate_profile_info": PROFILE,
                "tls_auth": False,
                "default_csr_format": "DER",
            },
            headers=admin,
        ),
        201,
    )
    base = f"{V1}/certification-services/{ca['id']}"
    ocsp = ok(
        client.post(
            f"{base}/ocsp-responders",
            json={
                "url": "http://ocsp.example.org",
                "cost_type": "FREE",
                "certificate": pem(pki.ocsp.cert),
            },
            headers=admin,
        ),
        201,
    )
    assert ocsp["has_certificate"]
    assert ocsp["cost_type"] == "FREE"
    inter = ok(
        client.post(
            f"{base}/intermediate-cas", json={"certificate": pem(pki.ca.cert)}, headers=admin
        ),
        201,
    )
    ok(
        client.post(
            f"{V1}/intermediate-cas/{inter['id']}/ocsp-responders",
            json={"url": "http://i.example.org"},
            headers=admin,
        ),
        201,
    )
    assert (
        len(ok(client.get(f"{V1}/intermediate-cas/{inter['id']}/ocsp-responders", headers=admin)))
        == 1
    )
    changed = ok(
        client.patch(
            f"{V1}/ocsp-responders/{ocsp['id']}",
            json={"cost_type": "PAID", "certificate": None},
            headers=admin,
        )
    )
    assert changed["cost_type"] == "PAID"
    assert not changed["has_certificate"]
    patched = ok(
        client.patch(
            base,
            json={"tls_auth": True, "acme_server_directory_url": "https://acme.example.org/dir"},
            headers=admin,
        )
    )
    assert patched["tls_auth"]
    assert patched["acme_server_directory_url"] == "https://acme.example.org/dir"
    assert patched["default_csr_format"] == "DER"
    error(
        client.get(f"{V1}/certification-services/999", headers=admin),
        404,
        Code.CERTIFICATION_SERVICE_NOT_FOUND,
    )
    error(
        client.get(f"{V1}/intermediate-cas/999", headers=admin), 404, Code.INTERMEDIATE_CA_NOT_FOUND
    )
    error(
        client.post(f"{base}/ocsp-responders", json={"url": "x"}, headers=admin),
        400,
        Code.INVALID_URL,
    )
    tsa = ok(
        client.post(
            f"{V1}/timestamping-services",
            json={
                "url": "http://tsa.example.org",
                "certificate": pem(pki.tsa.cert),
                "cost_type": "FREE",
            },
            headers=admin,
        ),
        201,
    )
    assert tsa["timestamping_interval"] == 60
    assert tsa["name"] == "Test TSA"
    assert (
        ok(
            client.patch(
                f"{V1}/timestamping-services/{tsa['id']}",
                json={"url": "https://tsa.example.org"},
                headers=admin,
            )
        )["url"]
        == "https://tsa.example.org"
    )

    # Management service, parameters, parts, trusted anchors.
    ms = ok(
        client.patch(
            f"{V1}/management-services-configuration",
            json={"service_provider_id": "EE:GOV:2:sub"},
            headers=admin,
        )
    )
    assert ms["service_provider_id"] == "EE:GOV:2:sub"
    assert ms["service_provider_name"] == "Other"
    params = ok(
        client.put(
            f"{V1}/system/parameters/ocspFreshnessSeconds", json={"value": "1800"}, headers=admin
        )
    )
    assert params["ocspFreshnessSeconds"] == "1800"
    error(
        client.put(f"{V1}/system/parameters/bogus", json={"value": "1"}, headers=admin),
        400,
        Code.INVALID_SYSTEM_PARAMETER,
    )
    assert (
        ok(client.get(f"{V1}/system/server-address", headers=admin))["central_server_address"]
        == "cs.example.org"
    )
    assert (
        ok(
            client.put(
                f"{V1}/system/server-address",
                json={"central_server_address": "cs2.example.org"},
                headers=admin,
            )
        )["central_server_address"]
        == "cs2.example.org"
    )
    assert ok(client.get(f"{V1}/initialization/status", headers=admin))["initialized"]
    error(
        client.post(f"{V1}/initialization", json={"instance_identifier": "FI"}, headers=admin),
        409,
        Code.INIT_ALREADY_INITIALIZED,
    )
    part_xml = b'<tns:conf xmlns:tns="http://x-road.eu/xsd/xroad.xsd"><verifyNextUpdate>false</verifyNextUpdate></tns:conf>'
    part = ok(
        client.put(
            f"{V1}/configuration-parts/NEXTUPDATE",
            json={"data": base64.b64encode(part_xml).decode()},
            headers=admin,
        )
    )
    assert part["file_name"] == "nextupdate-params.xml"
    assert part["size"] == len(part_xml)
    error(
        client.put(f"{V1}/configuration-parts/NEXTUPDATE", json={"data": "!!"}, headers=admin),
        400,
        Code.INVALID_REQUEST,
    )
    anchor = render_anchor(
        ConfigurationAnchor("FI", (AnchorSource("http://fi/externalconf", (b"cert",)),))
    )
    sec = keys["security_officer"]
    uploaded = ok(
        client.post(
            f"{V1}/trusted-anchors",
            content=anchor,
            headers={**sec, "Content-Type": "application/xml"},
        ),
        201,
    )
    assert uploaded["instance_identifier"] == "FI"
    assert (
        client.get(f"{V1}/trusted-anchors/{uploaded['hash']}/download", headers=sec).content
        == anchor
    )
    error(
        client.post(
            f"{V1}/trusted-anchors",
            content=b"<x/>",
            headers={**sec, "Content-Type": "application/xml"},
        ),
        400,
        Code.MALFORMED_ANCHOR,
    )

    # What the API did is what the registry generates from.
    engine = setup[2]
    shared = Registry(engine).shared_parameters()
    (server_params,) = shared.security_servers
    assert server_params.clients == ()
    assert server_params.maintenance is not None
    assert shared.global_settings.ocsp_freshness_seconds == 1800
    assert (
        Registry(engine).private_parameters().configuration_anchors[0].instance_identifier == "FI"
    )

    ok(client.delete(f"{V1}/trusted-anchors/{uploaded['hash']}", headers=sec), 204)
    ok(client.delete(f"{V1}/timestamping-services/{tsa['id']}", headers=admin), 204)
    ok(client.delete(f"{V1}/intermediate-cas/{inter['id']}", headers=admin), 204)
    ok(client.delete(base, headers=admin), 204)
    ok(client.delete(f"{ss}/clients/EE:GOV:2:sub", headers=reg_h), 204)
    ok(client.delete(f"{ss}/authentication-certificates/{cert['hash']}", headers=reg_h), 204)
    ok(client.delete(ss, headers=reg_h), 204)
    ok(client.delete(f"{V1}/members/EE:GOV:1", headers=reg_h), 204)


def test_api_keys_and_validation(client: TestClient, keys: dict[str, dict[str, str]]) -> None:
    admin = keys["system_administrator"]
    created = ok(
        client.post(f"{V1}/api-keys", json={"name": "robot", "roles": ["observer"]}, headers=admin),
        201,
    )
    robot = {"Authorization": f"X-Road-ApiKey token={created['key']}"}
    ok(client.get(f"{V1}/members", headers=robot))
    names = [k["name"] for k in ok(client.get(f"{V1}/api-keys", headers=admin))]
    assert "robot" in names
    assert all("key" not in k for k in ok(client.get(f"{V1}/api-keys", headers=admin)))
    ok(client.delete(f"{V1}/api-keys/{created['id']}", headers=admin), 204)
    error(client.get(f"{V1}/members", headers=robot), 401, Code.API_KEY_INVALID)
    body = error(
        client.post(f"{V1}/api-keys", json={"name": "x", "roles": ["king"]}, headers=admin),
        400,
        Code.VALIDATION_FAILURE,
    )
    assert "body.roles.0" in body["error"]["validation_errors"]
    error(client.get(f"{V1}/history?limit=0", headers=admin), 400, Code.VALIDATION_FAILURE)


def test_without_api_keys(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'c.db'}")
    migrate(engine)
    Registry(engine).initialize("EE")
    with TestClient(
        create_app(lambda actor: Registry(engine, actor=actor), require_api_key=False)
    ) as c:
        ok(c.post(f"{V1}/member-classes", json={"code": "GOV", "description": "Gov"}), 201)
        assert ok(c.get(f"{V1}/history?limit=1"))[0]["actor"] == "api:anonymous"
    engine.dispose()


def test_flow_on_both_backends(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        migrate(engine)
        Registry(engine).initialize("EE")
        with TestClient(create_app(engine, require_api_key=False)) as c:
            ok(c.post(f"{V1}/member-classes", json={"code": "GOV", "description": "Gov"}), 201)
            ok(
                c.post(
                    f"{V1}/members",
                    json={
                        "member_name": "A",
                        "member_id": {"member_class": "GOV", "member_code": "1"},
                    },
                ),
                201,
            )
            error(
                c.post(
                    f"{V1}/members",
                    json={
                        "member_name": "A",
                        "member_id": {"member_class": "GOV", "member_code": "1"},
                    },
                ),
                409,
                Code.MEMBER_EXISTS,
            )
            ok(
                c.post(
                    f"{V1}/security-servers",
                    json={
                        "server_id": {"member_class": "GOV", "member_code": "1", "server_code": "s"}
                    },
                ),
                201,
            )
            assert [g["member_count"] for g in ok(c.get(f"{V1}/global-groups"))] == [1]
    finally:
        engine.dispose()


def test_status_mapping() -> None:
    assert status_for(Code.MEMBER_NOT_FOUND) == 404
    assert status_for(Code.MANAGEMENT_SERVICE_PROVIDER_NOT_SET) == 404
    assert status_for(Code.MEMBER_NOT_REGISTERED_TO_SECURITY_SERVER) == 404
    assert status_for(Code.GLOBAL_GROUP_EXISTS) == 409
    assert status_for(Code.MEMBER_ALREADY_REGISTERED_TO_SECURITY_SERVER) == 409
    assert status_for(Code.INVALID_URL) == 400
    assert status_for(Code.IO_ERROR) == 500


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_identifier_decoding_only_raises_coded_errors(text: str) -> None:
    codes = set()
    for decode in (decode_client, decode_server, api_key_from_header):
        try:
            value = decode(text)
        except XRoadError as exc:
            codes.add(exc.code)
            continue
        if isinstance(value, ClientId | SecurityServerId):
            assert decode(encode(value)) == value
    expected = {Code.INVALID_CLIENT_IDENTIFIER, Code.INVALID_SECURITY_SERVER, Code.API_KEY_INVALID}
    assert codes <= expected


def test_identifier_encoding_round_trips() -> None:
    sub = ClientId("EE", "GOV", "1", "sub")
    assert decode_client(encode(sub)) == sub
    server = SecurityServerId(ClientId("EE", "GOV", "1"), "ss")
    assert decode_server(encode(server)) == server
