"""crypto.chain: paths to approved CAs, PKIX checks at a given time, OCSP for the path."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa

from crossroad.crypto import chain
from crossroad.crypto.trust import ApprovedCA, IntermediateCA, OcspResponder, TrustPolicy
from crossroad.errors import XRoadError
from crossroad.testing.pki import EPOCH, Issued, make_cert, make_ocsp_response, name, rsa_key

AT = EPOCH + dt.timedelta(days=10)
CANNOT = "cannot_create_cert_path.internal_error"


def _issue(
    subject: x509.Name,
    issuer: Issued | None,
    key: rsa.RSAPrivateKey,
    *,
    ca: bool | None = True,
    path_length: int | None = None,
    key_cert_sign: bool | None = True,
    unknown_critical: bool = False,
    not_before: dt.datetime = EPOCH,
    days: int = 3650,
) -> Issued:
    """A certificate with exactly the CA-related extensions a test needs."""
    b = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + dt.timedelta(days=days))
    )
    if ca is not None:
        b = b.add_extension(
            x509.BasicConstraints(ca=ca, path_length=path_length if ca else None), critical=True
        )
    if key_cert_sign is not None:
        b = b.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=key_cert_sign,
                crl_sign=key_cert_sign,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    if unknown_critical:
        b = b.add_extension(
            x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.99999.1"), b"\x05\x00"),
            critical=True,
        )
    return Issued(b.sign((issuer.key if issuer else key), hashes.SHA256()), key)


@pytest.fixture(scope="module")
def root() -> Issued:
    return _issue(name(O="Chain", CN="Chain Root"), None, rsa_key(40))


@pytest.fixture(scope="module")
def responder(root: Issued) -> Issued:
    return make_cert(name(O="Chain", CN="Chain OCSP"), issuer=root, kind="ocsp", key=rsa_key(41))


@pytest.fixture(scope="module")
def inter(root: Issued) -> Issued:
    return _issue(name(O="Chain", CN="Chain Sub CA"), root, rsa_key(42))


def _trust(
    root: Issued, responder: Issued, *intermediates: Issued, listed: bool = True
) -> TrustPolicy:
    """The root with ``responder`` listed; intermediates list it too when ``listed``."""
    inter_ocsp = (OcspResponder("http://ocsp", responder.cert),) if listed else ()
    ca = ApprovedCA(
        "Chain",
        root.cert,
        "Ejbca",
        intermediates=tuple(IntermediateCA(i.cert, inter_ocsp) for i in intermediates),
        ocsp=(OcspResponder("http://ocsp", responder.cert),),
    )
    return TrustPolicy("XX", cas=(ca,), ocsp_freshness_seconds=600)


def _leaf(issuer: Issued, **kw: object) -> Issued:
    return make_cert(name(C="XX", O="COM", CN="leaf"), issuer=issuer, kind="sign", **kw)  # type: ignore[arg-type]


def _ocsp(
    path: chain.CertPath, responder: Issued, at: dt.datetime = AT, **kw: object
) -> list[bytes]:
    return [
        make_ocsp_response(c, path.issuer_of(i), responder, this_update=at, **kw)  # type: ignore[arg-type]
        for i, c in enumerate(path.checked)
    ]


# ---------------------------------------------------------------------------------------------
# Building


def test_leaf_directly_under_top_ca(root: Issued, responder: Issued) -> None:
    trust = _trust(root, responder)
    leaf = _leaf(root)
    path = chain.build_path(leaf.cert, [], trust)
    assert path.certs == (leaf.cert, root.cert)
    assert path.anchor == 1
    assert path.checked == (leaf.cert,)
    assert path.intermediates == ()
    assert path.top_ca == root.cert
    assert path.ca is trust.cas[0]
    chain.validate_path(path, AT, _ocsp(path, responder), trust)


def test_approved_intermediate_is_the_anchor(
    root: Issued, responder: Issued, inter: Issued
) -> None:
    trust = _trust(root, responder, inter)
    leaf = _leaf(inter)
    path = chain.build_path(leaf.cert, [], trust)
    assert path.certs == (leaf.cert, inter.cert, root.cert)
    assert path.anchor == 1
    assert path.intermediates == (inter.cert,)
    # Only the leaf needs OCSP, as in NIIS (the configured issuer is the trust anchor).
    chain.validate_path(path, AT, _ocsp(path, responder), trust)
    # A configured intermediate has its own responder list (NIIS isOcspResponderCert).
    unlisted = _trust(root, responder, inter, listed=False)
    with pytest.raises(XRoadError) as err:
        chain.validate_path(path, AT, _ocsp(path, responder), unlisted)
    assert err.value.code == "invalid_cert_path.incorrect_validation_info"


def test_intermediate_from_extra_certs(root: Issued, responder: Issued, inter: Issued) -> None:
    trust = _trust(root, responder)
    leaf = _leaf(inter)
    path = chain.build_path(leaf.cert, [root.cert, inter.cert], trust)
    assert path.certs == (leaf.cert, inter.cert, root.cert)
    assert path.anchor == 2
    responses = _ocsp(path, responder)
    assert len(responses) == 2
    # The root's listed responder also answers for the sub-CA the message brought along.
    statuses = chain.validate_path(path, AT, responses, trust)
    assert [s.status for s in statuses] == ["good", "good"]
    assert chain.validate_path(path, AT, None, trust) == ()
    with pytest.raises(XRoadError) as err:
        chain.validate_path(path, AT, responses[:1], trust)
    assert err.value.code == "invalid_cert_path.cert_validation"
    assert "Chain Sub CA" in err.value.detail


def test_no_path(root: Issued, responder: Issued, inter: Issued) -> None:
    trust = _trust(root, responder)
    leaf = _leaf(inter)
    with pytest.raises(XRoadError) as err:
        chain.build_path(leaf.cert, [], trust)
    assert err.value.code == CANNOT
    assert "not issued by approved" in err.value.detail
    # Same name, other key: the signature decides.
    impostor = _issue(name(O="Chain", CN="Chain Sub CA"), root, rsa_key(43))
    with pytest.raises(XRoadError) as err:
        chain.build_path(leaf.cert, [impostor.cert], trust)
    assert err.value.code == CANNOT
    other_root = _issue(name(O="Chain", CN="Chain Root"), None, rsa_key(44))
    with pytest.raises(XRoadError):
        chain.build_path(_leaf(other_root).cert, [], trust)


def test_extra_certs_that_loop(root: Issued, responder: Issued) -> None:
    a_key, b_key = rsa_key(45), rsa_key(46)
    a_name, b_name = name(CN="Loop A"), name(CN="Loop B")
    a_self = _issue(a_name, None, a_key)
    b = _issue(b_name, a_self, b_key)
    a = _issue(a_name, b, a_key)  # A issued by B, B issued by A
    with pytest.raises(XRoadError) as err:
        chain.build_path(_leaf(a).cert, [a.cert, b.cert], _trust(root, responder))
    assert err.value.code == CANNOT


def test_leaf_that_is_itself_approved(root: Issued, responder: Issued, inter: Issued) -> None:
    trust = _trust(root, responder, inter)
    path = chain.build_path(inter.cert, [], trust)
    assert path.certs == (inter.cert, root.cert)
    assert path.anchor == 0
    chain.validate_path(path, AT, [], trust)


# ---------------------------------------------------------------------------------------------
# PKIX checks (NIIS reports them from its path builder: cannot_create_cert_path)


def test_validity_period(root: Issued, responder: Issued) -> None:
    trust = _trust(root, responder)
    leaf = _leaf(root, not_before=EPOCH + dt.timedelta(days=5), days=10)
    path = chain.build_path(leaf.cert, [], trust)
    chain.validate_path(path, leaf.cert.not_valid_before_utc, None, trust)
    chain.validate_path(path, leaf.cert.not_valid_after_utc, None, trust)
    for at in (EPOCH + dt.timedelta(days=4), EPOCH + dt.timedelta(days=16)):
        with pytest.raises(XRoadError) as err:
            chain.validate_path(path, at, _ocsp(path, responder, at), trust)
        assert err.value.code == CANNOT
        assert "not valid at" in err.value.detail


def test_trust_anchor_validity_is_not_checked(responder: Issued) -> None:
    # As Java's TrustAnchor: the configured CA certificate is taken as it is.
    short_root = _issue(name(CN="Short Root"), None, rsa_key(47), days=1)
    trust = _trust(short_root, responder)
    leaf = _leaf(short_root)
    chain.validate_path(chain.build_path(leaf.cert, [], trust), AT, None, trust)


def test_expired_extra_intermediate(root: Issued, responder: Issued) -> None:
    old = _issue(name(CN="Old Sub CA"), root, rsa_key(48), days=5)
    trust = _trust(root, responder)
    path = chain.build_path(_leaf(old).cert, [old.cert], trust)
    with pytest.raises(XRoadError) as err:
        chain.validate_path(path, AT, None, trust)
    assert err.value.code == CANNOT


@pytest.mark.parametrize(
    "kw",
    [{"ca": False}, {"ca": None}, {"key_cert_sign": False}],
    ids=["end-entity", "no-basic-constraints", "no-keyCertSign"],
)
def test_intermediate_must_be_a_ca(root: Issued, responder: Issued, kw: dict[str, object]) -> None:
    sub = _issue(name(CN="Not A CA"), root, rsa_key(49), **kw)  # type: ignore[arg-type]
    trust = _trust(root, responder)
    path = chain.build_path(_leaf(sub).cert, [sub.cert], trust)
    with pytest.raises(XRoadError) as err:
        chain.validate_path(path, AT, None, trust)
    assert err.value.code == CANNOT


def test_path_length_constraint(root: Issued, responder: Issued) -> None:
    upper = _issue(name(CN="Upper"), root, rsa_key(50), path_length=0)
    lower = _issue(name(CN="Lower"), upper, rsa_key(51))
    trust = _trust(root, responder)
    path = chain.build_path(_leaf(lower).cert, [lower.cert, upper.cert], trust)
    assert path.anchor == 3
    with pytest.raises(XRoadError) as err:
        chain.validate_path(path, AT, None, trust)
    assert "Path length" in err.value.detail
    relaxed = _issue(name(CN="Upper"), root, rsa_key(50), path_length=1)
    path = chain.build_path(_leaf(lower).cert, [lower.cert, relaxed.cert], trust)
    chain.validate_path(path, AT, _ocsp(path, responder), trust)


def test_unknown_critical_extension(root: Issued, responder: Issued) -> None:
    odd = _issue(name(CN="Odd"), root, rsa_key(52), ca=False, unknown_critical=True)
    trust = _trust(root, responder)
    with pytest.raises(XRoadError) as err:
        chain.verify_path(odd.cert, [], trust, AT, None)
    assert err.value.code == CANNOT
    assert "critical" in err.value.detail


def test_naive_time(root: Issued, responder: Issued) -> None:
    trust = _trust(root, responder)
    path = chain.build_path(_leaf(root).cert, [], trust)
    with pytest.raises(ValueError, match="timezone"):
        chain.validate_path(path, AT.replace(tzinfo=None), None, trust)


# ---------------------------------------------------------------------------------------------
# OCSP for the path: invalid_cert_path.<cause>


def test_ocsp_failures_are_prefixed(root: Issued, responder: Issued) -> None:
    trust = _trust(root, responder)
    path = chain.build_path(_leaf(root).cert, [], trust)
    cases = [
        ([], "invalid_cert_path.cert_validation"),
        (_ocsp(path, responder, revoked_at=AT), "invalid_cert_path.cert_validation"),
        (_ocsp(path, responder, unknown=True), "invalid_cert_path.cert_validation"),
        (
            _ocsp(path, responder, AT - dt.timedelta(hours=1)),
            "invalid_cert_path.incorrect_validation_info",
        ),
        ([b"garbage"], "invalid_cert_path.cert_validation"),
    ]
    for responses, code in cases:
        with pytest.raises(XRoadError) as err:
            chain.validate_path(path, AT, responses, trust)
        assert err.value.code == code
        assert err.value.matches(code.split(".")[-1])
    # None skips OCSP (NIIS verifyChainOnly).
    chain.validate_path(path, AT, None, trust)


def test_ocsp_by_an_unlisted_responder(root: Issued, responder: Issued, inter: Issued) -> None:
    trust = _trust(root, responder)
    leaf = _leaf(inter)
    path = chain.build_path(leaf.cert, [inter.cert], trust)
    # The sub-CA may answer for its own leaf (it is the issuer) ...
    own = make_ocsp_response(leaf.cert, inter.cert, inter, this_update=AT)
    sub = make_ocsp_response(inter.cert, root.cert, responder, this_update=AT)
    chain.validate_path(path, AT, [own, sub], trust)
    # ... but a stranger may not.
    stranger = make_cert(name(CN="Stranger"), kind="ocsp", key=rsa_key(53))
    bad = make_ocsp_response(leaf.cert, inter.cert, stranger, this_update=AT)
    with pytest.raises(XRoadError) as err:
        chain.validate_path(path, AT, [bad, sub], trust)
    assert err.value.code == "invalid_cert_path.incorrect_validation_info"
