"""MANIFEST "globalconf": configuration directories, shared/private parameters, anchors and
optional parts (VersionedConfigurationDirectory, GlobalConfImpl, FSGlobalConfValidator tests)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree

from crossroad.crypto.certs import load_certificate
from crossroad.errors import XRoadError
from crossroad.globalconf.directory import DirectoryState, check_directory, load_directory
from crossroad.globalconf.model import CostType, OcspPreference
from crossroad.globalconf.privateparams import (
    anchor_hash,
    parse_anchor,
    parse_fetch_interval,
    parse_monitoring_params,
)
from crossroad.globalconf.sharedparams import SharedParameters
from crossroad.identifiers import ClientId, GlobalGroupId, SecurityServerId

GC = "globalconf"
_RESOURCES = Path("schemas/src/lib/globalconf-core/src/main/resources")
_IDENTIFIERS_XSD = Path("schemas/src/common/common-domain/src/main/resources/identifiers.xsd")


class _Resolver(etree.Resolver):
    """Resolves the class-path style identifier imports of the NIIS XSDs (schemas/README.md)."""

    def __init__(self, vectors: Path) -> None:
        super().__init__()
        self.vectors = vectors

    def resolve(self, system_url, public_id, context):  # type: ignore[no-untyped-def,override]
        if system_url.endswith("identifiers.xsd"):
            path = str(self.vectors / _IDENTIFIERS_XSD)
            return self.resolve_filename(path, context)  # type: ignore[attr-defined]
        return None


def _schema(vectors: Path, relative: str) -> etree.XMLSchema:
    parser = etree.XMLParser(no_network=True)
    parser.resolvers.add(_Resolver(vectors))
    return etree.XMLSchema(etree.parse(str(vectors / _RESOURCES / relative), parser))


EE_MEMBER = ClientId("EE", "BUSINESS", "member1")


def _dir(vectors: Path, name: str) -> Path:
    return vectors / GC / name


# --- globalconf_good_v2 --------------------------------------------------------------------------


def test_good_v2_lookups_by_instance(vectors: Path) -> None:
    directory = load_directory(_dir(vectors, "globalconf_good_v2"))
    assert directory.problems == ()
    assert directory.instance == "EE"
    assert {"EE", "bar", "foo"} <= set(directory.instances())
    assert directory.private("foo") is not None
    assert directory.shared("foo") is not None
    assert directory.private("bar") is None
    assert directory.shared("bar") is not None
    assert directory.shared("xxx") is None
    assert directory.shared_version() == 2
    names = {p.name for p in directory.files()}
    assert names == {"shared-params.xml", "private-params.xml"}


def test_good_v2_global_conf_facts(vectors: Path) -> None:
    directory = load_directory(_dir(vectors, "globalconf_good_v2"))
    ee = directory.shared()
    assert ee is not None
    assert [str(c) for c in ee.clients()] == [
        "MEMBER:EE/BUSINESS/producer",
        "MEMBER:EE/BUSINESS/consumer",
        "MEMBER:EE/BUSINESS/foo",
        "SUBSYSTEM:EE/BUSINESS/foo/foosubsystem",
    ]
    assert ee.global_settings.ocsp_freshness_seconds == 42
    private = directory.private()
    assert private is not None
    assert private.management_service.auth_cert_reg_service_address == "http://mgmt.com:1234"
    assert private.management_service.management_request_service_provider_id == ClientId(
        "EE", "BUSINESS", "servicemember2"
    )
    assert len(directory.ocsp_responder_certs()) == 12
    tsa_certs = directory.tsa_certs()
    assert len(tsa_certs) == 3
    assert all("timestamp1" in c.subject.rfc4514_string() for c in tsa_certs)
    assert len(directory.trust_policy().cas) == 5
    assert set(ee.known_addresses()) == {
        "127.0.0.1",
        "https://www.foo.com/bar",
        "https://foo.bar.baz",
    }
    assert list(ee.security_server_ids()) == [
        SecurityServerId(ClientId("EE", "BUSINESS", "producer"), "producerServerCode"),
        SecurityServerId(ClientId("EE", "BUSINESS", "consumer"), "consumerServerCode"),
        SecurityServerId(ClientId("EE", "BUSINESS", "foo"), "fooServerCode"),
        SecurityServerId(ClientId("EE", "BUSINESS", "foo"), "FooBarServerCode"),
    ]
    consumer = ClientId("EE", "BUSINESS", "consumer")
    assert set(ee.provider_addresses(consumer)) == {"https://www.foo.com/bar", "127.0.0.1"}
    _check_test_group(ee)


def _check_test_group(shared: SharedParameters) -> None:
    group = shared.global_group(GlobalGroupId("EE", "Test group"))
    assert group is not None
    assert group.description == "Description"
    member2 = ClientId("EE", "BUSINESS", "member2")
    assert shared.is_in_global_group(EE_MEMBER.subsystem("subsys"), "Test group")
    assert shared.is_in_global_group(member2, "Test group")
    assert not shared.is_in_global_group(member2.subsystem("subsys"), "Test group")
    assert shared.global_group(GlobalGroupId("XX", "Test group")) is None


# --- globalconf_good_v3 / v4 ---------------------------------------------------------------------


def test_good_v3_lookup_is_by_directory_name(vectors: Path) -> None:
    directory = load_directory(_dir(vectors, "globalconf_good_v3"))
    assert directory.problems == ()
    foo = directory.shared("foo_v2")
    private = directory.private("foo_v2")
    assert foo is not None
    assert private is not None
    assert foo.instance_identifier == "foo_v2"
    assert private.instance_identifier == "foo_v2"
    # foo_v2's metadata names instance "v2" and has no configurationVersion: version 2
    files = directory.files_of("foo_v2")
    assert files is not None
    assert files.shared_metadata is not None
    assert files.shared_metadata.instance_identifier == "v2"
    assert directory.shared_version("foo_v2") == 2
    assert directory.shared_version() == 3
    assert directory.private("bar") is None
    assert directory.shared("bar") is not None
    ee = directory.shared()
    assert ee is not None
    assert ee.sources[0].internal_verification_certs
    _check_test_group(ee)


def test_good_v4_acme_settings(vectors: Path) -> None:
    path = _dir(vectors, "globalconf_good_v4")
    assert check_directory(path) is DirectoryState.READY_TO_INIT
    directory = load_directory(path)
    assert directory.problems == ()
    ee = directory.shared()
    baz = directory.shared("baz_v3")
    assert ee is not None
    assert baz is not None
    ee_ca, baz_ca = ee.approved_ca("pki1"), baz.approved_ca("pki1")
    assert ee_ca is not None
    assert baz_ca is not None
    assert ee_ca.acme_server is not None
    assert baz_ca.acme_server is not None
    assert ee_ca.acme_server.directory_url == "http://ca:8887/acme/directory"
    assert ee_ca.acme_server.authentication_certificate_profile_id == "5"
    assert ee_ca.acme_server.signing_certificate_profile_id == "6"
    assert baz_ca.acme_server.directory_url == "http://ca:8887/acme/directory"
    assert baz_ca.acme_server.authentication_certificate_profile_id is None
    assert baz_ca.acme_server.signing_certificate_profile_id is None


# --- globalconf_good_v6 --------------------------------------------------------------------------

_NET = "http://www.example.net/"
_LOCAL = "http://127.0.0.1:8082/ocsp"


@pytest.mark.parametrize(
    ("preference", "expected"),
    [
        (OcspPreference.ONLY_FREE, [_LOCAL, _NET + "ocsp4"]),
        (
            OcspPreference.FREE_FIRST,
            [_LOCAL, _NET + "ocsp4", _NET + "ocsp", _NET + "ocsp2", _NET + "ocsp3"],
        ),
        (OcspPreference.ONLY_PAID, [_NET + "ocsp", _NET + "ocsp2"]),
        (
            OcspPreference.PAID_FIRST,
            [_NET + "ocsp", _NET + "ocsp2", _LOCAL, _NET + "ocsp4", _NET + "ocsp3"],
        ),
        (
            OcspPreference.NONE,
            [_LOCAL, _NET + "ocsp", _NET + "ocsp2", _NET + "ocsp3", _NET + "ocsp4"],
        ),
    ],
)
def test_good_v6_ocsp_ordering(
    vectors: Path, preference: OcspPreference, expected: list[str]
) -> None:
    directory = load_directory(_dir(vectors, "globalconf_good_v6"))
    ee = directory.shared()
    assert ee is not None
    user = x509.load_pem_x509_certificate(
        (vectors / "certs/common-test/test_chain/user_1.pem").read_bytes()
    )
    assert [r.url for r in ee.ocsp_responders_for_cert(user, preference)] == expected


def test_good_v6_cost_types(vectors: Path) -> None:
    directory = load_directory(_dir(vectors, "globalconf_good_v6"))
    assert directory.problems == ()
    ee = directory.shared()
    assert ee is not None
    root = load_certificate((vectors / "certs/common-test/root-ca.pem").read_bytes())
    responders = ee.ocsp_responders_for_ca(root)
    assert len(responders) == 5
    by_url = {r.url: r.effective_cost_type for r in responders}
    assert by_url[_LOCAL] is CostType.FREE
    assert by_url[_NET + "ocsp"] is CostType.PAID
    assert ee.ocsp_cost_type(_NET + "ocsp4") is CostType.FREE
    assert ee.ocsp_cost_type(_NET + "ocsp3") is CostType.UNDEFINED
    # the trust policy carries the cost types too
    policy = directory.trust_policy()
    assert {r.url: r.cost_type for r in policy.cas[0].ocsp}[_NET + "ocsp3"] is None


def _ee_shared_params(vectors: Path) -> list[Path]:
    return [
        _dir(vectors, "globalconf_good_v2") / "EE/shared-params.xml",
        _dir(vectors, "globalconf_good_v3") / "EE/shared-params.xml",
        _dir(vectors, "globalconf_good_v4") / "EE/shared-params.xml",
        _dir(vectors, "globalconf_good_v6") / "quux_v5/shared-params.xml",
        _dir(vectors, "globalconf_good_v6") / "EE/shared-params.xml",
        _dir(vectors, "globalconf_good2_v3") / "DEV/shared-params.xml",
    ]


@pytest.mark.parametrize("index", range(6))
def test_shared_params_roundtrip_and_schema(vectors: Path, index: int) -> None:
    """parse → render → parse is the identity, and every rendering the model allows is valid."""
    original = SharedParameters.parse(_ee_shared_params(vectors)[index].read_bytes())
    # V3+ needs a <source>; a V2 file has none, so it renders as V2 only.
    versions = range(2, 7) if original.sources else (2,)
    for version in versions:
        rendered = original.render(version)
        schema = _schema(vectors, f"globalconf/v{version}/shared-parameters.xsd")
        assert schema.validate(etree.fromstring(rendered)), (version, schema.error_log)
        if version >= original.min_version():
            assert SharedParameters.parse(rendered) == original


def test_good_v6_per_version_features(vectors: Path) -> None:
    directory = load_directory(_dir(vectors, "globalconf_good_v6"))
    expected = {"foo_v2": 2, "baz_v3": 3, "qux_v4": 4, "quux_v5": 5, "EE": 6}
    for name, version in expected.items():
        assert directory.shared_version(name) == version
        shared = directory.shared(name)
        assert shared is not None
        assert shared.min_version() <= version
    ee = directory.shared()
    assert ee is not None
    foo = ClientId("EE", "BUSINESS", "foo")
    subsystem = ee.subsystem(foo.subsystem("foosubsystem"))
    assert subsystem is not None
    assert subsystem.subsystem_name == "FOO Subsystem"
    assert ee.is_in_maintenance(SecurityServerId(foo, "FooBarServerCode"))
    assert not ee.is_in_maintenance(SecurityServerId(foo, "fooServerCode"))


# --- globalconf_good2_v3 (the asic/ trust store) -------------------------------------------------


def test_good2_v3_dev_trust(vectors: Path) -> None:
    directory = load_directory(_dir(vectors, "globalconf_good2_v3"))
    assert directory.instance == "DEV"
    files = directory.files_of("DEV")
    assert files is not None
    assert files.shared_metadata is not None
    assert files.shared_metadata.expiration_date is None
    assert directory.shared_version() == 3
    policy = directory.trust_policy()
    assert policy.ocsp_freshness_seconds == 3600
    (ca,) = policy.cas
    assert ca.name == "Test CA"
    assert ca.certificate_profile.endswith("FiVRKCertificateProfileInfoProvider")
    derived = vectors / "derived/certs"

    def pem(name: str) -> x509.Certificate:
        return x509.load_pem_x509_certificate((derived / name).read_bytes())

    assert ca.top_ca == pem("dev-test-ca.pem")
    assert [r.cert for r in ca.ocsp] == [pem("dev-test-ocsp.pem")]
    (tsa,) = policy.tsas
    assert tsa.name == "Test TSA"
    assert tsa.cert == pem("dev-test-tsa.pem")
    shared = directory.shared()
    assert shared is not None
    assert shared.has_client(ClientId("DEV", "COM", "1234"))
    assert shared.has_client(ClientId("DEV", "COM", "4321"))
    # the <cert> values are base64 of PEM text, and stay so through a round-trip
    assert shared.approved_cas[0].top_ca.cert.startswith(b"-----BEGIN CERTIFICATE-----")


# --- broken and empty directories ----------------------------------------------------------------


def test_empty_directory(vectors: Path) -> None:
    path = _dir(vectors, "globalconf_empty")
    assert check_directory(path) is DirectoryState.FAILURE_MALFORMED
    with pytest.raises(XRoadError) as info:
        load_directory(path)
    assert info.value.code == "malformed_globalconf"
    directory = load_directory(path, allow_empty=True)
    assert directory.shared("foo") is None
    assert directory.private("foo") is None


def test_malformed_files_are_skipped(vectors: Path) -> None:
    path = _dir(vectors, "globalconf_malformed")
    assert check_directory(path) is DirectoryState.READY_TO_INIT
    directory = load_directory(path)
    assert directory.shared("foo") is None
    assert directory.private("foo") is None
    assert {p.path.name for p in directory.problems} == {"shared-params.xml", "private-params.xml"}
    assert {p.error.code for p in directory.problems} == {"malformed_globalconf"}


def test_missing_identifier_and_configuration_errors(vectors: Path) -> None:
    path = _dir(vectors, "globalconf_missing_identifier")
    assert check_directory(path) is DirectoryState.FAILURE_MISSING_INSTANCE_IDENTIFIER
    with pytest.raises(XRoadError) as info:
        load_directory(path)
    assert info.value.code == "global_conf_missing_instance_identifier"
    for bad in (
        "-",
        str(vectors / GC / "random_path"),
        _dir(vectors, "globalconf_good_v4") / "instance-identifier",
    ):
        assert check_directory(bad) is DirectoryState.FAILURE_CONFIGURATION_ERROR
        with pytest.raises(XRoadError) as info:
            load_directory(bad)
        assert info.value.code == "global_conf_configuration_error"


# --- anchors -------------------------------------------------------------------------------------


def test_configuration_anchor1(vectors: Path) -> None:
    anchor = parse_anchor((vectors / GC / "configuration-anchor1.xml").read_bytes())
    assert anchor.instance_identifier == "EE"
    assert len(anchor.sources) == 3
    assert anchor.sources[0].download_url == "http://www.bar.com/conf"
    by_sha1 = {
        base64.b64encode(hashlib.sha1(cert).digest()).decode(): cert
        for source in anchor.sources
        for cert in source.verification_certs
    }
    for digest in ("t7+jfR1wnsN1EBtBpCt/q8JIasg=", "4HCV0OGOaz4mJauIZvrt7A3RdfM="):
        cert = x509.load_der_x509_certificate(by_sha1[digest])
        assert cert.public_bytes(Encoding.DER) == by_sha1[digest]


def test_configuration_anchor_equality(vectors: Path) -> None:
    one = (vectors / GC / "configuration-anchor1.xml").read_bytes()
    two = (vectors / GC / "configuration-anchor2.xml").read_bytes()
    assert parse_anchor(one) == parse_anchor(one)
    assert parse_anchor(one) != parse_anchor(two)


def test_trusted_anchor_cs0(vectors: Path) -> None:
    data = (vectors / GC / "anchors/cs-trusted-anchor-CS0.xml").read_bytes()
    anchor = parse_anchor(data)
    assert anchor.instance_identifier == "CS0"
    assert anchor.generated_at == dt.datetime(2023, 2, 15, 9, 26, 34, 235000, tzinfo=dt.UTC)
    assert [s.download_url for s in anchor.sources] == ["http://cs0/internalconf"]
    assert anchor_hash(data) == (
        "40:2A:4F:94:05:D2:9B:ED:C9:EE:A2:6D:EC:EC:11:94:5D:C9:A8:3E:29:1F:B2:92:A6:E4:DF:1D"
    )
    with pytest.raises(XRoadError) as info:
        parse_anchor(b"")
    assert info.value.code == "malformed_anchor"


def test_confproxy_anchor(vectors: Path) -> None:
    anchor = parse_anchor((vectors / GC / "anchors/confproxy-PROXY1-anchor.xml").read_bytes())
    assert anchor.instance_identifier == "EE"
    assert anchor.generated_at == dt.datetime(2014, 11, 12, 8, 53, 17, 516000, tzinfo=dt.UTC)
    assert len(anchor.sources) == 1
    assert len(anchor.sources[0].verification_certs) == 3


# --- optional parts ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "parser", "schema", "expected"),
    [
        ("valid-fetchinterval-params.xml", parse_fetch_interval, "ocsp-fetchinterval-conf", 500),
        ("empty-fetchinterval-params.xml", parse_fetch_interval, "ocsp-fetchinterval-conf", None),
        ("invalid-fetchinterval-params.xml", parse_fetch_interval, "ocsp-fetchinterval-conf", None),
        (
            "valid-monitoring-params.xml",
            parse_monitoring_params,
            "monitoring-conf",
            ClientId("fdev", "GOV", "66655666"),
        ),
        ("empty-monitoring-params.xml", parse_monitoring_params, "monitoring-conf", "absent"),
        ("invalid-monitoring-params.xml", parse_monitoring_params, "monitoring-conf", None),
    ],
)
def test_optional_parts(
    vectors: Path,
    name: str,
    parser: Callable[[bytes], object],
    schema: str,
    expected: object,
) -> None:
    data = (vectors / GC / name).read_bytes()
    valid = expected is not None
    # our verdict agrees with the official schema's
    assert _schema(vectors, f"{schema}.xsd").validate(etree.fromstring(data)) is valid
    if valid:
        assert parser(data) == (None if expected == "absent" else expected)
    else:
        with pytest.raises(XRoadError) as info:
            parser(data)
        assert info.value.code == "malformed_optional_parts_conf"
