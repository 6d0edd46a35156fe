"""The serverconf store on SQLite and PostgreSQL: schema, round trips, NIIS rules, snapshots."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from lxml import etree

from crossroad.errors import Code, XRoadError
from crossroad.identifiers import ClientId, GlobalGroupId, LocalGroupId, ServiceId
from crossroad.serverconf.access import check_access, is_allowed
from crossroad.serverconf.model import ClientStatus, ConnectionType, DescriptionType
from crossroad.serverconf.store import Role, ServerConfStore
from crossroad.storage import serverconf_schema
from crossroad.storage.engine import create_engine, current_revision
from crossroad.testing.clock import FrozenClock

from .conftest import CONSUMER, IN_LOCAL, OWNER, PROVIDER, membership

T0 = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)
PETS = ServiceId(PROVIDER, "pets")
GET_RANDOM = ServiceId(PROVIDER, "getRandom", "v1")


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    engine = create_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def store(engine: sa.Engine) -> ServerConfStore:
    store = ServerConfStore(engine, FrozenClock(T0))
    store.initialize(OWNER, "ss1")
    store.add_client(PROVIDER, status=ClientStatus.REGISTERED)
    return store


@pytest.fixture(scope="session")
def wsdl_bytes(vectors: Path) -> bytes:
    return (vectors / "metaservice" / "wsdl.wsdl").read_bytes()


@pytest.fixture(scope="session")
def petstore(vectors: Path) -> bytes:
    return (vectors / "metaservice" / "petstore.yaml").read_bytes()


def test_migrated_schema_equals_declared(engine: sa.Engine) -> None:
    ServerConfStore(engine)
    ServerConfStore(engine)  # migrating again is a no-op
    assert current_revision(engine, "serverconf") == "0001"
    with engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}),
            serverconf_schema.metadata,
        )
    ours = [d for d in diff if not (d[0] == "remove_table" and not d[1].name.startswith("ss_"))]
    assert ours == []


def test_round_trip(store: ServerConfStore, wsdl_bytes: bytes, petstore: bytes, pki) -> None:  # type: ignore[no-untyped-def]
    did = store.add_wsdl(PROVIDER, "http://h/wsdl", wsdl_bytes, enabled=True)
    oid = store.add_openapi(PROVIDER, "http://h/petstore.yaml", petstore, "pets")
    rid = store.add_rest(PROVIDER, "https://is.example/api", "api", enabled=True)
    store.set_connection_type(PROVIDER, ConnectionType.SSLNOAUTH)
    digest = store.add_is_cert(PROVIDER, pki.ca.cert.public_bytes(_der()))
    gid = store.add_local_group(PROVIDER, "grp", "Group")
    store.add_local_group_members(gid, [IN_LOCAL])
    store.add_access_rights(PROVIDER, "getRandom", [CONSUMER, GlobalGroupId("EE", "owners")])
    endpoint = store.add_endpoint(PROVIDER, "pets", "delete", "/pets/*")
    store.add_access_rights(PROVIDER, None, [LocalGroupId("grp")], endpoint_id=endpoint)
    store.update_service(GET_RANDOM, url="http://is.example/soap", timeout=15)

    conf = ServerConfStore(store.engine).snapshot()  # a fresh reader sees it all
    assert conf.server_id is not None
    assert str(conf.server_id) == "SERVER:EE/GOV/1/ss1"
    client = conf.client(PROVIDER)
    assert client is not None
    assert client.connection_type is ConnectionType.SSLNOAUTH
    assert len(client.is_certs) == 1
    assert len(digest) == 64
    descriptions = {d.id: d for d in client.descriptions}
    assert descriptions[did].type is DescriptionType.WSDL
    assert descriptions[did].content == wsdl_bytes
    assert descriptions[oid].disabled  # new descriptions are disabled, as in NIIS
    assert descriptions[oid].disabled_notice == "Out of order"
    assert descriptions[rid].refreshed_at == T0
    entry = conf.service(GET_RANDOM)
    assert entry is not None
    assert (entry.service.url, entry.service.timeout) == ("http://is.example/soap", 15)
    assert conf.service(PETS) is not None
    methods = {(e.method, e.path, e.generated) for e in conf.endpoints(PROVIDER, "pets")}
    assert ("*", "**", True) in methods
    assert ("GET", "/pets/*", True) in methods
    assert ("DELETE", "/pets/*", False) in methods
    group = conf.local_group(PROVIDER, "grp")
    assert group is not None
    assert [m.id for m in group.members] == [IN_LOCAL]
    rights = {(str(r.subject), e.method) for r, e in conf.acl(PROVIDER, "getRandom").all}
    assert rights == {(str(CONSUMER), "*"), ("GLOBALGROUP:EE/owners", "*")}
    assert conf.acl(PROVIDER, "getRandom").all[0][0].rights_given_at == T0
    # The decision works on what was stored.
    check_access(conf, membership, CONSUMER, GET_RANDOM)
    assert not is_allowed(conf, membership, IN_LOCAL, PETS, method="GET", path="/pets/1")
    assert is_allowed(conf, membership, IN_LOCAL, PETS, method="DELETE", path="/pets/1")


def _der():  # type: ignore[no-untyped-def]
    from cryptography.hazmat.primitives.serialization import Encoding

    return Encoding.DER


def test_snapshot_is_cached_until_a_change(store: ServerConfStore) -> None:
    first = store.snapshot()
    assert store.snapshot() is first
    assert store.current is first
    other = ServerConfStore(store.engine, migrate=False)
    other.add_client(CONSUMER)  # another process changes the database
    second = store.snapshot()
    assert second is not first
    assert second.generation > first.generation
    assert second.client(CONSUMER) is not None


def test_failed_change_changes_nothing(store: ServerConfStore, wsdl_bytes: bytes) -> None:
    before = store.snapshot().generation
    with pytest.raises(XRoadError):
        store.add_wsdl(ClientId("EE", "X", "404"), "http://h/wsdl", wsdl_bytes)
    assert store.snapshot().generation == before


_REFUSALS = [
    (lambda s, w: s.add_client(PROVIDER), Code.CLIENT_ALREADY_EXISTS),
    (lambda s, w: s.add_client(ClientId("EE", "GOV", "a/b")), Code.INVALID_CLIENT_IDENTIFIER),
    (lambda s, w: s.initialize(OWNER, "ss2"), Code.SERVER_ALREADY_FULLY_INITIALIZED),
    (lambda s, w: s.delete_client(OWNER), Code.CANNOT_DELETE_OWNER),
    (lambda s, w: s.set_connection_type(PROVIDER, "TLS"), Code.INVALID_CONNECTION_TYPE),
    (lambda s, w: s.add_rest(PROVIDER, "ftp://h/x", "x"), Code.INVALID_URL),
    (lambda s, w: s.add_rest(PROVIDER, "http://h/x", "getWsdl"), Code.SERVICE_CODE_RESERVED),
    (lambda s, w: s.add_wsdl(PROVIDER, "http://h/w", b"<x/>"), Code.INVALID_WSDL),
    (
        lambda s, w: s.add_openapi(PROVIDER, "http://h/o", b"{}", "o"),
        Code.OPENAPI_PARSING_ERROR,
    ),
    (lambda s, w: s.enable_description(999), Code.SERVICE_DESCRIPTION_NOT_FOUND),
    (
        lambda s, w: s.update_service(ServiceId(PROVIDER, "x"), timeout=5),
        Code.SERVICE_NOT_FOUND,
    ),
    (lambda s, w: s.delete_endpoint(999), Code.ENDPOINT_NOT_FOUND),
    (lambda s, w: s.add_access_rights(PROVIDER, "x", [CONSUMER]), Code.SERVICE_NOT_FOUND),
    (lambda s, w: s.add_local_group_members(999, [CONSUMER]), Code.LOCAL_GROUP_NOT_FOUND),
    (lambda s, w: s.remove_is_cert(PROVIDER, "00"), Code.CERTIFICATE_NOT_FOUND),
    (lambda s, w: s.create_api_key("k", ["root"]), Code.INVALID_ROLE),
    (lambda s, w: s.revoke_api_key("nope"), Code.API_KEY_NOT_FOUND),
]


def test_refusals(store: ServerConfStore, wsdl_bytes: bytes) -> None:
    # One database for all of them: each refusal leaves the store unchanged.
    generation = store.snapshot().generation
    for change, code in _REFUSALS:
        with pytest.raises(XRoadError) as err:
            change(store, wsdl_bytes)
        assert err.value.code == code
    assert store.snapshot().generation == generation


def test_duplicates(store: ServerConfStore, wsdl_bytes: bytes, petstore: bytes) -> None:
    store.add_wsdl(PROVIDER, "http://h/wsdl", wsdl_bytes)
    with pytest.raises(XRoadError, match=Code.URL_ALREADY_EXISTS):
        store.add_wsdl(PROVIDER, "HTTP://H/WSDL", wsdl_bytes)
    with pytest.raises(XRoadError, match=Code.SERVICE_ALREADY_EXISTS):
        store.add_wsdl(PROVIDER, "http://h/other", wsdl_bytes)
    with pytest.raises(XRoadError, match=Code.SERVICE_CODE_ALREADY_EXISTS):
        store.add_rest(PROVIDER, "http://h/x", "GETRANDOM")
    store.add_openapi(PROVIDER, "http://h/o", petstore, "pets")
    with pytest.raises(XRoadError, match=Code.ENDPOINT_ALREADY_EXISTS):
        store.add_endpoint(PROVIDER, "pets", "GET", "/pets")
    store.add_access_rights(PROVIDER, "pets", [CONSUMER])
    with pytest.raises(XRoadError, match=Code.DUPLICATE_ACCESSRIGHT):
        store.add_access_rights(PROVIDER, "pets", [CONSUMER])
    with pytest.raises(XRoadError, match=Code.LOCAL_GROUP_NOT_FOUND):
        store.add_access_rights(PROVIDER, "pets", ["LOCALGROUP:none"])
    gid = store.add_local_group(PROVIDER, "g", "G")
    with pytest.raises(XRoadError, match=Code.LOCAL_GROUP_CODE_ALREADY_EXISTS):
        store.add_local_group(PROVIDER, "g", "G")
    store.add_local_group_members(gid, [CONSUMER])
    with pytest.raises(XRoadError, match=Code.LOCAL_GROUP_MEMBER_ALREADY_EXISTS):
        store.add_local_group_members(gid, [CONSUMER])


def test_generated_endpoints_are_fixed(store: ServerConfStore, petstore: bytes) -> None:
    store.add_openapi(PROVIDER, "http://h/o", petstore, "pets")
    generated = next(e for e in store.snapshot().endpoints(PROVIDER, "pets") if e.generated)
    with pytest.raises(XRoadError, match=Code.ILLEGAL_GENERATED_ENDPOINT_REMOVE):
        store.delete_endpoint(generated.id)
    with pytest.raises(XRoadError, match=Code.ILLEGAL_GENERATED_ENDPOINT_UPDATE):
        store.update_endpoint(generated.id, "GET", "/x")
    manual = store.add_endpoint(PROVIDER, "pets", "GET", "/toys/*")
    store.add_access_rights(PROVIDER, None, [CONSUMER], endpoint_id=manual)
    store.update_endpoint(manual, "PUT", "/toys/**")
    store.delete_endpoint(manual)  # and its access right with it
    assert store.snapshot().acl(PROVIDER, "pets").all == ()


def test_refresh_wsdl_keeps_settings_and_drops_removed(
    store: ServerConfStore, wsdl_bytes: bytes
) -> None:
    did = store.add_wsdl(PROVIDER, "http://h/wsdl", wsdl_bytes, enabled=True)
    store.update_service(GET_RANDOM, url="http://kept/", timeout=5, ssl_authentication=False)
    store.add_access_rights(PROVIDER, "getRandom", [CONSUMER])
    store.add_access_rights(PROVIDER, "helloService", [CONSUMER])
    root = etree.fromstring(wsdl_bytes)
    for op in root.iter("{http://schemas.xmlsoap.org/wsdl/}operation"):
        if op.get("name") == "helloService" and op.getparent().tag.endswith("binding"):
            op.getparent().remove(op)
    smaller = etree.tostring(root)
    assert {s.service_code for s in _parse(smaller)} == {"getRandom"}
    store.refresh_description(did, smaller)
    conf = store.snapshot()
    entry = conf.service(GET_RANDOM)
    assert entry is not None
    assert (entry.service.url, entry.service.timeout) == ("http://kept/", 5)
    assert entry.service.ssl_authentication is False
    assert conf.service(ServiceId(PROVIDER, "helloService", "v1")) is None
    assert conf.acl(PROVIDER, "helloService").all == ()
    assert conf.endpoints(PROVIDER, "helloService") == ()
    assert len(conf.acl(PROVIDER, "getRandom").all) == 1


def _parse(data: bytes):  # type: ignore[no-untyped-def]
    from crossroad.serverconf.descriptions import parse_wsdl

    return parse_wsdl(data)


def test_refresh_openapi_follows_the_description(store: ServerConfStore, petstore: bytes) -> None:
    did = store.add_openapi(PROVIDER, "http://h/petstore.yaml", petstore, "pets")
    manual = store.add_endpoint(PROVIDER, "pets", "PUT", "/pets/*")
    conf = store.snapshot()
    post = next(e for e in conf.endpoints(PROVIDER, "pets") if e.method == "POST")
    store.add_access_rights(PROVIDER, None, [CONSUMER], endpoint_id=post.id)
    changed = petstore.replace(b"    post:", b"    put:")  # POST /pets becomes PUT /pets
    store.refresh_description(did, changed)
    after = {(e.method, e.path): e for e in store.snapshot().endpoints(PROVIDER, "pets")}
    assert ("POST", "/pets") not in after  # a generated endpoint that went away
    assert ("PUT", "/pets") in after
    assert ("PUT", "/pets/*") in after  # manual endpoints stay
    assert after[("PUT", "/pets/*")].id == manual
    assert store.snapshot().acl(PROVIDER, "pets").all == ()


def test_update_rest_description_renames_the_service(store: ServerConfStore) -> None:
    did = store.add_rest(PROVIDER, "http://is/api", "api")
    store.add_access_rights(PROVIDER, "api", [CONSUMER])
    store.update_rest_description(did, url="http://is/v2", service_code="api2")
    conf = store.snapshot()
    entry = conf.service(ServiceId(PROVIDER, "api2"))
    assert entry is not None
    assert entry.service.url == "http://is/v2"
    assert len(conf.acl(PROVIDER, "api2").all) == 1


def test_delete_description_and_local_group_remove_rights(
    store: ServerConfStore, wsdl_bytes: bytes
) -> None:
    did = store.add_wsdl(PROVIDER, "http://h/wsdl", wsdl_bytes)
    gid = store.add_local_group(PROVIDER, "g", "G")
    store.add_access_rights(PROVIDER, "getRandom", [CONSUMER, LocalGroupId("g")])
    store.delete_local_group(gid)
    assert [str(r.subject) for r, _ in store.snapshot().acl(PROVIDER, "getRandom").all] == [
        str(CONSUMER)
    ]
    store.delete_description(did)
    conf = store.snapshot()
    assert conf.services_of(PROVIDER) == ()
    assert conf.acl(PROVIDER, "getRandom").all == ()


def test_disable_enable(store: ServerConfStore) -> None:
    did = store.add_rest(PROVIDER, "http://is/api", "api", enabled=True)
    store.add_access_rights(PROVIDER, "api", [CONSUMER])
    store.disable_description(did, "Back at noon")
    with pytest.raises(XRoadError, match="Back at noon"):
        check_access(
            store.snapshot(),
            membership,
            CONSUMER,
            ServiceId(PROVIDER, "api"),
            method="GET",
            path="/",
        )
    store.enable_description(did)
    check_access(
        store.snapshot(), membership, CONSUMER, ServiceId(PROVIDER, "api"), method="GET", path="/"
    )


def test_client_statuses_follow_global_configuration(store: ServerConfStore) -> None:
    store.add_client(CONSUMER)
    store.register_client(CONSUMER)
    changed = store.sync_client_statuses(lambda c: c in (OWNER, CONSUMER))
    assert set(changed) == {OWNER, CONSUMER, PROVIDER}
    conf = store.snapshot()
    assert conf.is_registered(CONSUMER)
    assert conf.is_registered(OWNER)
    # PROVIDER was registered here but is not in the global configuration any more.
    assert conf.client(PROVIDER).status is ClientStatus.GLOBAL_ERROR  # type: ignore[union-attr]


def test_delete_client_removes_everything(store: ServerConfStore, wsdl_bytes: bytes) -> None:
    store.add_wsdl(PROVIDER, "http://h/wsdl", wsdl_bytes)
    gid = store.add_local_group(PROVIDER, "g", "G")
    store.add_local_group_members(gid, [CONSUMER])
    store.add_access_rights(PROVIDER, "getRandom", [CONSUMER])
    store.delete_client(PROVIDER)
    conf = store.snapshot()
    assert conf.client(PROVIDER) is None
    assert conf.local_group_by_id(gid) is None


def test_api_keys(store: ServerConfStore) -> None:
    record, secret = store.create_api_key(
        "ops", [Role.SERVICE_ADMINISTRATOR, "securityserver_observer"]
    )
    assert secret.startswith("ssk_")
    found = store.authenticate(secret)
    assert found is not None
    assert found.roles == {Role.SERVICE_ADMINISTRATOR, Role.OBSERVER}
    assert store.authenticate(secret + "x") is None
    with pytest.raises(XRoadError, match=Code.API_KEY_EXISTS):
        store.create_api_key("ops", [Role.OBSERVER])
    with store.engine.connect() as conn:  # only the hash is kept
        stored = conn.execute(sa.select(serverconf_schema.api_keys.c.key_hash)).scalars().all()
    assert secret not in stored
    store.revoke_api_key(record.id)
    assert store.authenticate(secret) is None
