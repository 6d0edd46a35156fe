"""Global configuration at scale: generation, verification + parse + index, lookups.

Builds (with the model and the renderer) an instance of 10,000 members, 50,000 subsystems and
2,000 security servers, every subsystem registered on a server (25 clients per server, a tenth
of them on a second server too), a security-server-owners group and a few other global groups.
Then measures:

* rendering the shared parameters per version V2..V6 (and the private parameters);
* building and signing the signed directory (RSA-2048, SHA-512), hashes included;
* what a configuration client does with a download: verify the directory signature and the
  content hashes, parse the shared and private parameters, build the indexed snapshot;
* lookups on the snapshot, in µs each: provider addresses, server by auth-cert hash, client
  registered on a server, global group membership, member name.

    .venv/bin/python bench/globalconf.py [--quick] [--members N]
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import random
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import TypeVar

from crossroad.crypto import keys
from crossroad.crypto.algorithms import SHA512_WITH_RSA
from crossroad.crypto.certs import cert_der
from crossroad.globalconf.model import (
    ApprovedCAInfo,
    ApprovedTSAInfo,
    CaInfo,
    ConfigurationSource,
    CostType,
    GlobalGroup,
    GlobalSettings,
    ManagementService,
    Member,
    MemberClass,
    OcspInfo,
    PrivateParameters,
    SecurityServer,
    SharedParameters,
    Subsystem,
)
from crossroad.globalconf.privateparams import parse_private_parameters, render_private_parameters
from crossroad.globalconf.sharedparams import parse_shared_parameters
from crossroad.globalconf.signed import (
    DirectoryEntry,
    SignedDirectory,
    build_signed_directory,
    check_content,
    content_location,
    directory_timestamp,
)
from crossroad.globalconf.snapshot import GlobalConfSnapshot
from crossroad.identifiers import GlobalGroupId, SecurityServerId
from crossroad.testing.pki import TestPKI, make_cert, name, rsa_key

INSTANCE = "BENCH"
AT = dt.datetime(2025, 6, 1, 12, tzinfo=dt.UTC)
EJBCA = "ee.ria.xroad.common.certificateprofile.impl.EjbcaCertificateProfileInfoProvider"
CLASSES = (MemberClass("GOV", "Government"), MemberClass("COM", "Commercial"))
T = TypeVar("T")
K = TypeVar("K")


def best_of(fn: Callable[[], T], rounds: int) -> tuple[float, T]:
    """The fastest of ``rounds`` runs, in seconds, and the last result."""
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def per_call_us(fn: Callable[[K], object], keys_: Sequence[K], repeat: int = 5) -> float:
    """Mean µs per call of ``fn`` over ``keys_``, the best of ``repeat`` passes."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for key in keys_:
            fn(key)
        best = min(best, (time.perf_counter() - start) / len(keys_))
    return best * 1e6


def build_instance(
    pki: TestPKI, members: int, subsystems_per_member: int, servers: int
) -> tuple[SharedParameters, PrivateParameters]:
    rnd = random.Random(1)
    member_list = [
        Member(
            CLASSES[i % 2],
            f"{10000000 + i}",
            f"Organisation {i}",
            tuple(
                Subsystem(f"sub{j}", f"Information system {j}")
                for j in range(subsystems_per_member)
            ),
        )
        for i in range(members)
    ]
    ids = [m.client_id(INSTANCE) for m in member_list]
    subsystems = [i.subsystem(f"sub{j}") for i in ids for j in range(subsystems_per_member)]
    per_server = max(1, len(subsystems) // servers)
    server_list = []
    for s in range(servers):
        clients = subsystems[s * per_server : (s + 1) * per_server]
        extra = [rnd.choice(subsystems) for _ in range(per_server // 10)]
        server_list.append(
            SecurityServer(
                owner=ids[s % len(ids)],
                server_code=f"ss{s}",
                address=f"ss{s}.bench.example.org",
                auth_cert_hashes=(hashlib.sha256(f"auth cert {s}".encode()).digest(),),
                clients=tuple(dict.fromkeys([*clients, *extra])),
            )
        )
    groups = (
        GlobalGroup(
            "security-server-owners",
            "Security server owners",
            tuple(dict.fromkeys(s.owner for s in server_list)),
        ),
        *(
            GlobalGroup(f"group{g}", f"Group {g}", tuple(rnd.sample(subsystems, 1000)))
            for g in range(5)
        ),
    )
    signing = make_cert(name(CN="internalSigningKey"), key=rsa_key(20), kind="ca")
    shared = SharedParameters(
        instance_identifier=INSTANCE,
        global_settings=GlobalSettings(600, CLASSES),
        sources=(
            ConfigurationSource(
                "cs.bench.example.org",
                internal_verification_certs=(cert_der(signing.cert),),
                external_verification_certs=(cert_der(signing.cert),),
            ),
        ),
        approved_cas=(
            ApprovedCAInfo(
                "Bench CA",
                CaInfo(
                    cert_der(pki.ca.cert),
                    (OcspInfo("http://ocsp.bench", cert_der(pki.ocsp.cert), CostType.FREE),),
                ),
                EJBCA,
            ),
        ),
        approved_tsas=(
            ApprovedTSAInfo("Bench TSA", "http://tsa.bench", cert_der(pki.tsa.cert), CostType.FREE),
        ),
        members=tuple(member_list),
        security_servers=tuple(server_list),
        global_groups=groups,
    )
    private = PrivateParameters(
        instance_identifier=INSTANCE,
        management_service=ManagementService(
            "https://cs.bench.example.org:4001/managementservice/", ids[0].subsystem("sub0")
        ),
        time_stamping_interval_seconds=60,
    )
    return shared, private


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one round per measurement")
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--subsystems-per-member", type=int, default=5)
    parser.add_argument("--servers", type=int, default=2_000)
    args = parser.parse_args()
    rounds = 1 if args.quick else 3

    pki = TestPKI.create("Bench")
    start = time.perf_counter()
    shared, private = build_instance(pki, args.members, args.subsystems_per_member, args.servers)
    n_subs = sum(len(m.subsystems) for m in shared.members)
    n_clients = sum(len(s.clients) for s in shared.security_servers)
    print(
        f"Instance: {len(shared.members):,} members, {n_subs:,} subsystems, "
        f"{len(shared.security_servers):,} security servers, {n_clients:,} server clients "
        f"(model built in {time.perf_counter() - start:.2f} s)"
    )

    print("\nGeneration")
    rendered: dict[int, bytes] = {}
    for version in (2, 3, 4, 5, 6):
        seconds, data = best_of(partial(shared.render, version), rounds)
        rendered[version] = data
        print(f"  render shared-params V{version}: {seconds * 1000:8.1f} ms  ({len(data):,} bytes)")
    private_xml = render_private_parameters(private, 3)

    signer = make_cert(name(CN="internalSigningKey"), key=rsa_key(20), kind="ca")
    folder = directory_timestamp(AT)
    entries = [
        DirectoryEntry(
            "PRIVATE-PARAMETERS",
            INSTANCE,
            content_location(6, folder, "private-params.xml"),
            private_xml,
        ),
        DirectoryEntry(
            "SHARED-PARAMETERS",
            INSTANCE,
            content_location(6, folder, "shared-params.xml"),
            rendered[6],
        ),
    ]
    seconds, signed = best_of(
        lambda: build_signed_directory(
            entries,
            expires=AT + dt.timedelta(minutes=10),
            version=6,
            signing_cert=signer.cert,
            sign=lambda d: keys.sign(signer.key, SHA512_WITH_RSA, d),
        ),
        rounds,
    )
    print(f"  build + sign directory (hashes included): {seconds * 1000:8.1f} ms")

    print("\nVerification, parse and index (what a configuration client does per download)")
    files = {e.location: e.data for e in entries}

    def verify_directory() -> SignedDirectory:
        directory = SignedDirectory.parse(signed)
        directory.verify([signer.cert], AT)
        for part in directory.parts:
            check_content(part, files[part.location])
        return directory

    t_verify, _ = best_of(verify_directory, rounds)
    t_shared, parsed = best_of(lambda: parse_shared_parameters(rendered[6]), rounds)
    t_private, parsed_private = best_of(lambda: parse_private_parameters(private_xml), rounds)
    t_index, snap = best_of(
        lambda: GlobalConfSnapshot.build(
            parsed,
            parsed_private,
            shared_expires=AT + dt.timedelta(minutes=10),
            private_expires=AT + dt.timedelta(minutes=10),
            version=6,
        ),
        rounds,
    )
    total = t_verify + t_shared + t_private + t_index
    print(f"  verify signature + content hashes: {t_verify * 1000:8.1f} ms")
    print(f"  parse shared-params V6:            {t_shared * 1000:8.1f} ms")
    print(f"  parse private-params V3:           {t_private * 1000:8.1f} ms")
    print(f"  build snapshot indexes:            {t_index * 1000:8.1f} ms")
    print(f"  total:                             {total * 1000:8.1f} ms  (aim: under 1000 ms)")

    rnd = random.Random(2)
    members = [m.client_id(INSTANCE) for m in shared.members]
    subsystems = [
        m.subsystem(s.subsystem_code)
        for m, mm in zip(members, shared.members, strict=True)
        for s in mm.subsystems
    ]
    servers = list(shared.security_servers)
    clients = [rnd.choice(subsystems) for _ in range(20_000)]
    hashes = [rnd.choice(servers).auth_cert_hashes[0] for _ in range(20_000)]
    pairs = [(rnd.choice(subsystems), rnd.choice(servers).id) for _ in range(20_000)]
    owners = GlobalGroupId(INSTANCE, "security-server-owners")
    group_members = [rnd.choice(members) for _ in range(20_000)]
    assert all(snap.provider_addresses(c) for c in clients[:100])
    assert all(snap.server_by_auth_cert_hash(h) for h in hashes[:100])

    print("\nLookups (µs per lookup; aim: under 5 µs)")
    figures = {
        "provider addresses for a client": per_call_us(snap.provider_addresses, clients),
        "server by auth-cert hash": per_call_us(snap.server_by_auth_cert_hash, hashes),
        "client registered on server": per_call_us(lambda p: snap.is_client_registered(*p), pairs),
        "global group membership": per_call_us(
            lambda c: snap.is_in_global_group(c, owners), group_members
        ),
        "member name": per_call_us(snap.member_name, group_members),
    }
    for label, us in figures.items():
        print(f"  {label:34s} {us:6.2f} µs")
    server = SecurityServerId(members[0], "ss0")
    assert snap.is_client_registered(members[0], server)


if __name__ == "__main__":
    main()
