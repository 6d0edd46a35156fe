"""Keys, CSRs and certificates through the signer, on the software token and on SoftHSM2.

The CSRs go to the test CA core (``TestCA.issue``), which takes the subject from the request
and checks it against the profile; the certificates it returns must map back to the member
under that profile.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from crossroad.clock import SYSTEM
from crossroad.crypto.certs import cert_hash_hex
from crossroad.crypto.profiles import KNOWN_PROFILES, member_id_from_sign_cert
from crossroad.errors import Code, XRoadError
from crossroad.identifiers import ClientId
from crossroad.signer.keyconf import KeyConf, KeyConfStore, parse_member
from crossroad.signer.manager import Signer
from crossroad.testing.pki import rsa_key
from crossroad.trust.ca import TestCA

from .conftest import FIVRK, MEMBER, PIN, SERVER, SoftHsm, running_signer

EJBCA = next(p for p in KNOWN_PROFILES if "Ejbca" in p)
# Ejbca subjects put the instance code (DEV) in countryName; cryptography warns about it.
pytestmark = pytest.mark.filterwarnings("ignore:Attribute.s length:UserWarning")
NOW = SYSTEM.now()


@pytest.fixture(scope="module")
def ca() -> TestCA:
    return TestCA.create("/O=Test/CN=Signer test CA", now=NOW - dt.timedelta(days=1))


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


async def _token_id(signer: Signer, kind: str, softhsm: SoftHsm | None) -> str:
    if kind == "software":
        await signer.login("0", PIN)
        return "0"
    assert softhsm is not None
    label = softhsm.take()
    info = await signer.login(label, PIN)  # a token may be named by its label
    return str(info["id"])


async def exercise(state: Path, ca: TestCA, kind: str, softhsm: SoftHsm | None, spec: str) -> None:
    modules = [("softhsm", softhsm.lib)] if softhsm else []
    async with running_signer(state, modules=modules) as signer:
        token = await _token_id(signer, kind, softhsm)
        sign_key = await signer.generate_key(token, spec, label="sign", member=MEMBER)
        auth_key = await signer.generate_key(token, spec, label="auth", usage="auth")
        assert (sign_key.usage, sign_key.member) == ("sign", MEMBER)

        # FiVRK: C=FI, O=name, CN=memberCode, serialNumber=INSTANCE/serverCode/memberClass
        csr = await signer.generate_csr(sign_key.id, "sign", server=SERVER, profile="fivrk")
        request = x509.load_der_x509_csr(csr.der)
        assert request.is_signature_valid
        assert (
            request.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            == sign_key.public_key_der
        )
        sign_cert = ca.issue(csr.der, "sign", now=NOW, profile="fivrk", instance="DEV")
        assert member_id_from_sign_cert(sign_cert, FIVRK, "DEV") == MEMBER

        # Ejbca: C=instance, O=memberClass, CN=memberCode (for another member's key)
        other = ClientId("DEV", "GOV", "9876")
        key2 = await signer.generate_key(token, spec, member=other)
        csr2 = await signer.generate_csr(key2.id, "sign", profile="ejbca")
        assert csr2.subject == "CN=9876,O=GOV,C=DEV"
        ejbca_cert = ca.issue(csr2.der, "sign", now=NOW, profile="ejbca", instance="DEV")
        assert member_id_from_sign_cert(ejbca_cert, EJBCA, "DEV") == other

        auth_csr = await signer.generate_csr(auth_key.id, "auth", server=SERVER, profile="fivrk")
        auth_cert = ca.issue(auth_csr.der, "auth", now=NOW, profile="fivrk", instance="DEV")

        # Import: matched by public key; the request is done with.
        record = await signer.import_cert(pem(sign_cert))
        assert (record.key_id, record.usage, record.member) == (sign_key.id, "sign", MEMBER)
        assert record.id == cert_hash_hex(sign_cert)
        assert not [r for r in signer.conf.csrs if r.key_id == sign_key.id]
        await signer.import_cert(pem(ejbca_cert))
        auth = await signer.import_cert(sign_cert_der(auth_cert))
        assert (auth.usage, auth.member) == ("auth", None)

        # Lookups and refusals
        assert signer.conf.sign_certs_of(MEMBER.subsystem("sub"))[0].id == record.id
        with pytest.raises(XRoadError) as err:
            await signer.import_cert(pem(sign_cert))
        assert err.value.code == Code.CERT_EXISTS
        with pytest.raises(XRoadError) as err:
            await signer.generate_csr(auth_key.id, "sign", member=MEMBER)
        assert err.value.code == Code.WRONG_CERT_USAGE
        with pytest.raises(XRoadError) as err:
            await signer.generate_csr(sign_key.id, "sign", member=other, profile="ejbca")
        assert err.value.code == Code.INVALID_REQUEST
        with pytest.raises(XRoadError) as err:
            await signer.generate_csr("NOPE", "sign", member=MEMBER)
        assert err.value.code == Code.KEY_NOT_FOUND

        # Explicit subject
        key3 = await signer.generate_key(token, spec, member=MEMBER)
        csr3 = await signer.generate_csr(
            key3.id, "sign", subject="/C=FI/O=Explicit Org/CN=1234/serialNumber=DEV\\/ss1\\/COM"
        )
        explicit = ca.issue(csr3.der, "sign", now=NOW, profile="fivrk", instance="DEV")
        assert member_id_from_sign_cert(explicit, FIVRK, "DEV") == MEMBER

        # Deactivation keeps the record; the state survives a restart.
        await signer.set_cert_active(record.id, False)
        assert not signer.conf.cert(record.id).active
        saved = signer.conf

    reloaded = KeyConfStore(state).load()
    assert reloaded == saved
    assert stat.S_IMODE((state / "keyconf.json").stat().st_mode) == 0o600


def sign_cert_der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


@pytest.mark.parametrize("spec", ["rsa2048", "ec-p256"])
def test_software_token_csrs(tmp_path: Path, ca: TestCA, spec: str) -> None:
    asyncio.run(exercise(tmp_path / "signer", ca, "software", None, spec))


@pytest.mark.parametrize("spec", ["rsa2048", "ec-p384"])
def test_softhsm_token_csrs(tmp_path: Path, ca: TestCA, softhsm: SoftHsm, spec: str) -> None:
    asyncio.run(exercise(tmp_path / "signer", ca, "pkcs11", softhsm, spec))


def test_import_refusals(tmp_path: Path, ca: TestCA) -> None:
    async def main() -> None:
        async with running_signer(tmp_path / "s") as signer:
            await signer.login("0", PIN)
            # A certificate for a key this signer does not have.
            foreign = x509.CertificateSigningRequestBuilder().subject_name(
                x509.Name.from_rfc4514_string("CN=1234,O=COM,C=FI")
            )
            request = foreign.sign(rsa_key(3), hashes.SHA256())
            cert = ca.issue(
                request.public_bytes(serialization.Encoding.PEM),
                "sign",
                now=NOW,
                member=MEMBER,
                server=SERVER,
            )
            with pytest.raises(XRoadError) as err:
                await signer.import_cert(pem(cert))
            assert err.value.code == Code.KEY_NOT_FOUND
            with pytest.raises(XRoadError) as err:
                await signer.import_cert(b"not a certificate")
            assert err.value.code == Code.INCORRECT_CERTIFICATE
            # An auth certificate for a signing key.
            key = await signer.generate_key("0", "ec-p256", member=MEMBER)
            csr = await signer.generate_csr(key.id, "sign", server=SERVER)
            wrong = ca.issue(csr.der, "auth", now=NOW, server=SERVER)
            with pytest.raises(XRoadError) as err:
                await signer.import_cert(pem(wrong))
            assert err.value.code == Code.WRONG_CERT_USAGE
            with pytest.raises(XRoadError) as err:
                await signer.generate_key("0", "dsa")
            assert err.value.code == Code.INVALID_REQUEST
            with pytest.raises(XRoadError) as err:
                await signer.generate_key("nope", "rsa2048")
            assert err.value.code == Code.TOKEN_NOT_FOUND
            await signer.logout("0")
            with pytest.raises(XRoadError) as err:
                await signer.generate_key("0", "rsa2048")
            assert err.value.code == Code.TOKEN_NOT_ACTIVE

    asyncio.run(main())


def test_member_parsing_and_malformed_keyconf(tmp_path: Path) -> None:
    assert parse_member("DEV/COM/1234") == MEMBER
    assert parse_member("SUBSYSTEM:DEV/COM/1234/sub") == MEMBER
    assert parse_member(None) is None
    with pytest.raises(XRoadError):
        parse_member("DEV/COM")
    store = KeyConfStore(tmp_path)
    assert store.load() == KeyConf()
    (tmp_path / "keyconf.json").write_text(json.dumps({"version": 1, "keys": [{"id": 1}]}))
    with pytest.raises(XRoadError) as err:
        store.load()
    assert err.value.code == Code.IO_ERROR
    (tmp_path / "keyconf.json").write_text("{not json")
    with pytest.raises(XRoadError) as err:
        store.load()
    assert err.value.code == Code.IO_ERROR


def test_start_refuses_an_uninitialised_directory(tmp_path: Path) -> None:
    async def main() -> None:
        with pytest.raises(XRoadError) as err:
            await Signer(tmp_path).start()
        assert err.value.code == Code.TOKEN_NOT_INITIALIZED

    asyncio.run(main())
