from __future__ import annotations

import hashlib

import pytest

from crossroad.crypto import algorithms as alg
from crossroad.errors import XRoadError


@pytest.mark.parametrize("d", alg.DIGESTS, ids=lambda d: d.name)
def test_digest_lookup_by_every_spelling(d: alg.DigestAlgorithm) -> None:
    for key in (d.name, d.uri, d.oid, d.name.replace("-", ""), d.name.lower()):
        assert alg.digest_algorithm(key) is d
    assert d.digest(b"x") == hashlib.new(d.hashlib_name, b"x").digest()
    assert len(d.digest(b"")) == d.size


def test_protocol_uris() -> None:
    # protocols.md §0.2
    assert alg.digest_algorithm("http://www.w3.org/2001/04/xmlenc#sha512").name == "SHA-512"
    assert alg.signature_algorithm("SHA512withRSA").uri == (
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512"
    )
    assert (
        alg.signature_algorithm("http://www.w3.org/2007/05/xmldsig-more#sha256-rsa-MGF1").name
        == "SHA256withRSAandMGF1"
    )
    assert alg.signature_algorithm_for("EC", alg.SHA384).name == "SHA384withECDSA"


def test_unknown_algorithms_are_coded_errors() -> None:
    with pytest.raises(XRoadError):
        alg.digest_algorithm("MD5")
    with pytest.raises(XRoadError):
        alg.signature_algorithm("urn:nope")
