"""Configuration generation V2..V6: schema validity, values, determinism, NIIS's own output."""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from crossroad.central import generation as g
from crossroad.crypto.algorithms import SHA1, SHA256
from crossroad.errors import Code, XRoadError
from crossroad.globalconf.model import (
    AcmeServer,
    ApprovedCAInfo,
    ApprovedTSAInfo,
    CaInfo,
    ConfigurationSource,
    CostType,
    CsrFormat,
    GlobalGroup,
    GlobalSettings,
    MaintenanceMode,
    ManagementService,
    Member,
    MemberClass,
    OcspInfo,
    PrivateParameters,
    SecurityServer,
    SharedParameters,
    Subsystem,
)
from crossroad.globalconf.privateparams import (
    parse_fetch_interval,
    parse_monitoring_params,
    parse_next_update,
    parse_private_parameters,
)
from crossroad.identifiers import ClientId

if TYPE_CHECKING:
    from crossroad.testing.pki import TestPKI

_RES = Path("schemas/src/lib/globalconf-core/src/main/resources")
_IDENTIFIERS = Path("schemas/src/common/common-domain/src/main/resources/identifiers.xsd")
GOV = MemberClass("GOV", "Government")
OWNER = ClientId("DEV", "GOV", "1")
OTHER = ClientId("DEV", "GOV", "2")
OWNER_SERVER = SecurityServer(OWNER, "ss1").id


class _Resolver(etree.Resolver):
    def __init__(self, vectors: Path) -> None:
        super().__init__()
        self.vectors = vectors

    def resolve(self, system_url, public_id, context):  # type: ignore[no-untyped-def,override]
        if system_url.endswith("identifiers.xsd"):
            return self.resolve_filename(str(self.vectors / _IDENTIFIERS), context)  # type: ignore[attr-defined]
        return None


Schema = Callable[[str], etree.XMLSchema]


@pytest.fixture(scope="module")
def schema(vectors: Path) -> Schema:
    """``schema("v6/shared-parameters")`` / ``schema("monitoring-conf")``: an official XSD."""
    cache: dict[str, etree.XMLSchema] = {}

    def load(name: str) -> etree.XMLSchema:
        if name not in cache:
            parser = etree.XMLParser(no_network=True)
            parser.resolvers.add(_Resolver(vectors))
            path = vectors / _RES / (f"globalconf/{name}.xsd" if "/" in name else f"{name}.xsd")
            cache[name] = etree.XMLSchema(etree.parse(str(path), parser))
        return cache[name]

    return load


def _valid(schema: etree.XMLSchema, data: bytes) -> None:
    assert schema.validate(etree.fromstring(data)), schema.error_log


_AUTH: dict[int, bytes] = {}


def _auth_cert(pki: TestPKI) -> bytes:
    if id(pki) not in _AUTH:
        _AUTH[id(pki)] = pki.auth_cert("EE", "ss1").cert.public_bytes(Encoding.DER)
    return _AUTH[id(pki)]


def registry_values(pki: TestPKI) -> tuple[SharedParameters, PrivateParameters, dict]:  # type: ignore[type-arg]
    """What the registry hands over: shared parameters without sources, private parameters,
    and the authentication certificates of each server."""
    ca = pki.ca.cert.public_bytes(Encoding.DER)
    ocsp = pki.ocsp.cert.public_bytes(Encoding.DER)
    tsa = pki.tsa.cert.public_bytes(Encoding.DER)
    auth = _auth_cert(pki)
    shared = SharedParameters(
        instance_identifier="DEV",
        approved_cas=(
            ApprovedCAInfo(
                name="Test CA",
                top_ca=CaInfo(ca, (OcspInfo("http://ocsp:8888/", ocsp, CostType.FREE),)),
                certificate_profile_info="ee.ria.xroad.common.certificateprofile.impl.FiVRK",
                intermediate_cas=(CaInfo(ocsp, (OcspInfo("http://o2/", None, CostType.PAID),)),),
                authentication_only=False,
                default_csr_format=CsrFormat.DER,
                acme_server=AcmeServer("http://acme/dir", "10.0.0.1", "5", "6"),
            ),
        ),
        approved_tsas=(ApprovedTSAInfo("TSA", "http://tsa:8899/", tsa, CostType.UNDEFINED),),
        members=(
            Member(GOV, "1", "One", (Subsystem("MANAGEMENT", "Mgmt"), Subsystem("other"))),
            Member(GOV, "2", "Two"),
        ),
        security_servers=(
            SecurityServer(
                OWNER,
                "ss1",
                "ss1.example",
                (SHA256.digest(auth),),
                (OWNER.subsystem("MANAGEMENT"), OTHER),
                MaintenanceMode("back soon"),
            ),
            SecurityServer(OTHER, "ss2", "ss2.example"),
        ),
        global_groups=(GlobalGroup("security-server-owners", "Owners", (OWNER, OTHER)),),
        global_settings=GlobalSettings(3600, (GOV, MemberClass("COM", "Commercial"))),
    )
    private = PrivateParameters(
        instance_identifier="DEV",
        management_service=ManagementService(
            "https://cs:4001/managementservice/", OWNER.subsystem("MANAGEMENT"), ca
        ),
        time_stamping_interval_seconds=60,
    )
    return shared, private, {shared.security_servers[0].id: (auth,)}


def sources(pki: TestPKI) -> tuple[ConfigurationSource, ...]:
    a = pki.ca.cert.public_bytes(Encoding.DER)
    b = pki.tsa.cert.public_bytes(Encoding.DER)
    return (ConfigurationSource("cs:8080", (a, b), (b,)),)


def optional_parts() -> tuple[g.ConfigurationPart, ...]:
    return (
        g.optional_part(g.MONITORING, g.render_monitoring_params(OTHER.subsystem("mon"))),
        g.optional_part(g.FETCHINTERVAL, g.render_fetch_interval(600)),
        g.optional_part(g.NEXTUPDATE, g.render_next_update(False)),
    )


@pytest.mark.parametrize("version", [2, 3, 4, 5, 6])
def test_every_version_is_schema_valid_and_parses_back(
    pki: TestPKI, schema: Schema, version: int
) -> None:
    shared, private, auth = registry_values(pki)
    srcs = sources(pki)
    files = g.generate(shared, private, version, srcs, optional_parts(), auth_certs=auth)
    assert list(files) == [
        "private-params.xml",
        "shared-params.xml",
        "monitoring-params.xml",
        "fetchinterval-params.xml",
        "nextupdate-params.xml",
    ]
    private_xml = files["private-params.xml"].data
    shared_xml = files["shared-params.xml"].data
    _valid(schema(f"v{2 if version == 2 else 3}/private-parameters"), private_xml)
    _valid(schema(f"v{version}/shared-parameters"), shared_xml)
    assert parse_private_parameters(private_xml) == private

    parsed = SharedParameters.parse(shared_xml)
    assert parsed.instance_identifier == "DEV"
    assert parsed.members[0].member_code == "1"
    assert parsed.security_servers[0].clients == (OWNER.subsystem("MANAGEMENT"), OTHER)
    assert parsed.approved_tsas[0].url == "http://tsa:8899/"
    assert parsed.sources == (() if version == 2 else srcs)
    digest = SHA1 if version == 2 else SHA256
    assert parsed.security_servers[0].auth_cert_hashes == (digest.digest(auth[OWNER_SERVER][0]),)
    if version == 6:
        assert parsed == dataclasses.replace(shared, sources=srcs)
    # What an older version cannot carry is dropped, never mangled: rendering the parsed
    # values again gives the same bytes.
    assert parsed.render(version) == shared_xml


def test_optional_parts_are_schema_valid_and_readable(schema: Schema) -> None:
    monitoring, fetch, nextupdate = optional_parts()
    _valid(schema("monitoring-conf"), monitoring.data)
    _valid(schema("ocsp-fetchinterval-conf"), fetch.data)
    _valid(schema("ocsp-nextupdate-conf"), nextupdate.data)
    assert parse_monitoring_params(monitoring.data) == OTHER.subsystem("mon")
    assert parse_monitoring_params(g.render_monitoring_params(None)) is None
    assert parse_fetch_interval(fetch.data) == 600
    assert parse_next_update(nextupdate.data) is False
    assert (monitoring.file_name, fetch.file_name, nextupdate.file_name) == (
        "monitoring-params.xml",
        "fetchinterval-params.xml",
        "nextupdate-params.xml",
    )


def test_optional_part_uploads_are_checked() -> None:
    with pytest.raises(XRoadError) as err:
        g.optional_part(g.FETCHINTERVAL, b"<conf/>")
    assert err.value.code == Code.MALFORMED_OPTIONAL_PARTS_CONF
    with pytest.raises(XRoadError) as err:
        g.optional_part(g.SHARED_PARAMETERS, b"<x/>")
    assert err.value.code == Code.INVALID_REQUEST
    with pytest.raises(XRoadError):
        g.optional_part("CUSTOM", b"anything")  # unknown parts need a file name
    custom = g.optional_part("CUSTOM", b"anything", "custom.txt")
    assert custom.file_name == "custom.txt"
    for bad in ("../x", ".hidden", "a/b", ""):
        with pytest.raises(XRoadError):
            g.optional_part("CUSTOM", b"x", bad)
    with pytest.raises(XRoadError):
        g.render_fetch_interval(0)


def test_internal_and_external_sets(pki: TestPKI) -> None:
    shared, private, _ = registry_values(pki)
    versions = g.generate_versions(shared, private, sources(pki), optional_parts())
    assert [v.version for v in versions] == [2, 3, 4, 5, 6]
    for v in versions:
        assert [p.content_identifier for p in v.internal] == [
            "PRIVATE-PARAMETERS",
            "SHARED-PARAMETERS",
            "MONITORING",
            "FETCHINTERVAL",
            "NEXTUPDATE",
        ]
        assert [p.content_identifier for p in v.external] == ["SHARED-PARAMETERS"]
        assert v.part("SHARED-PARAMETERS") is v.external[0]
        assert v.part("FOO") is None
    assert [
        v.version for v in g.generate_versions(shared, private, sources(pki), min_version=4)
    ] == [4, 5, 6]


def test_generation_is_deterministic(pki: TestPKI) -> None:
    shared, private, auth = registry_values(pki)
    one = g.generate_versions(shared, private, sources(pki), optional_parts(), auth_certs=auth)
    two = g.generate_versions(shared, private, sources(pki), optional_parts(), auth_certs=auth)
    assert one == two
    assert [p.data for v in one for p in v.parts] == [p.data for v in two for p in v.parts]


def test_refusals(pki: TestPKI) -> None:
    shared, private, _ = registry_values(pki)
    cases = [
        lambda: g.generate(shared, private, 7, sources(pki)),
        lambda: g.generate(shared, private, 1, sources(pki)),
        lambda: g.generate(shared, private, 3, ()),
        lambda: g.generate(
            shared, dataclasses.replace(private, instance_identifier="EE"), 2, sources(pki)
        ),
        lambda: g.generate(
            shared,
            private,
            2,
            (),
            (g.ConfigurationPart("X", "shared-params.xml", b"x"),),
        ),
        lambda: g.generate_versions(shared, private, sources(pki), min_version=9),
    ]
    for case in cases:
        with pytest.raises(XRoadError) as err:
            case()
        assert err.value.code == Code.INVALID_REQUEST
    # Version 2 needs no source (it has no <source> element).
    assert "shared-params.xml" in g.generate(shared, private, 2, ())


def _niis_files(vectors: Path, version: int) -> tuple[bytes, bytes]:
    vdir = vectors / "configuration-directory/system-test/public" / f"V{version}"
    folder = next(p for p in vdir.iterdir() if p.is_dir())
    return (folder / "shared-params.xml").read_bytes(), (folder / "private-params.xml").read_bytes()


@pytest.mark.parametrize("version", [3, 4, 5, 6])
def test_regenerating_niis_output_gives_the_same_values(
    vectors: Path, schema: Schema, version: int
) -> None:
    """The real central server's files, taken apart into registry values and generated again,
    parse to exactly what NIIS wrote."""
    shared_xml, private_xml = _niis_files(vectors, version)
    niis_shared = SharedParameters.parse(shared_xml)
    niis_private = parse_private_parameters(private_xml)
    registry = dataclasses.replace(niis_shared, sources=())
    files = g.generate(registry, niis_private, version, niis_shared.sources)
    ours_shared = files["shared-params.xml"].data
    _valid(schema(f"v{version}/shared-parameters"), ours_shared)
    _valid(schema("v3/private-parameters"), files["private-params.xml"].data)
    expected = niis_shared
    if version == 3:
        # This V3 file predates the V4 schema, which took over the ACME profile ids; the V3
        # schema of today has no place for them, so a V3 generated now leaves them out.
        expected = dataclasses.replace(
            niis_shared,
            approved_cas=tuple(
                dataclasses.replace(
                    ca,
                    acme_server=dataclasses.replace(
                        ca.acme_server,
                        authentication_certificate_profile_id=None,
                        signing_certificate_profile_id=None,
                    ),
                )
                if ca.acme_server
                else ca
                for ca in niis_shared.approved_cas
            ),
        )
    assert SharedParameters.parse(ours_shared) == expected
    assert parse_private_parameters(files["private-params.xml"].data) == niis_private


# Generated registries: any member and server names the registry accepts give schema-valid
# files that parse back to the same members.
_code = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.",
    min_size=1,
    max_size=12,
)
_name = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Cn"), blacklist_characters="\x00"),
    min_size=1,
    max_size=30,
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    members=st.lists(
        st.tuples(_code, _name, st.lists(_code, max_size=3, unique=True)),
        min_size=1,
        max_size=5,
        unique_by=lambda m: m[0],
    ),
    version=st.sampled_from([2, 3, 4, 5, 6]),
)
def test_generated_registries_are_valid(
    pki: TestPKI, schema: Schema, members: list[tuple[str, str, list[str]]], version: int
) -> None:
    shared, private, _ = registry_values(pki)
    model = dataclasses.replace(
        shared,
        members=tuple(
            Member(GOV, code, name, tuple(Subsystem(s, f"{name} {s}") for s in subs))
            for code, name, subs in members
        ),
        security_servers=(
            SecurityServer(
                ClientId("DEV", "GOV", members[0][0]), "ss", "ss.example", (b"\x00" * 32,)
            ),
        ),
        global_groups=(),
    )
    files = g.generate(model, private, version, sources(pki))
    data = files["shared-params.xml"].data
    _valid(schema(f"v{version}/shared-parameters"), data)
    parsed = SharedParameters.parse(data)
    assert [(m.member_code, m.name) for m in parsed.members] == [(c, n) for c, n, _ in members]
    assert [[s.subsystem_code for s in m.subsystems] for m in parsed.members] == [
        s for *_, s in members
    ]
    assert base64.b64encode(parsed.security_servers[0].auth_cert_hashes[0])
