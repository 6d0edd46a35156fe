"""Hash chains: building, verifying, schema conformance and hostile input (protocols.md §4.8)."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import pytest
from asn1crypto import core
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from crossroad.crypto import hashchain
from crossroad.crypto.algorithms import SHA256, SHA512, DigestAlgorithm
from crossroad.errors import Code, XRoadError

HC_FAMILY = (
    Code.MALFORMED_HASH_CHAIN,
    Code.INVALID_HASH_CHAIN,
    Code.INVALID_HASH_CHAIN_REF,
    Code.HASHCHAIN_UNUSED_INPUTS,
    Code.INVALID_REFERENCE,
)
SCHEMAS = "schemas/src/common/common-message/src/main/resources"


def parts_for(n_parts: int, seed: int, digest: DigestAlgorithm = SHA512) -> list[tuple[str, bytes]]:
    names = [hashchain.MESSAGE] + [hashchain.attachment_name(i) for i in range(1, n_parts)]
    return [(name, digest.digest(f"{seed}:{name}".encode())) for name in names]


def resolver(mapping: dict[str, bytes]) -> Callable[[str], bytes | None]:
    return mapping.get


def verify_request(result: bytes, chain: bytes, parts: list[tuple[str, bytes]]) -> None:
    hashchain.verify(result, resolver({hashchain.SIG_HASH_CHAIN: chain}), dict(parts))


@pytest.fixture(scope="module")
def hashchain_schema(vectors: Path) -> etree.XMLSchema:
    parser = etree.XMLParser(no_network=True, load_dtd=True)
    return etree.XMLSchema(etree.parse(str(vectors / SCHEMAS / "hashchain.xsd"), parser))


class _Seq(core.Sequence):  # type: ignore[misc]
    _fields: ClassVar = [
        ("digest", core.OctetString),
        ("method", core.UTF8String),
        ("transforms", core.Any),
    ]


class _SeqOf(core.SequenceOf):  # type: ignore[misc]
    _child_spec = _Seq


def test_step_bytes_match_an_independent_der_encoder() -> None:
    items = [(SHA512, b"\x01" * 64), (SHA256, b"\x02" * 200)]
    expected = _SeqOf(
        [{"digest": d, "method": m.uri, "transforms": core.Any.load(b"\x30\x00")} for m, d in items]
    ).dump(force=True)
    assert hashchain.step_bytes(items) == expected


@pytest.mark.parametrize("count", [2, 3, 4, 5, 6, 7, 8, 9, 13, 16, 17])
def test_every_chain_of_a_batch_verifies(count: int, hashchain_schema: etree.XMLSchema) -> None:
    inputs = [parts_for(1 + (i % 3 == 1) * 2, i) for i in range(count)]
    result, chains = hashchain.build(inputs)
    assert len(chains) == count
    assert hashchain_schema.validate(etree.fromstring(result))
    for parts, chain in zip(inputs, chains, strict=True):
        assert hashchain_schema.validate(etree.fromstring(chain)), hashchain_schema.error_log
        verify_request(result, chain, parts)


def test_a_chain_does_not_verify_another_requests_parts() -> None:
    inputs = [parts_for(1, i) for i in range(3)]
    result, chains = hashchain.build(inputs)
    with pytest.raises(XRoadError) as err:
        verify_request(result, chains[0], inputs[1])
    assert err.value.code == Code.INVALID_HASH_CHAIN


def test_single_multipart_input_has_one_step_listing_the_parts() -> None:
    parts = parts_for(3, 0)
    result, (chain,) = hashchain.build([parts])
    assert chain.count(b"<ns2:HashStep ") == 1
    assert re.findall(rb'DataRef URI="([^"]+)"', chain) == [
        b"/message.xml",
        b"/attachment1",
        b"/attachment2",
    ]
    top = hashchain.step_digest(SHA512, *(d for _, d in parts))
    assert hashchain.b64encode(top).encode() in result  # type: ignore[attr-defined]
    verify_request(result, chain, parts)


def test_orphan_is_promoted_not_duplicated() -> None:
    # Three inputs: the third leaf pairs directly with the hash of the first two.
    inputs = [parts_for(1, i) for i in range(3)]
    result, chains = hashchain.build(inputs)
    leaves = [p[0][1] for p in inputs]
    left = hashchain.step_digest(SHA512, leaves[0], leaves[1])
    top = hashchain.step_digest(SHA512, left, leaves[2])
    assert hashchain.b64encode(top).encode() in result  # type: ignore[attr-defined]
    assert chains[2].count(b"<ns2:HashStep ") == 1


def test_result_uri_and_format() -> None:
    result, _ = hashchain.build(
        [parts_for(1, 0), parts_for(1, 1)], chain_uri=hashchain.TS_HASH_CHAIN
    )
    head = b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    assert result.startswith(head + b'<ns2:HashChainResult URI="/ts-hashchain.xml#STEP0" ')
    assert result.endswith(b"</ns2:HashChainResult>\n")
    assert hashchain.result_uri(result) == "/ts-hashchain.xml#STEP0"


@pytest.mark.parametrize("inputs", [[], [[]], [[("/message.xml", b"x")]]])
def test_build_refuses_degenerate_inputs(inputs: list[list[tuple[str, bytes]]]) -> None:
    with pytest.raises(XRoadError) as err:
        hashchain.build(inputs)
    assert err.value.code == Code.INTERNAL_ERROR


# --------------------------------------------------------------------------- negative cases


@pytest.fixture
def batch() -> tuple[bytes, list[bytes], list[list[tuple[str, bytes]]]]:
    inputs = [parts_for(2, 0), parts_for(1, 1), parts_for(1, 2)]
    result, chains = hashchain.build(inputs)
    return result, chains, inputs


def expect(
    code: str, result: bytes, chain: bytes | None, inputs: dict[str, bytes | None], **more: bytes
) -> None:
    mapping = {hashchain.SIG_HASH_CHAIN: chain} if chain is not None else {}
    mapping.update(more)
    with pytest.raises(XRoadError) as err:
        hashchain.verify(result, resolver(mapping), inputs)  # type: ignore[arg-type]
    assert err.value.code == code, err.value


def test_unused_inputs(batch) -> None:  # type: ignore[no-untyped-def]
    result, chains, inputs = batch
    expect(
        Code.HASHCHAIN_UNUSED_INPUTS, result, chains[1], {**dict(inputs[1]), "/attachment9": None}
    )


def test_resolved_data_must_match_the_data_ref(batch) -> None:  # type: ignore[no-untyped-def]
    result, chains, _ = batch
    expect(
        Code.INVALID_HASH_CHAIN_REF,
        result,
        chains[1],
        {"/message.xml": None},
        **{"/message.xml": b"other"},
    )


def test_unresolvable_data_is_trusted_and_given_data_is_checked(batch) -> None:  # type: ignore[no-untyped-def]
    result, chains, inputs = batch
    hashchain.verify(result, resolver({hashchain.SIG_HASH_CHAIN: chains[0]}), {})
    message_digest = inputs[0][0][1]
    hashchain.verify(
        result, resolver({hashchain.SIG_HASH_CHAIN: chains[0]}), {"/message.xml": message_digest}
    )


def test_digest_hint_mismatch_falls_back_to_resolving(batch) -> None:  # type: ignore[no-untyped-def]
    result, chains, inputs = batch
    with pytest.raises(XRoadError) as err:
        hashchain.verify(
            result,
            resolver({hashchain.SIG_HASH_CHAIN: chains[1], "/message.xml": b"not it"}),
            {"/message.xml": inputs[1][0][1]},
            digest_hint=SHA256,
        )
    assert err.value.code == Code.INVALID_HASH_CHAIN_REF


def test_missing_chain_document(batch) -> None:  # type: ignore[no-untyped-def]
    result, _, inputs = batch
    expect(Code.INVALID_REFERENCE, result, None, dict(inputs[1]))


def test_tampered_hash_value(batch) -> None:  # type: ignore[no-untyped-def]
    result, chains, inputs = batch
    value = re.search(rb"<ns2:HashValue>\s*<DigestValue>([^<]+)<", chains[1])
    assert value is not None
    forged = base64.b64encode(b"\x00" * 64)
    chain = chains[1].replace(value.group(1), forged)
    expect(Code.INVALID_HASH_CHAIN, result, chain, dict(inputs[1]))


CHAIN_HEAD = (
    '<ns2:HashChain xmlns="http://www.w3.org/2000/09/xmldsig#" xmlns:ns2="http://cyber.ee/hashchain">'
    '<ns2:DefaultDigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha512"/>'
)


def chain_with(values: str) -> str:
    """A chain document with one step STEP0 holding ``values``."""
    return f'{CHAIN_HEAD}<ns2:HashStep id="STEP0">{values}</ns2:HashStep></ns2:HashChain>'


RESULT = (
    '<ns2:HashChainResult URI="{uri}" xmlns="http://www.w3.org/2000/09/xmldsig#" '
    'xmlns:ns2="http://cyber.ee/hashchain"><DigestMethod '
    'Algorithm="http://www.w3.org/2001/04/xmlenc#sha512"/><DigestValue>AA==</DigestValue>'
    "</ns2:HashChainResult>"
)


@pytest.mark.parametrize(
    ("result", "chain", "code"),
    [
        (b"", None, Code.MALFORMED_HASH_CHAIN),
        (b"foobar\n", None, Code.MALFORMED_HASH_CHAIN),
        (b"<x/>", None, Code.MALFORMED_HASH_CHAIN),
        (RESULT.format(uri="/c.xml").encode(), None, Code.MALFORMED_HASH_CHAIN),
        (RESULT.format(uri="#STEP0").encode(), None, Code.MALFORMED_HASH_CHAIN),
        (
            RESULT.format(uri="/c.xml#STEP0").replace("AA==", "A=").encode(),
            None,
            Code.MALFORMED_HASH_CHAIN,
        ),
        (
            RESULT.format(uri="/c.xml#STEP0").replace("AA==", "AB==").encode(),
            None,
            Code.MALFORMED_HASH_CHAIN,
        ),
        (
            RESULT.format(uri="/c.xml#STEP0").replace("sha512", "md5").encode(),
            None,
            Code.MALFORMED_HASH_CHAIN,
        ),
        (
            RESULT.format(uri="/c.xml#STEP0").replace("<DigestValue>", "x<DigestValue>").encode(),
            None,
            Code.MALFORMED_HASH_CHAIN,
        ),
        (
            RESULT.format(uri="/c.xml#STEP0").encode(),
            CHAIN_HEAD + "</ns2:HashChain>",
            Code.MALFORMED_HASH_CHAIN,
        ),
        (
            RESULT.format(uri="/c.xml#STEP0").encode(),
            CHAIN_HEAD
            + '<ns2:HashStep id="STEP0"><ns2:StepRef URI="#STEP0"/></ns2:HashStep></ns2:HashChain>',
            Code.MALFORMED_HASH_CHAIN,
        ),
        (
            RESULT.format(uri="/c.xml#STEP0").encode(),
            CHAIN_HEAD + '<ns2:HashStep id="STEP0"><ns2:Bogus/></ns2:HashStep></ns2:HashChain>',
            Code.MALFORMED_HASH_CHAIN,
        ),
        (
            RESULT.format(uri="/c.xml#STEP0").encode(),
            CHAIN_HEAD + '<ns2:HashStep id="STEP0"/><ns2:HashStep id="STEP0"/></ns2:HashChain>',
            Code.MALFORMED_HASH_CHAIN,
        ),
        (
            RESULT.format(uri="/c.xml#STEP0").encode(),
            chain_with("<ns2:DataRef><DigestValue>AA==</DigestValue></ns2:DataRef>"),
            Code.MALFORMED_HASH_CHAIN,
        ),
        (
            RESULT.format(uri="/c.xml#STEP0").encode(),
            '<!DOCTYPE x [<!ENTITY e "e">]>' + CHAIN_HEAD + "</ns2:HashChain>",
            Code.MALFORMED_HASH_CHAIN,
        ),
        (
            RESULT.format(uri="/c.xml#STEP0").encode(),
            chain_with("<ns2:HashValue><DigestValue>AA==</DigestValue></ns2:HashValue>"),
            Code.INVALID_HASH_CHAIN,
        ),
    ],
)
def test_malformed_documents(result: bytes, chain: str | None, code: str) -> None:
    mapping = {"/c.xml": chain.encode()} if chain is not None else {}
    with pytest.raises(XRoadError) as err:
        hashchain.verify(result, resolver(mapping), {})
    assert err.value.code == code, err.value


def test_deep_chains_are_refused() -> None:
    steps = "".join(
        f'<ns2:HashStep id="S{i}"><ns2:StepRef URI="#S{i + 1}"/></ns2:HashStep>' for i in range(70)
    )
    chain = (CHAIN_HEAD + steps + '<ns2:HashStep id="S70"/></ns2:HashChain>').encode()
    with pytest.raises(XRoadError) as err:
        hashchain.verify(RESULT.format(uri="/c.xml#S0").encode(), resolver({"/c.xml": chain}), {})
    assert err.value.code == Code.MALFORMED_HASH_CHAIN
    assert "depth" in err.value.detail


def test_wide_steps_are_refused() -> None:
    values = "<ns2:HashValue><DigestValue>AA==</DigestValue></ns2:HashValue>" * 10_001
    chain = (CHAIN_HEAD + f'<ns2:HashStep id="S0">{values}</ns2:HashStep></ns2:HashChain>').encode()
    with pytest.raises(XRoadError) as err:
        hashchain.verify(RESULT.format(uri="/c.xml#S0").encode(), resolver({"/c.xml": chain}), {})
    assert "value count" in err.value.detail


def test_repeated_step_refs_are_memoised() -> None:
    # A diamond of StepRefs resolves each step once (no exponential blow-up).
    ref = '<ns2:StepRef URI="#S{}"/>'
    steps = "".join(
        f'<ns2:HashStep id="S{i}">{ref.format(i + 1) * 2}</ns2:HashStep>' for i in range(40)
    )
    chain = (CHAIN_HEAD + steps + '<ns2:HashStep id="S40"/></ns2:HashChain>').encode()
    with pytest.raises(XRoadError) as err:
        hashchain.verify(RESULT.format(uri="/c.xml#S0").encode(), resolver({"/c.xml": chain}), {})
    assert err.value.code == Code.INVALID_HASH_CHAIN


# --------------------------------------------------------------------------- properties


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=3), min_size=1, max_size=12))
def test_round_trip_property(shape: list[int]) -> None:
    if shape == [1]:
        shape = [2]
    inputs = [parts_for(n, i, SHA256) for i, n in enumerate(shape)]
    result, chains = hashchain.build(inputs, SHA256)
    for parts, chain in zip(inputs, chains, strict=True):
        verify_request(result, chain, parts)


_WS = b" \t\r\n"


def _benign(data: bytes, index: int, new: int) -> bool:
    """A flip that cannot change the outcome.

    Inside the XML declaration, whitespace to whitespace, or the DigestValue of a DataRef whose
    digest the verifier was given (NIIS uses the given digest and never reads that value).
    """
    declaration_end = data.index(b"?>") + 2
    if index < declaration_end or (data[index] in _WS and new in _WS):
        return True
    given = rb'<ns2:DataRef URI="(?:/message.xml|/attachment1)">\s*<DigestValue>([^<]*)<'
    return any(m.start(1) <= index < m.end(1) for m in re.finditer(given, data))


_BATCH = hashchain.build([parts_for(2, 0), parts_for(1, 1), parts_for(1, 2)])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.booleans(), st.integers(min_value=0), st.integers(min_value=1, max_value=255))
def test_flipping_any_byte_of_chain_or_result_fails(in_result: bool, pos: int, delta: int) -> None:
    result, chains = _BATCH
    parts = parts_for(2, 0)
    target = result if in_result else chains[0]
    index = pos % len(target)
    flipped = bytearray(target)
    flipped[index] = (flipped[index] + delta) % 256
    new_result, new_chain = (bytes(flipped), chains[0]) if in_result else (result, bytes(flipped))
    error = outcome(lambda: verify_request(new_result, new_chain, parts))
    if error is None:
        assert _benign(target, index, flipped[index]), f"flip at {index} went unnoticed"
    else:
        assert error.code in HC_FAMILY, error


def outcome(action: Callable[[], None]) -> XRoadError | None:
    """The coded error ``action`` raises, or None; any other exception propagates."""
    try:
        action()
    except XRoadError as exc:
        return exc
    return None


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=300))
def test_garbage_is_malformed(data: bytes) -> None:
    with pytest.raises(XRoadError) as err:
        hashchain.verify(data, resolver({}), {})
    assert err.value.code in HC_FAMILY
