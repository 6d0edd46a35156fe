"""proxy.authtrust: which peer security server is acceptable (protocols.md §4.1, §10.3), with
configurations built from the test PKI; every failure with its NIIS fault code."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest
from cryptography import x509

from crossroad.crypto.algorithms import SHA1, SHA256
from crossroad.crypto.certs import cert_der
from crossroad.errors import Code, XRoadError
from crossroad.globalconf.model import (
    ApprovedCAInfo,
    CaInfo,
    GlobalSettings,
    ManagementService,
    Member,
    MemberClass,
    OcspInfo,
    PrivateParameters,
    SecurityServer,
    SharedParameters,
    Subsystem,
)
from crossroad.globalconf.snapshot import GlobalConfSnapshot
from crossroad.identifiers import ClientId, SecurityServerId
from crossroad.proxy import authtrust
from crossroad.testing import pki as testing_pki
from crossroad.testing.pki import EPOCH, Issued, make_cert, make_ocsp_response, name

AT = dt.datetime(2025, 6, 1, 12, tzinfo=dt.UTC)
EJBCA = "ee.ria.xroad.common.certificateprofile.impl.EjbcaCertificateProfileInfoProvider"
GOV = MemberClass("GOV", "Government")
COM = MemberClass("COM", "Commercial")

PROVIDER = ClientId("EE", "GOV", "provider")
PROVIDER_SUB = ClientId("EE", "GOV", "provider", "sub")
CONSUMER = ClientId("EE", "COM", "consumer")
CONSUMER_APP = ClientId("EE", "COM", "consumer", "app")
SS_PROV = SecurityServerId(PROVIDER, "ss-prov")
SS_CONS = SecurityServerId(CONSUMER, "ss-cons")


@dataclass(frozen=True)
class World:
    pki: testing_pki.TestPKI
    snapshot: GlobalConfSnapshot
    provider: Issued  # auth cert of ss-prov
    consumer: Issued  # auth cert of ss-cons
    rogue: Issued  # a valid auth cert nobody registered
    expired: Issued  # registered on ss-prov, expired at AT
    sign: Issued  # a signing cert registered as if it were an auth cert
    foreign: Issued  # auth cert of an unapproved CA, registered
    inter: Issued  # an intermediate CA (not in global configuration)
    deep: Issued  # auth cert under ``inter``, registered on ss-prov

    def ocsp(self, cert: x509.Certificate, **kw: object) -> bytes:
        return self.pki.ocsp_for(cert, kw.pop("at", AT), **kw)  # type: ignore[arg-type]


def build_world(pki: testing_pki.TestPKI, *, version: int = 6) -> World:
    provider = pki.auth_cert("EE", "ss-prov")
    consumer = pki.auth_cert("EE", "ss-cons")
    rogue = pki.auth_cert("EE", "rogue")
    expired = make_cert(
        name(C="EE", CN="ss-prov-old"), issuer=pki.ca, kind="auth", not_before=EPOCH, days=30
    )
    sign = pki.sign_cert("EE", "GOV", "provider")
    foreign = testing_pki.TestPKI.create("Foreign").auth_cert("EE", "ss-prov")
    inter = make_cert(name(O="Test", CN="Test Sub CA"), issuer=pki.ca, kind="ca")
    deep = make_cert(name(C="EE", CN="ss-prov-deep"), issuer=inter, kind="auth")
    digest = SHA256 if version >= 3 else SHA1

    def hashes(*issued: Issued) -> tuple[bytes, ...]:
        return tuple(digest.digest(cert_der(i.cert)) for i in issued)

    shared = SharedParameters(
        instance_identifier="EE",
        global_settings=GlobalSettings(3600, (GOV, COM)),
        approved_cas=(
            ApprovedCAInfo(
                "Test CA",
                CaInfo(cert_der(pki.ca.cert), (OcspInfo("http://ocsp", cert_der(pki.ocsp.cert)),)),
                EJBCA,
            ),
        ),
        members=(
            Member(GOV, "provider", "Provider", (Subsystem("sub"),)),
            Member(COM, "consumer", "Consumer", (Subsystem("app"),)),
        ),
        security_servers=(
            SecurityServer(
                PROVIDER,
                "ss-prov",
                "127.0.0.1",
                hashes(provider, expired, sign, foreign, deep),
                (PROVIDER_SUB,),
            ),
            SecurityServer(CONSUMER, "ss-cons", "127.0.0.2", hashes(consumer), (CONSUMER_APP,)),
        ),
    )
    private = PrivateParameters("EE", ManagementService("http://cs:4001/", PROVIDER), 60)
    snapshot = GlobalConfSnapshot.build(
        shared, private, version=version, shared_expires=AT + dt.timedelta(minutes=10)
    )
    return World(pki, snapshot, provider, consumer, rogue, expired, sign, foreign, inter, deep)


@pytest.fixture(scope="module")
def world(pki: testing_pki.TestPKI) -> World:
    return build_world(pki)


def _fails(code: str, fn: object, *args: object) -> XRoadError:
    with pytest.raises(XRoadError) as info:
        fn(*args)  # type: ignore[operator]
    assert info.value.code == code, info.value
    return info.value


# --- provider side, in the handshake (AuthTrustManager) -----------------------------------------


def test_registered_auth_cert_names_its_server(world: World) -> None:
    assert authtrust.check_registered(world.snapshot, (world.provider.cert,)) == SS_PROV
    assert authtrust.check_registered(world.snapshot, (world.consumer.cert,)) == SS_CONS


@pytest.mark.parametrize("version", [2, 3])
def test_registered_by_sha1_in_v2_and_sha256_later(pki: testing_pki.TestPKI, version: int) -> None:
    w = build_world(pki, version=version)
    assert authtrust.check_registered(w.snapshot, (w.provider.cert,)) == SS_PROV


def test_unregistered_or_missing_cert_is_refused(world: World) -> None:
    err = _fails(
        Code.SSL_AUTHENTICATION_FAILED,
        authtrust.check_registered,
        world.snapshot,
        (world.rogue.cert,),
    )
    assert "rogue" in err.detail
    assert "not the authentication certificate" in err.detail
    _fails(Code.SSL_AUTHENTICATION_FAILED, authtrust.check_registered, world.snapshot, ())


def test_approved_ca_certs_are_the_tls_anchors(world: World) -> None:
    anchors = authtrust.approved_ca_certs(world.snapshot, AT)
    assert [cert_der(c) for c in anchors] == [cert_der(world.pki.ca.cert)]


# --- consumer side, after the handshake (AuthTrustVerifier) -------------------------------------


def test_provider_cert_verifies_for_owner_and_clients(world: World) -> None:
    chain = (world.provider.cert,)
    ocsp = [world.ocsp(world.provider.cert)]
    for provider in (PROVIDER, PROVIDER_SUB):
        peer = authtrust.verify_provider_cert(world.snapshot, chain, ocsp, provider, AT)
        assert peer.server == SS_PROV
        assert peer.cert == world.provider.cert


def test_provider_not_served_by_that_server(world: World) -> None:
    chain = (world.consumer.cert,)
    err = _fails(
        Code.SSL_AUTHENTICATION_FAILED,
        authtrust.verify_provider_cert,
        world.snapshot,
        chain,
        [world.ocsp(world.consumer.cert)],
        PROVIDER_SUB,
        AT,
    )
    assert "is not registered at security server" in err.detail
    assert str(SS_CONS) in err.detail


def test_unregistered_cert_belongs_to_no_server(world: World) -> None:
    err = _fails(
        Code.SSL_AUTHENTICATION_FAILED,
        authtrust.verify_provider_cert,
        world.snapshot,
        (world.rogue.cert,),
        [world.ocsp(world.rogue.cert)],
        PROVIDER,
        AT,
    )
    assert "not associated with any security server" in err.detail


def test_expired_cert(world: World) -> None:
    err = _fails(
        f"{Code.SSL_AUTHENTICATION_FAILED}.{Code.CANNOT_CREATE_CERT_PATH}.{Code.INTERNAL_ERROR}",
        authtrust.verify_provider_cert,
        world.snapshot,
        (world.expired.cert,),
        [world.ocsp(world.expired.cert)],
        PROVIDER,
        AT,
    )
    assert "not valid at" in err.detail


def test_revoked_cert(world: World) -> None:
    revoked = world.ocsp(world.provider.cert, revoked_at=AT - dt.timedelta(days=1))
    err = _fails(
        f"{Code.SSL_AUTHENTICATION_FAILED}.{Code.INVALID_CERT_PATH}.{Code.CERT_VALIDATION}",
        authtrust.verify_provider_cert,
        world.snapshot,
        (world.provider.cert,),
        [revoked],
        PROVIDER,
        AT,
    )
    assert "revoked" in err.detail.lower()


def test_stale_ocsp_response(world: World) -> None:
    stale = world.ocsp(world.provider.cert, at=AT - dt.timedelta(seconds=3601))
    err = _fails(
        f"{Code.SSL_AUTHENTICATION_FAILED}.{Code.INVALID_CERT_PATH}.{Code.INCORRECT_VALIDATION_INFO}",
        authtrust.verify_provider_cert,
        world.snapshot,
        (world.provider.cert,),
        [stale],
        PROVIDER,
        AT,
    )
    assert "too old" in err.detail


def test_passed_next_update_is_stale(world: World) -> None:
    der = world.ocsp(world.provider.cert, next_update=AT - dt.timedelta(seconds=1))
    _fails(
        f"{Code.SSL_AUTHENTICATION_FAILED}.{Code.INVALID_CERT_PATH}.{Code.INCORRECT_VALIDATION_INFO}",
        authtrust.verify_provider_cert,
        world.snapshot,
        (world.provider.cert,),
        [der],
        PROVIDER,
        AT,
    )


def test_missing_or_foreign_ocsp_response(world: World) -> None:
    for responses in ([], [world.ocsp(world.consumer.cert)]):
        _fails(
            f"{Code.SSL_AUTHENTICATION_FAILED}.{Code.INVALID_CERT_PATH}.{Code.CERT_VALIDATION}",
            authtrust.verify_provider_cert,
            world.snapshot,
            (world.provider.cert,),
            responses,
            PROVIDER,
            AT,
        )


def test_garbage_ocsp_response(world: World) -> None:
    with pytest.raises(XRoadError) as info:
        authtrust.verify_provider_cert(
            world.snapshot, (world.provider.cert,), [b"\x30\x03junk"], PROVIDER, AT
        )
    assert info.value.code.startswith(f"{Code.SSL_AUTHENTICATION_FAILED}.")


def test_signing_cert_is_not_an_auth_cert(world: World) -> None:
    err = _fails(
        Code.SSL_AUTHENTICATION_FAILED,
        authtrust.verify_provider_cert,
        world.snapshot,
        (world.sign.cert,),
        [world.ocsp(world.sign.cert)],
        PROVIDER,
        AT,
    )
    assert "not an authentication certificate" in err.detail


def test_cert_of_unapproved_ca(world: World) -> None:
    _fails(
        f"{Code.SSL_AUTHENTICATION_FAILED}.{Code.CANNOT_CREATE_CERT_PATH}.{Code.INTERNAL_ERROR}",
        authtrust.verify_provider_cert,
        world.snapshot,
        (world.foreign.cert,),
        [],
        PROVIDER,
        AT,
    )


def test_provider_of_unknown_instance(world: World) -> None:
    with pytest.raises(XRoadError) as info:
        authtrust.verify_provider_cert(
            world.snapshot,
            (world.provider.cert,),
            [world.ocsp(world.provider.cert)],
            ClientId("XX", "GOV", "provider"),
            AT,
        )
    assert info.value.code.startswith(f"{Code.SSL_AUTHENTICATION_FAILED}.")


def test_intermediate_from_the_handshake_needs_its_own_ocsp(world: World) -> None:
    chain = (world.deep.cert, world.inter.cert)
    subjects = authtrust.ocsp_subjects(world.snapshot, chain, "EE")
    assert [(c.subject, i.subject) for c, i in subjects] == [
        (world.deep.cert.subject, world.inter.cert.subject),
        (world.inter.cert.subject, world.pki.ca.cert.subject),
    ]
    leaf_ocsp = make_ocsp_response(
        world.deep.cert, world.inter.cert, world.pki.ocsp, this_update=AT
    )
    inter_ocsp = world.ocsp(world.inter.cert)
    peer = authtrust.verify_provider_cert(
        world.snapshot, chain, [inter_ocsp, leaf_ocsp], PROVIDER, AT
    )
    assert peer.server == SS_PROV
    assert len(peer.path.checked) == 2
    _fails(
        f"{Code.SSL_AUTHENTICATION_FAILED}.{Code.INVALID_CERT_PATH}.{Code.CERT_VALIDATION}",
        authtrust.verify_provider_cert,
        world.snapshot,
        chain,
        [leaf_ocsp],
        PROVIDER,
        AT,
    )
    # Without the intermediate there is no path at all.
    _fails(
        f"{Code.SSL_AUTHENTICATION_FAILED}.{Code.CANNOT_CREATE_CERT_PATH}.{Code.INTERNAL_ERROR}",
        authtrust.ocsp_subjects,
        world.snapshot,
        (world.deep.cert,),
        "EE",
    )


def test_ocsp_subjects_of_a_direct_cert(world: World) -> None:
    subjects = authtrust.ocsp_subjects(world.snapshot, (world.provider.cert,), "EE")
    assert len(subjects) == 1
    assert subjects[0][1] == world.pki.ca.cert
    _fails(Code.SSL_AUTHENTICATION_FAILED, authtrust.ocsp_subjects, world.snapshot, (), "EE")


# --- provider side, per request (verifySslClientCert) -------------------------------------------


def test_client_cert_with_the_request_ocsp(world: World) -> None:
    chain = (world.consumer.cert,)
    ocsp = [world.ocsp(world.consumer.cert)]
    for client in (CONSUMER, CONSUMER_APP):
        assert authtrust.verify_client_cert(world.snapshot, chain, ocsp, client, AT).server == (
            SS_CONS
        )


def test_client_cert_failures_are_plain_ssl_authentication_failed(world: World) -> None:
    chain = (world.consumer.cert,)
    err = _fails(
        Code.SSL_AUTHENTICATION_FAILED,
        authtrust.verify_client_cert,
        world.snapshot,
        chain,
        [],
        CONSUMER,
        AT,
    )
    assert "OCSP response is missing" in err.detail
    revoked = world.ocsp(world.consumer.cert, revoked_at=AT - dt.timedelta(hours=1))
    err = _fails(
        Code.SSL_AUTHENTICATION_FAILED,
        authtrust.verify_client_cert,
        world.snapshot,
        chain,
        [revoked],
        CONSUMER,
        AT,
    )
    assert Code.CERT_VALIDATION in err.detail
    err = _fails(
        Code.SSL_AUTHENTICATION_FAILED,
        authtrust.verify_client_cert,
        world.snapshot,
        chain,
        [world.ocsp(world.consumer.cert)],
        PROVIDER,  # the request's client is not a client of the consumer's server
        AT,
    )
    assert "is not registered at security server" in err.detail
