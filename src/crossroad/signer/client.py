"""The async client of the signer process, used by the proxies and the CLI.

:class:`SignerClient` speaks :mod:`crossroad.signer.protocol` over the signer's unix socket
with one pooled aiohttp session.  Every call has the signer timeout (60 s, protocols.md
§12.1).  Failures are :class:`~crossroad.errors.XRoadError` with ``signer.`` codes: those the
signer reports (``signer.token_not_active``, ``signer.key_not_found``, ...), and
``signer.network_error`` when it cannot be reached or does not answer in time.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp
from cryptography import x509

from crossroad.crypto.algorithms import SHA512, DigestAlgorithm
from crossroad.crypto.certs import load_certificate
from crossroad.crypto.xades import MessagePart, SignedMessage
from crossroad.errors import PREFIX_SIGNER, Code, XRoadError
from crossroad.identifiers import ClientId, SecurityServerId
from crossroad.signer import protocol
from crossroad.signer.tokens import SOFTWARE_TOKEN_ID

_UNREACHABLE = f"{PREFIX_SIGNER}.{Code.NETWORK_ERROR}"


class SignerClient:
    """Calls to the signer at ``socket_path``.  Use as ``async with SignerClient(path) as c``."""

    def __init__(self, socket_path: str | Path, *, timeout: float = protocol.TIMEOUT) -> None:
        self.socket_path = str(socket_path)
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> SignerClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.UnixConnector(path=self.socket_path, limit=0),
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            )
        return self._session

    async def call(self, method: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """One protocol call; the answer's JSON object, or the signer's error raised."""
        try:
            async with self._client().post(f"http://signer/{method}", json=body or {}) as resp:
                try:
                    data = await resp.json(content_type=None)
                except ValueError:
                    data = None
                if resp.status != 200:
                    raise protocol.error_from_body(data, resp.status)
                if not isinstance(data, dict):
                    raise XRoadError(
                        f"{PREFIX_SIGNER}.{Code.INTERNAL_ERROR}", "The signer answered no object"
                    )
                return data
        except TimeoutError as exc:
            raise XRoadError(
                _UNREACHABLE, f"The signer did not answer {method} within {self.timeout:g} s"
            ) from exc
        except aiohttp.ClientError as exc:
            raise XRoadError(
                _UNREACHABLE, f"The signer at {self.socket_path} is unreachable: {exc}"
            ) from exc

    # -- signing -----------------------------------------------------------------------

    async def sign(
        self, member: ClientId, parts: Sequence[MessagePart], digest: DigestAlgorithm = SHA512
    ) -> SignedMessage:
        """Sign a message's parts (``/message.xml`` first) as ``member``'s member."""
        body = {
            "member": str(member.member_id()),
            "digest": digest.name,
            "parts": protocol.encode_parts(parts, digest),
        }
        return protocol.decode_signed(await self.call("sign", body))

    async def member_cert(self, member: ClientId) -> x509.Certificate:
        """The certificate the member's messages are signed with now."""
        data = await self.call("member_cert", {"member": str(member.member_id())})
        return load_certificate(protocol.unb64(data["cert"]["der"], "der"))

    async def ocsp_responses(self, cert_hashes: Sequence[str]) -> list[bytes | None]:
        """Good, fresh OCSP responses for own certificates by SHA-1 hex (None: none usable)."""
        data = await self.call("ocsp_responses", {"hashes": list(cert_hashes)})
        return [None if r is None else base64.b64decode(r) for r in data["responses"]]

    async def auth_key(self) -> tuple[bytes, x509.Certificate, list[x509.Certificate], list[bytes]]:
        """(PKCS#8 PEM key, certificate, intermediate CA certs, OCSP responses) for TLS."""
        data = await self.call("auth_key")
        cert = load_certificate(protocol.unb64(data["cert"], "cert"))
        chain = [load_certificate(protocol.unb64(c, "chain")) for c in data.get("chain", [])]
        ocsp = [protocol.unb64(r, "ocsp") for r in data.get("ocsp", [])]
        return data["key_pem"].encode("ascii"), cert, chain, ocsp

    # -- administration ----------------------------------------------------------------

    async def status(self) -> dict[str, Any]:
        return await self.call("status")

    async def list_tokens(self) -> list[dict[str, Any]]:
        return list((await self.call("list_tokens"))["tokens"])

    async def list_keys(self) -> list[dict[str, Any]]:
        return list((await self.call("list_keys"))["keys"])

    async def login(self, token: str, pin: str) -> dict[str, Any]:
        return dict((await self.call("login", {"token": token, "pin": pin}))["token"])

    async def logout(self, token: str) -> dict[str, Any]:
        return dict((await self.call("logout", {"token": token}))["token"])

    async def generate_key(
        self,
        token: str = SOFTWARE_TOKEN_ID,
        key_type: str = "rsa2048",
        *,
        label: str = "",
        usage: str | None = None,
        member: ClientId | None = None,
    ) -> dict[str, Any]:
        body = {
            "token": token,
            "key_type": key_type,
            "label": label,
            "usage": usage,
            "member": str(member) if member else None,
        }
        return dict((await self.call("generate_key", body))["key"])

    async def delete_key(self, key_id: str) -> None:
        await self.call("delete_key", {"key": key_id})

    async def generate_csr(
        self,
        key_id: str,
        usage: str,
        *,
        member: ClientId | None = None,
        server: SecurityServerId | None = None,
        profile: str | None = None,
        subject: str | None = None,
        org_name: str | None = None,
    ) -> dict[str, Any]:
        """The CSR record; ``der`` (base64) and ``pem`` carry the request."""
        body = {
            "key": key_id,
            "usage": usage,
            "member": str(member) if member else None,
            "server": str(server) if server else None,
            "profile": profile,
            "subject": subject,
            "org_name": org_name,
        }
        return dict((await self.call("generate_csr", body))["csr"])

    async def import_cert(
        self,
        cert: bytes | x509.Certificate,
        *,
        member: ClientId | None = None,
        activate: bool = True,
    ) -> dict[str, Any]:
        if isinstance(cert, x509.Certificate):
            from cryptography.hazmat.primitives.serialization import Encoding

            cert = cert.public_bytes(Encoding.PEM)
        text = cert.decode("ascii") if cert.lstrip().startswith(b"-----") else protocol.b64(cert)
        body = {"cert": text, "member": str(member) if member else None, "activate": activate}
        return dict((await self.call("import_cert", body))["cert"])

    async def activate_cert(self, cert_id: str, active: bool = True) -> dict[str, Any]:
        return dict((await self.call("activate_cert", {"cert": cert_id, "active": active}))["cert"])

    async def delete_cert(self, cert_id: str) -> None:
        await self.call("delete_cert", {"cert": cert_id})

    async def refresh_ocsp(self) -> None:
        await self.call("refresh_ocsp")


async def wait_until_ready(socket_path: str | Path, *, timeout: float = 30.0) -> None:
    """Wait for a signer starting at ``socket_path`` to answer ``status``."""
    deadline = asyncio.get_running_loop().time() + timeout
    async with SignerClient(socket_path, timeout=5.0) as client:
        while True:
            try:
                await client.status()
                return
            except XRoadError:
                if asyncio.get_running_loop().time() > deadline:
                    raise
                await asyncio.sleep(0.05)
