"""Management API routes of the distribution side: configuration sources, their signing keys and
anchors, and the outcome of the last generation (protocols.md §5.1–5.3, §11.1).

NIIS's resource names, under ``/api/v1`` (included by :mod:`crossroad.central.api`):
``/configuration-sources/{internal|external}`` (``/anchor``, ``/anchor/download``,
``/anchor/re-create``, ``/download-url``, ``/signing-keys``), ``/signing-keys/{id}/activate``,
``DELETE /signing-keys/{id}``, and ``/generation-status``.  Reading needs any valid API key;
changing keys and anchors needs the security officer role.  The routes need the state directory
(key files, public directory), which the API receives as ``app.state.config``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from crossroad.central import server
from crossroad.central.anchor import download_urls
from crossroad.central.api_auth import SECURITY, requires
from crossroad.central.config import CentralConfig
from crossroad.central.keys import KeySource
from crossroad.central.registry import Registry, SigningKeyRecord
from crossroad.crypto.certs import load_certificate
from crossroad.errors import Code, XRoadError

router = APIRouter()
_read = requires()
_security = requires(*SECURITY)
_TAGS: list[str | Any] = ["configuration-sources"]


class Anchor(BaseModel):
    hash: str = Field(description="SHA-224 of the anchor file, upper-case hex pairs")
    created_at: dt.datetime | None = None


class SigningKey(BaseModel):
    key_id: str
    source_type: str
    active: bool
    created_at: dt.datetime | None = None
    subject: str
    node: str


class ConfigurationSource(BaseModel):
    source_type: str
    download_url: str
    anchor: Anchor
    signing_keys: list[SigningKey]


class DownloadUrl(BaseModel):
    url: str


class SigningKeyAdd(BaseModel):
    key_type: str = Field(default="rsa2048", description="rsa2048|3072|4096, ec-p256|384")
    activate: bool = Field(
        default=False, description="Activate at once (clients may not know it yet)"
    )


class GenerationStatus(BaseModel):
    success: bool | None = None
    at: dt.datetime | None = None
    versions: list[int] = []
    timestamp: str | None = None
    expires: dt.datetime | None = None
    error_code: str | None = None
    error: str | None = None


def _state(request: Request, registry: Registry) -> server.CentralState:
    config = request.app.state.config
    if not isinstance(config, CentralConfig):
        raise XRoadError(
            Code.INTERNAL_ERROR, "The management API was started without the state directory"
        )
    return server.CentralState(config, registry.engine, registry)


def _source(configuration_type: str) -> KeySource:
    try:
        return KeySource(configuration_type.strip().lower())
    except ValueError:
        raise XRoadError(
            Code.INVALID_REQUEST, "The configuration type must be INTERNAL or EXTERNAL"
        ) from None


def _key(record: SigningKeyRecord) -> SigningKey:
    return SigningKey(
        key_id=record.key_id,
        source_type=record.source_type.value.upper(),
        active=record.active,
        created_at=record.created_at,
        subject=load_certificate(record.cert).subject.rfc4514_string(),
        node=record.ha_node_name,
    )


def _anchor(state: server.CentralState, source: KeySource) -> Anchor:
    exported = server.export_anchor(state, source)
    return Anchor(hash=exported.hash, created_at=exported.anchor.generated_at)


@router.get("/configuration-sources/{configuration_type}", tags=_TAGS)
def get_configuration_source(
    configuration_type: str, request: Request, reg: Registry = Depends(_read)
) -> ConfigurationSource:
    source = _source(configuration_type)
    state = _state(request, reg)
    return ConfigurationSource(
        source_type=source.value.upper(),
        download_url=download_urls(state.public_address, source)[0],
        anchor=_anchor(state, source),
        signing_keys=[_key(r) for r in reg.signing_keys(source.value)],
    )


@router.get("/configuration-sources/{configuration_type}/anchor", tags=_TAGS)
def get_anchor(configuration_type: str, request: Request, reg: Registry = Depends(_read)) -> Anchor:
    return _anchor(_state(request, reg), _source(configuration_type))


@router.get(
    "/configuration-sources/{configuration_type}/anchor/download",
    tags=_TAGS,
    response_class=Response,
    responses={200: {"content": {"application/xml": {}}}},
)
def download_anchor(
    configuration_type: str, request: Request, reg: Registry = Depends(_read)
) -> Response:
    source = _source(configuration_type)
    exported = server.export_anchor(_state(request, reg), source)
    name = f"configuration_anchor_{source.value}.xml"
    return Response(
        exported.data,
        media_type="application/xml",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.put("/configuration-sources/{configuration_type}/anchor/re-create", tags=_TAGS)
def recreate_anchor(
    configuration_type: str, request: Request, reg: Registry = Depends(_security)
) -> Anchor:
    """Regenerate the anchor now, even if nothing in it changed (a new ``generatedAt``)."""
    source = _source(configuration_type)
    state = _state(request, reg)
    exported = server.export_anchor(state, source, force=True)
    return Anchor(hash=exported.hash, created_at=exported.anchor.generated_at)


@router.get("/configuration-sources/{configuration_type}/download-url", tags=_TAGS)
def get_download_url(
    configuration_type: str, request: Request, reg: Registry = Depends(_read)
) -> DownloadUrl:
    state = _state(request, reg)
    return DownloadUrl(url=download_urls(state.public_address, _source(configuration_type))[0])


@router.get("/configuration-sources/{configuration_type}/signing-keys", tags=_TAGS)
def list_signing_keys(configuration_type: str, reg: Registry = Depends(_read)) -> list[SigningKey]:
    return [_key(r) for r in reg.signing_keys(_source(configuration_type).value)]


@router.post(
    "/configuration-sources/{configuration_type}/signing-keys", status_code=201, tags=_TAGS
)
def add_signing_key(
    configuration_type: str,
    request: Request,
    body: SigningKeyAdd | None = None,
    reg: Registry = Depends(_security),
) -> SigningKey:
    """Generate a signing key; it is inactive (unless it is the source's first or ``activate``)
    so that clients learn it from shared parameters and the anchor before it signs."""
    wanted = body or SigningKeyAdd()
    record = server.add_signing_key(
        _state(request, reg),
        _source(configuration_type),
        key_type=wanted.key_type,
        activate=True if wanted.activate else None,
    )
    return _key(record)


@router.put("/signing-keys/{key_id}/activate", tags=_TAGS)
def activate_signing_key(
    key_id: str, request: Request, reg: Registry = Depends(_security)
) -> SigningKey:
    return _key(server.activate_signing_key(_state(request, reg), key_id.strip().upper()))


@router.delete("/signing-keys/{key_id}", status_code=204, tags=_TAGS)
def delete_signing_key(
    key_id: str, request: Request, reg: Registry = Depends(_security)
) -> Response:
    server.delete_signing_key(_state(request, reg), key_id.strip().upper())
    return Response(status_code=204)


@router.get("/generation-status", tags=_TAGS)
def generation_status(request: Request, reg: Registry = Depends(_read)) -> GenerationStatus:
    """The outcome of the last generation cycle (all fields empty before the first)."""
    state = _state(request, reg)
    found = server.read_status(state.config.state_dir)
    return GenerationStatus.model_validate(found or {})
