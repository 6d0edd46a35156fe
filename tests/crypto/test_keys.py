from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from crossroad.crypto import algorithms as alg
from crossroad.crypto import keys
from crossroad.errors import XRoadError
from crossroad.testing.pki import ec_key, rsa_key


@pytest.mark.parametrize("name", ["SHA256withRSA", "SHA512withRSA", "SHA512withRSAandMGF1"])
def test_rsa_sign_verify(name: str) -> None:
    key = rsa_key(0)
    a = alg.signature_algorithm(name)
    sig = keys.sign(key, a, b"data")
    assert keys.verify(key.public_key(), a, sig, b"data")
    assert not keys.verify(key.public_key(), a, sig, b"datA")


def test_ecdsa_raw_round_trip() -> None:
    key = ec_key()
    a = alg.signature_algorithm("SHA256withECDSA")
    der = keys.sign(key, a, b"data")
    raw = keys.ecdsa_der_to_raw(der, key)
    assert len(raw) == 64
    assert keys.verify(key.public_key(), a, keys.ecdsa_raw_to_der(raw), b"data")
    assert keys.key_type(key) == "EC"
    assert keys.default_algorithm(key.public_key(), alg.SHA512).name == "SHA512withECDSA"


def test_mismatched_key_and_algorithm() -> None:
    with pytest.raises(XRoadError):
        keys.sign(ec.generate_private_key(ec.SECP256R1()), alg.SHA512_WITH_RSA, b"x")
    assert not keys.verify(
        rsa_key(0).public_key(), alg.signature_algorithm("SHA256withECDSA"), b"x", b"x"
    )
    with pytest.raises(XRoadError):
        keys.ecdsa_raw_to_der(b"abc")
