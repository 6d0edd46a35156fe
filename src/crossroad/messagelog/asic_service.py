"""Signed-document download on the client proxy: ``GET /asic`` and ``GET /verificationconf``
(protocols.md §9.4, UG-SIGDOC; NIIS ``AsicContainerClientRequestProcessor``).

``GET /asic?queryId=…&xRoadInstance=…&memberClass=…&memberCode=…[&subsystemCode=…]
[&requestOnly|&responseOnly][&unique][&force]`` answers with the containers of the records of
``queryId`` whose local client is the one named: ``{queryId}[-request|-response].zip``
(``application/zip``) holding ``{queryId}-request|response-{id base 32}.asice`` entries, or with
``unique`` (and ``requestOnly`` or ``responseOnly``) the one container
(``application/vnd.etsi.asic-e+zip``).  Only the information system entitled to the documents
gets them: the caller's connection must satisfy the named client's IS connection type, checked
by the ``authenticate`` callable the proxy hands over (its own check, so the rules are one).

Errors are plain text, with NIIS's statuses and messages, checked in NIIS's order: 400 for a
missing parameter or ``requestOnly`` with ``responseOnly``; 401 when the caller is not the
client's information system (or the client is unknown here, as NIIS answers); 404 ``No signed
documents found``; 500 ``Message signature has not been timestamped yet!`` unless ``force``
has them stamped now (500 ``Could not create missing timestamp!`` when that fails); 400 for
``unique`` alone.  (UG-SIGDOC lists 404 for "not time-stamped yet"; NIIS's code answers 500,
and so do we.)

``GET /verificationconf`` answers ``verificationconf.zip``: the shared parameters of every
instance of the global configuration with their ``.metadata`` and ``instance-identifier`` under
``verificationconf/``, which ``crossroad verify --globalconf`` (and NIIS's asicverifier) read.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import inspect
import io
import json
import logging
import zipfile
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from crossroad.crypto.asic import MIMETYPE
from crossroad.errors import Code, XRoadError
from crossroad.globalconf.directory import (
    INSTANCE_IDENTIFIER_FILE,
    METADATA_SUFFIX,
    SHARED_PARAMS_FILE,
    Metadata,
)
from crossroad.identifiers import ClientId
from crossroad.messagelog.manager import MessageLog
from crossroad.messagelog.records import StoredRecord, container_name, escape_query_id, from_ms

log = logging.getLogger(__name__)

ASIC_PATH = "/asic"
VERIFICATIONCONF_PATH = "/verificationconf"
PATHS = (ASIC_PATH, VERIFICATIONCONF_PATH)

NOT_FOUND = "No signed documents found"
NOT_STAMPED = "Message signature has not been timestamped yet!"
STAMPING_FAILED = "Could not create missing timestamp!"
BOTH_ONLY = 'Parameters "requestOnly" and "responseOnly" cannot be used at the same time.'
UNIQUE_ALONE = 'Parameter "unique" not applicable without "requestOnly" or "responseOnly".'

Authenticate = Callable[[web.Request, ClientId], Awaitable[None] | None]


class HttpError(Exception):
    """A plain-text error answer."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class AsicQuery:
    """The parameters of one ``/asic`` request."""

    query_id: str
    client: ClientId
    response: bool | None  # None: requests and responses
    unique: bool
    force: bool

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> AsicQuery:
        """Parameters as NIIS reads them (a flag counts when present, whatever its value)."""

        def required(name: str) -> str:
            value = params.get(name)
            if value is None:
                raise HttpError(400, Code.BAD_REQUEST, f'Parameter "{name}"  must be specified.')
            return value

        query_id = required("queryId")
        instance = required("xRoadInstance")
        member_class = required("memberClass")
        member_code = required("memberCode")
        subsystem = params.get("subsystemCode")
        try:
            client = ClientId(instance, member_class, member_code, subsystem).validate()
        except XRoadError as err:
            raise HttpError(400, Code.BAD_REQUEST, err.detail) from err
        request_only = "requestOnly" in params
        response_only = "responseOnly" in params
        if request_only and response_only:
            raise HttpError(400, Code.BAD_REQUEST, BOTH_ONLY)
        response = True if response_only else False if request_only else None
        return cls(query_id, client, response, "unique" in params, "force" in params)


def _plain(status: int, text: str, code: str | None = None) -> web.Response:
    headers = {"X-Road-Error": code} if code else None
    return web.Response(
        status=status, text=text, content_type="text/plain", charset="utf-8", headers=headers
    )


def _disposition(filename: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{filename}"'}


class SignedDocuments:
    """The ``/asic`` and ``/verificationconf`` handlers of one client proxy."""

    def __init__(
        self,
        mlog: MessageLog,
        *,
        conf_dir: Path | Callable[[], Path | None] | None = None,
        authenticate: Authenticate | None = None,
    ) -> None:
        self.mlog = mlog
        self._conf_dir = conf_dir
        self.authenticate = authenticate

    @staticmethod
    def handles(request: web.Request) -> bool:
        """Whether ``request`` is one of ours (the client proxy routes it here)."""
        return request.method == "GET" and request.path in PATHS

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        if request.path == VERIFICATIONCONF_PATH:
            return await self.verificationconf(request)
        return await self.asic(request)

    def app(self) -> web.Application:
        """A standalone application with both routes (tests, or mounting as a sub-app)."""
        app = web.Application()
        app.router.add_get(ASIC_PATH, self.asic)
        app.router.add_get(VERIFICATIONCONF_PATH, self.verificationconf)
        return app

    # -- /asic ----------------------------------------------------------------------------

    async def asic(self, request: web.Request) -> web.StreamResponse:
        try:
            return await self._asic(request)
        except HttpError as err:
            return _plain(err.status, err.detail, err.code)
        except XRoadError as err:
            log.warning("signed-document download failed: %s", err)
            return _plain(500, err.detail, err.code)
        except Exception as exc:
            log.exception("signed-document download failed")
            return _plain(500, f"{type(exc).__name__}: {exc}", Code.INTERNAL_ERROR)

    async def _asic(self, request: web.Request) -> web.StreamResponse:
        query = AsicQuery.parse(request.query)
        await self._authenticate(request, query.client)
        store = self.mlog.store
        records = await asyncio.to_thread(store.find, query.query_id, query.client, query.response)
        if not records:
            raise HttpError(404, Code.NOT_FOUND, NOT_FOUND)
        unstamped = [r.id for r in records if not r.stamped]
        if unstamped:
            if not query.force:
                raise HttpError(500, Code.INTERNAL_ERROR, NOT_STAMPED)
            try:
                await self.mlog.timestamper.stamp_records(unstamped)
            except XRoadError as err:
                log.warning("forced time-stamping failed: %s", err)
                raise HttpError(500, Code.INTERNAL_ERROR, STAMPING_FAILED) from err
            records = await asyncio.to_thread(
                store.find, query.query_id, query.client, query.response
            )
            if any(not r.stamped for r in records):
                raise HttpError(500, Code.INTERNAL_ERROR, STAMPING_FAILED)
        if query.unique:
            if query.response is None:
                raise HttpError(400, Code.BAD_REQUEST, UNIQUE_ALONE)
            record = records[0]
            data = await asyncio.to_thread(self._render, record)
            name = container_name(query.query_id, record.record.response, record.id)
            return web.Response(body=data, content_type=MIMETYPE, headers=_disposition(name))
        body = await asyncio.to_thread(self._zip, query.query_id, records)
        suffix = "" if query.response is None else "-response" if query.response else "-request"
        filename = f"{escape_query_id(query.query_id)}{suffix}.zip"
        return web.Response(
            body=body, content_type="application/zip", headers=_disposition(filename)
        )

    async def _authenticate(self, request: web.Request, client: ClientId) -> None:
        if self.authenticate is None:
            return
        try:
            result = self.authenticate(request, client)
            if inspect.isawaitable(result):
                await result
        except XRoadError as err:
            raise HttpError(401, err.code, err.detail) from err

    def _render(self, record: StoredRecord) -> bytes:
        return self.mlog.store.container(record).render()

    def _zip(self, query_id: str, records: list[StoredRecord]) -> bytes:
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:
            for record in records:
                name = container_name(query_id, record.record.response, record.id)
                when = from_ms(record.record.time_ms)
                info = zipfile.ZipInfo(name, date_time=_zip_time(when))
                zf.writestr(info, self._render(record))
        return out.getvalue()

    # -- /verificationconf ----------------------------------------------------------------

    def conf_dir(self) -> Path | None:
        source = self._conf_dir
        return source() if callable(source) else source

    async def verificationconf(self, request: web.Request) -> web.StreamResponse:
        try:
            directory = self.conf_dir()
            if directory is None:
                raise XRoadError(Code.INTERNAL_ERROR, "No global configuration directory")
            body = await asyncio.to_thread(verification_conf_zip, directory)
        except XRoadError as err:
            return _plain(500, err.detail, err.code)
        except OSError as exc:
            return _plain(500, f"Cannot read the global configuration: {exc}", Code.IO_ERROR)
        return web.Response(
            body=body,
            content_type="application/zip",
            headers={"Content-Disposition": 'filename="verificationconf.zip"'},
        )


def _zip_time(when: dt.datetime) -> tuple[int, int, int, int, int, int]:
    when = when.astimezone(dt.UTC)
    return (max(when.year, 1980), when.month, when.day, when.hour, when.minute, when.second)


def verification_conf_zip(directory: Path) -> bytes:
    """``verificationconf.zip`` of a configuration directory (read through its symlink)."""
    root = Path(directory).resolve()
    instance_file = root / INSTANCE_IDENTIFIER_FILE
    if not instance_file.is_file():
        raise XRoadError(
            Code.GLOBAL_CONF_MISSING_INSTANCE_IDENTIFIER,
            f"Global configuration directory {directory} has no {INSTANCE_IDENTIFIER_FILE}",
        )
    out = io.BytesIO()
    prefix = "verificationconf/"
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for child in sorted(p for p in root.iterdir() if p.is_dir()):
            shared = child / SHARED_PARAMS_FILE
            if not shared.is_file():
                continue
            version = 2
            meta = child / (SHARED_PARAMS_FILE + METADATA_SUFFIX)
            if meta.is_file():
                with contextlib.suppress(XRoadError):  # unreadable metadata: the default
                    version = Metadata.parse(meta.read_bytes()).configuration_version
            zf.writestr(f"{prefix}{child.name}/{SHARED_PARAMS_FILE}", shared.read_bytes())
            zf.writestr(
                f"{prefix}{child.name}/{SHARED_PARAMS_FILE}{METADATA_SUFFIX}",
                json.dumps({"configurationVersion": str(version)}),
            )
        zf.writestr(f"{prefix}{INSTANCE_IDENTIFIER_FILE}", instance_file.read_bytes())
    return out.getvalue()
