"""Registry changes on SQLite and PostgreSQL: coded errors for bad input, duplicates and unknown
references; deletions and what they take along; the owners group; system parameters; signing
keys; optional parts; trusted anchors; API keys; batches; history rows per change.

One database per backend for the module, emptied before each test (creating a PostgreSQL
database per test would cost more than the tests)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import given, settings
from hypothesis import strategies as st

from crossroad.central.registry import Registry, Role, SourceType
from crossroad.central.registry_base import check_host, check_url
from crossroad.errors import Code, XRoadError
from crossroad.globalconf.model import AnchorSource, ConfigurationAnchor
from crossroad.globalconf.privateparams import render_anchor
from crossroad.identifiers import ClientId, SecurityServerId
from crossroad.storage import central_schema as t
from crossroad.storage.engine import create_engine, migrate
from crossroad.testing.pki import TestPKI as _PKI

PROFILE = "ee.ria.xroad.common.certificateprofile.impl.FiVRKCertificateProfileInfoProvider"
A = ClientId("EE", "GOV", "1")
B = ClientId("EE", "GOV", "2")
SA = SecurityServerId(A, "sa")
SB = SecurityServerId(B, "sb")
POSTGRES_ADMIN = os.environ.get(
    "CROSSROAD_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def _admin(sql: str) -> None:
    admin = sa.create_engine(POSTGRES_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(sql))
    finally:
        admin.dispose()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def scratch(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[sa.Engine]:
    db_name = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('changes') / 'central.db'}"
    else:
        if os.environ.get("CROSSROAD_SKIP_POSTGRES") and not os.environ.get("CI"):
            pytest.skip("CROSSROAD_SKIP_POSTGRES is set")
        db_name = f"crossroad_changes_{os.getpid()}"
        _admin(f'DROP DATABASE IF EXISTS "{db_name}"')
        _admin(f'CREATE DATABASE "{db_name}"')
        url = POSTGRES_ADMIN.rsplit("/", 1)[0] + "/" + db_name
    engine = create_engine(url)
    migrate(engine)
    yield engine
    engine.dispose()
    if db_name:
        _admin(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')


@pytest.fixture
def reg(scratch: sa.Engine) -> Registry:
    """An initialized, otherwise empty registry: members A and B, server SA of A."""
    with scratch.begin() as conn:
        for table in reversed(t.metadata.sorted_tables):
            conn.execute(table.delete())
    r = Registry(scratch, actor="tester")
    r.initialize("EE", "cs.example.org")
    r.add_member_class("GOV", "Government")
    r.add_member(A, "Member A")
    r.add_member(B, "Member B")
    r.add_security_server(SA, "sa.example.org")
    return r


@pytest.fixture(scope="module")
def pki() -> _PKI:
    return _PKI.create()


def der(cert: Any) -> bytes:
    return cert.public_bytes(Encoding.DER)


def history_count(reg: Registry) -> int:
    return len(reg.history(100_000))


def expect(code: str, call: Callable[[], object]) -> XRoadError:
    with pytest.raises(XRoadError) as info:
        call()
    assert info.value.code == code, info.value
    return info.value


# --- members, subsystems, servers -----------------------------------------------------------


def test_member_errors(reg: Registry) -> None:
    before = history_count(reg)
    expect(Code.MEMBER_EXISTS, lambda: reg.add_member(A, "again"))
    expect(Code.MEMBER_CLASS_NOT_FOUND, lambda: reg.add_member(ClientId("EE", "XYZ", "1"), "x"))
    expect(Code.INVALID_CLIENT_IDENTIFIER, lambda: reg.add_member(ClientId("FI", "GOV", "9"), "x"))
    expect(
        Code.INVALID_CLIENT_IDENTIFIER, lambda: reg.add_member(ClientId("EE", "GOV", "a b"), "x")
    )
    expect(Code.INVALID_CLIENT_IDENTIFIER, lambda: reg.add_member(A.subsystem("s"), "x"))
    expect(Code.INVALID_REQUEST, lambda: reg.add_member(ClientId("EE", "GOV", "3"), " "))
    expect(Code.INVALID_REQUEST, lambda: reg.add_member(ClientId("EE", "GOV", "3"), "a\x00b"))
    expect(Code.MEMBER_NOT_FOUND, lambda: reg.rename_member(ClientId("EE", "GOV", "9"), "x"))
    expect(Code.MEMBER_CLASS_EXISTS, lambda: reg.add_member_class("GOV", "again"))
    expect(Code.MEMBER_CLASS_IS_IN_USE, lambda: reg.delete_member_class("GOV"))
    expect(Code.MEMBER_CLASS_NOT_FOUND, lambda: reg.delete_member_class("NOPE"))
    expect(Code.SUBSYSTEM_NOT_FOUND, lambda: reg.rename_subsystem(A.subsystem("none"), "x"))
    assert history_count(reg) == before  # failures leave no trace


def test_lenient_identifiers(scratch: sa.Engine, reg: Registry) -> None:
    lenient = Registry(scratch, strict_identifiers=False)
    lenient.add_member(ClientId("EE", "GOV", "with space"), "Lenient")
    expect(
        Code.INVALID_CLIENT_IDENTIFIER,
        lambda: lenient.add_member(ClientId("EE", "GOV", "a:b"), "x"),
    )


def test_rename_and_delete_member(reg: Registry) -> None:
    reg.add_subsystem(B.subsystem("s1"), "First")
    reg.rename_member(B, "Member B renamed")
    reg.rename_subsystem(B.subsystem("s1"), None)
    record = reg.member(B)
    assert record.name == "Member B renamed"
    assert record.subsystems[0].name is None
    reg.add_global_group("g", "Group")
    reg.add_global_group_member("g", B.subsystem("s1"))
    reg.add_server_client(SA, B.subsystem("s1"))
    expect(
        Code.SUBSYSTEM_REGISTERED_AND_CANNOT_BE_DELETED,
        lambda: reg.delete_subsystem(B.subsystem("s1")),
    )
    expect(Code.MEMBER_REGISTERED_AND_CANNOT_BE_DELETED, lambda: reg.delete_member(B))
    expect(Code.MEMBER_REGISTERED_AND_CANNOT_BE_DELETED, lambda: reg.delete_member(A))  # owner
    reg.delete_server_client(SA, B.subsystem("s1"))
    reg.delete_member(B)
    assert [m.id for m in reg.members()] == [A]
    assert reg.global_group("g").members == ()
    deletions = [h.table_name for h in reg.history(3)]
    assert deletions == ["members", "subsystems", "global_group_members"]


def test_server_errors_and_clients(reg: Registry, pki: _PKI) -> None:
    expect(Code.SECURITY_SERVER_EXISTS, lambda: reg.add_security_server(SA))
    expect(
        Code.MEMBER_NOT_FOUND,
        lambda: reg.add_security_server(SecurityServerId(ClientId("EE", "GOV", "7"), "x")),
    )
    expect(Code.SECURITY_SERVER_NOT_FOUND, lambda: reg.set_server_address(SB, "x.example"))
    expect(Code.INVALID_SERVER_ADDRESS, lambda: reg.set_server_address(SA, "not a host"))
    expect(
        Code.INVALID_SECURITY_SERVER, lambda: reg.add_security_server(SecurityServerId(A, "a/b"))
    )
    expect(Code.INVALID_REQUEST, lambda: reg.add_server_client(SA, A))  # the owner
    expect(Code.SUBSYSTEM_NOT_FOUND, lambda: reg.add_server_client(SA, B.subsystem("none")))
    reg.add_server_client(SA, B)
    expect(Code.MEMBER_ALREADY_REGISTERED_TO_SECURITY_SERVER, lambda: reg.add_server_client(SA, B))
    reg.add_subsystem(B.subsystem("s"))
    reg.add_server_client(SA, B.subsystem("s"))
    expect(
        Code.SUBSYSTEM_ALREADY_REGISTERED_TO_SECURITY_SERVER,
        lambda: reg.add_server_client(SA, B.subsystem("s")),
    )
    reg.set_server_client_enabled(SA, B, False)
    assert reg.shared_parameters().security_servers[0].clients == (B.subsystem("s"),)
    reg.set_server_client_enabled(SA, B, True)
    assert reg.shared_parameters().security_servers[0].clients == (B, B.subsystem("s"))
    expect(
        Code.MEMBER_NOT_REGISTERED_TO_SECURITY_SERVER,
        lambda: reg.set_server_client_enabled(SA, A, True),
    )
    reg.set_server_address(SA, "192.0.2.1")
    reg.set_maintenance_mode(SA, True, "")
    assert reg.shared_parameters().security_servers[0].maintenance is not None
    reg.set_maintenance_mode(SA, False, "ignored")
    server = reg.security_server(SA)
    assert (server.address, server.in_maintenance, server.maintenance_message) == (
        "192.0.2.1",
        False,
        None,
    )


def test_auth_certs(reg: Registry, pki: _PKI) -> None:
    cert = der(pki.auth_cert("EE", "a").cert)
    record = reg.add_auth_cert(SA, cert)
    reg.add_security_server(SB)
    expect(Code.CERTIFICATE_ALREADY_EXISTS, lambda: reg.add_auth_cert(SB, cert))
    expect(Code.INCORRECT_CERTIFICATE, lambda: reg.add_auth_cert(SB, b"not a certificate"))
    expect(Code.SS_AUTH_CERTIFICATE_NOT_FOUND, lambda: reg.delete_auth_cert(SB, record.id))
    reg.delete_auth_cert(SA, record.hash.upper())
    second = reg.add_auth_cert(SB, cert)
    reg.delete_auth_cert(SB, second.id)
    assert reg.security_server(SB).auth_certs == ()


def test_owners_group_follows_servers(reg: Registry) -> None:
    owners = "security-server-owners"
    assert reg.global_group(owners).members == (A,)
    reg.add_security_server(SB)
    reg.add_security_server(SecurityServerId(B, "sb2"))
    assert reg.global_group(owners).members == (A, B)
    reg.delete_security_server(SB)
    assert reg.global_group(owners).members == (A, B)  # B still owns sb2
    reg.delete_security_server(SecurityServerId(B, "sb2"))
    assert reg.global_group(owners).members == (A,)
    expect(Code.CANNOT_ADD_MEMBER_TO_OWNERS_GROUP, lambda: reg.add_global_group_member(owners, B))
    expect(
        Code.OWNERS_GLOBAL_GROUP_MEMBER_CANNOT_BE_DELETED,
        lambda: reg.delete_global_group_member(owners, A),
    )
    expect(Code.OWNERS_GLOBAL_GROUP_CANNOT_BE_DELETED, lambda: reg.delete_global_group(owners))
    # Renaming the group through its system parameter keeps the members.
    reg.set_parameter("securityServerOwnersGroup", "ss-owners")
    assert reg.global_group("ss-owners").members == (A,)
    expect(Code.GLOBAL_GROUP_NOT_FOUND, lambda: reg.global_group(owners))
    reg.add_global_group("other", "x")
    expect(
        Code.GLOBAL_GROUP_EXISTS, lambda: reg.set_parameter("securityServerOwnersGroup", "other")
    )


def test_global_groups(reg: Registry) -> None:
    reg.add_global_group("g1", "Group one")
    expect(Code.GLOBAL_GROUP_EXISTS, lambda: reg.add_global_group("g1", "x"))
    expect(Code.INVALID_IDENTIFIER, lambda: reg.add_global_group("g/1", "x"))
    reg.add_global_group_member("g1", B)
    expect(Code.GLOBAL_GROUP_MEMBER_EXISTS, lambda: reg.add_global_group_member("g1", B))
    expect(Code.GLOBAL_GROUP_MEMBER_NOT_FOUND, lambda: reg.delete_global_group_member("g1", A))
    expect(Code.GLOBAL_GROUP_NOT_FOUND, lambda: reg.add_global_group_member("g2", A))
    assert reg.set_global_group_description("g1", "Renamed").description == "Renamed"
    reg.delete_global_group_member("g1", B)
    reg.add_global_group_member("g1", A)
    reg.delete_global_group("g1")
    assert [g.code for g in reg.global_groups()] == ["security-server-owners"]


# --- certification and time-stamping services ------------------------------------------------


def test_approved_cas(reg: Registry, pki: _PKI) -> None:
    ca = reg.add_approved_ca(der(pki.ca.cert), PROFILE)
    assert ca.name == "Test CA"
    assert ca.top.ocsp == ()
    assert ca.default_csr_format is None
    expect(
        Code.CERTIFICATION_SERVICE_EXISTS, lambda: reg.add_approved_ca(der(pki.ca.cert), PROFILE)
    )
    expect(Code.INCORRECT_CERTIFICATE, lambda: reg.add_approved_ca(b"junk", PROFILE, name="x"))
    expect(
        Code.INVALID_REQUEST,
        lambda: reg.add_approved_ca(der(pki.ca.cert), PROFILE, name="y", default_csr_format="XML"),
    )
    expect(Code.INVALID_URL, lambda: reg.add_ocsp_responder(ca.id, "ftp://ocsp"))
    expect(
        Code.INVALID_REQUEST,
        lambda: reg.add_ocsp_responder(ca.id, "http://ocsp", cost_type="CHEAP"),
    )
    expect(Code.CERTIFICATION_SERVICE_NOT_FOUND, lambda: reg.add_ocsp_responder(999, "http://o"))
    ocsp = reg.add_ocsp_responder(ca.id, "http://ocsp.example.org", der(pki.ocsp.cert))
    assert ocsp.cost_type is not None
    assert ocsp.cost_type.value == "UNDEFINED"
    inter = reg.add_intermediate_ca(ca.id, pki.ca.cert.public_bytes(Encoding.PEM))
    expect(
        Code.INTERMEDIATE_CA_NOT_FOUND,
        lambda: reg.add_ocsp_responder(ca.id, "http://o", intermediate_id=ca.top.id),
    )
    reg.add_ocsp_responder(ca.id, "http://inter.example.org", intermediate_id=inter.id)
    updated = reg.update_ocsp_responder(
        ocsp.id, url="https://ocsp.example.org", cost_type="PAID", cert=None
    )
    assert (updated.url, updated.cert, updated.cost_type.value) == (
        "https://ocsp.example.org",
        None,
        "PAID",
    )  # type: ignore[union-attr]
    from crossroad.globalconf.model import AcmeServer

    expect(
        Code.INVALID_IP_ADDRESS,
        lambda: reg.update_approved_ca(
            ca.id, acme_server=AcmeServer("https://acme.example", "300.1.1.1")
        ),
    )
    changed = reg.update_approved_ca(
        ca.id,
        authentication_only=True,
        default_csr_format="PEM",
        acme_server=AcmeServer("https://acme.example/dir"),
    )
    assert changed.authentication_only
    assert changed.acme_server is not None
    assert changed.certificate_profile_info == PROFILE
    assert reg.update_approved_ca(ca.id, acme_server=None).acme_server is None
    reg.delete_ocsp_responder(ocsp.id)
    expect(Code.OCSP_RESPONDER_NOT_FOUND, lambda: reg.delete_ocsp_responder(ocsp.id))
    reg.delete_intermediate_ca(inter.id)
    expect(Code.INTERMEDIATE_CA_NOT_FOUND, lambda: reg.delete_intermediate_ca(ca.top.id))
    reg.delete_approved_ca(ca.id)
    assert reg.approved_cas() == ()
    expect(Code.CERTIFICATION_SERVICE_NOT_FOUND, lambda: reg.approved_ca(ca.id))


def test_approved_tsas(reg: Registry, pki: _PKI) -> None:
    tsa = reg.add_approved_tsa("http://tsa.example.org", der(pki.tsa.cert), name="TSA")
    expect(Code.INVALID_URL, lambda: reg.add_approved_tsa("tsa.example.org", der(pki.tsa.cert)))
    changed = reg.update_approved_tsa(tsa.id, url="https://tsa.example.org", cost_type="FREE")
    assert changed.url == "https://tsa.example.org"
    assert changed.name == "TSA"
    reg.delete_approved_tsa(tsa.id)
    expect(Code.TIMESTAMPING_AUTHORITY_NOT_FOUND, lambda: reg.delete_approved_tsa(tsa.id))


# --- system parameters, management service ---------------------------------------------------


def test_system_parameters(reg: Registry) -> None:
    params = reg.parameters()
    assert params["instanceIdentifier"] == "EE"
    assert params["confExpireIntervalSeconds"] == "600"
    assert params["ocspFreshnessSeconds"] == "3600"
    assert params["timeStampingIntervalSeconds"] == "60"
    reg.set_parameter("ocspFreshnessSeconds", "1200")
    assert reg.shared_parameters().global_settings.ocsp_freshness_seconds == 1200
    reg.set_parameter("timeStampingIntervalSeconds", "120")
    assert reg.int_parameter("timeStampingIntervalSeconds") == 120
    expect(
        Code.INVALID_SYSTEM_PARAMETER,
        lambda: reg.set_parameter("timeStampingIntervalSeconds", "1200"),
    )
    expect(Code.INVALID_SYSTEM_PARAMETER, lambda: reg.set_parameter("ocspFreshnessSeconds", "ten"))
    expect(Code.INVALID_SYSTEM_PARAMETER, lambda: reg.set_parameter("noSuchKey", "1"))
    expect(Code.INVALID_SYSTEM_PARAMETER, lambda: reg.set_parameter("instanceIdentifier", "FI"))
    expect(Code.INVALID_SYSTEM_PARAMETER, lambda: reg.set_parameter("confSignDigestAlgoId", "MD5"))
    reg.set_parameter("confSignDigestAlgoId", "sha256")
    assert reg.parameter("confSignDigestAlgoId") == "SHA-256"
    reg.set_parameter("ocspFreshnessSeconds", None)
    assert reg.parameter("ocspFreshnessSeconds") == "3600"
    expect(Code.INIT_ALREADY_INITIALIZED, lambda: reg.initialize("FI"))
    reg.initialize("EE")  # repeating is harmless


def test_management_service(reg: Registry, pki: _PKI) -> None:
    expect(Code.MANAGEMENT_SERVICE_PROVIDER_NOT_SET, reg.private_parameters)
    expect(Code.INVALID_SERVICE_PROVIDER_ID, lambda: reg.set_management_service(B.subsystem("x")))
    reg.add_subsystem(A.subsystem("MGMT"))
    reg.set_management_service(
        A.subsystem("MGMT"), auth_cert_reg_url="https://cs.example.org:4001/ms/"
    )
    service = reg.management_service()
    assert service.auth_cert_reg_service_address == "https://cs.example.org:4001/ms/"
    assert service.auth_cert_reg_service_cert is None
    expect(Code.INVALID_URL, lambda: reg.set_management_service(auth_cert_reg_url="nope"))


def test_uninitialized_registry(scratch: sa.Engine, reg: Registry) -> None:
    with scratch.begin() as conn:
        conn.execute(t.system_parameters.delete())
    expect(Code.INSTANCE_IDENTIFIER_NOT_SET, reg.shared_parameters)
    expect(Code.INSTANCE_IDENTIFIER_NOT_SET, lambda: reg.add_member(A, "x"))


# --- configuration sources, parts, anchors ---------------------------------------------------


def test_signing_keys(reg: Registry, pki: _PKI) -> None:
    first = reg.add_signing_key("internal", "k1", der(pki.ca.cert), "keys/k1.pem")
    assert first.active
    assert first.source_type is SourceType.INTERNAL
    second = reg.add_signing_key(SourceType.INTERNAL, "k2", der(pki.ocsp.cert), "keys/k2.pem")
    assert not second.active
    reg.add_signing_key("external", "x1", der(pki.tsa.cert), "keys/x1.pem")
    expect(
        Code.SIGNING_KEY_EXISTS,
        lambda: reg.add_signing_key("internal", "k1", der(pki.ca.cert), "f"),
    )
    expect(
        Code.INVALID_REQUEST, lambda: reg.add_signing_key("sideways", "k9", der(pki.ca.cert), "f")
    )
    expect(Code.SIGNING_KEY_ACTION_NOT_POSSIBLE, lambda: reg.delete_signing_key("k1"))
    reg.activate_signing_key("k2")
    assert [(k.key_id, k.active) for k in reg.signing_keys("internal")] == [
        ("k1", False),
        ("k2", True),
    ]
    assert reg.active_signing_key("internal").key_id == "k2"  # type: ignore[union-attr]
    (source,) = reg.shared_sources()
    assert source.address == "cs.example.org"
    assert source.internal_verification_certs == (der(pki.ca.cert), der(pki.ocsp.cert))
    assert source.external_verification_certs == (der(pki.tsa.cert),)
    assert reg.delete_signing_key("k1").key_reference == "keys/k1.pem"
    expect(Code.SIGNING_KEY_NOT_FOUND, lambda: reg.activate_signing_key("k1"))
    anchor = render_anchor(
        ConfigurationAnchor("EE", (AnchorSource("http://cs/internalconf", (der(pki.ca.cert),)),))
    )
    import datetime as dt

    reg.save_source_anchor("internal", anchor, dt.datetime(2025, 1, 1, tzinfo=dt.UTC))
    internal = next(s for s in reg.configuration_sources() if s.source_type is SourceType.INTERNAL)
    assert internal.anchor_file == anchor
    assert internal.anchor_file_hash is not None
    assert internal.anchor_generated_at == dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


def test_configuration_parts(reg: Registry) -> None:
    xml = b'<?xml version="1.0"?><tns:conf xmlns:tns="http://x-road.eu/xsd/xroad.xsd"><ocspFetchInterval>300</ocspFetchInterval></tns:conf>'
    record = reg.set_configuration_part("fetchinterval", xml)
    assert (record.content_identifier, record.file_name) == (
        "FETCHINTERVAL",
        "fetchinterval-params.xml",
    )
    expect(
        Code.CONFIGURATION_PART_VALIDATION_FAILED,
        lambda: reg.set_configuration_part("NEXTUPDATE", b"<x/>"),
    )
    expect(
        Code.UNKNOWN_CONFIGURATION_PART,
        lambda: reg.set_configuration_part("SHARED-PARAMETERS", b"x"),
    )
    expect(Code.INVALID_REQUEST, lambda: reg.set_configuration_part("CUSTOM", b"x", "../evil"))
    reg.set_configuration_part("CUSTOM", b"anything", "custom.bin")
    reg.set_configuration_part("FETCHINTERVAL", xml.replace(b"300", b"600"))
    parts = reg.configuration_parts()
    assert [p.content_identifier for p in parts] == ["CUSTOM", "FETCHINTERVAL"]
    assert b"600" in parts[1].data
    reg.delete_configuration_part("custom")
    expect(Code.UNKNOWN_CONFIGURATION_PART, lambda: reg.delete_configuration_part("CUSTOM"))


def test_trusted_anchors(reg: Registry, pki: _PKI) -> None:
    def anchor(instance: str, url: str) -> bytes:
        return render_anchor(
            ConfigurationAnchor(instance, (AnchorSource(url, (der(pki.ca.cert),)),))
        )

    first = reg.add_trusted_anchor(anchor("FI", "http://fi/externalconf"))
    assert len(first.hash.split(":")) == 28
    expect(Code.MALFORMED_ANCHOR, lambda: reg.add_trusted_anchor(b"<nope/>"))
    expect(
        Code.TRUSTED_ANCHOR_VERIFICATION_FAILED,
        lambda: reg.add_trusted_anchor(anchor("EE", "http://x")),
    )
    reg.add_trusted_anchor(anchor("FI", "http://fi2/externalconf"))  # replaces
    reg.add_trusted_anchor(anchor("IS", "http://is/externalconf"))
    assert [a.instance_identifier for a in reg.trusted_anchors()] == ["FI", "IS"]
    reg.delete_trusted_anchor(reg.trusted_anchors()[1].hash.replace(":", "").lower())
    reg.delete_trusted_anchor("FI")
    expect(Code.TRUSTED_ANCHOR_NOT_FOUND, lambda: reg.delete_trusted_anchor("FI"))


# --- API keys, batches, history --------------------------------------------------------------


def test_api_keys(scratch: sa.Engine, reg: Registry) -> None:
    record, secret = reg.create_api_key("automation", ["registration_officer", Role.OBSERVER])
    assert record.roles == {Role.REGISTRATION_OFFICER, Role.OBSERVER}
    assert reg.authenticate(secret) == record
    assert reg.authenticate(secret + "x") is None
    with scratch.connect() as conn:
        stored = conn.execute(sa.select(t.api_keys.c.key_hash)).scalar()
        history = " ".join(str(r) for r in conn.execute(sa.select(t.history.c.new_data)).scalars())
    assert stored != secret
    assert secret not in history
    assert stored not in history
    expect(Code.API_KEY_EXISTS, lambda: reg.create_api_key("automation", ["observer"]))
    expect(Code.INVALID_REQUEST, lambda: reg.create_api_key("x", ["admin"]))
    expect(Code.INVALID_REQUEST, lambda: reg.create_api_key("x", []))
    reg.revoke_api_key("automation")
    assert reg.authenticate(secret) is None
    expect(Code.API_KEY_NOT_FOUND, lambda: reg.revoke_api_key(record.id))


def test_batch_is_all_or_nothing(reg: Registry) -> None:
    before = history_count(reg)

    def twice() -> None:
        with reg.batch():
            reg.add_member(ClientId("EE", "GOV", "10"), "Ten")
            reg.add_member(ClientId("EE", "GOV", "10"), "Ten again")

    expect(Code.MEMBER_EXISTS, twice)
    assert history_count(reg) == before
    with reg.batch():
        for i in range(20):
            reg.add_member(ClientId("EE", "GOV", f"b{i}"), f"Batch {i}")
    assert len(reg.members()) == 22


def test_history_row_per_change(reg: Registry) -> None:
    before = history_count(reg)
    reg.add_subsystem(A.subsystem("h"), "History")
    reg.rename_subsystem(A.subsystem("h"), "History 2")
    reg.delete_subsystem(A.subsystem("h"))
    latest = reg.history(3)
    assert history_count(reg) == before + 3
    assert [(h.operation, h.table_name, h.actor) for h in latest] == [
        ("DELETE", "subsystems", "tester"),
        ("UPDATE", "subsystems", "tester"),
        ("INSERT", "subsystems", "tester"),
    ]
    assert latest[1].old_data["name"] == "History"  # type: ignore[index]
    assert latest[1].new_data["name"] == "History 2"  # type: ignore[index]
    assert latest[0].new_data is None
    assert latest[2].old_data is None


# --- input checks (property tests) ------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_host_and_url_checks_only_raise_coded_errors(text: str) -> None:
    codes = []
    for check in (check_host, check_url):
        try:
            check(text, "value")
        except XRoadError as exc:
            codes.append(exc.code)
    assert set(codes) <= {Code.INVALID_REQUEST, Code.INVALID_SERVER_ADDRESS, Code.INVALID_URL}
