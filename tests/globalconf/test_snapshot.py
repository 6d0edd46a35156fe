"""globalconf.snapshot: lookups against the NIIS directories (MANIFEST ``globalconf`` facts) and
against configurations built here with the test PKI; validity; optional parts."""

from __future__ import annotations

import base64
import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509

from crossroad.crypto.algorithms import SHA1, SHA256
from crossroad.crypto.certs import cert_der, load_certificate
from crossroad.errors import Code, XRoadError
from crossroad.globalconf.directory import load_directory
from crossroad.globalconf.model import (
    ApprovedCAInfo,
    ApprovedTSAInfo,
    CaInfo,
    CostType,
    GlobalGroup,
    GlobalSettings,
    MaintenanceMode,
    ManagementService,
    Member,
    MemberClass,
    OcspInfo,
    OcspPreference,
    PrivateParameters,
    SecurityServer,
    SharedParameters,
    Subsystem,
)
from crossroad.globalconf.snapshot import GlobalConfSnapshot
from crossroad.identifiers import ClientId, GlobalGroupId, SecurityServerId
from crossroad.testing import pki as testing_pki

UTC = dt.UTC
NOW = dt.datetime(2025, 6, 1, tzinfo=UTC)
EE = "EE"


def _c(member: str, sub: str | None = None, instance: str = EE) -> ClientId:
    return ClientId(instance, "BUSINESS", member, sub)


# --- NIIS directories ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def good_v2(vectors: Path) -> GlobalConfSnapshot:
    return GlobalConfSnapshot.from_directory(
        load_directory(vectors / "globalconf/globalconf_good_v2")
    )


def test_good_v2_facts(good_v2: GlobalConfSnapshot) -> None:
    s = good_v2
    assert s.instance == EE
    assert set(s.instances()) >= {"EE", "bar", "foo"}
    assert s.version == 2
    assert s.ocsp_freshness_seconds == 42
    assert s.timestamping_interval == 123
    assert s.management_service.auth_cert_reg_service_address == "http://mgmt.com:1234"
    assert s.management_service.management_request_service_provider_id == _c("servicemember2")
    members = [m.client_id(EE) for m in s.members()]
    assert members == [_c("producer"), _c("consumer"), _c("foo")]
    assert s.has_client(_c("foo", "foosubsystem"))
    assert not s.has_client(_c("foo", "nosuch"))
    assert s.member_name(_c("foo", "foosubsystem")) == "Org with no address"
    assert s.member_name(_c("nosuch")) is None
    assert sum(len(s.trust_policy(i).ocsp_responder_certs()) for i in s.instances()) == 12
    assert len(s.tsa_certs()) == 3
    assert len(s.own_shared.approved_cas) == 5
    assert s.known_addresses() == {"127.0.0.1", "https://www.foo.com/bar", "https://foo.bar.baz"}
    servers = [
        SecurityServerId(_c(owner), code)
        for owner, code in (
            ("producer", "producerServerCode"),
            ("consumer", "consumerServerCode"),
            ("foo", "fooServerCode"),
            ("foo", "FooBarServerCode"),
        )
    ]
    assert all(s.security_server(x) is not None for x in servers)
    assert set(s.provider_addresses(_c("consumer"))) == {"https://www.foo.com/bar", "127.0.0.1"}
    assert s.security_server_address(servers[2]) is None
    assert s.is_client_registered(_c("consumer"), servers[1])  # the owner
    assert s.is_client_registered(_c("foo", "foosubsystem"), servers[0])
    assert not s.is_client_registered(_c("producer"), servers[1])
    group = GlobalGroupId(EE, "Test group")
    assert s.global_group_description(group) == "Description"
    assert s.is_in_global_group(_c("member1", "subsys"), group)
    assert s.is_in_global_group(_c("member2"), group)
    assert not s.is_in_global_group(_c("member2", "subsys"), group)
    assert not s.is_in_global_group(_c("member2"), GlobalGroupId(EE, "no such group"))


def test_good_v2_auth_cert_hashes(good_v2: GlobalConfSnapshot) -> None:
    producer = SecurityServerId(_c("producer"), "producerServerCode")
    digest = base64.b64decode("BnAMEvOVGDx3mIT81J1MpV+khaplYX2lt12EknvsLJE=")
    assert good_v2.server_by_auth_cert_hash(digest) == producer
    sha1 = base64.b64decode("mxwUY66bn81Nkvbmbgif0agWZgM=")
    assert good_v2.server_by_auth_cert_hash(sha1) == SecurityServerId(
        _c("consumer"), "consumerServerCode"
    )
    assert good_v2.server_by_auth_cert_hash(b"\x00" * 32) is None


def test_good_v2_validity(good_v2: GlobalConfSnapshot) -> None:
    expires = dt.datetime(2124, 5, 20, 17, 42, 55, tzinfo=UTC)
    assert good_v2.expires_at() == expires
    assert good_v2.is_valid(NOW)
    assert good_v2.is_valid(expires)
    with pytest.raises(XRoadError) as info:
        good_v2.check_valid(expires + dt.timedelta(seconds=1))
    assert info.value.code == Code.GLOBAL_CONF_OUTDATED


def test_good_v6_ocsp_ordering(vectors: Path) -> None:
    s = GlobalConfSnapshot.from_directory(load_directory(vectors / "globalconf/globalconf_good_v6"))
    assert s.version == 6
    user = load_certificate((vectors / "certs/common-test/test_chain/user_1.pem").read_bytes())
    net = "http://www.example.net/"
    local = "http://127.0.0.1:8082/ocsp"
    expected = {
        OcspPreference.ONLY_FREE: [local, net + "ocsp4"],
        OcspPreference.FREE_FIRST: [
            local,
            net + "ocsp4",
            net + "ocsp",
            net + "ocsp2",
            net + "ocsp3",
        ],
        OcspPreference.ONLY_PAID: [net + "ocsp", net + "ocsp2"],
        OcspPreference.PAID_FIRST: [
            net + "ocsp",
            net + "ocsp2",
            local,
            net + "ocsp4",
            net + "ocsp3",
        ],
        OcspPreference.NONE: [local, net + "ocsp", net + "ocsp2", net + "ocsp3", net + "ocsp4"],
    }
    for preference, urls in expected.items():
        assert [o.url for o in s.ocsp_responders(user, preference)] == urls
    issuer = s.issuer_cert(user)
    assert issuer is not None
    assert issuer.subject == user.issuer
    approved = s.approved_ca(user)
    assert approved is not None
    assert approved.name
    assert [o.url for o in s.ocsp_responders_for_ca(issuer)] == expected[OcspPreference.NONE]
    # "CA 1" is itself issued by the intermediate-CA entry of "pki5 with intermediate certs".
    assert [o.url for o in s.ocsp_responders(issuer)] == ["http://www.example.net/ocsp5"]


def test_good_v4_and_good2(vectors: Path) -> None:
    s = GlobalConfSnapshot.from_directory(load_directory(vectors / "globalconf/globalconf_good_v4"))
    (pki1,) = [ca for ca in s.own_shared.approved_cas if ca.name == "pki1"]
    assert pki1.acme_server is not None
    assert pki1.acme_server.directory_url == "http://ca:8887/acme/directory"
    # globalconf_good2_v3 has no private parameters: it is not a valid configuration.
    good2 = GlobalConfSnapshot.from_directory(
        load_directory(vectors / "globalconf/globalconf_good2_v3")
    )
    assert good2.instance == "DEV"
    assert good2.ocsp_freshness_seconds == 3600
    assert not good2.is_valid(NOW)
    assert len(good2.tsa_certs("DEV")) == 1


def test_optional_parts(vectors: Path) -> None:
    s = GlobalConfSnapshot.from_directory(load_directory(vectors / "globalconf/globalconf_good_v2"))
    built = GlobalConfSnapshot.build(
        s.own_shared,
        s.private,
        optional_parts={
            "FETCHINTERVAL": (vectors / "globalconf/valid-fetchinterval-params.xml").read_bytes(),
            "MONITORING": (vectors / "globalconf/valid-monitoring-params.xml").read_bytes(),
            "NEXTUPDATE": b"<tns:conf xmlns:tns='http://x-road.eu/xsd/xroad.xsd'>"
            b"<verifyNextUpdate>false</verifyNextUpdate></tns:conf>",
            "SOMETHING-NEW": b"kept, not read",
        },
    )
    assert built.ocsp_fetch_interval == 500
    assert built.monitoring_client == ClientId("fdev", "GOV", "66655666")
    assert built.verify_next_update is False
    assert built.trust_policy().verify_ocsp_next_update is False
    assert built.optional_parts["SOMETHING-NEW"] == b"kept, not read"
    assert s.ocsp_fetch_interval == 1200
    assert s.verify_next_update is True
    with pytest.raises(XRoadError) as info:
        GlobalConfSnapshot.build(
            s.own_shared,
            s.private,
            optional_parts={
                "FETCHINTERVAL": (
                    vectors / "globalconf/invalid-fetchinterval-params.xml"
                ).read_bytes()
            },
        )
    assert info.value.code == Code.MALFORMED_OPTIONAL_PARTS_CONF


# --- built configurations ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def auth(pki: testing_pki.TestPKI) -> dict[str, x509.Certificate]:
    return {code: pki.auth_cert(EE, code).cert for code in ("ss1", "ss2", "ss3")}


def _ca(pki: testing_pki.TestPKI) -> ApprovedCAInfo:
    ocsp = (
        OcspInfo("http://paid", cost_type=CostType.PAID),
        OcspInfo("http://free", cost_type=CostType.FREE),
        OcspInfo("http://unknown"),
        OcspInfo("   "),  # blank URLs are skipped
    )
    return ApprovedCAInfo(
        name="Test CA",
        top_ca=CaInfo(cert_der(pki.ca.cert), ocsp),
        certificate_profile_info="ee.ria.xroad.common.certificateprofile.impl.EjbcaCertificateProfileInfoProvider",
    )


def _shared(
    pki: testing_pki.TestPKI, auth: dict[str, x509.Certificate], version: int, instance: str = EE
) -> SharedParameters:
    digest = SHA256 if version >= 3 else SHA1
    business = MemberClass("BUSINESS", "Business")
    members = (
        Member(business, "owner", "Owner Ltd", (Subsystem("sub", "The subsystem"),)),
        Member(business, "client", "Client Ltd", (Subsystem("app"),)),
    )
    c = ClientId
    return SharedParameters(
        instance_identifier=instance,
        global_settings=GlobalSettings(600, (business,)),
        approved_cas=(_ca(pki),),
        approved_tsas=(ApprovedTSAInfo("TSA", "http://tsa", cert_der(pki.tsa.cert)),),
        members=members,
        security_servers=(
            SecurityServer(
                c(instance, "BUSINESS", "owner"),
                "ss1",
                "ss1.example",
                (digest.digest(cert_der(auth["ss1"])),),
                (c(instance, "BUSINESS", "client", "app"),),
            ),
            SecurityServer(
                c(instance, "BUSINESS", "owner"),
                "ss2",
                "ss2.example",
                (digest.digest(cert_der(auth["ss2"])),),
                (c(instance, "BUSINESS", "client", "app"), c(instance, "BUSINESS", "owner", "sub")),
                MaintenanceMode("upgrade"),
            ),
            SecurityServer(c(instance, "BUSINESS", "client"), "ss3", None, ()),
        ),
        global_groups=(
            GlobalGroup("security-server-owners", "Owners", (c(instance, "BUSINESS", "owner"),)),
        ),
    )


def _private() -> PrivateParameters:
    return PrivateParameters(
        instance_identifier=EE,
        management_service=ManagementService(
            "https://cs:4001/managementservice/", _c("owner", "mgmt")
        ),
        time_stamping_interval_seconds=60,
    )


@pytest.mark.parametrize("version", [2, 3, 6])
def test_built_lookups(
    pki: testing_pki.TestPKI, auth: dict[str, x509.Certificate], version: int
) -> None:
    s = GlobalConfSnapshot.build(
        _shared(pki, auth, version),
        _private(),
        shared_expires=NOW + dt.timedelta(minutes=10),
        private_expires=NOW + dt.timedelta(minutes=5),
        version=version,
    )
    ss1 = SecurityServerId(_c("owner"), "ss1")
    ss2 = SecurityServerId(_c("owner"), "ss2")
    # Owners count as clients; maintenance servers are skipped unless asked for.
    assert s.provider_addresses(_c("owner")) == ("ss1.example",)
    assert s.provider_addresses(_c("owner"), include_maintenance=True) == (
        "ss1.example",
        "ss2.example",
    )
    assert s.provider_addresses(_c("client", "app")) == ("ss1.example",)
    assert s.provider_addresses(_c("owner", "sub")) == ()
    assert s.provider_addresses(_c("client")) == ()  # owns ss3, which has no address
    assert s.servers_of(_c("client")) == (SecurityServerId(_c("client"), "ss3"),)
    assert s.maintenance(ss2) == MaintenanceMode("upgrade")
    assert s.maintenance_at_address(EE, "ss2.example") == MaintenanceMode("upgrade")
    assert s.maintenance(ss1) is None
    assert s.is_client_registered(_c("owner", "sub"), ss2)
    assert not s.is_client_registered(_c("owner", "sub"), ss1)
    assert s.server_by_auth_cert(auth["ss1"]) == ss1
    assert s.server_by_auth_cert(auth["ss2"]) == ss2
    assert s.server_by_auth_cert(auth["ss3"]) is None
    assert s.subsystem_name(_c("owner", "sub")) == "The subsystem"
    assert s.subsystem_name(_c("client", "app")) is None
    owners = GlobalGroupId(EE, "security-server-owners")
    assert s.is_in_global_group(_c("owner"), owners)
    assert not s.is_in_global_group(_c("owner", "sub"), owners)
    # OCSP responders of the signer's CA: cost types order them only from V6 on.
    signer = pki.sign_cert(EE, "BUSINESS", "owner").cert
    free_first = [o.url for o in s.ocsp_responders(signer, OcspPreference.FREE_FIRST)]
    if version >= 6:
        assert free_first == ["http://free", "http://paid", "http://unknown"]
    else:
        assert free_first == ["http://paid", "http://free", "http://unknown"]
    assert s.tsa_certs() == (pki.tsa.cert,)
    assert s.trust_policy() is s.trust_policy()
    assert s.timestamping_interval == 60
    assert s.expires_at() == NOW + dt.timedelta(minutes=5)
    assert s.is_valid(NOW)
    assert not s.is_valid(NOW + dt.timedelta(minutes=6))


def test_federation(pki: testing_pki.TestPKI, auth: dict[str, x509.Certificate]) -> None:
    partner = _shared(pki, auth, 6, instance="FI")
    s = GlobalConfSnapshot.build(
        _shared(pki, auth, 6),
        _private(),
        federated=[partner],
        federated_expires={"FI": NOW},
    )
    fi_owner = ClientId("FI", "BUSINESS", "owner")
    assert s.instances() == ("EE", "FI")
    assert s.instances(NOW + dt.timedelta(seconds=1)) == ("EE",)  # expired partner left out
    assert s.provider_addresses(fi_owner) == ("ss1.example",)
    assert s.member_name(fi_owner) == "Owner Ltd"
    assert s.is_in_global_group(fi_owner, GlobalGroupId("FI", "security-server-owners"))
    assert not s.is_in_global_group(fi_owner, GlobalGroupId(EE, "security-server-owners"))
    assert s.members("FI") == partner.members
    assert len(s.tsa_certs()) == 2
    assert len(s.tsa_certs("FI")) == 1
    assert s.trust_policy("FI").instance == "FI"
    with pytest.raises(XRoadError):
        s.trust_policy("XX")


def test_invalid_inputs(pki: testing_pki.TestPKI, auth: dict[str, x509.Certificate]) -> None:
    shared = _shared(pki, auth, 6)
    with pytest.raises(XRoadError) as info:
        GlobalConfSnapshot.build(
            shared, _private().__class__(**{**_private().__dict__, "instance_identifier": "XX"})
        )
    assert info.value.code == Code.MALFORMED_GLOBALCONF
    no_private = GlobalConfSnapshot.build(shared, None)
    with pytest.raises(XRoadError) as info:
        no_private.check_valid(NOW)
    assert info.value.code == Code.GLOBAL_CONF_OUTDATED
    with pytest.raises(XRoadError):
        no_private.timestamping_interval  # noqa: B018
