"""Anchors of the central server's own sources: content, hash, stability, trust."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from pathlib import Path

import pytest
from lxml import etree

from crossroad.central import anchor as a
from crossroad.central.keys import KeySource, SigningKey, new_key_and_certificate
from crossroad.crypto.certs import load_certificate
from crossroad.errors import Code, XRoadError
from crossroad.globalconf.privateparams import anchor_hash, parse_anchor
from crossroad.globalconf.signed import SignedDirectory, build_signed_directory

T0 = dt.datetime(2026, 3, 1, 12, 0, 0, 770000, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def certs() -> list[bytes]:
    return [
        SigningKey.from_key(*new_key_and_certificate("internal", "ec-p256")).cert_der
        for _ in range(2)
    ]


def test_public_address() -> None:
    assert a.public_address("cs.example", 80) == "cs.example"
    assert a.public_address("cs.example", 8080) == "cs.example:8080"
    assert a.public_address(" 127.0.0.1 ", 8080) == "127.0.0.1:8080"
    assert a.public_address("cs.example:9000", 8080) == "cs.example:9000"
    assert a.public_address("::1", 8080) == "[::1]:8080"
    assert a.public_address("[::1]:81", 8080) == "[::1]:81"
    assert a.directory_path("internal") == "internalconf"
    assert a.directory_path(KeySource.EXTERNAL) == "externalconf"
    assert a.download_urls("cs:8080", "external") == ("http://cs:8080/externalconf",)


def test_anchor_content_and_hash(certs: list[bytes], vectors: Path) -> None:
    exported, changed = a.refresh_anchor(
        None,
        "internal",
        instance="DEV",
        urls=("http://cs/internalconf", "https://cs/internalconf"),
        certs=certs,
        now=T0,
    )
    assert changed
    anchor = parse_anchor(exported.data)
    assert anchor == exported.anchor
    assert anchor.instance_identifier == "DEV"
    assert anchor.generated_at == T0.replace(microsecond=770000)
    assert [s.download_url for s in anchor.sources] == [
        "http://cs/internalconf",
        "https://cs/internalconf",
    ]
    assert all(s.verification_certs == tuple(certs) for s in anchor.sources)
    assert b"<generatedAt>2026-03-01T12:00:00.770Z</generatedAt>" in exported.data
    # NIIS shows SHA-224 of the file as upper-case hex pairs joined by colons.
    assert exported.hash == anchor_hash(exported.data)
    assert re.fullmatch(r"([0-9A-F]{2}:){27}[0-9A-F]{2}", exported.hash)
    assert exported.hash.replace(":", "") == hashlib.sha224(exported.data).hexdigest().upper()
    # Same element layout as a real central server's anchor.
    real = etree.fromstring(
        (
            vectors / "configuration-directory/system-test/configuration_anchor_CS_internal.xml"
        ).read_bytes()
    )
    ours = etree.fromstring(exported.data)
    assert ours.tag == real.tag
    assert [c.tag for c in ours] == [c.tag for c in real]
    assert [c.tag for c in ours[2]] == ["downloadURL", "verificationCert", "verificationCert"]
    assert [c.tag for c in real[2]] == ["downloadURL", "verificationCert"]


def test_anchor_is_regenerated_only_when_it_changes(certs: list[bytes]) -> None:
    urls = ("http://cs:8080/internalconf",)
    first, changed = a.refresh_anchor(
        None, "internal", instance="DEV", urls=urls, certs=certs[:1], now=T0
    )
    assert changed
    later = T0 + dt.timedelta(hours=1)
    same, changed = a.refresh_anchor(
        first.data, "internal", instance="DEV", urls=urls, certs=certs[:1], now=later
    )
    assert not changed
    assert same.data == first.data
    assert same.hash == first.hash
    # A new key: a new anchor, generated now, trusting both keys.
    rotated, changed = a.refresh_anchor(
        first.data, "internal", instance="DEV", urls=urls, certs=certs, now=later
    )
    assert changed
    assert rotated.anchor.generated_at == later
    assert rotated.anchor.sources[0].verification_certs == tuple(certs)
    assert rotated.hash != first.hash
    # A damaged record is replaced.
    fixed, changed = a.refresh_anchor(
        b"<broken", "internal", instance="DEV", urls=urls, certs=certs, now=later
    )
    assert changed
    assert parse_anchor(fixed.data) == rotated.anchor
    # Another address is another anchor.
    _, changed = a.refresh_anchor(
        fixed.data,
        "internal",
        instance="DEV",
        urls=("http://cs2/internalconf",),
        certs=certs,
        now=later,
    )
    assert changed


def test_anchor_certificates_verify_what_the_source_signs(certs: list[bytes]) -> None:
    key = SigningKey.from_key(*new_key_and_certificate("external"))
    exported, _ = a.refresh_anchor(
        None,
        "external",
        instance="DEV",
        urls=("http://cs/externalconf",),
        certs=[key.cert_der, *certs],
        now=T0,
    )
    directory = build_signed_directory(
        [("SHARED-PARAMETERS", "DEV", "/V2/x/shared-params.xml", b"<conf/>")],
        expires=T0 + dt.timedelta(minutes=10),
        version=2,
        signing_cert=load_certificate(key.cert_der),
        sign=key.sign,
        algorithm=key.algorithm,
    )
    anchor = parse_anchor(exported.data)
    SignedDirectory.parse(directory).verify(list(anchor.sources[0].verification_certs), T0)


def test_refusals(certs: list[bytes]) -> None:
    with pytest.raises(XRoadError) as err:
        a.build_anchor("DEV", (), certs, T0)
    assert err.value.code == Code.INVALID_REQUEST
    with pytest.raises(XRoadError) as err:
        a.build_anchor("DEV", ("http://cs/internalconf",), (), T0)
    assert err.value.code == Code.INVALID_REQUEST
