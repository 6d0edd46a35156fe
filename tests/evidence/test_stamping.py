"""Time-stamp shapes over logged signatures and sealing (evidence.stamping)."""

from __future__ import annotations

import pytest

from crossroad.crypto import hashchain, xades
from crossroad.crypto.algorithms import SHA256, SHA512
from crossroad.crypto.asic import AsicContainer
from crossroad.errors import Code, XRoadError
from crossroad.evidence.stamping import SIGNATURES_URI, SignedRecord, seal, stamp_input
from crossroad.evidence.verifier import verify_container

from .conftest import REST_RESPONSE, Factory, soap


def _record(factory: Factory, message: bytes, attachments: tuple[bytes, ...] = ()) -> SignedRecord:
    parts = [xades.MessagePart("/message.xml", SHA512, data=message)]
    parts += [
        xades.MessagePart(hashchain.attachment_name(i), SHA512, data=a)
        for i, a in enumerate(attachments, 1)
    ]
    [signed] = factory.sign([parts])
    return SignedRecord(
        message,
        signed.signature_xml,
        attachments,
        signed.hash_chain_result,
        signed.hash_chain,
    )


def test_one_record_is_stamped_over_its_signature_value(factory: Factory) -> None:
    record = _record(factory, soap(("EE", "COM", "111")))
    stamp = stamp_input([record])
    assert not stamp.is_batch
    assert stamp.data == xades.signature_value(record.signature)
    [container] = seal([record], stamp, factory.stamp(stamp.data))
    assert not container.is_batch_timestamp
    report = verify_container(container.render(), factory.trust)
    assert report.valid, report.detail


def test_several_records_share_one_batch_token(factory: Factory) -> None:
    records = [
        _record(factory, soap(("EE", "COM", "111"))),
        _record(factory, soap(("EE", "COM", "111"), body="other"), (b"attachment",)),
        _record(factory, REST_RESPONSE.replace(b"EE-1", b"EE-2"), (b'{"a": 1}',)),
    ]
    stamp = stamp_input(records)
    assert stamp.is_batch
    assert len(stamp.ts_hash_chains) == 3
    # The chain covers H(signature XML) of every record under /META-INF/signatures.xml.
    for record, chain in zip(records, stamp.ts_hash_chains, strict=True):
        assert stamp.ts_hash_chain_result is not None
        hashchain.verify(
            stamp.ts_hash_chain_result,
            lambda uri, chain=chain: chain if uri == hashchain.TS_HASH_CHAIN else None,
            {SIGNATURES_URI: SHA512.digest(record.signature)},
        )
    token = factory.stamp(stamp.data)
    containers = seal(records, stamp, token)
    assert all(c.timestamp == token for c in containers)
    # The REST response is signed by the provider member, which the factory's signer is not.
    for container in containers[:2]:
        report = verify_container(container.render(), factory.trust)
        assert report.valid, report.detail
    assert AsicContainer.parse(containers[1].render()).attachments == (b"attachment",)


def test_digest_of_the_batch_chain_is_selectable(factory: Factory) -> None:
    records = [_record(factory, soap(("EE", "COM", "111"))) for _ in range(2)]
    assert b"xmlenc#sha256" in stamp_input(records, SHA256).data


def test_nothing_to_stamp_and_mismatched_chains_are_refused(factory: Factory) -> None:
    with pytest.raises(XRoadError) as err:
        stamp_input([])
    assert err.value.code == Code.TIMESTAMPING_FAILED
    records = [_record(factory, soap(("EE", "COM", "111"))) for _ in range(2)]
    stamp = stamp_input(records)
    with pytest.raises(XRoadError) as err:
        seal(records[:1], stamp, b"token")
    assert err.value.code == Code.TIMESTAMPING_FAILED
