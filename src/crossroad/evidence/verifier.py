"""Offline verification of message-log evidence: ASiC-E containers and log archives (§9.3, §9.5).

:func:`verify_container` follows NIIS ``AsicContainerVerifier``: load the container, read the
signature, find the signer from ``message.xml``, require a reference to ``/message.xml`` or
``/sig-hashchainresult.xml``, verify the time-stamp *first* (a single time-stamp stamps the
decoded ``SignatureValue``; a batch one stamps ``ts-hashchainresult.xml``, whose chain must cover
``/META-INF/signatures.xml``), then verify the signature at the time-stamp's genTime with the
references resolved against the container's entries.  Its TSA must be an approved one.

:func:`verify_archive` checks a log archive's linking info and, given a trust policy, every
container in it; :func:`verify_archive_files` does the same across consecutive archives.

Errors are data here: every function returns a report, none raises for bad evidence.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from cryptography import x509
from cryptography.x509 import ocsp

from crossroad.crypto import hashchain, tsp
from crossroad.crypto.archive import ArchiveReport, ChainReport, Check
from crossroad.crypto.archive import verify_archive as _verify_linking
from crossroad.crypto.archive import verify_archive_chain as _verify_linking_chain
from crossroad.crypto.asic import AsicContainer, signer_of
from crossroad.crypto.trust import TrustPolicy
from crossroad.crypto.xades import ParsedSignature, SignatureInfo, parse_signature, verify_parsed
from crossroad.errors import Code, XRoadError
from crossroad.evidence.report import ArchiveVerification, CertificateInfo, Report

MESSAGE_URI = "/message.xml"
SIG_HASH_CHAIN_RESULT_URI = "/sig-hashchainresult.xml"
SIGNATURES_URI = "/META-INF/signatures.xml"


class _Run:
    """Collects the checks and findings of one container verification."""

    def __init__(self, name: str | None) -> None:
        self.name = name
        self.checks: list[Check] = []
        self.notes: list[str] = []
        self.certs: list[CertificateInfo] = []
        self.signer: str | None = None
        self.signing_cert: CertificateInfo | None = None
        self.ts_time: dt.datetime | None = None
        self.tsa: CertificateInfo | None = None
        self.verified_at: dt.datetime | None = None
        self.ocsp_time: dt.datetime | None = None

    def ok(self, name: str, detail: str = "") -> None:
        self.checks.append(Check(name, True, detail))

    def cert(self, role: str, cert: x509.Certificate) -> CertificateInfo:
        info = CertificateInfo.of(role, cert)
        if all(c.sha256 != info.sha256 or c.role != role for c in self.certs):
            self.certs.append(info)
        return info

    def report(self, failed: tuple[str, XRoadError] | None = None, record: bool = True) -> Report:
        if failed is not None and record:
            check, err = failed
            self.checks.append(Check(check, False, f"{err.code}: {err.detail}"))
        return Report(
            valid=failed is None,
            code=failed[1].code if failed else None,
            detail=failed[1].detail if failed else "",
            checks=tuple(self.checks),
            signer=self.signer,
            signing_cert=self.signing_cert,
            timestamp_time=self.ts_time,
            tsa=self.tsa,
            verified_at=self.verified_at,
            ocsp_time=self.ocsp_time,
            certificates=tuple(self.certs),
            notes=tuple(self.notes),
            name=self.name,
        )


def _resolver(container: AsicContainer, run: _Run) -> hashchain.Resolver:
    def resolve(uri: str) -> bytes | None:
        data = container.entry(uri)
        if data is None:
            note = f'The digest for "{uri}" is taken from the hash chain (unverified)'
            if note not in run.notes:
                run.notes.append(note)
        return data

    return resolve


def _timestamp(
    container: AsicContainer, signature: ParsedSignature, trust: TrustPolicy, run: _Run
) -> tsp.TimestampInfo:
    # timestamp.tst (batch) wins over a token embedded in the signature, as in NIIS.
    token = container.timestamp
    if token is None:
        token = signature.timestamp
    if token is None:
        raise XRoadError(Code.ASIC_TIMESTAMP_NOT_FOUND, "The container has no time-stamp")
    if container.ts_hash_chain_result is not None:  # batch time-stamp
        data = container.ts_hash_chain_result
        try:
            hashchain.verify(data, _resolver(container, run), {SIGNATURES_URI: None})
        except XRoadError as err:
            raise XRoadError(
                Code.MALFORMED_SIGNATURE, f"Failed to verify time-stamp hash chain: {err}"
            ) from err
        run.ok("time-stamp hash chain", f"covers {SIGNATURES_URI}")
    else:
        data = signature.signature_value
    return tsp.verify_token(token, data, trust.tsa_certs())


def verify_container(
    data: bytes,
    trust: TrustPolicy,
    at: dt.datetime | None = None,
    *,
    name: str | None = None,
) -> Report:
    """Verify one ASiC-E container against ``trust``; never raises for bad evidence.

    The signature is verified at the time-stamp's genTime, or at ``at`` when given.  A
    container without a time-stamp is not valid evidence (``asic_timestamp_not_found``); with
    ``at`` its signature is still checked so the report says whether it holds.
    """
    if at is not None and at.tzinfo is None:
        raise ValueError("verification time must be timezone-aware")
    run = _Run(name)
    step = "container structure"
    try:
        container = AsicContainer.parse(data)
        run.ok(step, ", ".join(container.entry_names()))
        step = "signature document"
        signature = parse_signature(container.signature)
        if signature.signing_cert is not None:  # named even if it later fails to verify
            run.signing_cert = run.cert("signer", signature.signing_cert)
        references = [ref.uri for ref in signature.references]
        run.ok(step, "references " + ", ".join(references))
        step = "signer"
        signer = signer_of(container.message)
        run.signer = str(signer)
        run.ok(step, f"{signer} (signature must be by member {signer.member_id()})")
        step = "signature references"
        if MESSAGE_URI not in references and SIG_HASH_CHAIN_RESULT_URI not in references:
            raise XRoadError(
                Code.MALFORMED_SIGNATURE,
                f"Signature does not reference '{MESSAGE_URI}' or '{SIG_HASH_CHAIN_RESULT_URI}'",
            )
        run.ok(step)
        step = "time-stamp"
        missing: XRoadError | None = None
        try:
            stamp = _timestamp(container, signature, trust, run)
        except XRoadError as err:
            if not (err.matches(Code.ASIC_TIMESTAMP_NOT_FOUND) and at is not None):
                raise
            missing = err
            run.checks.append(Check(step, False, f"{err.code}: {err.detail}"))
        else:
            run.ts_time = stamp.gen_time
            if stamp.tsa_cert is not None:
                run.tsa = run.cert("time-stamp authority", stamp.tsa_cert)
            kind = "batch" if container.is_batch_timestamp else "single"
            run.ok(step, f"{kind} time-stamp, genTime {stamp.gen_time.isoformat()}")
        step = "signature"
        when = at or (stamp.gen_time if missing is None else None)
        assert when is not None
        run.verified_at = when
        # The parts NIIS requires to be covered (the message), plus every attachment the
        # container holds: evidence with an attachment no signature covers is not accepted.
        parts: dict[str, bytes | None] = {MESSAGE_URI: None}
        parts.update({f"/attachment{i}": None for i in range(1, len(container.attachments) + 1)})
        info = verify_parsed(
            signature,
            signer=signer,
            trust=trust,
            at=when,
            resolve=_resolver(container, run),
            hash_chain=container.sig_hash_chain,
            hash_chain_result=container.sig_hash_chain_result,
            part_digests=parts,
        )
        _record_signature(run, info, trust)
        run.ok(step, f"valid at {when.isoformat()}")
        if missing is not None:
            return run.report(("time-stamp", missing), record=False)
        return run.report()
    except XRoadError as err:
        return run.report((step, err))
    except Exception as exc:  # a bug must not turn a verdict into a traceback
        internal = XRoadError(Code.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}")
        return run.report((step, internal))


def _record_signature(run: _Run, info: SignatureInfo, trust: TrustPolicy) -> None:
    """Copy what the signature verification learnt into the report."""
    run.signing_cert = run.cert("signer", info.signing_cert)
    for cert in info.extra_certs:
        run.cert("intermediate CA", cert)
    issuer = info.extra_certs[-1] if info.extra_certs else info.signing_cert
    found = trust.ca_cert_by_subject(issuer.issuer)
    if found is not None:
        run.cert("approved CA", found[1])
    for der in info.ocsp_responses:
        try:
            response = ocsp.load_der_ocsp_response(der)
            produced = response.produced_at_utc
            responders = response.certificates
        except Exception:  # noqa: S112 - the chain check already judged it; this is display
            continue
        if run.ocsp_time is None:
            run.ocsp_time = produced
        for responder in responders:
            run.cert("OCSP responder", responder)


def verify_archive(
    data: bytes,
    trust: TrustPolicy | None = None,
    *,
    at: dt.datetime | None = None,
    name: str = "archive",
    previous_digest: str | None = None,
    previous_name: str | None = None,
) -> ArchiveVerification:
    """Check a log archive's linking info and, given ``trust``, every container in it."""
    linking = _verify_linking(data, previous_digest, previous_name, name=name)
    return _with_containers(linking, (linking,), trust, at)


def verify_archive_files(
    archives: Sequence[tuple[str, bytes]],
    trust: TrustPolicy | None = None,
    *,
    at: dt.datetime | None = None,
    previous_digest: str | None = None,
    previous_name: str | None = None,
) -> ArchiveVerification:
    """Check consecutive archives (each must link to the one before) and their containers."""
    chain = _verify_linking_chain(
        archives, previous_digest=previous_digest, previous_name=previous_name
    )
    return _with_containers(chain, chain.reports, trust, at)


def _with_containers(
    linking: ArchiveReport | ChainReport,
    reports: Sequence[ArchiveReport],
    trust: TrustPolicy | None,
    at: dt.datetime | None,
) -> ArchiveVerification:
    results: list[Report] = []
    if trust is not None:
        for report in reports:
            for container_name, content in report.containers:
                label = f"{report.name}/{container_name}"
                results.append(verify_container(content, trust, at, name=label))
    bad = next((r for r in results if not r.valid), None)
    if not linking.valid:
        return ArchiveVerification(False, linking.code, linking.detail, linking, tuple(results))
    if bad is not None:
        detail = f"Container '{bad.name}' is invalid: {bad.detail}"
        return ArchiveVerification(False, bad.code, detail, linking, tuple(results))
    return ArchiveVerification(True, None, "", linking, tuple(results))
