"""Shared parameters: parse, render per version (checked against the official XSDs), trust."""

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

from crossroad.errors import XRoadError
from crossroad.globalconf.model import (
    AcmeServer,
    ApprovedCAInfo,
    ApprovedTSAInfo,
    CaInfo,
    CentralService,
    ConfigurationSource,
    CostType,
    CsrFormat,
    GlobalGroup,
    GlobalSettings,
    MaintenanceMode,
    Member,
    MemberClass,
    OcspInfo,
    SecurityServer,
    Subsystem,
)
from crossroad.globalconf.sharedparams import SharedParameters
from crossroad.identifiers import ClientId, ServiceId

if TYPE_CHECKING:
    from crossroad.testing.pki import TestPKI

Schema = Callable[[str, int], etree.XMLSchema]
GOV = MemberClass("GOV", "Government")


def full_model(pki: TestPKI) -> SharedParameters:
    """A model that uses every feature of every version."""
    ca = pki.ca.cert.public_bytes(Encoding.DER)
    ocsp = pki.ocsp.cert.public_bytes(Encoding.DER)
    tsa = pki.tsa.cert.public_bytes(Encoding.DER)
    m1 = ClientId("EE", "GOV", "1")
    m2 = ClientId("EE", "GOV", "2")
    return SharedParameters(
        instance_identifier="EE",
        sources=(ConfigurationSource("cs1", (ca,), (ocsp,)), ConfigurationSource("cs2")),
        approved_cas=(
            ApprovedCAInfo(
                name="Test CA",
                top_ca=CaInfo(
                    ca,
                    (
                        OcspInfo("http://ocsp/1", ocsp, CostType.FREE),
                        OcspInfo("http://ocsp/2", None, None),
                    ),
                ),
                certificate_profile_info="ee.ria.xroad.common.certificateprofile.impl.FiVRK",
                intermediate_cas=(CaInfo(ocsp, (OcspInfo("http://ocsp/3", None, CostType.PAID),)),),
                authentication_only=False,
                default_csr_format=CsrFormat.DER,
                acme_server=AcmeServer("http://acme/dir", "10.0.0.1", "5", "6"),
            ),
        ),
        approved_tsas=(ApprovedTSAInfo("TSA", "http://tsa", tsa, CostType.UNDEFINED),),
        members=(
            Member(GOV, "1", "One", (Subsystem("sub", "Sub name"), Subsystem("other"))),
            Member(GOV, "2", "Two"),
        ),
        security_servers=(
            SecurityServer(
                m1,
                "ss1",
                "ss1.example",
                (b"\x01" * 32,),
                (m1.subsystem("sub"), m2),
                MaintenanceMode("back soon"),
            ),
            SecurityServer(m2, "ss2", None, (), (), MaintenanceMode()),
        ),
        global_groups=(GlobalGroup("security-server-owners", "Owners", (m1, m2.subsystem("x"))),),
        central_services=(CentralService("c1", ServiceId(m1, "s", "v1")), CentralService("c2")),
        global_settings=GlobalSettings(600, (GOV, MemberClass("COM", "Commercial"))),
        extensions=(b'<x:future xmlns:x="urn:example">1</x:future>',),
    )


def downgrade(model: SharedParameters, version: int) -> SharedParameters:
    """What ``model`` looks like after a render/parse through ``version``."""
    out = model
    if version < 6:

        def ocsp(info: CaInfo) -> CaInfo:
            return CaInfo(
                info.cert, tuple(dataclasses.replace(o, cost_type=None) for o in info.ocsp)
            )

        out = dataclasses.replace(
            out,
            approved_cas=tuple(
                dataclasses.replace(
                    ca,
                    top_ca=ocsp(ca.top_ca),
                    intermediate_cas=tuple(ocsp(i) for i in ca.intermediate_cas),
                    default_csr_format=None,
                )
                for ca in out.approved_cas
            ),
            approved_tsas=tuple(dataclasses.replace(t, cost_type=None) for t in out.approved_tsas),
        )
    if version < 5:
        out = dataclasses.replace(
            out,
            members=tuple(
                dataclasses.replace(
                    m,
                    subsystems=tuple(
                        dataclasses.replace(s, subsystem_name=None) for s in m.subsystems
                    ),
                )
                for m in out.members
            ),
            security_servers=tuple(
                dataclasses.replace(s, maintenance=None) for s in out.security_servers
            ),
        )
    if version < 4:
        out = dataclasses.replace(
            out,
            approved_cas=tuple(
                dataclasses.replace(
                    ca,
                    acme_server=dataclasses.replace(
                        ca.acme_server,
                        authentication_certificate_profile_id=None,
                        signing_certificate_profile_id=None,
                    )
                    if ca.acme_server
                    else None,
                )
                for ca in out.approved_cas
            ),
        )
    if version < 3:
        out = dataclasses.replace(
            out,
            sources=(),
            extensions=(),
            approved_cas=tuple(
                dataclasses.replace(ca, acme_server=None) for ca in out.approved_cas
            ),
        )
    return out


@pytest.mark.parametrize("version", [2, 3, 4, 5, 6])
def test_full_model_renders_valid_xml_per_version(
    pki: TestPKI, globalconf_schema: Schema, version: int
) -> None:
    model = full_model(pki)
    assert model.min_version() == 6
    rendered = model.render(version)
    schema = globalconf_schema("shared", version)
    doc = etree.fromstring(rendered)
    assert schema.validate(doc), schema.error_log
    again = SharedParameters.parse(rendered)
    assert again == downgrade(model, version)
    assert again.min_version() <= version
    assert rendered.startswith(b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>')


def test_rendered_ids_and_idrefs(pki: TestPKI) -> None:
    doc = etree.fromstring(full_model(pki).render(6))
    assert [m.get("id") for m in doc.iter("member", "subsystem")] == ["id0", "id1", "id2", "id3"]
    first = doc.find("securityServer")
    assert first is not None
    assert first.findtext("owner") == "id0"
    assert [c.text for c in first.findall("client")] == ["id1", "id3"]
    # children of the root are unqualified; identifier parts are qualified
    assert all(etree.QName(c).namespace is None for c in list(doc)[:-1])
    assert etree.QName(doc[-1]).namespace == "urn:example"  # the extension element
    member = doc.find("globalGroup/groupMember")
    assert member is not None
    assert member.get("{http://x-road.eu/xsd/identifiers}objectType") == "MEMBER"


def test_unknown_clients_cannot_be_rendered(pki: TestPKI) -> None:
    model = full_model(pki)
    stranger = SecurityServer(ClientId("EE", "GOV", "999"), "x")
    broken = dataclasses.replace(model, security_servers=(stranger,))
    with pytest.raises(XRoadError) as info:
        broken.render(6)
    assert info.value.code == "malformed_globalconf"
    with pytest.raises(XRoadError):
        dataclasses.replace(model, sources=()).render(3)
    with pytest.raises(XRoadError):
        model.render(7)


def test_lookups(pki: TestPKI) -> None:
    model = full_model(pki)
    m1, m2 = ClientId("EE", "GOV", "1"), ClientId("EE", "GOV", "2")
    assert [str(c) for c in model.clients()] == [
        "MEMBER:EE/GOV/1",
        "SUBSYSTEM:EE/GOV/1/sub",
        "SUBSYSTEM:EE/GOV/1/other",
        "MEMBER:EE/GOV/2",
    ]
    assert model.has_client(m1.subsystem("sub"))
    assert not model.has_client(m1.subsystem("nope"))
    assert not model.has_client(ClientId("XX", "GOV", "1"))
    assert model.member_name(m1.subsystem("sub")) == "One"
    assert model.member(ClientId("XX", "GOV", "1")) is None
    assert model.subsystem(m1.subsystem("sub")) == Subsystem("sub", "Sub name")
    assert model.subsystem(m1) is None
    assert model.member_classes() == ("GOV", "COM")
    assert model.provider_addresses(m2) == ("ss1.example",)  # ss2 has no address
    assert model.provider_addresses(m1) == ("ss1.example",)  # the owner is a client
    assert model.known_addresses() == ("ss1.example",)
    ss1 = model.security_servers[0]
    assert model.security_server(ss1.id) is ss1
    assert model.server_by_auth_cert_hash(b"\x01" * 32) is ss1
    assert model.server_by_auth_cert_hash(b"\x02") is None
    assert model.is_in_maintenance(ss1.id)
    assert model.is_in_global_group(m1, "security-server-owners")
    assert not model.is_in_global_group(m1.subsystem("sub"), "security-server-owners")
    assert model.global_group_ids()[0].group_code == "security-server-owners"
    assert model.approved_ca("Test CA") is not None
    assert model.approved_ca("nope") is None
    assert model.approved_tsa("TSA") is not None
    assert model.ocsp_cost_type("http://ocsp/2") is CostType.UNDEFINED
    assert model.ocsp_cost_type("http://nowhere") is None


def test_trust_policy(pki: TestPKI) -> None:
    policy = full_model(pki).trust_policy(nextupdate=False)
    assert policy.instance == "EE"
    assert policy.ocsp_freshness_seconds == 600
    assert policy.verify_ocsp_next_update is False
    (ca,) = policy.cas
    assert ca.top_ca == pki.ca.cert
    assert [r.url for r in ca.responders()] == ["http://ocsp/1", "http://ocsp/2", "http://ocsp/3"]
    assert ca.ocsp[0].cost_type == "FREE"
    assert policy.tsa_certs() == (pki.tsa.cert,)
    assert policy.ca_for_issuer(pki.sign_cert("EE", "GOV", "1").cert) is ca


def test_trust_policy_accepts_base64_of_pem(pki: TestPKI) -> None:
    pem = pki.ca.cert.public_bytes(Encoding.PEM)
    model = dataclasses.replace(
        full_model(pki),
        approved_cas=(ApprovedCAInfo("pem", CaInfo(pem), "profile"),),
    )
    again = SharedParameters.parse(model.render(6))
    assert again.approved_cas[0].top_ca.cert == pem
    assert again.trust_policy().cas[0].top_ca == pki.ca.cert


def test_trust_policy_with_bad_certificate(pki: TestPKI) -> None:
    model = dataclasses.replace(
        full_model(pki), approved_cas=(ApprovedCAInfo("bad", CaInfo(b"junk"), "profile"),)
    )
    with pytest.raises(XRoadError) as info:
        model.trust_policy()
    assert info.value.code == "malformed_globalconf"


MINIMAL = b"""<tns:conf xmlns:tns="http://x-road.eu/xsd/xroad.xsd">
<instanceIdentifier>EE</instanceIdentifier>%s
<globalSettings><ocspFreshnessSeconds>60</ocspFreshnessSeconds></globalSettings></tns:conf>"""


def test_minimal_parses() -> None:
    params = SharedParameters.parse(MINIMAL % b"")
    assert params.instance == "EE"
    assert params.global_settings.ocsp_freshness_seconds == 60
    assert params.min_version() == 2


MEMBER = b"""<member id="m"><memberClass><code>GOV</code><description>d</description></memberClass>
<memberCode>1</memberCode><name>n</name><subsystem id="s"><subsystemCode>x</subsystemCode>
</subsystem></member>"""


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not xml",
        b"<conf/>",
        b'<tns:other xmlns:tns="http://x-road.eu/xsd/xroad.xsd"/>',
        b'<!DOCTYPE x [<!ENTITY e "x">]><tns:conf xmlns:tns="http://x-road.eu/xsd/xroad.xsd"/>',
        MINIMAL.replace(b"<instanceIdentifier>EE</instanceIdentifier>", b""),
        MINIMAL.replace(b"60", b"sixty") % b"",
        MINIMAL % b"<instanceIdentifier>X</instanceIdentifier>",
        MINIMAL % b"<approvedTSA><name>t</name><url>u</url><cert>!!</cert></approvedTSA>",
        MINIMAL % b"<approvedTSA><name>t</name><url>u</url></approvedTSA>",
        MINIMAL
        % b"<approvedTSA><name>t</name><url>u</url><cert>AA==</cert><costType>CHEAP</costType>"
        b"</approvedTSA>",
        MINIMAL % b"<approvedCA><name>c</name><authenticationOnly>maybe</authenticationOnly>"
        b"<topCA><cert>AA==</cert></topCA><certificateProfileInfo>p</certificateProfileInfo>"
        b"</approvedCA>",
        MINIMAL
        % (
            MEMBER + b"<securityServer><owner>nope</owner><serverCode>s</serverCode>"
            b"</securityServer>"
        ),
        MINIMAL
        % (MEMBER + b"<securityServer><owner>s</owner><serverCode>s</serverCode></securityServer>"),
        MINIMAL % (MEMBER + MEMBER),
        MINIMAL % b"<member><memberCode>1</memberCode></member>",
        MINIMAL % b"<instanceIdentifier><b>EE</b></instanceIdentifier>",
        MINIMAL % b"<centralService><serviceCode>c</serviceCode>"
        b'<implementingService xmlns:id="http://x-road.eu/xsd/identifiers" id:objectType="MEMBER"/>'
        b"</centralService>",
    ],
)
def test_malformed(data: bytes) -> None:
    with pytest.raises(XRoadError) as info:
        SharedParameters.parse(data)
    assert info.value.code == "malformed_globalconf"


def test_lenient_parsing_keeps_extensions_and_skips_bad_group_members() -> None:
    extra = (
        b"<globalGroup><groupCode>g</groupCode><description>d</description>"
        b'<groupMember xmlns:id="http://x-road.eu/xsd/identifiers" id:objectType="MEMBER">'
        b"<id:xRoadInstance>EE</id:xRoadInstance><id:memberClass>C</id:memberClass>"
        b"<id:memberCode>1</id:memberCode><id:subsystemCode>s</id:subsystemCode></groupMember>"
        b"<newThing>ignored</newThing></globalGroup>"
    )
    data = MINIMAL % (b"<source><address>cs</address></source>" + extra)
    data = data.replace(b"</tns:conf>", b'<x:ext xmlns:x="urn:x">kept</x:ext></tns:conf>')
    params = SharedParameters.parse(data)
    assert params.global_groups[0].members == ()
    assert len(params.extensions) == 1
    assert b"kept" in params.render(3)
    assert SharedParameters.parse(params.render(3)).extensions == params.extensions
    assert b"kept" not in params.render(2)  # V2 has no extension point


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200))
def test_parser_never_crashes_on_bytes(data: bytes) -> None:
    code = None
    try:
        SharedParameters.parse(data)
    except XRoadError as exc:
        code = exc.code
    assert code in (None, "malformed_globalconf")


_MUTATION_BASE: list[bytes] = []


def _base(vectors: Path) -> bytes:
    if not _MUTATION_BASE:
        path = vectors / "globalconf/globalconf_good_v6/EE/shared-params.xml"
        _MUTATION_BASE.append(path.read_bytes())
    return _MUTATION_BASE[0]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.integers(min_value=0, max_value=10**6), st.binary(min_size=0, max_size=8))
def test_parser_never_crashes_on_mutated_vector(vectors: Path, position: int, junk: bytes) -> None:
    data = bytearray(_base(vectors))
    at = position % len(data)
    data[at : at + len(junk)] = junk
    code = None
    try:
        SharedParameters.parse(bytes(data))
    except XRoadError as exc:
        code = exc.code
    assert code in (None, "malformed_globalconf")


@settings(max_examples=40, deadline=None)
@given(
    st.text(
        alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Co", "Cn"), max_codepoint=0xFFFD),
        min_size=1,
        max_size=12,
    ).filter(lambda s: s.strip() == s),
    st.lists(st.binary(min_size=1, max_size=40), max_size=3),
    st.integers(min_value=0, max_value=10**9),
)
def test_roundtrip_of_generated_values(name: str, hashes: list[bytes], freshness: int) -> None:
    member = Member(MemberClass(name, name), name, name, (Subsystem(name, name),))
    owner = member.client_id(name)
    params = SharedParameters(
        instance_identifier=name,
        global_settings=GlobalSettings(freshness, (MemberClass(name, name),)),
        sources=(ConfigurationSource(name, tuple(hashes)),),
        members=(member,),
        security_servers=(
            SecurityServer(owner, name, name, tuple(hashes), (owner.subsystem(name),)),
        ),
        global_groups=(GlobalGroup(name, name, (owner,)),),
    )
    rendered = params.render(5)
    assert SharedParameters.parse(rendered) == params
    for digest in hashes:
        assert base64.b64encode(digest) in rendered
