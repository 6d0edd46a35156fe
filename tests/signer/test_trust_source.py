"""The signer's trust policy from a global configuration directory (the production path)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from crossroad.globalconf.model import (
    ApprovedCAInfo,
    CaInfo,
    ConfigurationSource,
    GlobalSettings,
    ManagementService,
    OcspInfo,
    PrivateParameters,
    SharedParameters,
)
from crossroad.globalconf.privateparams import render_private_parameters
from crossroad.identifiers import ClientId
from crossroad.signer.manager import SignerSettings
from crossroad.signer.service import DirectoryTrust
from crossroad.trust.service import TrustServices

from .conftest import FIVRK, MEMBER, message_parts, running_signer, verify_signed
from .test_signing import ready_member

pytestmark = pytest.mark.integration


def write_globalconf(root: Path, services: TrustServices) -> None:
    """A configuration directory for instance DEV approving the running test CA."""
    ca = CaInfo(
        services.ca_cert.public_bytes(Encoding.DER),
        (OcspInfo(services.ocsp_url, services.ocsp_cert.public_bytes(Encoding.DER)),),
    )
    shared = SharedParameters(
        instance_identifier="DEV",
        global_settings=GlobalSettings(600),
        sources=(ConfigurationSource("cs"),),
        approved_cas=(ApprovedCAInfo("Test CA", ca, FIVRK),),
    )
    d = root / "DEV"
    d.mkdir(parents=True)
    (root / "instance-identifier").write_text("DEV\n")
    meta = {
        "contentIdentifier": "SHARED-PARAMETERS",
        "instanceIdentifier": "DEV",
        "expirationDate": "2099-01-01T00:00:00Z",
        "configurationVersion": "3",
    }
    (d / "shared-params.xml").write_bytes(shared.render(3))
    (d / "shared-params.xml.metadata").write_text(json.dumps(meta))
    private = PrivateParameters(
        "DEV", ManagementService("http://cs:4001", ClientId("DEV", "GOV", "1")), 60
    )
    (d / "private-params.xml").write_bytes(render_private_parameters(private))
    (d / "private-params.xml.metadata").write_text(
        json.dumps({**meta, "contentIdentifier": "PRIVATE-PARAMETERS"})
    )


def test_directory_trust_drives_ocsp_and_signing(
    tmp_path: Path, trust_services: TrustServices
) -> None:
    conf = tmp_path / "globalconf"
    trust = DirectoryTrust(conf, reload_seconds=0)
    assert trust() is None  # no configuration downloaded yet: nothing trusted
    write_globalconf(conf, trust_services)
    policy = trust()
    assert policy is not None
    assert policy.instance == "DEV"
    assert policy.ocsp_freshness_seconds == 600
    assert [c.top_ca for c in policy.cas] == [trust_services.ca_cert]
    assert trust.fetch_interval is not None

    async def main() -> None:
        settings = SignerSettings(ocsp_interval=3600, ocsp_retry=0.05)
        async with running_signer(tmp_path / "s", trust=trust, settings=settings) as signer:
            await ready_member(signer, trust_services)
            parts, files = message_parts(3, attachments=1)
            signed = await signer.sign(MEMBER, parts)
            verify_signed(signed, files, policy)

    asyncio.run(main())
