"""An upstream configuration source for the proxy tests: a central server's ``/internalconf``
for V2..V6, signed with ``build_signed_directory``, served by aiohttp on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import socket
from pathlib import Path

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from crossroad.crypto import keys
from crossroad.crypto.algorithms import SHA512_WITH_RSA
from crossroad.globalconf.model import (
    AnchorSource,
    ApprovedCAInfo,
    CaInfo,
    ConfigurationAnchor,
    ConfigurationSource,
    GlobalSettings,
    ManagementService,
    Member,
    MemberClass,
    PrivateParameters,
    SharedParameters,
)
from crossroad.globalconf.privateparams import render_anchor, render_private_parameters
from crossroad.globalconf.signed import DirectoryEntry, build_signed_directory
from crossroad.identifiers import ClientId
from crossroad.testing.pki import rsa_key

COM = MemberClass("COM", "Commercial")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def self_signed(key: rsa.RSAPrivateKey, cn: str) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(dt.datetime(1970, 1, 1, tzinfo=dt.UTC))
        .not_valid_after(dt.datetime(2038, 1, 1, tzinfo=dt.UTC))
        .sign(key, hashes.SHA256())
    )


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.DER)


class Upstream:
    """A central server's internal configuration, every version V2..V6."""

    def __init__(self, instance: str = "DEV") -> None:
        self.instance = instance
        self.key = rsa_key(40)
        self.cert = self_signed(self.key, "internalSigningKey")
        self.announced: list[bytes] = []
        self.members = [Member(COM, "1234", "First member")]
        self.expires_in = 600.0
        self.generation = 0
        self.directories: dict[int, bytes] = {}
        self.files: dict[str, bytes] = {}
        self.port = free_port()
        self.runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/internalconf"

    def anchor(self) -> ConfigurationAnchor:
        return ConfigurationAnchor(self.instance, (AnchorSource(self.url, (der(self.cert),)),))

    def anchor_file(self, directory: Path) -> Path:
        path = directory / f"{self.instance}-anchor.xml"
        path.write_bytes(render_anchor(self.anchor()))
        return path

    def shared(self) -> SharedParameters:
        certs = (der(self.cert), *self.announced)
        return SharedParameters(
            instance_identifier=self.instance,
            global_settings=GlobalSettings(600, (COM,)),
            sources=(ConfigurationSource(f"127.0.0.1:{self.port}", certs, ()),),
            approved_cas=(ApprovedCAInfo("CA", CaInfo(der(self_signed(rsa_key(41), "CA"))), "p"),),
            members=tuple(self.members),
        )

    def private(self) -> PrivateParameters:
        provider = ClientId(self.instance, "COM", "1234", "MANAGEMENT")
        return PrivateParameters(
            self.instance, ManagementService("https://cs:4001/managementservice/", provider), 60
        )

    def entries(self, version: int) -> list[DirectoryEntry]:
        loc = f"/V{version}/{self.generation:04d}"
        private = render_private_parameters(self.private(), 3 if version > 2 else 2)
        return [
            DirectoryEntry(
                "PRIVATE-PARAMETERS", self.instance, f"{loc}/private-params.xml", private
            ),
            DirectoryEntry(
                "SHARED-PARAMETERS",
                self.instance,
                f"{loc}/shared-params.xml",
                self.shared().render(version),
            ),
        ]

    def publish(
        self,
        now: dt.datetime,
        key: rsa.RSAPrivateKey | None = None,
        cert: x509.Certificate | None = None,
    ) -> None:
        self.generation += 1
        signing_key = key or self.key

        def sign(data: bytes) -> bytes:
            return keys.sign(signing_key, SHA512_WITH_RSA, data)

        for version in (2, 3, 4, 5, 6):
            entries = self.entries(version)
            for e in entries:
                self.files[e.location] = e.data
            self.directories[version] = build_signed_directory(
                entries,
                expires=now + dt.timedelta(seconds=self.expires_in),
                version=version,
                signing_cert=cert or self.cert,
                sign=sign,
            )

    async def _directory(self, request: web.Request) -> web.StreamResponse:
        version = int(request.query.get("version", "2"))
        if version not in self.directories:
            raise web.HTTPNotFound()
        return web.Response(body=self.directories[version])

    async def _file(self, request: web.Request) -> web.StreamResponse:
        data = self.files.get(request.path)
        if data is None:
            raise web.HTTPNotFound()
        return web.Response(body=data)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/internalconf", self._directory)
        app.router.add_get("/{tail:.+}", self._file)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None
