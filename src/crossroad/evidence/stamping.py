"""Time-stamp shapes over logged signatures, and sealing records into ASiC-E containers (§9.2–9.3).

A security server time-stamps the signatures of logged messages, never the messages themselves:

- **single** (one record): the token covers the decoded ``ds:SignatureValue`` and is embedded in
  the signature as ``xades:SignatureTimeStamp``;
- **batch** (several records): a hash chain over H(signature XML) of every record (DataRef
  ``/META-INF/signatures.xml``, result URI ``/ts-hashchain.xml#STEP0``); the token covers the
  hash chain result bytes and each container carries ``META-INF/timestamp.tst`` with the shared
  result and its own chain.

This module computes what the TSA must stamp (:func:`stamp_input`) and builds the containers
once the token is back (:func:`seal`); asking the TSA is the caller's business.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from crossroad.crypto import hashchain, xades
from crossroad.crypto.algorithms import SHA512, DigestAlgorithm
from crossroad.crypto.asic import AsicContainer
from crossroad.errors import Code, XRoadError

#: The DataRef every batch time-stamp chain uses for a record's signature (§9.2).
SIGNATURES_URI = "/META-INF/signatures.xml"


@dataclass(frozen=True)
class SignedRecord:
    """One logged message: what was signed and the signature data sent with it."""

    message: bytes
    signature: bytes
    attachments: tuple[bytes, ...] = ()
    sig_hash_chain_result: bytes | None = None
    sig_hash_chain: bytes | None = None


@dataclass(frozen=True)
class StampInput:
    """What to send to the TSA for a set of records, and the chains the batch shape needs."""

    data: bytes
    ts_hash_chain_result: bytes | None = None
    ts_hash_chains: tuple[bytes, ...] = ()

    @property
    def is_batch(self) -> bool:
        return self.ts_hash_chain_result is not None


def stamp_input(records: Sequence[SignedRecord], digest: DigestAlgorithm = SHA512) -> StampInput:
    """The bytes to time-stamp for ``records`` (single shape for one, batch shape for more)."""
    if not records:
        raise XRoadError(Code.TIMESTAMPING_FAILED, "Nothing to time-stamp")
    if len(records) == 1:
        return StampInput(xades.signature_value(records[0].signature))
    inputs = [[(SIGNATURES_URI, digest.digest(r.signature))] for r in records]
    result, chains = hashchain.build(inputs, digest, chain_uri=hashchain.TS_HASH_CHAIN)
    return StampInput(result, result, tuple(chains))


def seal(records: Sequence[SignedRecord], stamp: StampInput, token: bytes) -> list[AsicContainer]:
    """One ASiC-E container per record, carrying the time-stamp ``token`` in ``stamp``'s shape."""
    if stamp.is_batch and len(stamp.ts_hash_chains) != len(records):
        raise XRoadError(Code.TIMESTAMPING_FAILED, "Time-stamp chains do not match the records")
    containers = []
    for i, record in enumerate(records):
        sig_chain = (
            (record.sig_hash_chain_result, record.sig_hash_chain)
            if record.sig_hash_chain_result is not None and record.sig_hash_chain is not None
            else None
        )
        if stamp.is_batch:
            assert stamp.ts_hash_chain_result is not None
            container = AsicContainer.build(
                record.message,
                record.signature,
                attachments=record.attachments,
                sig_hash_chain=sig_chain,
                ts_hash_chain=(stamp.ts_hash_chain_result, stamp.ts_hash_chains[i]),
                timestamp=token,
            )
        else:
            container = AsicContainer.build(
                record.message,
                xades.add_timestamp(record.signature, token),
                attachments=record.attachments,
                sig_hash_chain=sig_chain,
            )
        containers.append(container)
    return containers
