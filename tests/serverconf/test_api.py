"""The management REST API with FastAPI's TestClient: auth, roles, resources, errors, OpenAPI."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from crossroad.errors import Code, XRoadError
from crossroad.serverconf.api import create_app, fetch_url, http_status, parse_api_key
from crossroad.serverconf.store import Role, ServerConfStore
from crossroad.storage.engine import create_engine

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

P = "/api/v1"
PROV = "EE:GOV:1:prov"


class Api:
    def __init__(self, client: TestClient, keys: dict[str, str]) -> None:
        self.client = client
        self.keys = keys

    def call(self, method: str, path: str, role: str = "admin", **kw):  # type: ignore[no-untyped-def]
        headers = {"Authorization": f"X-Road-ApiKey token={self.keys[role]}"}
        return self.client.request(method, P + path, headers=headers, **kw)


@pytest.fixture
def api(tmp_path: Path, vectors: Path) -> Iterator[Api]:
    engine = create_engine(f"sqlite:///{tmp_path / 'api.db'}")
    store = ServerConfStore(engine)
    keys = {
        "admin": store.create_api_key(
            "admin",
            [Role.SYSTEM_ADMINISTRATOR, Role.SERVICE_ADMINISTRATOR, Role.REGISTRATION_OFFICER],
        )[1],
        "observer": store.create_api_key("observer", [Role.OBSERVER])[1],
        "services": store.create_api_key("services", [Role.SERVICE_ADMINISTRATOR])[1],
    }
    docs = {
        "http://h/wsdl": (vectors / "metaservice" / "wsdl.wsdl").read_bytes(),
        "http://h/petstore.yaml": (vectors / "metaservice" / "petstore.yaml").read_bytes(),
    }

    def fetch(url: str) -> bytes:
        if url not in docs:
            raise XRoadError(Code.NETWORK_ERROR, f"cannot read {url}")
        return docs[url]

    with TestClient(create_app(store, fetch=fetch)) as client:
        yield Api(client, keys)
    engine.dispose()


def _setup(api: Api) -> None:
    body = {
        "owner_member_class": "GOV",
        "owner_member_code": "1",
        "security_server_code": "ss1",
        "instance_identifier": "EE",
    }
    assert api.call("POST", "/initialization", json=body).status_code == 201
    r = api.call(
        "POST",
        "/clients",
        json={"client": {"member_class": "GOV", "member_code": "1", "subsystem_code": "prov"}},
    )
    assert r.status_code == 201


def test_authentication(api: Api) -> None:
    c = api.client
    for headers in (
        {},
        {"Authorization": "Bearer x"},
        {"Authorization": "X-Road-ApiKey token="},
        {"Authorization": "X-Road-ApiKey token=wrong"},
    ):
        r = c.get(f"{P}/clients", headers=headers)
        assert r.status_code == 401
        assert r.json()["error"]["code"] == Code.API_KEY_INVALID
    ok = {"Authorization": f"x-road-apikey  TOKEN={api.keys['observer']}"}
    assert c.get(f"{P}/clients", headers=ok).status_code == 200


def test_roles(api: Api) -> None:
    _setup(api)
    r = api.call(
        "POST", "/clients", "observer", json={"client": {"member_class": "GOV", "member_code": "2"}}
    )
    assert r.status_code == 403
    assert r.json()["error"]["code"] == Code.PERMISSION_DENIED
    # a service administrator manages descriptions but not clients
    r = api.call(
        "POST", "/clients", "services", json={"client": {"member_class": "GOV", "member_code": "2"}}
    )
    assert r.status_code == 403
    r = api.call(
        "POST",
        f"/clients/{PROV}/service-descriptions",
        "services",
        json={"url": "http://x/api", "type": "REST", "rest_service_code": "api"},
    )
    assert r.status_code == 201
    assert api.call("GET", f"/clients/{PROV}", "observer").status_code == 200
    assert api.call("GET", "/api-keys", "observer").status_code == 403


def test_clients(api: Api) -> None:
    r = api.call("POST", "/clients", json={"client": {"member_class": "GOV", "member_code": "2"}})
    assert r.json()["error"]["code"] == Code.SERVER_NOT_INITIALIZED
    _setup(api)
    clients = api.call("GET", "/clients").json()
    assert {c["id"] for c in clients} == {"EE:GOV:1", PROV}
    owner = next(c for c in clients if c["id"] == "EE:GOV:1")
    assert owner["owner"] is True
    assert owner["status"] == "SAVED"
    assert owner["connection_type"] == "HTTPS"
    assert [c["id"] for c in api.call("GET", "/clients?show_members=false").json()] == [PROV]
    r = api.call("PATCH", f"/clients/{PROV}", json={"connection_type": "HTTP"})
    assert r.json()["connection_type"] == "HTTP"
    assert api.call("PUT", f"/clients/{PROV}/register").status_code == 204
    assert api.call("GET", f"/clients/{PROV}").json()["status"] == "REGISTRATION_IN_PROGRESS"
    r = api.call(
        "POST",
        "/clients",
        json={"client": {"member_class": "GOV", "member_code": "1", "subsystem_code": "prov"}},
    )
    assert (r.status_code, r.json()["error"]["code"]) == (409, Code.CLIENT_ALREADY_EXISTS)
    r = api.call("GET", "/clients/EE:GOV:404")
    assert (r.status_code, r.json()["error"]["code"]) == (404, Code.CLIENT_NOT_FOUND)
    r = api.call("GET", "/clients/EE:GOV")
    assert (r.status_code, r.json()["error"]["code"]) == (400, Code.INVALID_CLIENT_IDENTIFIER)
    r = api.call("DELETE", "/clients/EE:GOV:1")
    assert r.json()["error"]["code"] == Code.CANNOT_DELETE_OWNER
    assert api.call("DELETE", f"/clients/{PROV}").status_code == 204


def test_tls_certificates(api: Api, pki) -> None:  # type: ignore[no-untyped-def]
    _setup(api)
    pem = pki.ca.cert.public_bytes(Encoding.PEM)
    r = api.call("POST", f"/clients/{PROV}/tls-certificates", content=pem)
    assert r.status_code == 201
    digest = r.json()["hash"]
    assert api.call("GET", f"/clients/{PROV}/tls-certificates").json()[0]["hash"] == digest
    assert api.call("GET", f"/clients/{PROV}/tls-certificates/{digest}").status_code == 200
    assert api.call("POST", f"/clients/{PROV}/tls-certificates", content=pem).status_code == 409
    r = api.call("POST", f"/clients/{PROV}/tls-certificates", content=b"not a cert")
    assert (r.status_code, r.json()["error"]["code"]) == (400, Code.INVALID_CERTIFICATE)
    assert api.call("DELETE", f"/clients/{PROV}/tls-certificates/{digest}").status_code == 204
    assert api.call("GET", f"/clients/{PROV}/tls-certificates/{digest}").status_code == 404


def test_descriptions_services_and_access(api: Api) -> None:
    _setup(api)
    r = api.call(
        "POST",
        f"/clients/{PROV}/service-descriptions",
        json={"url": "http://h/wsdl", "type": "WSDL"},
    )
    assert r.status_code == 201
    wsdl = r.json()
    assert wsdl["disabled"] is True
    assert {s["id"] for s in wsdl["services"]} == {
        f"{PROV}:getRandom.v1",
        f"{PROV}:helloService.v1",
    }
    r = api.call(
        "POST",
        f"/clients/{PROV}/service-descriptions",
        json={"url": "http://h/petstore.yaml", "type": "OPENAPI3", "rest_service_code": "pets"},
    )
    assert r.status_code == 201
    pets = r.json()["services"][0]
    assert {(e["method"], e["path"]) for e in pets["endpoints"]} >= {
        ("*", "**"),
        ("GET", "/pets/*"),
    }
    r = api.call(
        "POST",
        f"/clients/{PROV}/service-descriptions",
        json={"url": "http://h/petstore.yaml", "type": "OPENAPI3"},
    )
    assert r.json()["error"]["code"] == Code.MISSING_PARAMETER
    r = api.call(
        "POST",
        f"/clients/{PROV}/service-descriptions",
        json={"url": "http://h/none", "type": "WSDL"},
    )
    assert (r.status_code, r.json()["error"]["code"]) == (500, Code.NETWORK_ERROR)
    r = api.call(
        "POST", f"/clients/{PROV}/service-descriptions", json={"url": "http://h/x", "type": "SOAP"}
    )
    assert (r.status_code, r.json()["error"]["code"]) == (400, Code.VALIDATION_FAILURE)

    sid = wsdl["id"]
    assert api.call("PUT", f"/service-descriptions/{sid}/enable").status_code == 204
    assert api.call("GET", f"/service-descriptions/{sid}").json()["disabled"] is False
    r = api.call("PUT", f"/service-descriptions/{sid}/disable", json={"disabled_notice": "Later"})
    assert r.status_code == 204
    assert api.call("GET", f"/service-descriptions/{sid}").json()["disabled_notice"] == "Later"
    assert api.call("PUT", f"/service-descriptions/{sid}/refresh").status_code == 200
    assert len(api.call("GET", f"/service-descriptions/{sid}/services").json()) == 2

    r = api.call(
        "PATCH",
        f"/services/{PROV}:getRandom.v1",
        json={"url": "http://is/soap", "timeout": 20, "ssl_auth": False, "timeout_all": True},
    )
    assert (r.json()["url"], r.json()["timeout"], r.json()["ssl_auth"]) == (
        "http://is/soap",
        20,
        False,
    )
    assert api.call("GET", f"/services/{PROV}:helloService.v1").json()["timeout"] == 20
    r = api.call("PATCH", f"/services/{PROV}:getRandom.v1", json={"timeout": 5000})
    assert r.status_code == 400

    # service-level rights go to the base endpoint
    items = {
        "items": [
            {"id": "EE:COM:2:cons", "service_client_type": "SUBSYSTEM"},
            {"id": "EE:security-server-owners"},
        ]
    }
    r = api.call("POST", f"/services/{PROV}:getRandom.v1/service-clients", json=items)
    assert r.status_code == 201
    assert {c["service_client_type"] for c in r.json()} == {"SUBSYSTEM", "GLOBALGROUP"}
    r = api.call("POST", f"/services/{PROV}:getRandom.v1/service-clients", json=items)
    assert (r.status_code, r.json()["error"]["code"]) == (409, Code.DUPLICATE_ACCESSRIGHT)
    r = api.call("GET", f"/clients/{PROV}/service-clients/EE:COM:2:cons/access-rights")
    assert [x["service_code"] for x in r.json()] == ["getRandom"]
    r = api.call(
        "POST",
        f"/clients/{PROV}/service-clients/EE:COM:2:cons/access-rights",
        json={"items": [{"service_code": "helloService"}]},
    )
    assert {x["service_code"] for x in r.json()} == {"getRandom", "helloService"}
    r = api.call(
        "POST",
        f"/clients/{PROV}/service-clients/EE:COM:2:cons/access-rights/delete",
        json={"items": [{"service_code": "helloService"}]},
    )
    assert r.status_code == 204
    r = api.call(
        "POST",
        f"/services/{PROV}:getRandom.v1/service-clients/delete",
        json={"items": [{"id": "EE:security-server-owners"}]},
    )
    assert r.status_code == 204
    assert len(api.call("GET", f"/services/{PROV}:getRandom.v1/service-clients").json()) == 1

    # endpoints and endpoint-level rights with a local group
    r = api.call(
        "POST", f"/clients/{PROV}/local-groups", json={"code": "g1", "description": "Group one"}
    )
    assert r.status_code == 201
    gid = r.json()["id"]
    r = api.call("POST", f"/local-groups/{gid}/members", json={"items": ["EE:COM:3:x"]})
    assert r.status_code == 201
    assert api.call("GET", f"/local-groups/{gid}").json()["member_count"] == 1
    r = api.call(
        "POST", f"/services/{PROV}:pets/endpoints", json={"method": "DELETE", "path": "/pets/*"}
    )
    assert r.status_code == 201
    eid = r.json()["id"]
    assert r.json()["generated"] is False
    r = api.call(
        "POST",
        f"/endpoints/{eid}/service-clients",
        json={"items": [{"id": gid, "service_client_type": "LOCALGROUP"}]},
    )
    assert r.status_code == 201
    assert r.json()[0]["local_group_code"] == "g1"
    r = api.call("PATCH", f"/endpoints/{eid}", json={"method": "PUT", "path": "/pets/**"})
    assert (r.json()["method"], r.json()["path"]) == ("PUT", "/pets/**")
    clients = api.call("GET", f"/clients/{PROV}/service-clients").json()
    assert {c["service_client_type"] for c in clients} == {"SUBSYSTEM", "LOCALGROUP"}
    assert api.call("DELETE", f"/endpoints/{eid}").status_code == 204
    assert api.call("GET", f"/endpoints/{eid}").status_code == 404
    assert api.call("DELETE", f"/local-groups/{gid}").status_code == 204
    assert api.call("DELETE", f"/service-descriptions/{sid}").status_code == 204
    r = api.call("GET", f"/services/{PROV}:getRandom.v1")
    assert (r.status_code, r.json()["error"]["code"]) == (404, Code.SERVICE_NOT_FOUND)


def test_api_keys_resource(api: Api) -> None:
    r = api.call("POST", "/api-keys", json=["XROAD_SECURITYSERVER_OBSERVER"])
    assert r.status_code == 200
    new = r.json()
    assert new["roles"] == ["securityserver_observer"]
    headers = {"Authorization": f"X-Road-ApiKey token={new['key']}"}
    assert api.client.get(f"{P}/api-keys/current", headers=headers).json()["id"] == new["id"]
    r = api.call("POST", "/api-keys", json={"name": "x", "roles": ["root"]})
    assert r.json()["error"]["code"] == Code.INVALID_ROLE
    assert len(api.call("GET", "/api-keys").json()) == 4
    assert api.call("DELETE", f"/api-keys/{new['id']}").status_code == 200
    assert api.client.get(f"{P}/api-keys/current", headers=headers).status_code == 401


def test_openapi_document(api: Api) -> None:
    doc = api.client.get(f"{P}/openapi.json").json()
    for path in (
        "/api/v1/clients",
        "/api/v1/clients/{client_id}/service-descriptions",
        "/api/v1/services/{service_id}/service-clients",
        "/api/v1/endpoints/{endpoint_id}/service-clients",
        "/api/v1/local-groups/{group_id}/members",
        "/api/v1/service-descriptions/{description_id}/refresh",
    ):
        assert path in doc["paths"]


def test_helpers() -> None:
    assert parse_api_key("X-Road-ApiKey token=abc") == "abc"
    assert parse_api_key("X-Road-ApiKey abc") is None
    assert parse_api_key(None) is None
    assert http_status("server.client_not_found") == 404
    assert http_status(Code.URL_ALREADY_EXISTS) == 409
    assert http_status(Code.INVALID_WSDL) == 400
    with pytest.raises(XRoadError, match=Code.INVALID_URL):
        fetch_url("file:///etc/passwd")
