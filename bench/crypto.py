"""Message signatures built and verified per second, by batch size, against bare RSA-2048.

For each batch size N (1, 10, 100, 1000 messages of 1 KiB signed together) this builds the
batch with one RSA-2048 signature (`xades.sign_batch`: a hash chain over the N messages, one
XAdES signature over its result; N=1 is the simple shape) and then verifies every message on
its own, as a receiving security server does (hash chain, signature value, references,
certificate path, OCSP).  All figures come from this one run and are printed as ratios to
a bare RSA-2048 PKCS#1 signature (`cryptography`, SHA-512) measured in the same process.

    .venv/bin/python bench/crypto.py [--quick]
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import time
from collections.abc import Callable

from crossroad.crypto import keys, xades
from crossroad.crypto.algorithms import SHA512, SHA512_WITH_RSA
from crossroad.crypto.trust import ApprovedCA, OcspResponder, TrustPolicy
from crossroad.identifiers import ClientId
from crossroad.testing.pki import TestPKI

EJBCA = "ee.ria.xroad.common.certificateprofile.impl.EjbcaCertificateProfileInfoProvider"
AT = dt.datetime(2025, 6, 1, 12, tzinfo=dt.UTC)


def rate(fn: Callable[[], object], min_seconds: float) -> float:
    """Operations per second of ``fn``, the best of three timed rounds."""
    rounds = []
    for _ in range(3):
        n, start = 0, time.perf_counter()
        while True:
            fn()
            n += 1
            elapsed = time.perf_counter() - start
            if elapsed >= min_seconds / 3:
                break
        rounds.append(n / elapsed)
    return max(rounds)


def message(i: int) -> bytes:
    body = f"<ns1:getRandom><seq>{i}</seq>{'x' * 900}</ns1:getRandom>"
    return (
        '<?xml version="1.0" encoding="UTF-8"?><SOAP-ENV:Envelope '
        'xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:ns1="http://test.x-road.global/producer">'
        f"<SOAP-ENV:Header/><SOAP-ENV:Body>{body}</SOAP-ENV:Body></SOAP-ENV:Envelope>"
    ).encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter rounds, sizes up to 100")
    args = parser.parse_args()
    min_seconds = 0.6 if args.quick else 3.0
    sizes = (1, 10, 100) if args.quick else (1, 10, 100, 1000)

    pki = TestPKI.create()
    member = ClientId("EE", "COM", "1234")
    signer = pki.sign_cert("EE", "COM", "1234")
    ocsp_der = pki.ocsp_for(signer.cert, AT - dt.timedelta(minutes=5))
    trust = TrustPolicy(
        instance="EE",
        cas=(
            ApprovedCA(
                name="Test CA",
                top_ca=pki.ca.cert,
                certificate_profile=EJBCA,
                ocsp=(OcspResponder("http://127.0.0.1/ocsp", pki.ocsp.cert),),
            ),
        ),
        ocsp_freshness_seconds=3600,
    )
    key = signer.key

    def sign(data: bytes) -> bytes:
        return keys.sign(key, SHA512_WITH_RSA, data)  # type: ignore[arg-type]

    payload = b"x" * 1024
    bare_sign = rate(lambda: sign(payload), min_seconds)
    pub = signer.cert.public_key()
    sig = sign(payload)
    bare_verify = rate(lambda: keys.verify(pub, SHA512_WITH_RSA, sig, payload), min_seconds)  # type: ignore[arg-type]

    print(f"bare RSA-2048 SHA512withRSA: sign {bare_sign:,.0f}/s, verify {bare_verify:,.0f}/s")
    print()
    header = (
        f"{'batch':>6} {'built msg/s':>12} {'verified msg/s':>15} {'built+verified msg/s':>21}"
        f" {'ratio to bare sign':>19}"
    )
    print(header)
    print("-" * len(header))
    for n in sizes:
        msgs = [message(i) for i in range(n)]
        requests = [[xades.MessagePart("/message.xml", SHA512, data=m)] for m in msgs]

        def build(requests: list[list[xades.MessagePart]] = requests) -> list[xades.SignedMessage]:
            return xades.sign_batch(
                requests,
                signing_cert=signer.cert,
                ocsp_responses=[ocsp_der],
                sign=sign,
                signing_time=AT,
            )

        signed = build()

        def verify_all(
            signed: list[xades.SignedMessage] = signed, msgs: list[bytes] = msgs
        ) -> None:
            for s, m in zip(signed, msgs, strict=True):
                xades.verify_signature(
                    s.signature_xml,
                    signer=member,
                    trust=trust,
                    at=AT,
                    resolve=lambda uri, m=m: m if uri == "/message.xml" else None,
                    hash_chain=s.hash_chain,
                    hash_chain_result=s.hash_chain_result,
                    part_digests=None if s.hash_chain is None else {"/message.xml": None},
                )

        batches_built = rate(build, min_seconds)
        batches_verified = rate(verify_all, min_seconds)
        built = batches_built * n
        verified = batches_verified * n
        both = 1 / (1 / built + 1 / verified)
        print(f"{n:>6} {built:>12,.0f} {verified:>15,.0f} {both:>21,.0f} {both / bare_sign:>19.2f}")
    _ = statistics  # rates are best-of-three; see rate()


if __name__ == "__main__":
    main()
