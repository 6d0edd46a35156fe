"""The signer's wire protocol: JSON over HTTP on a local unix socket (architecture.md §4).

Every call is ``POST /<method>`` with a JSON object body; the answer is ``200`` with a JSON
object, or an error status with ``{"error": {"code": "signer.<code>", "message": "..."}}``
(NIIS signer fault codes, 7.8 spelling).  Binary values travel as base64 text.

====================  =================================================  =====================
method                body                                               answer
====================  =================================================  =====================
``sign``              ``member``, ``digest`` (default ``SHA-512``),       ``signature_xml``,
                      ``parts``: ``[[name, digest_alg, digest_b64]...]``  ``hash_chain_result``,
                                                                         ``hash_chain``
``list_tokens``       –                                                  ``tokens``
``list_keys``         –                                                  ``keys``
``login``             ``token``, ``pin``                                 ``token``
``logout``            ``token``                                          ``token``
``generate_key``      ``token``, ``key_type``, ``label``, ``usage``,      ``key``
                      ``member``
``delete_key``        ``key``                                            –
``generate_csr``      ``key``, ``usage``, ``member``, ``server``,         ``csr`` (with ``der``,
                      ``profile``, ``subject``, ``org_name``               ``pem``)
``import_cert``       ``cert`` (PEM or base64 DER), ``member``,           ``cert``
                      ``activate``
``activate_cert``     ``cert`` (id = SHA-1 hex), ``active``              ``cert``
``delete_cert``       ``cert``                                           –
``member_cert``       ``member``                                         ``cert`` (``der``)
``auth_key``          –                                                  ``key_pem``, ``cert``
``ocsp_responses``    ``hashes`` (SHA-1 hex of certificates)             ``responses`` (b64 or
                                                                         null, in order)
``refresh_ocsp``      –                                                  –
``status``            –                                                  process, tokens,
                                                                         certificates, batches
====================  =================================================  =====================
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import Any, Final

from crossroad.crypto.algorithms import DigestAlgorithm, digest_algorithm
from crossroad.crypto.xades import MessagePart, SignedMessage
from crossroad.errors import PREFIX_SIGNER, Code, XRoadError

TIMEOUT: Final = 60.0  # signer timeout, protocols.md §12.1
MAX_BODY: Final = 64 * 1024 * 1024


def b64(data: bytes | None) -> str | None:
    return base64.b64encode(data).decode("ascii") if data is not None else None


def unb64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise XRoadError(Code.INVALID_REQUEST, f"{what} must be base64 text")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise XRoadError(Code.INVALID_REQUEST, f"{what} is not valid base64") from exc


def encode_parts(parts: Sequence[MessagePart], digest: DigestAlgorithm) -> list[list[str]]:
    """Parts as ``[name, digest name, digest]``; raw data is hashed here, never sent."""
    out = []
    for part in parts:
        value = part.digest_with(digest)
        out.append([part.name, digest.name, b64(value) or ""])
    return out


def decode_parts(value: Any) -> list[MessagePart]:
    if not isinstance(value, list) or not value:
        raise XRoadError(Code.INVALID_REQUEST, "parts must be a non-empty list")
    parts = []
    for item in value:
        if isinstance(item, dict):
            item = [item.get("name"), item.get("digest_alg"), item.get("digest")]
        if not isinstance(item, list) or len(item) != 3 or not isinstance(item[0], str):
            raise XRoadError(Code.INVALID_REQUEST, "each part is [name, digest_alg, digest_b64]")
        name, alg, digest = item
        algorithm = digest_algorithm(str(alg))
        value_bytes = unb64(digest, f"digest of {name}")
        if len(value_bytes) != algorithm.size:
            raise XRoadError(
                Code.INVALID_REQUEST, f"digest of {name} is not a {algorithm.name} value"
            )
        parts.append(MessagePart(name, algorithm, digest_value=value_bytes))
    return parts


def encode_signed(signed: SignedMessage) -> dict[str, Any]:
    return {
        "signature_xml": b64(signed.signature_xml),
        "hash_chain_result": b64(signed.hash_chain_result),
        "hash_chain": b64(signed.hash_chain),
    }


def decode_signed(data: dict[str, Any]) -> SignedMessage:
    def optional(key: str) -> bytes | None:
        value = data.get(key)
        return None if value is None else unb64(value, key)

    return SignedMessage(
        unb64(data.get("signature_xml"), "signature_xml"),
        optional("hash_chain_result"),
        optional("hash_chain"),
    )


def error_body(err: XRoadError) -> dict[str, Any]:
    return {"error": {"code": err.with_prefix(PREFIX_SIGNER).code, "message": err.detail}}


def error_from_body(data: Any, status: int) -> XRoadError:
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict) and isinstance(error.get("code"), str):
        return XRoadError(error["code"], str(error.get("message") or ""))
    return XRoadError(
        f"{PREFIX_SIGNER}.{Code.INTERNAL_ERROR}", f"The signer answered HTTP {status}"
    )


def http_status(err: XRoadError) -> int:
    base = err.base_code
    if base in (Code.INTERNAL_ERROR, Code.IO_ERROR):
        return 500
    if base.endswith("_not_found"):
        return 404
    if base in (Code.TOKEN_NOT_ACTIVE, Code.CERT_EXISTS, Code.PIN_INCORRECT):
        return 409
    return 400
