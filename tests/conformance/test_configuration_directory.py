"""Conformance: every ``configuration-directory`` row of the NIIS vectors MANIFEST.

Signed directories from the configuration client tests (LF, double-quoted instance) and the real
central server output of the system tests (CRLF, single-quoted instance, V3–V6), anchors, and
the download locations V3+ shared parameters offer.  Clocks are pinned where the MANIFEST says
so (the client test directories expire on 2026-05-20T17:42:55Z).
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from cryptography import x509

from crossroad.crypto.certs import java_rfc2253, load_certificate
from crossroad.errors import Code, XRoadError
from crossroad.globalconf.directory import Metadata
from crossroad.globalconf.privateparams import parse_anchor, parse_private_parameters
from crossroad.globalconf.sharedparams import parse_shared_parameters
from crossroad.globalconf.signed import (
    DirectoryEntry,
    SignedDirectory,
    build_signed_directory,
    check_content,
)
from crossroad.globalconf.snapshot import configuration_path, locations

UTC = dt.UTC
PINNED = dt.datetime(2025, 1, 1, tzinfo=UTC)  # before the client files' time bomb
CLIENT_EXPIRY = dt.datetime(2026, 5, 20, 17, 42, 55, tzinfo=UTC)
SYSTEM_TEST_AT = dt.datetime(2026, 2, 6, tzinfo=UTC)  # snapshot date; all expire 2034+


@pytest.fixture(scope="module")
def client(vectors: Path) -> Path:
    return vectors / "configuration-directory" / "client"


@pytest.fixture(scope="module")
def system(vectors: Path) -> Path:
    return vectors / "configuration-directory" / "system-test"


@pytest.fixture(scope="module")
def consumer(vectors: Path) -> x509.Certificate:
    return load_certificate((vectors / "certs/common-test/consumer.pem").read_bytes())


@pytest.fixture(scope="module")
def producer(vectors: Path) -> x509.Certificate:
    return load_certificate((vectors / "certs/common-test/producer.pem").read_bytes())


def _parse(path: Path) -> SignedDirectory:
    return SignedDirectory.parse(path.read_bytes())


def _code(path: Path, certs: list[x509.Certificate | bytes], at: dt.datetime) -> str:
    with pytest.raises(XRoadError) as info:
        _parse(path).verify(certs, at)
    return info.value.code


# --- client/test-conf-simple.txt and its content files ----------------------------------------


def test_simple_valid(client: Path, consumer: x509.Certificate) -> None:
    directory = _parse(client / "test-conf-simple.txt")
    assert directory.verify([consumer], PINNED) == consumer
    assert directory.expires == CLIENT_EXPIRY
    assert directory.version is None
    assert [p.location for p in directory.parts] == [
        "/private-params.xml",
        "/shared-params.xml",
        "/foo.xml",
    ]
    assert [(p.content_identifier, p.instance) for p in directory.parts] == [
        ("PRIVATE-PARAMETERS", "EE"),
        ("SHARED-PARAMETERS", "EE"),
        ("FOO", "EE"),  # an unknown identifier is kept
    ]
    # Verification-certificate-hash = SHA-512 of consumer.pem's DER.
    assert directory.verification_cert_hash.hex().startswith("25c74bb75c5f")
    # Signed bytes: body of the first outer part without the LF before the next boundary.
    assert directory.signed_data.startswith(b"--innerboundary\nExpire-date")
    assert directory.signed_data.endswith(b"yw==")


def test_simple_wrong_anchor_cert(client: Path, producer: x509.Certificate) -> None:
    path = client / "test-conf-simple.txt"
    assert _code(path, [producer], PINNED) == Code.GLOBAL_CONF_MISSING_VERIFICATION_CERT


def test_simple_time_bomb(client: Path, consumer: x509.Certificate) -> None:
    path = client / "test-conf-simple.txt"
    _parse(path).verify([consumer], CLIENT_EXPIRY)  # still valid at the very second
    after = CLIENT_EXPIRY + dt.timedelta(seconds=1)
    assert _code(path, [consumer], after) == Code.GLOBAL_CONF_OUTDATED


def test_simple_content_files(client: Path, consumer: x509.Certificate) -> None:
    directory = _parse(client / "test-conf-simple.txt")
    directory.verify([consumer], PINNED)
    ee = client / "test-conf-simple" / "EE"
    for part in directory.parts:
        check_content(part, (ee / part.location.lstrip("/")).read_bytes())
    bar = (ee / "bar.xml").read_bytes()  # unreferenced
    assert not any(p.matches(bar) for p in directory.parts)
    assert (client / "test-conf-simple" / "instance-identifier").read_text().strip() == "EE"
    listed = (client / "test-conf-simple" / "files").read_text().split()
    assert [Path(f).name for f in listed] == ["private-params.xml", "shared-params.xml", "foo.xml"]
    with pytest.raises(XRoadError) as info:
        check_content(directory.parts[0], bar)
    assert info.value.code == Code.GLOBAL_CONF_PART_DOWNLOADED_FILE_INTEGRITY_FAILURE


# --- client/test-conf-detached ------------------------------------------------------------------


def test_detached(client: Path, consumer: x509.Certificate) -> None:
    directory = _parse(client / "test-conf-detached.txt")
    directory.verify([consumer], PINNED)
    assert directory.expires == CLIENT_EXPIRY
    (private_part,) = directory.parts
    assert (private_part.content_identifier, private_part.instance) == ("PRIVATE-PARAMETERS", "EE")
    data = (client / "test-conf-detached" / "EE" / "private-params.xml").read_bytes()
    check_content(private_part, data)
    # The private parameters' anchor points at test-conf-simple.txt; from there the client takes
    # only the SHARED-PARAMETERS entry, so it ends up with two parts.
    (anchor,) = parse_private_parameters(data).configuration_anchors
    (source,) = anchor.sources
    assert source.download_url.endswith("test-conf-simple.txt")
    assert source.verification_certs == (b"bar\n",)  # a placeholder, not a certificate
    federated = _parse(client / Path(source.download_url).name)
    federated.verify([consumer], PINNED)
    shared = [p for p in federated.parts if p.content_identifier == "SHARED-PARAMETERS"]
    assert [p.content_identifier for p in (private_part, *shared)] == [
        "PRIVATE-PARAMETERS",
        "SHARED-PARAMETERS",
    ]


# --- client/test-conf-malformed, -missing-signature, conf1 --------------------------------------


@pytest.mark.parametrize("at", [PINNED, dt.datetime(2040, 1, 1, tzinfo=UTC)])
def test_malformed(client: Path, consumer: x509.Certificate, at: dt.datetime) -> None:
    # Truncated: no signature part, so the (signed) expiry is never read.  Time-independent.
    path = client / "test-conf-malformed.txt"
    assert _code(path, [consumer], at) == Code.GLOBAL_CONF_MISSING_SIGNED_DATA_EXPIRATION_DATE


@pytest.mark.parametrize("at", [PINNED, dt.datetime(2040, 1, 1, tzinfo=UTC)])
def test_missing_signature(client: Path, consumer: x509.Certificate, at: dt.datetime) -> None:
    path = client / "test-conf-missing-signature.txt"
    assert _code(path, [consumer], at) == Code.GLOBAL_CONF_SIGNATURE_VERIFICATION_FAILURE


def test_conf1_orphan_is_rejected(client: Path, consumer: x509.Certificate) -> None:
    # Informational row: truncated hashes and signature, no Verification-certificate-hash.
    with pytest.raises(XRoadError) as info:
        _parse(client / "conf1.txt").verify([consumer], PINNED)
    assert info.value.code.startswith("global_conf_")
    assert {p.name for p in (client / "conf1").iterdir()} == {
        "private-parameters.xml",
        "shared-parameters.xml",
    }


# --- client/V2, V3, V3-many-nodes: locations -------------------------------------------------


def test_locations_v2(client: Path) -> None:
    v2 = parse_shared_parameters((client / "V2/EE/shared-params.xml").read_bytes())
    assert Metadata.parse((client / "V2/EE/shared-params.xml.metadata").read_bytes())
    assert locations("http://domainAddress/confDir", v2) == ()


@pytest.mark.parametrize(
    ("url", "expected", "certs"),
    [
        (
            "http://domainAddress/internalconf",
            ["https://node1/internalconf", "http://node1/internalconf"],
            1,
        ),
        (
            "http://domainAddress/externalconf",
            ["https://node1/externalconf", "http://node1/externalconf"],
            1,
        ),
        (
            "http://domainAddress/PROXY/conf",
            ["https://node1/PROXY/conf", "http://node1/PROXY/conf"],
            2,
        ),
        ("http://notMatchFormat", [], 0),
    ],
)
def test_locations_v3(client: Path, url: str, expected: list[str], certs: int) -> None:
    v3 = parse_shared_parameters((client / "V3/EE/shared-params.xml").read_bytes())
    found = locations(url, v3)
    assert [loc.download_url for loc in found] == expected
    assert all(len(loc.verification_certs) == certs for loc in found)
    assert all(loc.instance == "EE" for loc in found)
    if found:
        (source,) = v3.sources
        wanted = {
            "internalconf": source.internal_verification_certs,
            "externalconf": source.external_verification_certs,
        }.get(
            configuration_path(url),
            source.internal_verification_certs + source.external_verification_certs,
        )
        assert all(loc.verification_certs == wanted for loc in found)


def test_locations_many_nodes(client: Path) -> None:
    many = parse_shared_parameters((client / "V3-many-nodes/EE/shared-params.xml").read_bytes())
    found = locations(["https://cs/internalconf", "http://domainAddress/internalconf"], many)
    assert len(found) == 6
    assert [loc.download_url.startswith("https://") for loc in found] == [True] * 3 + [False] * 3


def test_configuration_path() -> None:
    assert configuration_path("http://cs/internalconf") == "internalconf"
    with pytest.raises(XRoadError) as info:
        configuration_path(["https://only-https/internalconf"])
    assert info.value.code == Code.INVALID_DOWNLOAD_URL_FORMAT


# --- system-test: the real central server output --------------------------------------------------


def test_system_test_anchor(system: Path) -> None:
    anchor = parse_anchor((system / "configuration_anchor_CS_internal.xml").read_bytes())
    assert anchor.instance_identifier == "DEV"
    assert anchor.generated_at == dt.datetime(2025, 11, 5, 22, 10, 45, 770000, tzinfo=UTC)
    assert [s.download_url for s in anchor.sources] == [
        "http://cs/internalconf",
        "https://cs/internalconf",
    ]
    for source in anchor.sources:
        (cert,) = source.verification_certs
        assert java_rfc2253(load_certificate(cert).subject) == "CN=internalSigningKey"


def _timestamp_dir(system: Path, version: int) -> Path:
    (found,) = [p for p in (system / "public" / f"V{version}").iterdir() if p.is_dir()]
    return found


def _source_certs(system: Path, version: int, kind: str) -> tuple[bytes, ...]:
    shared = parse_shared_parameters(
        (_timestamp_dir(system, version) / "shared-params.xml").read_bytes()
    )
    return tuple(
        cert
        for s in shared.sources
        for cert in (
            s.internal_verification_certs if kind == "internal" else s.external_verification_certs
        )
    )


def test_v6_internalconf(system: Path) -> None:
    anchor = parse_anchor((system / "configuration_anchor_CS_internal.xml").read_bytes())
    directory = _parse(system / "public/V6/internalconf")
    first, second = (s.verification_certs[0] for s in anchor.sources)
    signer = directory.verify([second], SYSTEM_TEST_AT)  # the anchor's 2nd verificationCert
    assert java_rfc2253(signer.subject) == "CN=internalSigningKey"
    assert directory.verify([first, second], SYSTEM_TEST_AT) == signer
    assert directory.expires == dt.datetime(2035, 11, 11, 3, 7, 40, tzinfo=UTC)
    assert directory.version == 6
    folder = _timestamp_dir(system, 6)
    assert [(p.content_identifier, p.instance) for p in directory.parts] == [
        ("SHARED-PARAMETERS", "DEV"),
        ("PRIVATE-PARAMETERS", "DEV"),
    ]
    for part in directory.parts:
        assert part.location == f"/V6/{folder.name}/{Path(part.location).name}"
        check_content(part, (folder / Path(part.location).name).read_bytes())
    # The V6 shared-params' own internal cert is the next (rotated) key: it does not verify this.
    with pytest.raises(XRoadError) as info:
        directory.verify(list(_source_certs(system, 6, "internal")), SYSTEM_TEST_AT)
    assert info.value.code == Code.GLOBAL_CONF_MISSING_VERIFICATION_CERT
    after = directory.expires + dt.timedelta(seconds=1)
    with pytest.raises(XRoadError) as info:
        directory.verify([second], after)
    assert info.value.code == Code.GLOBAL_CONF_OUTDATED


def test_v6_externalconf(system: Path) -> None:
    anchor = parse_anchor((system / "configuration_anchor_CS_internal.xml").read_bytes())
    directory = _parse(system / "public/V6/externalconf")
    with pytest.raises(XRoadError) as info:
        directory.verify([c for s in anchor.sources for c in s.verification_certs], SYSTEM_TEST_AT)
    assert info.value.code == Code.GLOBAL_CONF_MISSING_VERIFICATION_CERT
    signer = directory.verify(list(_source_certs(system, 6, "external")), SYSTEM_TEST_AT)
    assert signer is not None
    (part,) = directory.parts
    assert (part.content_identifier, part.instance) == ("SHARED-PARAMETERS", "DEV")
    # The external variant of shared-params.xml is not in the repository.
    stored = (_timestamp_dir(system, 6) / "shared-params.xml").read_bytes()
    assert not part.matches(stored)


@pytest.mark.parametrize(
    ("version", "instance", "expires"),
    [
        (3, "CS", dt.date(2034, 4, 9)),
        (4, "DEV", dt.date(2034, 5, 30)),
        (5, "DEV", dt.date(2035, 3, 1)),
    ],
)
@pytest.mark.parametrize("kind", ["internal", "external"])
def test_older_versions(
    system: Path, version: int, instance: str, expires: dt.date, kind: str
) -> None:
    directory = _parse(system / f"public/V{version}/{kind}conf")
    anchor = parse_anchor((system / "configuration_anchor_CS_internal.xml").read_bytes())
    with pytest.raises(XRoadError) as info:  # not with the anchor's certs
        directory.verify([c for s in anchor.sources for c in s.verification_certs], SYSTEM_TEST_AT)
    assert info.value.code == Code.GLOBAL_CONF_MISSING_VERIFICATION_CERT
    directory.verify(list(_source_certs(system, version, kind)), SYSTEM_TEST_AT)
    assert directory.version == version
    assert directory.expires.date() == expires
    folder = _timestamp_dir(system, version)
    wanted = {"SHARED-PARAMETERS"} | ({"PRIVATE-PARAMETERS"} if kind == "internal" else set())
    assert {p.content_identifier for p in directory.parts} == wanted
    for part in directory.parts:
        assert part.instance == instance
        check_content(part, (folder / Path(part.location).name).read_bytes())
    # The other kind's certificates do not verify it.
    other = "external" if kind == "internal" else "internal"
    with pytest.raises(XRoadError) as info:
        directory.verify(list(_source_certs(system, version, other)), SYSTEM_TEST_AT)
    assert info.value.code == Code.GLOBAL_CONF_MISSING_VERIFICATION_CERT


# --- conf-proxy/PROXY1 -------------------------------------------------------------------------


def test_conf_proxy_download_dir(vectors: Path) -> None:
    root = vectors / "configuration-directory" / "conf-proxy" / "PROXY1"
    assert (root / "instance-identifier").read_text().strip() == "EE"
    expected = dt.datetime(2014, 11, 12, 13, 58, 7, tzinfo=UTC)  # 15:58:07+02:00
    for name, content_id in (
        ("private-params.xml", "PRIVATE-PARAMETERS"),
        ("shared-params.xml", "SHARED-PARAMETERS"),
    ):
        meta = Metadata.parse((root / "EE" / f"{name}.metadata").read_bytes())
        assert meta.content_identifier == content_id
        assert meta.instance_identifier == "EE"
        assert meta.expiration_date == expected
        assert meta.configuration_version == 2
    private = parse_private_parameters((root / "EE" / "private-params.xml").read_bytes())
    assert private.instance_identifier == "EE"


@pytest.mark.parametrize(
    ("version", "kind"),
    [(v, k) for v in (3, 4, 5, 6) for k in ("internal", "external") if (v, k) != (6, "external")],
)
def test_build_reproduces_central_server_bytes(system: Path, version: int, kind: str) -> None:
    """Given the same inputs (files, expiry, boundaries, signature value), our builder writes the
    central server's directory byte for byte.  (V6 externalconf lists an external variant of
    shared-params.xml that is not in the repository, so its hash cannot be reproduced.)"""
    raw = (system / f"public/V{version}/{kind}conf").read_bytes()
    directory = SignedDirectory.parse(raw)
    anchor = parse_anchor((system / "configuration_anchor_CS_internal.xml").read_bytes())
    candidates = [
        *_source_certs(system, version, kind),
        *(c for s in anchor.sources for c in s.verification_certs),
    ]
    signer = directory.find_verification_cert(candidates)
    folder = _timestamp_dir(system, version)
    outer, inner = re.findall(rb"boundary=(\w+)", raw)[:2]
    rebuilt = build_signed_directory(
        [
            DirectoryEntry(
                p.content_identifier,
                p.instance,
                p.location,
                (folder / Path(p.location).name).read_bytes(),
            )
            for p in directory.parts
        ],
        expires=directory.expires,
        version=version,
        signing_cert=signer,
        sign=lambda data: directory.signature if data == directory.signed_data else b"",
        algorithm=directory.signature_algorithm,
        boundary=outer.decode(),
        inner_boundary=inner.decode(),
    )
    assert rebuilt == raw
