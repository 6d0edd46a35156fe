"""The central server registry on SQLite and PostgreSQL: a full registry built once per backend,
its shared/private parameters rendered for every version and validated against the official
XSDs, history for every change, and the coded errors of bad input."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree

from crossroad.central.registry import Registry
from crossroad.crypto.algorithms import SHA1
from crossroad.globalconf.model import (
    AcmeServer,
    AnchorSource,
    ConfigurationAnchor,
    ConfigurationSource,
    CostType,
    CsrFormat,
    SharedParameters,
)
from crossroad.globalconf.privateparams import (
    parse_private_parameters,
    render_anchor,
    render_private_parameters,
)
from crossroad.identifiers import ClientId, SecurityServerId
from crossroad.storage.engine import create_engine, migrate
from crossroad.testing.pki import TestPKI as _PKI
from crossroad.testing.pki import make_cert, name

PROFILE = "ee.ria.xroad.common.certificateprofile.impl.EjbcaCertificateProfileInfoProvider"
_RES = Path("schemas/src/lib/globalconf-core/src/main/resources")
_IDENTIFIERS = Path("schemas/src/common/common-domain/src/main/resources/identifiers.xsd")
GOV = ClientId("EE", "GOV", "1234")
COM = ClientId("EE", "COM", "5678")
SS1 = SecurityServerId(GOV, "ss1")
SS2 = SecurityServerId(COM, "ss2")


def der(cert: Any) -> bytes:
    return cert.public_bytes(Encoding.DER)


# --- databases: one per backend for the whole module (PostgreSQL databases are slow to make) ---

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
def engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[sa.Engine]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('registry') / 'central.db'}"
        db_name = None
    else:
        if os.environ.get("CROSSROAD_SKIP_POSTGRES") and not os.environ.get("CI"):
            pytest.skip("CROSSROAD_SKIP_POSTGRES is set")
        db_name = f"crossroad_registry_{os.getpid()}"
        _admin(f'DROP DATABASE IF EXISTS "{db_name}"')
        _admin(f'CREATE DATABASE "{db_name}"')
        url = POSTGRES_ADMIN.rsplit("/", 1)[0] + "/" + db_name
    engine = create_engine(url)
    migrate(engine)
    yield engine
    engine.dispose()
    if db_name:
        _admin(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def pki() -> _PKI:
    return _PKI.create()


@pytest.fixture(scope="module")
def auth(pki: _PKI) -> dict[str, bytes]:
    return {code: der(pki.auth_cert("EE", code).cert) for code in ("s1", "s2", "cs")}


@pytest.fixture(scope="module")
def built(engine: sa.Engine, pki: _PKI, auth: dict[str, bytes]) -> Registry:
    """A registry that uses every feature the shared and private parameters can carry."""
    r = Registry(engine, actor="test")
    r.initialize("EE", "cs.example.org")
    r.add_member_class("GOV", "Government")
    r.add_member_class("COM", "Commercial")
    r.add_member(GOV, "Government agency")
    r.add_member(COM, "Company")
    r.add_subsystem(GOV.subsystem("MANAGEMENT"), "Management services")
    r.add_subsystem(GOV.subsystem("plain"))
    r.add_subsystem(COM.subsystem("shop"), "Shop")
    r.add_security_server(SS1, "ss1.example.org")
    r.add_security_server(SS2, "10.0.0.2")
    r.add_auth_cert(SS1, auth["s1"])
    r.add_auth_cert(SS2, base64.b64encode(auth["s2"]))  # any spelling load_certificate reads
    r.add_server_client(SS1, GOV.subsystem("MANAGEMENT"))
    r.add_server_client(SS1, COM.subsystem("shop"))
    r.add_server_client(SS2, GOV.subsystem("plain"), enabled=False)
    r.add_server_client(SS2, GOV)
    r.set_maintenance_mode(SS2, True, "Upgrade until noon")
    r.add_global_group("partners", "Partner organisations")
    r.add_global_group_member("partners", COM)
    r.add_global_group_member("partners", GOV.subsystem("plain"))
    inter = make_cert(name(O="Test", CN="Intermediate CA"), issuer=pki.ca, kind="ca")
    ca = r.add_approved_ca(
        der(pki.ca.cert),
        PROFILE,
        authentication_only=False,
        default_csr_format="der",
        acme_server=AcmeServer("https://acme.example.org/directory", "10.0.0.9", "auth", "sign"),
        intermediates=[der(inter.cert)],
        ocsp=[("http://ocsp.example.org", der(pki.ocsp.cert), "FREE")],
    )
    r.add_ocsp_responder(ca.id, "http://ocsp2.example.org", cost_type=None)
    r.add_ocsp_responder(
        ca.id,
        "http://inter-ocsp.example.org",
        cost_type=CostType.PAID,
        intermediate_id=ca.intermediates[0].id,
    )
    auth_ca = make_cert(name(O="Auth", CN="Auth CA"), kind="ca")
    r.add_approved_ca(der(auth_ca.cert), PROFILE, name="TLS only", authentication_only=True)
    r.add_approved_tsa("http://tsa.example.org/timestamp", der(pki.tsa.cert), cost_type="free")
    r.set_management_service(GOV.subsystem("MANAGEMENT"), auth_cert_reg_cert=auth["cs"])
    partner = ConfigurationAnchor(
        "FI", (AnchorSource("http://cs.fi.example/externalconf", (der(pki.ca.cert),)),)
    )
    r.add_trusted_anchor(render_anchor(partner))
    return r


def _schema(vectors: Path, kind: str, version: int) -> etree.XMLSchema:
    class Resolver(etree.Resolver):
        def resolve(self, system_url, public_id, context):  # type: ignore[no-untyped-def,override]
            if system_url.endswith("identifiers.xsd"):
                return self.resolve_filename(str(vectors / _IDENTIFIERS), context)
            return None

    parser = etree.XMLParser(no_network=True)
    parser.resolvers.add(Resolver())
    path = vectors / _RES / "globalconf" / f"v{version}" / f"{kind}-parameters.xsd"
    return etree.XMLSchema(etree.parse(str(path), parser))


def with_source(params: SharedParameters) -> SharedParameters:
    return dataclasses.replace(params, sources=(ConfigurationSource("cs.example.org"),))


# --- the read model -------------------------------------------------------------------------


@pytest.mark.parametrize("version", [2, 3, 4, 5, 6])
def test_shared_parameters_validate_against_xsd(
    built: Registry, vectors: Path, version: int
) -> None:
    algorithm = {"auth_cert_hash": SHA1} if version == 2 else {}
    params = built.shared_parameters(**algorithm)
    assert params.sources == ()
    xml = with_source(params).render(version) if version >= 3 else params.render(2)
    schema = _schema(vectors, "shared", version)
    assert schema.validate(etree.fromstring(xml)), schema.error_log
    again = SharedParameters.parse(xml)
    assert again.members == params.members if version >= 5 else len(again.members) == 2
    assert again.security_server_ids() == (SS1, SS2)


def test_shared_parameters_values(built: Registry, auth: dict[str, bytes]) -> None:
    params = built.shared_parameters()
    assert params.instance_identifier == "EE"
    assert params.global_settings.ocsp_freshness_seconds == 3600
    assert params.member_classes() == ("COM", "GOV")
    assert [m.name for m in params.members] == ["Government agency", "Company"]
    assert params.subsystem(GOV.subsystem("plain")).subsystem_name is None  # type: ignore[union-attr]
    ss1, ss2 = params.security_servers
    assert ss1.clients == (GOV.subsystem("MANAGEMENT"), COM.subsystem("shop"))
    assert ss2.clients == (GOV,)  # the disabled subsystem is left out
    assert ss2.maintenance is not None
    assert ss2.maintenance.message == "Upgrade until noon"
    assert ss1.maintenance is None
    assert ss1.auth_cert_hashes == (hashlib.sha256(auth["s1"]).digest(),)
    v2 = built.shared_parameters(auth_cert_hash=SHA1)
    assert v2.security_servers[0].auth_cert_hashes == (hashlib.sha1(auth["s1"]).digest(),)
    owners = params.global_group("security-server-owners")
    assert owners is not None
    assert owners.members == (GOV, COM)
    assert params.is_in_global_group(GOV.subsystem("plain"), "partners")
    assert not params.is_in_global_group(GOV, "partners")
    test_ca, tls = params.approved_cas
    assert test_ca.name == "Test CA"
    assert tls.authentication_only is True
    assert test_ca.default_csr_format is CsrFormat.DER
    assert [o.url for o in test_ca.top_ca.ocsp] == [
        "http://ocsp.example.org",
        "http://ocsp2.example.org",
    ]
    assert test_ca.top_ca.ocsp[0].cost_type is CostType.FREE
    assert test_ca.top_ca.ocsp[1].cost_type is None
    assert test_ca.intermediate_cas[0].ocsp[0].cost_type is CostType.PAID
    assert test_ca.acme_server == AcmeServer(
        "https://acme.example.org/directory", "10.0.0.9", "auth", "sign"
    )
    assert params.approved_tsas[0].cost_type is CostType.FREE
    assert params.approved_tsas[0].name == "Test TSA"
    # The crypto core's view builds from it.
    policy = params.trust_policy()
    assert [ca.name for ca in policy.cas] == ["Test CA", "TLS only"]
    assert params.min_version() == 6


@pytest.mark.parametrize("version", [2, 3])
def test_private_parameters_validate_against_xsd(
    built: Registry, vectors: Path, version: int
) -> None:
    params = built.private_parameters()
    assert params.management_service.auth_cert_reg_service_address == (
        "https://cs.example.org:4001/managementservice/"
    )
    assert params.management_service.management_request_service_provider_id == GOV.subsystem(
        "MANAGEMENT"
    )
    assert params.time_stamping_interval_seconds == 60
    assert [a.instance_identifier for a in params.configuration_anchors] == ["FI"]
    xml = render_private_parameters(params, version)
    schema = _schema(vectors, "private", version)
    assert schema.validate(etree.fromstring(xml)), schema.error_log
    assert parse_private_parameters(xml) == params


def test_records(built: Registry) -> None:
    member = built.member(GOV.subsystem("plain"))  # a subsystem id finds its member
    assert member.id == GOV
    assert member.name == "Government agency"
    assert [s.id.subsystem_code for s in member.subsystems] == ["MANAGEMENT", "plain"]
    assert member.created_at is not None
    assert member.created_at.tzinfo is not None
    server = built.security_server(SS2)
    assert server.owner_name == "Company"
    assert server.address == "10.0.0.2"
    assert [(c.client, c.enabled) for c in server.clients] == [
        (GOV.subsystem("plain"), False),
        (GOV, True),
    ]
    assert len(server.auth_certs[0].hash) == 64
    assert [s.id for s in built.security_servers(owner=COM)] == [SS2]
    assert built.groups_of(COM) == ("security-server-owners", "partners")
    assert built.global_group("security-server-owners").owners_group
    assert built.instance_identifier() == "EE"


def test_history_is_written_for_every_change(built: Registry) -> None:
    entries = built.history(10_000)
    assert {e.actor for e in entries} == {"test"}
    tables = {e.table_name for e in entries}
    for table in ("members", "subsystems", "security_servers", "auth_certs", "server_clients"):
        assert table in tables
    assert {"global_groups", "global_group_members", "approved_cas", "ca_infos"} <= tables
    assert {"ocsp_infos", "approved_tsas", "system_parameters", "trusted_anchors"} <= tables
    newest = entries[0]
    assert newest.table_name == "trusted_anchors"
    assert newest.operation == "INSERT"
    assert newest.new_data is not None
    assert newest.new_data["instance_identifier"] == "FI"
    assert entries[0].at >= entries[-1].at
    assert [e.table_name for e in built.history(3, table="members")] == ["members"] * 2
