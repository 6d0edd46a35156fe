"""Hash chains: the Merkle trees behind batch signatures and batch time-stamps (protocols.md §4.8).

Owns building a tree over several signing (or time-stamping) requests, rendering the
``HashChainResult`` and per-request ``HashChain`` documents exactly as NIIS's JAXB marshaller
formats them, and verifying a chain against the data it covers with NIIS's semantics:

* a step's value is H(DER ``SEQUENCE OF SingleDigest``) where ``SingleDigest ::= SEQUENCE {
  OCTET STRING digest, UTF8String digestMethodURI, SEQUENCE {} }``, one per ``HashValue``,
  ``StepRef`` (digest of the referenced step) and ``DataRef`` in document order;
* the result's DigestValue must equal H(DER of the step it points at) → ``invalid_hash_chain``;
* a DataRef given as an input with a digest uses that digest; otherwise its data is resolved
  and hashed (after C14N transforms) and must match → ``invalid_hash_chain_ref``; data the
  resolver cannot supply is trusted as written;
* every input must be referenced → ``hashchain_unused_inputs``;
* documents that do not follow ``hashchain.xsd`` → ``malformed_hash_chain``; a chain document
  the resolver cannot supply → ``invalid_reference``.

The same code serves the signature chain (``/sig-hashchain.xml``, DataRefs ``/message.xml``
and ``/attachmentN``) and the time-stamp chain (``/ts-hashchain.xml``, DataRef
``/META-INF/signatures.xml``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final
from xml.sax.saxutils import escape

from lxml import etree

from crossroad.crypto.algorithms import SHA512, DigestAlgorithm
from crossroad.crypto.xmldsig import (
    C14N_METHODS,
    DS_NS,
    HASHCHAIN_NS,
    b64decode,
    b64encode,
    canonicalize_document,
    check_attributes,
    check_element_only,
    digest_by_uri,
    ds,
    hc,
    parse_xml,
)
from crossroad.errors import Code, XRoadError

MESSAGE: Final = "/message.xml"
SIGNATURES: Final = "/META-INF/signatures.xml"
SIG_HASH_CHAIN: Final = "/sig-hashchain.xml"
SIG_HASH_CHAIN_RESULT: Final = "/sig-hashchainresult.xml"
TS_HASH_CHAIN: Final = "/ts-hashchain.xml"
TS_HASH_CHAIN_RESULT: Final = "/ts-hashchainresult.xml"


def attachment_name(index: int) -> str:
    """``/attachmentN`` (1-based), the name of the N-th attachment part."""
    return f"/attachment{index}"


# Limits NIIS applies against crafted chains; a real chain is one step per tree level.
MAX_DEPTH: Final = 64
MAX_STEPS: Final = 1024
MAX_VALUES: Final = 10_000

_STEP = "STEP"
_NCNAME = re.compile(r"[A-Za-z_][\w.\-]*")


# --------------------------------------------------------------------------- DER step digests


def _der(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return bytes((tag, n)) + content
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(size))) + size + content


def step_bytes(items: Sequence[tuple[DigestAlgorithm, bytes]]) -> bytes:
    """DER of ``SEQUENCE OF SingleDigest`` for (digest method, digest) pairs."""
    body = b"".join(
        _der(
            0x30,
            _der(0x04, value) + _der(0x0C, method.uri.encode("utf-8")) + _der(0x30, b""),
        )
        for method, value in items
    )
    return _der(0x30, body)


def step_digest(digest: DigestAlgorithm, *values: bytes) -> bytes:
    """H(DER(SEQUENCE OF SingleDigest)) over ``values``, all with method ``digest``."""
    return digest.digest(step_bytes([(digest, v) for v in values]))


# --------------------------------------------------------------------------- building


@dataclass(frozen=True)
class _Value:
    kind: str  # "HashValue", "StepRef" or "DataRef"
    digest: bytes = b""
    uri: str = ""


class _Tree:
    """The Merkle tree of NIIS's ``HashChainBuilder``, stored as one implicit array.

    Indices ``0 .. node_count-1`` are inner nodes, the following ``len(leaves)`` are leaves.
    Incomplete trees leave holes that ``_fix`` fills by promoting orphans, exactly as NIIS
    does, so that chains and the top hash are the same bytes NIIS would produce.
    """

    def __init__(self, digest: DigestAlgorithm, leaves: list[bytes]) -> None:
        self.digest = digest
        self.leaves = leaves
        self.depth = (len(leaves) - 1).bit_length()
        self.node_count = (1 << self.depth) - 1
        self.max_index = self.node_count + len(leaves)
        self.nodes: list[bytes | None] = [None] * self.node_count
        if len(leaves) > 1:
            self._hash_leaves()
            self._hash_nodes()
            self._fix(0)

    def get(self, index: int) -> bytes | None:
        if index < self.node_count:
            return self.nodes[index]
        if index < self.max_index:
            return self.leaves[index - self.node_count]
        return None

    def top(self) -> bytes:
        if len(self.leaves) == 1:
            return self.leaves[0]
        top = self.nodes[0]
        assert top is not None
        return top

    def _hash_leaves(self) -> None:
        for i in range(0, len(self.leaves) - 1, 2):
            parent = (self.node_count + i - 1) // 2
            self.nodes[parent] = step_digest(self.digest, self.leaves[i], self.leaves[i + 1])

    def _hash_nodes(self) -> None:
        level_start = self.node_count // 2
        while level_start > 0:
            i = level_start
            while i < 2 * level_start:
                left, right = self.nodes[i], self.nodes[i + 1]
                if left is None or right is None:
                    break
                self.nodes[(i - 1) // 2] = step_digest(self.digest, left, right)
                i += 2
            level_start //= 2

    def _fix(self, index: int) -> bytes | None:
        if index >= self.max_index:
            return None
        value = self.get(index)
        if value is not None:
            return value
        left = self.get(2 * index + 1)
        if left is None:
            # Nothing on the left either: the subtree's value is whatever lies further down.
            return self._fix(2 * index + 1)
        right = self._fix(2 * index + 2)
        if right is None:
            return left  # an orphan is promoted, not duplicated
        combined = step_digest(self.digest, left, right)
        self.nodes[index] = combined
        return combined

    def deep(self, index: int) -> bytes | None:
        value = self.get(index)
        while value is None and index < self.max_index:
            index = 2 * index + 1
            value = self.get(index)
        return value

    def path(self, item: int, leaf_ref: _Value, multipart: bool) -> list[list[_Value]]:
        """The hash steps from the root down to leaf ``item``."""
        steps: list[list[_Value]] = []
        current = 0
        level = self.depth - 1
        while current < self.node_count:
            direction = (item >> level) & 1 if level >= 0 else 0
            mine = 2 * current + 1 + direction
            other = 2 * current + 2 - direction
            while self.get(mine) is None:
                if mine >= self.max_index:  # pragma: no cover - cannot happen for built trees
                    raise XRoadError(Code.INTERNAL_ERROR, "Hash chain tree is inconsistent")
                mine = 2 * mine + 1
                level -= 1
            other_value = self.deep(other)
            assert other_value is not None
            if mine >= self.node_count and not multipart:
                my_value = leaf_ref
            else:
                my_value = _Value("StepRef", uri=f"#{_STEP}{len(steps) + 1}")
            pair = [_Value("HashValue", other_value), my_value]
            steps.append(pair if direction else pair[::-1])
            current = mine
            level -= 1
        return steps


def quoteattr(value: str) -> str:
    """A double-quoted attribute value, escaped as JAXB escapes it."""
    return '"' + escape(value, {'"': "&quot;"}) + '"'


_HEAD = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
_NS_DECLS = f'xmlns="{DS_NS}" xmlns:ns2="{HASHCHAIN_NS}"'


def _render_chain(digest: DigestAlgorithm, steps: list[list[_Value]]) -> bytes:
    # JAXB_FORMATTED_OUTPUT: four-space indentation, self-closing empty elements.
    out = [_HEAD, f"<ns2:HashChain {_NS_DECLS}>\n"]
    out.append(f"    <ns2:DefaultDigestMethod Algorithm={quoteattr(digest.uri)}/>\n")
    for number, step in enumerate(steps):
        out.append(f'    <ns2:HashStep id="{_STEP}{number}">\n')
        for value in step:
            if value.kind == "StepRef":
                out.append(f"        <ns2:StepRef URI={quoteattr(value.uri)}/>\n")
                continue
            uri = f" URI={quoteattr(value.uri)}" if value.kind == "DataRef" else ""
            out.append(f"        <ns2:{value.kind}{uri}>\n")
            out.append(f"            <DigestValue>{b64encode(value.digest)}</DigestValue>\n")
            out.append(f"        </ns2:{value.kind}>\n")
        out.append("    </ns2:HashStep>\n")
    out.append("</ns2:HashChain>\n")
    return "".join(out).encode()


def _render_result(digest: DigestAlgorithm, top: bytes, chain_uri: str) -> bytes:
    uri = quoteattr(f"{chain_uri}#{_STEP}0")
    return (
        f"{_HEAD}<ns2:HashChainResult URI={uri} {_NS_DECLS}>\n"
        f"    <DigestMethod Algorithm={quoteattr(digest.uri)}/>\n"
        f"    <DigestValue>{b64encode(top)}</DigestValue>\n"
        "</ns2:HashChainResult>\n"
    ).encode()


def build(
    inputs: Sequence[Sequence[tuple[str, bytes]]],
    digest: DigestAlgorithm = SHA512,
    *,
    chain_uri: str = SIG_HASH_CHAIN,
) -> tuple[bytes, list[bytes]]:
    """Build a hash chain over ``inputs`` (one per request: its (DataRef URI, digest) parts).

    Returns the ``HashChainResult`` XML (pointing at ``{chain_uri}#STEP0``) and one
    ``HashChain`` XML per input.  A request with several parts enters the tree as the step
    digest of its parts and its chain ends with a step listing every part.
    """
    if not inputs or any(not parts for parts in inputs):
        raise XRoadError(Code.INTERNAL_ERROR, "A hash chain needs at least one input part")
    if len(inputs) == 1 and len(inputs[0]) == 1:
        raise XRoadError(
            Code.INTERNAL_ERROR, "A hash chain cannot be built for one input without attachments"
        )
    leaves = [
        parts[0][1] if len(parts) == 1 else step_digest(digest, *(d for _, d in parts))
        for parts in inputs
    ]
    tree = _Tree(digest, leaves)
    chains = []
    for item, parts in enumerate(inputs):
        multipart = len(parts) > 1
        steps = tree.path(item, _Value("DataRef", parts[0][1], parts[0][0]), multipart)
        if multipart:
            steps.append([_Value("DataRef", d, uri) for uri, d in parts])
        chains.append(_render_chain(digest, steps))
    return _render_result(digest, tree.top(), chain_uri), chains


# --------------------------------------------------------------------------- parsing


@dataclass(frozen=True)
class _Parsed:
    kind: str
    uri: str | None
    method: DigestAlgorithm | None
    transforms: tuple[tuple[str, tuple[str, ...]], ...]
    digest: bytes


@dataclass(frozen=True)
class _Chain:
    default_method: DigestAlgorithm | None
    steps: Mapping[str, tuple[_Parsed, ...]]


def _malformed(detail: str) -> XRoadError:
    return XRoadError(Code.MALFORMED_HASH_CHAIN, detail)


def _check_attrs(el: etree._Element, allowed: set[str]) -> None:
    check_attributes(el, frozenset(allowed), Code.MALFORMED_HASH_CHAIN)


def _digest_method(el: etree._Element) -> DigestAlgorithm:
    _check_attrs(el, {"Algorithm"})
    return digest_by_uri(el.get("Algorithm"), Code.MALFORMED_HASH_CHAIN)


def _transforms(el: etree._Element) -> tuple[tuple[str, tuple[str, ...]], ...]:
    out = []
    children = check_element_only(el, Code.MALFORMED_HASH_CHAIN)
    if not children:
        raise _malformed("Transforms without Transform")
    for t in children:
        if t.tag != ds("Transform"):
            raise _malformed(f"Unexpected element {t.tag} in Transforms")
        algorithm = t.get("Algorithm") or ""
        if algorithm not in C14N_METHODS:
            raise _malformed(f"Unsupported transform {algorithm!r}")
        prefixes: tuple[str, ...] = ()
        for child in t:
            if isinstance(child.tag, str) and etree.QName(child).localname == "InclusiveNamespaces":
                prefixes = tuple((child.get("PrefixList") or "").split())
        out.append((algorithm, prefixes))
    return tuple(out)


def _value(el: etree._Element) -> _Parsed:
    kind = etree.QName(el).localname
    _check_attrs(el, {"URI"} if kind != "HashValue" else set())
    uri = el.get("URI")
    if kind != "HashValue" and uri is None:
        raise _malformed(f"{kind} without URI")
    children = check_element_only(el, Code.MALFORMED_HASH_CHAIN)
    method = None
    if children and children[0].tag == ds("DigestMethod"):
        method = _digest_method(children.pop(0))
    if kind == "StepRef":
        if children:
            raise _malformed("Unexpected content in StepRef")
        return _Parsed(kind, uri, method, (), b"")
    transforms: tuple[tuple[str, tuple[str, ...]], ...] = ()
    if children and children[0].tag == ds("Transforms"):
        transforms = _transforms(children.pop(0))
    if len(children) != 1 or children[0].tag != ds("DigestValue"):
        raise _malformed(f"{kind} must end with exactly one DigestValue")
    digest = b64decode(children[0].text, Code.MALFORMED_HASH_CHAIN, "DigestValue")
    return _Parsed(kind, uri, method, transforms, digest)


def _parse_root(data: bytes, tag: str, what: str) -> etree._Element:
    root = parse_xml(data, Code.MALFORMED_HASH_CHAIN, what)
    if root.tag != hc(tag):
        raise _malformed(f"Expected {{{HASHCHAIN_NS}}}{tag}, found {root.tag}")
    return root


def _parse_result(data: bytes) -> tuple[str, DigestAlgorithm, bytes]:
    root = _parse_root(data, "HashChainResult", "Hash chain result")
    _check_attrs(root, {"URI"})
    uri = root.get("URI")
    children = check_element_only(root, Code.MALFORMED_HASH_CHAIN)
    if uri is None:
        raise _malformed("HashChainResult without URI")
    if len(children) != 2 or [c.tag for c in children] != [ds("DigestMethod"), ds("DigestValue")]:
        raise _malformed("HashChainResult must hold DigestMethod and DigestValue")
    method = _digest_method(children[0])
    value = b64decode(children[1].text, Code.MALFORMED_HASH_CHAIN, "DigestValue")
    return uri, method, value


def _parse_chain(data: bytes) -> _Chain:
    root = _parse_root(data, "HashChain", "Hash chain")
    _check_attrs(root, set())
    children = check_element_only(root, Code.MALFORMED_HASH_CHAIN)
    default = None
    if children and children[0].tag == hc("DefaultDigestMethod"):
        default = _digest_method(children.pop(0))
    steps: dict[str, tuple[_Parsed, ...]] = {}
    for step in children:
        if step.tag != hc("HashStep"):
            raise _malformed(f"Unexpected element {step.tag} in HashChain")
        _check_attrs(step, {"id"})
        step_id = step.get("id")
        values = []
        for value in check_element_only(step, Code.MALFORMED_HASH_CHAIN):
            if value.tag not in (hc("HashValue"), hc("StepRef"), hc("DataRef")):
                raise _malformed(f"Unexpected element {value.tag} in HashStep")
            values.append(_value(value))
        if step_id is None:
            continue  # legal in the schema, but no StepRef can point at it
        if not _NCNAME.fullmatch(step_id) or step_id in steps:
            raise _malformed(f"Invalid or duplicate hash step id {step_id!r}")
        steps[step_id] = tuple(values)
    return _Chain(default, steps)


# --------------------------------------------------------------------------- verification


Resolver = Callable[[str], bytes | None]


class _Verifier:
    def __init__(
        self,
        resolver: Resolver,
        inputs: Mapping[str, bytes | None],
        digest_hint: DigestAlgorithm | None,
    ) -> None:
        self.resolver = resolver
        self.inputs = inputs
        self.digest_hint = digest_hint
        self.chains: dict[str, _Chain] = {}
        self.resolved: dict[str, bytes] = {}
        self.active: set[str] = set()
        self.steps = 0
        self.values = 0
        self.used: set[str] = set()

    def chain(self, base: str) -> _Chain:
        found = self.chains.get(base)
        if found is None:
            data = self.resolver(base)
            if data is None:
                raise XRoadError(Code.INVALID_REFERENCE, f"Cannot resolve URI: {base}")
            found = self.chains[base] = _parse_chain(data)
        return found

    def step(self, uri: str, current_base: str | None) -> bytes:
        """DER of the DigestList of the step at ``uri``."""
        base, sep, fragment = uri.partition("#")
        if not sep or not fragment:
            raise _malformed(f"Invalid hash step URI: {uri}")
        if not base:
            if current_base is None:
                raise _malformed(f"Invalid hash step URI: {uri}")
            base = current_base
        full = f"{base}#{fragment}"
        if full in self.resolved:
            return self.resolved[full]
        if full in self.active:
            raise _malformed(f"Cycle detected in hash chain at step {full}")
        if len(self.active) >= MAX_DEPTH:
            raise _malformed(f"Hash chain exceeds maximum depth of {MAX_DEPTH}")
        if self.steps >= MAX_STEPS:
            raise _malformed(f"Hash chain exceeds maximum step count of {MAX_STEPS}")
        self.active.add(full)
        self.steps += 1
        try:
            chain = self.chain(base)
            values = chain.steps.get(fragment)
            if values is None:
                raise _malformed(f"Invalid hash step URI: {uri}")
            self.values += len(values)
            if self.values > MAX_VALUES:
                raise _malformed(f"Hash chain exceeds maximum value count of {MAX_VALUES}")
            result = step_bytes([self.value(v, chain, base) for v in values])
        finally:
            self.active.discard(full)
        self.resolved[full] = result
        return result

    def value(self, v: _Parsed, chain: _Chain, base: str) -> tuple[DigestAlgorithm, bytes]:
        method = v.method or chain.default_method
        if method is None:
            raise _malformed(f"{v.kind} has no digest method and the chain has no default")
        if v.kind == "HashValue":
            return method, v.digest
        assert v.uri is not None
        if v.kind == "StepRef":
            return method, method.digest(self.step(v.uri, base))
        return method, self.data_ref(v, method)

    def data_ref(self, v: _Parsed, method: DigestAlgorithm) -> bytes:
        assert v.uri is not None
        if v.uri in self.inputs:
            self.used.add(v.uri)
            given = self.inputs[v.uri]
            if given is not None and self.digest_hint in (None, method):
                return given
        data = self.resolver(v.uri)
        if data is None:
            return v.digest  # what the verifier cannot see is trusted as written
        for algorithm, prefixes in v.transforms:
            data = canonicalize_document(
                data, algorithm, Code.INVALID_HASH_CHAIN_REF, f"Data of {v.uri}", prefixes
            )
        if method.digest(data) != v.digest:
            raise XRoadError(
                Code.INVALID_HASH_CHAIN_REF,
                f"Invalid digest value in hash chain reference to {v.uri}",
            )
        return v.digest


def verify(
    result_xml: bytes,
    resolver: Resolver,
    inputs: Mapping[str, bytes | None],
    digest_hint: DigestAlgorithm | None = None,
) -> None:
    """Verify ``inputs`` (URI → digest, or None to resolve and hash) against a chain result.

    ``resolver`` maps a URI to its bytes (chain documents and DataRef data) or None when it
    cannot be supplied.  ``digest_hint`` is the algorithm the given input digests were made
    with; None means "whatever the DataRef says".  Returns silently when all is well.
    """
    uri, method, expected = _parse_result(result_xml)
    verifier = _Verifier(resolver, inputs, digest_hint)
    top = verifier.step(uri, None)
    if method.digest(top) != expected:
        raise XRoadError(
            Code.INVALID_HASH_CHAIN, "Hash chain result does not match hash chain calculation"
        )
    unused = sorted(set(inputs) - verifier.used)
    if unused:
        raise XRoadError(
            Code.HASHCHAIN_UNUSED_INPUTS,
            f"Some inputs were not referenced by hash chain: {', '.join(unused)}",
        )


def result_uri(result_xml: bytes) -> str:
    """The ``URI`` of a HashChainResult (which chain document and step it points at)."""
    return _parse_result(result_xml)[0]
