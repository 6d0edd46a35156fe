"""The software token: PIN login, keys encrypted at rest, signing with every mechanism."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from crossroad.crypto import keys
from crossroad.crypto.algorithms import signature_algorithm
from crossroad.errors import Code, XRoadError
from crossroad.signer.tokens import KEY_SPECS, SoftwareToken, key_spec

from .conftest import PIN

FAST_KDF = 2**12  # scrypt cost for tests; production tokens use 2**15

RSA_ALGORITHMS = (
    "SHA256withRSA",
    "SHA384withRSA",
    "SHA512withRSA",
    "SHA256withRSAandMGF1",
    "SHA384withRSAandMGF1",
    "SHA512withRSAandMGF1",
)
EC_ALGORITHMS = ("SHA256withECDSA", "SHA384withECDSA", "SHA512withECDSA")


def code_of(err: pytest.ExceptionInfo[XRoadError]) -> str:
    return err.value.code


@pytest.fixture
def token(tmp_path: Path) -> SoftwareToken:
    t = SoftwareToken(tmp_path / "softtoken")
    t.initialize(PIN, n=FAST_KDF)
    return t


def test_login_with_the_right_pin_only(token: SoftwareToken) -> None:
    assert not token.active
    with pytest.raises(XRoadError) as err:
        token.login("wrong-pin")
    assert code_of(err) == Code.PIN_INCORRECT
    assert not token.active
    token.login(PIN)
    assert token.active
    token.logout()
    assert not token.active


def test_uninitialized_token_and_pin_policy(tmp_path: Path) -> None:
    fresh = SoftwareToken(tmp_path / "none")
    with pytest.raises(XRoadError) as err:
        fresh.login(PIN)
    assert code_of(err) == Code.TOKEN_NOT_INITIALIZED
    with pytest.raises(XRoadError) as err:
        fresh.initialize("12")
    assert code_of(err) == Code.TOKEN_PIN_POLICY_FAILURE
    fresh.initialize(PIN, n=FAST_KDF)
    with pytest.raises(XRoadError) as err:
        fresh.initialize(PIN, n=FAST_KDF)
    assert code_of(err) == Code.INVALID_REQUEST


def test_nothing_without_login(token: SoftwareToken) -> None:
    with pytest.raises(XRoadError) as err:
        token.generate_key(key_spec("ec-p256"), "k")
    assert code_of(err) == Code.TOKEN_NOT_ACTIVE
    token.login(PIN)
    made = token.generate_key(key_spec("ec-p256"), "k")
    token.logout()
    with pytest.raises(XRoadError) as err:
        token.sign(made.key_id, signature_algorithm("SHA256withECDSA"), b"data")
    assert code_of(err) == Code.TOKEN_NOT_ACTIVE


def test_keys_are_encrypted_at_rest(token: SoftwareToken) -> None:
    token.login(PIN)
    made = token.generate_key(key_spec("rsa2048"), "sign key")
    key_file = token.directory / "keys" / f"{made.key_id}.pem"
    pem = key_file.read_bytes()
    assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    with pytest.raises(TypeError):  # a password is needed
        serialization.load_pem_private_key(pem, None)
    for guess in (PIN.encode(), b"wrong"):  # not even the PIN itself opens it
        with pytest.raises(ValueError):
            serialization.load_pem_private_key(pem, guess)
    for path in token.directory.rglob("*"):
        if path.is_file():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
            assert PIN.encode() not in path.read_bytes(), path
    # Another process (a new token object) sees the key only after login.
    again = SoftwareToken(token.directory)
    assert [k.key_id for k in again.key_pairs()] == [made.key_id]
    assert again.key_pairs()[0].label == "sign key"
    with pytest.raises(XRoadError):
        again.private_key(made.key_id)
    again.login(PIN)
    assert keys.verify(
        again.private_key(made.key_id).public_key(),  # type: ignore[arg-type]
        signature_algorithm("SHA256withRSA"),
        again.sign(made.key_id, signature_algorithm("SHA256withRSA"), b"x"),
        b"x",
    )


@pytest.mark.parametrize("spec", ["rsa2048", "ec-p256", "ec-p384"])
def test_generate_and_sign(token: SoftwareToken, spec: str) -> None:
    token.login(PIN)
    made = token.generate_key(key_spec(spec), spec)
    public = serialization.load_der_public_key(made.public_key_der)
    names = RSA_ALGORITHMS if spec.startswith("rsa") else EC_ALGORITHMS
    for name in names:
        alg = signature_algorithm(name)
        sig = token.sign(made.key_id, alg, b"to be signed")
        assert keys.verify(public, alg, sig, b"to be signed"), name  # type: ignore[arg-type]
        assert not keys.verify(public, alg, sig, b"something else"), name  # type: ignore[arg-type]
    wrong = signature_algorithm(EC_ALGORITHMS[0] if spec.startswith("rsa") else RSA_ALGORITHMS[0])
    with pytest.raises(XRoadError) as err:
        token.sign(made.key_id, wrong, b"x")
    assert code_of(err) == Code.UNSUPPORTED_SIGN_ALGORITHM
    assert token.sign_operations == len(names)


def test_rsa3072_and_key_specs(token: SoftwareToken) -> None:
    assert set(KEY_SPECS) == {"rsa2048", "rsa3072", "ec-p256", "ec-p384"}
    with pytest.raises(XRoadError) as err:
        key_spec("dsa1024")
    assert code_of(err) == Code.INVALID_REQUEST
    token.login(PIN)
    made = token.generate_key(key_spec("rsa3072"), "big")
    public = serialization.load_der_public_key(made.public_key_der)
    assert public.key_size == 3072  # type: ignore[union-attr]


def test_delete_key(token: SoftwareToken) -> None:
    token.login(PIN)
    made = token.generate_key(key_spec("ec-p256"), "gone")
    token.delete_key(made.key_id)
    assert token.key_pairs() == []
    with pytest.raises(XRoadError) as err:
        token.sign(made.key_id, signature_algorithm("SHA256withECDSA"), b"x")
    assert code_of(err) == Code.KEY_NOT_FOUND
