"""Access decisions (protocols.md §4.10, §10.4): order of checks, subjects, endpoints, paths."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crossroad.errors import XRoadError
from crossroad.identifiers import ClientId, GlobalGroupId, ServiceId
from crossroad.serverconf.access import (
    allowed_methods,
    allowed_rest_services,
    check_access,
    check_provider,
    compile_glob,
    glob_matches,
    is_allowed,
    list_methods,
    normalize_path,
    rest_services,
)
from crossroad.serverconf.model import (
    AccessRight,
    Client,
    ClientStatus,
    DescriptionType,
    Endpoint,
    ServerConf,
    Service,
    ServiceDescription,
)

from .conftest import (
    CONSUMER,
    CONSUMER_MEMBER,
    IN_GLOBAL,
    IN_LOCAL,
    PROVIDER,
    STRANGER,
    UNREGISTERED,
    membership,
)

GET_RANDOM = ServiceId(PROVIDER, "getRandom", "v1")
HELLO = ServiceId(PROVIDER, "helloService", "v1")
PETS = ServiceId(PROVIDER, "pets")
API = ServiceId(PROVIDER, "api")


def code_of(conf: ServerConf, client: ClientId, service: ServiceId, **kw: object) -> str | None:
    try:
        check_access(conf, membership, client, service, **kw)  # type: ignore[arg-type]
    except XRoadError as exc:
        return exc.code
    return None


# --- the order of checks ------------------------------------------------------------------------


def test_allowed_soap_call_returns_the_service(conf: ServerConf) -> None:
    entry = check_access(conf, membership, CONSUMER, GET_RANDOM)
    assert entry.service.url == "http://is/soap"
    assert entry.type is DescriptionType.WSDL


@pytest.mark.parametrize(
    ("client", "service", "kwargs", "code"),
    [
        # provider client not registered here (saved) or unknown
        (
            CONSUMER,
            ServiceId(UNREGISTERED, "api"),
            {"method": "GET", "path": "/"},
            "unknown_member",
        ),
        (CONSUMER, ServiceId(STRANGER, "api"), {}, "unknown_member"),
        # service missing; the version is part of the lookup (NIIS matches all of it)
        (CONSUMER, ServiceId(PROVIDER, "nope"), {}, "unknown_service"),
        (CONSUMER, ServiceId(PROVIDER, "getRandom"), {}, "unknown_service"),
        (CONSUMER, ServiceId(PROVIDER, "getRandom", "v2"), {}, "unknown_service"),
        # SOAP service over REST and the reverse
        (CONSUMER, GET_RANDOM, {"method": "GET", "path": "/"}, "service_type"),
        (CONSUMER, PETS, {}, "service_type"),
        (CONSUMER, PETS, {"rest": False}, "service_type"),
        # unknown caller: denied before the disabled check
        (STRANGER, HELLO, {}, "access_denied"),
        (CONSUMER, HELLO, {}, "service_disabled"),
    ],
)
def test_codes_in_provider_order(
    conf: ServerConf, client: ClientId, service: ServiceId, kwargs: dict[str, object], code: str
) -> None:
    assert code_of(conf, client, service, **kwargs) == code


def test_disabled_service_carries_the_notice(conf: ServerConf) -> None:
    with pytest.raises(XRoadError) as err:
        check_access(conf, membership, CONSUMER, HELLO)
    assert "Down for maintenance" in err.value.detail


def test_provider_check_alone(conf: ServerConf) -> None:
    check_provider(conf, PROVIDER)
    with pytest.raises(XRoadError, match="unknown_member"):
        check_provider(conf, UNREGISTERED)


# --- subjects -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("client", "allowed"),
    [
        (CONSUMER_MEMBER, True),  # the MEMBER itself
        (CONSUMER, True),  # its own SUBSYSTEM right
        (CONSUMER_MEMBER.subsystem("other"), False),  # a MEMBER right does not cover subsystems
        (IN_LOCAL, True),  # local group of the provider
        (IN_GLOBAL, False),  # the global group has no right on getRandom
        (STRANGER, False),
    ],
)
def test_soap_subjects(conf: ServerConf, client: ClientId, allowed: bool) -> None:
    assert (code_of(conf, client, GET_RANDOM) is None) is allowed


def test_subsystem_right_does_not_cover_member(conf: ServerConf) -> None:
    # CONSUMER (a subsystem) has rights on pets GET /pets; its member has none.
    assert code_of(conf, CONSUMER, PETS, method="GET", path="/pets") is None
    assert code_of(conf, CONSUMER_MEMBER, PETS, method="GET", path="/pets") == "access_denied"


def test_local_group_of_another_client_does_not_count() -> None:
    other = ClientId("EE", "GOV", "9", "other")
    conf = ServerConf(
        clients=(
            Client(
                PROVIDER,
                ClientStatus.REGISTERED,
                descriptions=(
                    ServiceDescription(
                        1, PROVIDER, DescriptionType.WSDL, "u", (Service("s"),), False
                    ),
                ),
                endpoints=(Endpoint(1, "s"),),
                access_rights=(AccessRight(ClientId("EE", "X", "1"), 1),),
            ),
            Client(other, ClientStatus.REGISTERED),
        )
    )
    assert not is_allowed(conf, membership, IN_LOCAL, ServiceId(PROVIDER, "s"))


def test_global_group_asks_the_callback(conf: ServerConf) -> None:
    asked: list[tuple[ClientId, GlobalGroupId]] = []

    def spy(client: ClientId, group: GlobalGroupId) -> bool:
        asked.append((client, group))
        return membership(client, group)

    assert is_allowed(conf, spy, IN_GLOBAL, PETS, method="DELETE", path="/admin/users/1")
    assert asked
    assert asked[0][0] == IN_GLOBAL
    assert not is_allowed(conf, spy, STRANGER, PETS, method="GET", path="/admin/x")


# --- REST endpoints -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("client", "method", "path", "allowed"),
    [
        (CONSUMER, "GET", "/pets", True),
        (CONSUMER, "get", "/pets", True),  # methods compare case-insensitively
        (CONSUMER, "POST", "/pets", False),
        (CONSUMER, "GET", "/pets/1", False),
        (IN_LOCAL, "GET", "/pets/1", True),  # "*" is one segment
        (IN_LOCAL, "GET", "/pets/1/toys", False),
        (IN_LOCAL, "GET", "/pets/", True),  # an empty segment still matches "*"
        (IN_LOCAL, "PUT", "/pets/1", False),
        (IN_GLOBAL, "PATCH", "/admin/a/b/c", True),  # "*" method, "**" path
        (IN_GLOBAL, "GET", "/admin", False),
        (IN_LOCAL, "GET", "/pets/%31", True),  # percent-decoded before matching
        (IN_LOCAL, "GET", "/pets/./1", True),  # dot segments removed
        (IN_LOCAL, "GET", "/x/../pets/1", True),
        (IN_LOCAL, "GET", "//pets//1", True),  # repeated slashes collapsed
        (IN_LOCAL, "GET", "/pets/1/..", True),  # "/pets/", and "*" may be empty
        (IN_GLOBAL, "GET", "/admin/../../etc/passwd", False),  # ".." left → refused
        (IN_GLOBAL, "GET", "/admin/%2e%2e/%2e%2e/etc", False),
        (IN_GLOBAL, "GET", "/admin/a%2F..%2F..%2Fb", False),  # encoded slashes stay data
        (IN_GLOBAL, "GET", "/admin/a..b", False),  # any ".." is refused
        (IN_GLOBAL, "GET", "/admin/%zz", False),  # invalid encoding
        (IN_GLOBAL, "GET", "/admin/a b", False),  # not a URI path
        (IN_GLOBAL, "GET", "/admin/%C3%A4", True),  # UTF-8 decoded
        (IN_GLOBAL, "GET", "/admin/%FF", False),  # not UTF-8
    ],
)
def test_rest_endpoint_matrix(
    conf: ServerConf, client: ClientId, method: str, path: str, allowed: bool
) -> None:
    got = code_of(conf, client, PETS, method=method, path=path)
    assert got == (None if allowed else "access_denied")


def test_trailing_dot_dot_normalises_to_parent(conf: ServerConf) -> None:
    # "/pets/1/.." is "/pets/", which "/pets/*" matches ("*" may be empty).
    assert normalize_path("/pets/1/..") == "/pets/"


def test_base_endpoint_right_covers_every_rest_call(conf: ServerConf) -> None:
    for method, path in (("GET", "/"), ("DELETE", "/a/b"), ("OPTIONS", "")):
        assert code_of(conf, IN_GLOBAL, API, method=method, path=path) is None


def test_star_before_literal_never_matches(conf: ServerConf) -> None:
    # NIIS compiles "*" possessively: "/files/*.txt" consumes ".txt" too and matches nothing.
    # We keep that (it only ever denies), so both servers decide alike.
    for path in ("/files/a.txt", "/files/.txt", "/files/a.txt.gz", "/files/d/a.txt"):
        assert code_of(conf, CONSUMER, API, method="GET", path=path) == "access_denied"


def test_soap_request_needs_the_base_endpoint(conf: ServerConf) -> None:
    # IN_LOCAL only holds GET /pets/* on pets: a request without method/path cannot use it.
    assert not is_allowed(conf, membership, IN_LOCAL, PETS)


# --- NIIS PathGlob semantics (PathGlobTest's table) -------------------------------------------


@pytest.mark.parametrize(
    ("glob", "path", "expected"),
    [
        ("**", "", True),
        ("***", "match/anything/*", True),
        ("**", "/a/b/c", True),
        ("/*/", "/a/", True),
        ("/*/", "/a/b/", False),
        ("", "", True),
        ("", " ", False),
        (".^$+{[]|()", ".^$+{[]|()", True),
        ("**/bar/**", "a/b/c/bar/e/f", True),
        ("**/bar/**", "a/b/c/foo/e/f", False),
        ("**\\*", "/what/ever*", True),
        ("**\\*", "/what/ever!", False),
        ("simple", "simple", True),
        ("simple", "prefix.simple.suffix", False),
        ("**/*/**", "something/bar/something/else", True),
        ("**/*/**", "/bar/", True),
        ("**/*/**", "//", True),
        ("**/*/**", "something/else", False),
        ("\\A", "\\A", True),
        ("\\*", "*", True),
        ("\\*", "\\*", False),
        ("\\\\", "\\", True),
        ("aa\\", "aa\\", True),
        ("/p/*x", "/p/ax", False),  # "*" is possessive, as in NIIS
        ("/a?", "/a", False),  # "?" is literal here
        ("/a?", "/a?", True),
    ],
)
def test_path_glob_table(glob: str, path: str, expected: bool) -> None:
    assert glob_matches(glob, path) is expected


@pytest.mark.parametrize(
    ("path", "normal"),
    [
        ("/a/b/c", "/a/b/c"),
        ("/a/b/./c", "/a/b/c"),
        ("/a/b/d/../c", "/a/b/c"),
        ("/a/b/../../c", "/c"),
        ("/a/b/%2e/c", "/a/b/c"),
        ("/a/b/d/%2e%2e/c", "/a/b/c"),
        ("/a/b/%2e%2e/%2e%2e/c", "/c"),
        ("/a/b/../../%2e%2e/c/d", None),  # NIIS: "/../c/d", then refused for its ".."
        ("/a/%2f/b", "/a/%2F/b"),
        ("", ""),
        ("/", "/"),
    ],
)
def test_normalize_path(path: str, normal: str | None) -> None:
    assert normalize_path(path) == normal


# --- metaservice lists --------------------------------------------------------------------------


def test_list_and_allowed_methods(conf: ServerConf) -> None:
    assert set(list_methods(conf, PROVIDER)) == {GET_RANDOM, HELLO}
    assert set(allowed_methods(conf, membership, CONSUMER, PROVIDER)) == {GET_RANDOM, HELLO}
    assert allowed_methods(conf, membership, IN_LOCAL, PROVIDER) == (GET_RANDOM,)
    assert allowed_methods(conf, membership, STRANGER, PROVIDER) == ()


def test_rest_list_methods_exclude_the_base_endpoint(conf: ServerConf) -> None:
    listed = {r.service.service_code: r for r in rest_services(conf, PROVIDER)}
    assert listed["pets"].service_type == "OPENAPI"
    assert ("*", "**") not in listed["pets"].endpoints
    assert ("GET", "/pets/*") in listed["pets"].endpoints
    assert listed["api"].service_type == "REST"
    doc = listed["pets"].to_json()
    assert doc["object_type"] == "SERVICE"
    assert doc["subsystem_code"] == "prov"
    assert {"method": "GET", "path": "/pets"} in doc["endpoint_list"]


def test_rest_allowed_methods_list_covered_endpoints(conf: ServerConf) -> None:
    allowed = {
        r.service.service_code: r
        for r in allowed_rest_services(conf, membership, IN_LOCAL, PROVIDER)
    }
    assert set(allowed) == {"pets"}
    assert allowed["pets"].endpoints == (("GET", "/pets/*"),)
    everything = {
        r.service.service_code: r
        for r in allowed_rest_services(conf, membership, IN_GLOBAL, PROVIDER)
    }
    # The base endpoint right on "api" covers its endpoints; "/admin/**" covers only itself.
    assert everything["api"].endpoints == (("get", "/files/*.txt"),)
    assert everything["pets"].endpoints == (("*", "/admin/**"),)


# --- properties ---------------------------------------------------------------------------------

_segment = st.text(alphabet="abc.%2F/eE*", max_size=12)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_normalize_never_raises_and_never_keeps_dot_dot(path: str) -> None:
    result = normalize_path(path)
    assert result is None or ".." not in result


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=30), st.text(max_size=30))
def test_globs_compile_and_match_without_errors(glob: str, path: str) -> None:
    compile_glob(glob)
    glob_matches(glob, path)


_ids = st.builds(
    ClientId,
    st.just("EE"),
    st.sampled_from(["GOV", "COM"]),
    st.text(alphabet="0123456789", min_size=1, max_size=3),
    st.none() | st.sampled_from(["a", "b"]),
)


@settings(max_examples=100, deadline=None)
@given(_ids, st.sampled_from(["GET", "POST", "DELETE"]), _segment)
def test_subject_without_any_right_is_always_denied(
    conf: ServerConf, client: ClientId, method: str, path: str
) -> None:
    holders = {r.subject for c in conf.clients for r in c.access_rights}
    if client in holders or client in (IN_LOCAL, IN_GLOBAL):
        return
    for service in (GET_RANDOM, PETS, API):
        assert not is_allowed(conf, membership, client, service, method=method, path="/" + path)
        assert not is_allowed(conf, membership, client, service)


@settings(max_examples=100, deadline=None)
@given(_segment)
def test_more_rights_never_deny_less(conf: ServerConf, path: str) -> None:
    # Adding a base-endpoint right makes every call of that subject allowed.
    provider = conf.client(PROVIDER)
    assert provider is not None
    wider = ServerConf(
        conf.owner,
        conf.server_code,
        tuple(
            Client(
                c.id,
                c.status,
                c.connection_type,
                c.is_certs,
                c.descriptions,
                c.endpoints,
                (*c.access_rights, AccessRight(STRANGER, 3))
                if c.id == PROVIDER
                else c.access_rights,
                c.local_groups,
            )
            for c in conf.clients
        ),
    )
    full = "/" + path
    if normalize_path(full) is not None:
        assert is_allowed(wider, membership, STRANGER, PETS, method="GET", path=full)
