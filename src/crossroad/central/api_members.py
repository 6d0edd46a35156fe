"""Management API routes: member classes, members, subsystems and global groups (§11.1), under
NIIS's resource names (``/member-classes``, ``/members``, ``/subsystems``, ``/global-groups``)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response

from crossroad.central.api_auth import REGISTRATION, requires
from crossroad.central.api_models import (
    Client,
    ClientIdModel,
    GlobalGroup,
    GlobalGroupCodeAndDescription,
    GlobalGroupDescription,
    GroupMember,
    MemberAdd,
    MemberClassDescription,
    MemberClassModel,
    MemberName,
    Members,
    SecurityServer,
    SubsystemAdd,
    SubsystemName,
    decode_client,
    decode_member,
    decode_subsystem,
)
from crossroad.central.registry import GlobalGroupRecord, MemberRecord, Registry
from crossroad.identifiers import ClientId

router = APIRouter()
_read = requires()
_write = requires(*REGISTRATION)


def _member(record: MemberRecord) -> Client:
    return Client(client_id=ClientIdModel.of(record.id), member_name=record.name)


def _group(record: GlobalGroupRecord) -> GlobalGroup:
    return GlobalGroup(
        code=record.code,
        description=record.description,
        member_count=len(record.members),
        owners_group=record.owners_group,
        created_at=record.created_at,
        updated_at=record.updated_at,
    )


# --- member classes --------------------------------------------------------------------------


@router.get("/member-classes", tags=["member-classes"])
def list_member_classes(reg: Registry = Depends(_read)) -> list[MemberClassModel]:
    return [MemberClassModel(code=c.code, description=c.description) for c in reg.member_classes()]


@router.post("/member-classes", status_code=201, tags=["member-classes"])
def add_member_class(body: MemberClassModel, reg: Registry = Depends(_write)) -> MemberClassModel:
    added = reg.add_member_class(body.code, body.description)
    return MemberClassModel(code=added.code, description=added.description)


@router.patch("/member-classes/{code}", tags=["member-classes"])
def update_member_class(
    code: str, body: MemberClassDescription, reg: Registry = Depends(_write)
) -> MemberClassModel:
    changed = reg.set_member_class_description(code, body.description)
    return MemberClassModel(code=changed.code, description=changed.description)


@router.delete("/member-classes/{code}", status_code=204, tags=["member-classes"])
def delete_member_class(code: str, reg: Registry = Depends(_write)) -> Response:
    reg.delete_member_class(code)
    return Response(status_code=204)


# --- members ---------------------------------------------------------------------------------


@router.get("/members", tags=["members"])
def list_members(reg: Registry = Depends(_read)) -> list[Client]:
    return [_member(m) for m in reg.members()]


@router.post("/members", status_code=201, tags=["members"])
def add_member(body: MemberAdd, reg: Registry = Depends(_write)) -> Client:
    member = ClientId(
        reg.instance_identifier(), body.member_id.member_class, body.member_id.member_code
    )
    return _member(reg.add_member(member, body.member_name))


@router.get("/members/{member_id}", tags=["members"])
def get_member(member_id: str, reg: Registry = Depends(_read)) -> Client:
    return _member(reg.member(decode_member(member_id)))


@router.patch("/members/{member_id}", tags=["members"])
def rename_member(member_id: str, body: MemberName, reg: Registry = Depends(_write)) -> Client:
    return _member(reg.rename_member(decode_member(member_id), body.member_name))


@router.delete("/members/{member_id}", status_code=204, tags=["members"])
def delete_member(member_id: str, reg: Registry = Depends(_write)) -> Response:
    reg.delete_member(decode_member(member_id))
    return Response(status_code=204)


@router.get("/members/{member_id}/subsystems", tags=["members"])
def list_subsystems(member_id: str, reg: Registry = Depends(_read)) -> list[Client]:
    return [
        Client(client_id=ClientIdModel.of(s.id), subsystem_name=s.name)
        for s in reg.member(decode_member(member_id)).subsystems
    ]


@router.get("/members/{member_id}/owned-servers", tags=["members", "security-servers"])
def owned_servers(member_id: str, reg: Registry = Depends(_read)) -> list[SecurityServer]:
    return [SecurityServer.of(s) for s in reg.security_servers(owner=decode_member(member_id))]


@router.get("/members/{member_id}/global-groups", tags=["members", "global-groups"])
def member_groups(member_id: str, reg: Registry = Depends(_read)) -> list[str]:
    return list(reg.groups_of(decode_member(member_id)))


# --- subsystems ------------------------------------------------------------------------------


@router.post("/subsystems", status_code=201, tags=["subsystems"])
def add_subsystem(body: SubsystemAdd, reg: Registry = Depends(_write)) -> Client:
    sid = body.subsystem_id
    subsystem = ClientId(
        reg.instance_identifier(), sid.member_class, sid.member_code, sid.subsystem_code
    )
    added = reg.add_subsystem(subsystem, body.subsystem_name)
    return Client(client_id=ClientIdModel.of(added.id), subsystem_name=added.name)


@router.patch("/subsystems/{subsystem_id}", tags=["subsystems"])
def rename_subsystem(
    subsystem_id: str, body: SubsystemName, reg: Registry = Depends(_write)
) -> Client:
    changed = reg.rename_subsystem(decode_subsystem(subsystem_id), body.subsystem_name)
    return Client(client_id=ClientIdModel.of(changed.id), subsystem_name=changed.name)


@router.delete("/subsystems/{subsystem_id}", status_code=204, tags=["subsystems"])
def delete_subsystem(subsystem_id: str, reg: Registry = Depends(_write)) -> Response:
    reg.delete_subsystem(decode_subsystem(subsystem_id))
    return Response(status_code=204)


# --- global groups ---------------------------------------------------------------------------


@router.get("/global-groups", tags=["global-groups"])
def list_groups(reg: Registry = Depends(_read)) -> list[GlobalGroup]:
    return [_group(g) for g in reg.global_groups()]


@router.post("/global-groups", status_code=201, tags=["global-groups"])
def add_group(body: GlobalGroupCodeAndDescription, reg: Registry = Depends(_write)) -> GlobalGroup:
    return _group(reg.add_global_group(body.code, body.description))


@router.get("/global-groups/{group_code}", tags=["global-groups"])
def get_group(group_code: str, reg: Registry = Depends(_read)) -> GlobalGroup:
    return _group(reg.global_group(group_code))


@router.patch("/global-groups/{group_code}", tags=["global-groups"])
def update_group(
    group_code: str, body: GlobalGroupDescription, reg: Registry = Depends(_write)
) -> GlobalGroup:
    return _group(reg.set_global_group_description(group_code, body.description))


@router.delete("/global-groups/{group_code}", status_code=204, tags=["global-groups"])
def delete_group(group_code: str, reg: Registry = Depends(_write)) -> Response:
    reg.delete_global_group(group_code)
    return Response(status_code=204)


@router.get("/global-groups/{group_code}/members", tags=["global-groups"])
def group_members(group_code: str, reg: Registry = Depends(_read)) -> list[GroupMember]:
    return [
        GroupMember(client_id=ClientIdModel.of(c)) for c in reg.global_group(group_code).members
    ]


@router.post("/global-groups/{group_code}/members/add", status_code=201, tags=["global-groups"])
def add_group_members(
    group_code: str, body: Members, reg: Registry = Depends(_write)
) -> list[GroupMember]:
    clients = [decode_client(item) for item in body.items]
    with reg.batch():
        for client in clients:
            reg.add_global_group_member(group_code, client)
    return group_members(group_code, reg)


@router.delete(
    "/global-groups/{group_code}/members/{client_id}", status_code=204, tags=["global-groups"]
)
def delete_group_member(
    group_code: str, client_id: str, reg: Registry = Depends(_write)
) -> Response:
    reg.delete_global_group_member(group_code, decode_client(client_id))
    return Response(status_code=204)
