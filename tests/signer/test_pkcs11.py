"""PKCS#11 tokens on SoftHSM2: login, keys generated on the token, signing, no key export."""

from __future__ import annotations

import pkcs11
import pytest
from cryptography.hazmat.primitives import serialization
from pkcs11 import Attribute, ObjectClass

from crossroad.crypto import keys
from crossroad.crypto.algorithms import signature_algorithm
from crossroad.errors import Code, XRoadError
from crossroad.signer.pkcs11 import Pkcs11Module, Pkcs11Token
from crossroad.signer.tokens import key_spec

from .conftest import PIN, SoftHsm
from .test_tokens import EC_ALGORITHMS, RSA_ALGORITHMS


def open_token(softhsm: SoftHsm, label: str) -> Pkcs11Token:
    found = [t for t in Pkcs11Module("softhsm", softhsm.lib).tokens() if t.label == label]
    assert len(found) == 1
    return found[0]


@pytest.fixture
def token(softhsm: SoftHsm) -> Pkcs11Token:
    t = open_token(softhsm, softhsm.take())
    yield t  # type: ignore[misc]
    t.close()


def test_discovery_and_login(token: Pkcs11Token) -> None:
    assert token.id == f"softhsm:{token.serial}"
    assert token.describe()["type"] == "pkcs11"
    with pytest.raises(XRoadError) as err:
        token.login("0000-wrong")
    assert err.value.code == Code.PIN_INCORRECT
    assert not token.active
    with pytest.raises(XRoadError) as err:
        token.generate_key(key_spec("rsa2048"), "k")
    assert err.value.code == Code.TOKEN_NOT_ACTIVE
    token.login(PIN)
    assert token.active
    token.logout()
    assert not token.active


def test_missing_module_is_coded() -> None:
    with pytest.raises(XRoadError) as err:
        Pkcs11Module("none", "/nonexistent/libpkcs11.so").tokens()
    assert err.value.code == Code.TOKEN_NOT_AVAILABLE


@pytest.mark.parametrize("spec", ["rsa2048", "ec-p256", "ec-p384"])
def test_key_generated_on_token_signs(token: Pkcs11Token, spec: str) -> None:
    token.login(PIN)
    made = token.generate_key(key_spec(spec), f"{spec} key")
    assert [k.key_id for k in token.key_pairs()] == [made.key_id]
    public = serialization.load_der_public_key(made.public_key_der)
    names = RSA_ALGORITHMS if spec.startswith("rsa") else EC_ALGORITHMS
    for name in names:
        alg = signature_algorithm(name)
        sig = token.sign(made.key_id, alg, b"to be signed")
        assert keys.verify(public, alg, sig, b"to be signed"), name  # type: ignore[arg-type]
    assert token.sign_operations == len(names)
    wrong = signature_algorithm(EC_ALGORITHMS[0] if spec.startswith("rsa") else RSA_ALGORITHMS[0])
    with pytest.raises(XRoadError) as err:
        token.sign(made.key_id, wrong, b"x")
    assert err.value.code == Code.UNSUPPORTED_SIGN_ALGORITHM


def test_private_key_never_leaves_the_token(softhsm: SoftHsm, token: Pkcs11Token) -> None:
    token.login(PIN)
    made = token.generate_key(key_spec("rsa2048"), "kept")
    # A session of our own on the same token (it shares the application's login).
    lib = pkcs11.lib(softhsm.lib)
    with lib.get_token(token_label=token.label).open() as session:
        private = session.get_key(
            object_class=ObjectClass.PRIVATE_KEY, id=bytes.fromhex(made.key_id)
        )
        assert private[Attribute.SENSITIVE] is True
        assert private[Attribute.EXTRACTABLE] is False
        assert private[Attribute.NEVER_EXTRACTABLE] is True
        assert private[Attribute.LOCAL] is True  # generated on the token
        with pytest.raises(pkcs11.PKCS11Error):
            private[Attribute.PRIVATE_EXPONENT]
        with pytest.raises(pkcs11.PKCS11Error):
            private[Attribute.PRIME_1]


def test_keys_survive_a_new_session(softhsm: SoftHsm, token: Pkcs11Token) -> None:
    token.login(PIN)
    made = token.generate_key(key_spec("ec-p256"), "persistent")
    token.logout()
    again = open_token(softhsm, token.label)
    try:
        listed = again.key_pairs()  # public objects are visible without login
        assert [(k.key_id, k.label) for k in listed] == [(made.key_id, "persistent")]
        assert listed[0].public_key_der == made.public_key_der
        again.login(PIN)
        alg = signature_algorithm("SHA512withECDSA")
        sig = again.sign(made.key_id, alg, b"m")
        public = serialization.load_der_public_key(made.public_key_der)
        assert keys.verify(public, alg, sig, b"m")  # type: ignore[arg-type]
        with pytest.raises(XRoadError) as err:
            again.sign("00" * 20, alg, b"m")
        assert err.value.code == Code.KEY_NOT_FOUND
        again.delete_key(made.key_id)
        assert again.key_pairs() == []
    finally:
        again.close()
