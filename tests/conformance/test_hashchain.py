"""NIIS hash chain vectors (MANIFEST.md "hashchain", plus the chains inside the ASiC vectors)."""

from __future__ import annotations

import base64
import hashlib
import re
import zipfile
from pathlib import Path

import pytest

from crossroad.crypto import hashchain
from crossroad.crypto.algorithms import SHA512
from crossroad.errors import Code, XRoadError


def read(vectors: Path, name: str) -> bytes:
    return (vectors / "hashchain" / name).read_bytes()


def resolver(vectors: Path, n: int, message: bool = True) -> dict[str, bytes]:
    files = {"/hashchain.xml": read(vectors, f"hc-verifier{n}-hashchain.xml")}
    if message:
        files["/message.xml"] = read(vectors, f"hc-verifier{n}-message.xml")
    return files


def verify(vectors: Path, n: int, files: dict[str, bytes], inputs: dict[str, bytes | None]) -> None:
    hashchain.verify(read(vectors, f"hc-verifier{n}-hashchainresult.xml"), files.get, inputs)


def test_verifier1_simple_correct(vectors: Path) -> None:
    verify(vectors, 1, resolver(vectors, 1), {"/message.xml": None})


def test_verifier1_simple_attached_input(vectors: Path) -> None:
    digest = hashlib.sha256(read(vectors, "hc-verifier1-message.xml")).digest()
    verify(vectors, 1, resolver(vectors, 1), {"/message.xml": digest})


def test_verifier1_message_is_three_bytes(vectors: Path) -> None:
    message = read(vectors, "hc-verifier1-message.xml")
    assert message == b"two"
    assert base64.b64encode(hashlib.sha256(message).digest()).startswith(b"P8TM/nRY")


def test_verifier1_simple_unused_inputs(vectors: Path) -> None:
    with pytest.raises(XRoadError) as err:
        verify(
            vectors,
            1,
            resolver(vectors, 1),
            {"/message.xml": None, "/unused1": None, "/unused2": None},
        )
    assert err.value.code == Code.HASHCHAIN_UNUSED_INPUTS


def test_verifier1_simple_digest_mismatch(vectors: Path) -> None:
    wrong = hashlib.sha256(read(vectors, "hc-verifier1-hashchain.xml")).digest()
    with pytest.raises(XRoadError) as err:
        verify(vectors, 1, resolver(vectors, 1), {"/message.xml": wrong})
    assert err.value.code == Code.INVALID_HASH_CHAIN


def test_verifier2_attachments(vectors: Path) -> None:
    inputs: dict[str, bytes | None] = {
        "/message.xml": b"\x0b",
        "/attachment1": b"\x0c",
        "/attachment2": b"\x0d",
        "/attachment3": b"\x0e",
    }
    verify(vectors, 2, resolver(vectors, 2, message=False), inputs)


def test_verifier2_attachments_cannot_resolve(vectors: Path) -> None:
    # The resolver cannot supply /attachmentN: those DataRefs are trusted as written.
    verify(vectors, 2, resolver(vectors, 2, message=False), {"/message.xml": b"\x0b"})


def test_verifier3_transforms(vectors: Path) -> None:
    message = read(vectors, "hc-verifier3-message.xml")
    assert base64.b64encode(hashlib.sha256(message).digest()).startswith(b"0UFU9VC0") is False
    verify(vectors, 3, resolver(vectors, 3), {"/message.xml": None})


def test_verifier3_transformed_data_is_checked(vectors: Path) -> None:
    files = resolver(vectors, 3)
    files["/message.xml"] = files["/message.xml"].replace(b"Hello", b"Hallo")
    with pytest.raises(XRoadError) as err:
        verify(vectors, 3, files, {"/message.xml": None})
    assert err.value.code == Code.INVALID_HASH_CHAIN_REF


# --------------------------------------------------------------------------- ASiC chains


def entries(vectors: Path, name: str) -> dict[str, bytes]:
    with zipfile.ZipFile(vectors / "asic" / "verifier" / name) as z:
        return {n: z.read(n) for n in z.namelist()}


def digests(chain: bytes) -> list[bytes]:
    return [base64.b64decode(v) for v in re.findall(rb"<DigestValue>([^<]+)</DigestValue>", chain)]


def test_signature_chain_is_rebuilt_byte_for_byte(vectors: Path) -> None:
    files = entries(vectors, "valid-signed-hashchain.asice")
    message, attachment = digests(files["sig-hashchain.xml"])
    result, chains = hashchain.build([[("/message.xml", message), ("/attachment1", attachment)]])
    assert result == files["sig-hashchainresult.xml"]
    assert chains == [files["sig-hashchain.xml"]]


def test_timestamp_chain_is_rebuilt_byte_for_byte(vectors: Path) -> None:
    files = entries(vectors, "valid-batch-ts.asice")
    mine, other = digests(files["ts-hashchain.xml"])
    result, chains = hashchain.build(
        [[(hashchain.SIGNATURES, mine)], [(hashchain.SIGNATURES, other)]],
        SHA512,
        chain_uri=hashchain.TS_HASH_CHAIN,
    )
    assert result == files["ts-hashchainresult.xml"]
    assert chains[0] == files["ts-hashchain.xml"]


@pytest.mark.parametrize("name", ["valid-batch-ts.asice", "valid-non-batch-rest.asice"])
def test_timestamp_chains_cover_the_signature(vectors: Path, name: str) -> None:
    files = entries(vectors, name)
    resolve = {
        hashchain.TS_HASH_CHAIN: files["ts-hashchain.xml"],
        hashchain.SIGNATURES: files["META-INF/signatures.xml"],
    }
    hashchain.verify(files["ts-hashchainresult.xml"], resolve.get, {hashchain.SIGNATURES: None})


def test_signature_chain_with_absent_attachment_is_trusted(vectors: Path) -> None:
    files = entries(vectors, "valid-signed-hashchain.asice")
    resolve = {
        "/sig-hashchain.xml": files["sig-hashchain.xml"],
        "/message.xml": files["message.xml"],
    }
    hashchain.verify(files["sig-hashchainresult.xml"], resolve.get, {"/message.xml": None})


def test_tampered_signature_chain_is_an_invalid_ref(vectors: Path) -> None:
    files = entries(vectors, "invalid-signed-hashchain.asice")
    resolve = {
        "/sig-hashchain.xml": files["sig-hashchain.xml"],
        "/message.xml": files["message.xml"],
    }
    with pytest.raises(XRoadError) as err:
        hashchain.verify(files["sig-hashchainresult.xml"], resolve.get, {"/message.xml": None})
    assert err.value.code == Code.INVALID_HASH_CHAIN_REF


def test_non_xml_timestamp_chain_result_is_malformed(vectors: Path) -> None:
    files = entries(vectors, "invalid-ts-hashchainresult.asice")
    assert files["ts-hashchainresult.xml"] == b"foobar\n"
    with pytest.raises(XRoadError) as err:
        hashchain.verify(files["ts-hashchainresult.xml"], files.get, {})
    assert err.value.code == Code.MALFORMED_HASH_CHAIN
