"""Our TOML settings files: round trips (awkward strings, keys, numbers), coded read errors,
unknown keys, typed getters, and atomic, private writes."""

from __future__ import annotations

import math
import os
import stat
import threading
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crossroad import settingsfile
from crossroad.errors import Code, XRoadError

# Any Unicode scalar value (no lone surrogates: TOML and UTF-8 cannot hold them).
_SCALARS = st.characters(exclude_categories=["Cs"])
_TEXT = st.text(_SCALARS, max_size=30)
_VALUES = st.one_of(
    _TEXT,
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False),
    st.booleans(),
    st.lists(_TEXT, max_size=4),
)
_KEYS = st.text(_SCALARS, min_size=1, max_size=12)


@settings(max_examples=150, deadline=None)
@given(
    st.dictionaries(_KEYS, _VALUES, max_size=4),
    st.dictionaries(_KEYS, st.dictionaries(_KEYS, _VALUES, min_size=1, max_size=4), max_size=3),
)
def test_render_round_trips(top: dict[str, Any], tables: dict[str, dict[str, Any]]) -> None:
    top = {k: v for k, v in top.items() if k not in tables}  # a key is a value or a table
    entries = [("", k, v) for k, v in top.items()]
    entries += [(s, k, v) for s, table in tables.items() for k, v in table.items()]
    entries.reverse()  # top-level keys after tables: still written first
    text = settingsfile.render(entries, header="settings\nsecond line")
    assert tomllib.loads(text) == {**top, **tables}


@settings(max_examples=60, deadline=None)
@given(_TEXT, st.floats(allow_infinity=True))
def test_write_and_read_back(tmp_path_factory: pytest.TempPathFactory, text: str, x: float) -> None:
    path = tmp_path_factory.mktemp("s") / "a.toml"
    settingsfile.write(path, settingsfile.render([("", "s", text), ("t", "x", x)]))
    data = settingsfile.read(path)
    assert data["s"] == text
    assert data["t"]["x"] == x or (math.isnan(x) and math.isnan(data["t"]["x"]))


@pytest.mark.parametrize(
    "text", ['a"b', "back\\slash", "tab\tnew\nline\r", "\x00\x01\x1f\x7f", "é 漢 🙂", "'''", '"""']
)
def test_awkward_strings(text: str) -> None:
    assert tomllib.loads(settingsfile.render([("", "k", text)]))["k"] == text


def test_none_and_empty_are_left_out() -> None:
    assert settingsfile.render([("", "a", None), ("s", "b", None)]) == "\n"
    layout = (("", "a", "a"), ("s", "b", "b"), ("s", "c", "c"))
    text = settingsfile.render_layout(layout, {"a": "", "b": 1, "c": None}, header="h")
    assert text == "# h\n\n[s]\nb = 1\n"


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("lone \ud800", XRoadError),
        (2**63, XRoadError),
        ([["nested"]], TypeError),
        (object(), TypeError),
        (Path("/x"), TypeError),
    ],
)
def test_values_we_do_not_write(value: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        settingsfile.render([("", "k", value)])


# --- reading ---------------------------------------------------------------------------------


def test_missing_file_names_the_command(tmp_path: Path) -> None:
    with pytest.raises(XRoadError) as err:
        settingsfile.read(tmp_path / "x.toml", hint="create one with 'crossroad x init'")
    assert err.value.code == Code.IO_ERROR
    assert (
        err.value.detail == f"{tmp_path / 'x.toml'} not found: create one with 'crossroad x init'"
    )
    assert settingsfile.read(tmp_path / "x.toml", required=False) == {}


@pytest.mark.parametrize("data", [b"a = = 1", b"x = [\n", b'a = "\xff"', b"[t]\n[t]\n"])
def test_malformed_file_is_invalid_configuration(tmp_path: Path, data: bytes) -> None:
    (tmp_path / "x.toml").write_bytes(data)
    with pytest.raises(XRoadError) as err:
        settingsfile.read(tmp_path / "x.toml")
    assert err.value.code == Code.INVALID_CONFIGURATION
    assert str(tmp_path / "x.toml") in err.value.detail


def test_unreadable_file_is_io_error(tmp_path: Path) -> None:
    (tmp_path / "x.toml").mkdir()
    with pytest.raises(XRoadError) as err:
        settingsfile.read(tmp_path / "x.toml", required=False)
    assert err.value.code == Code.IO_ERROR


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_give_a_mapping_or_a_coded_error(
    tmp_path_factory: pytest.TempPathFactory, data: bytes
) -> None:
    path = tmp_path_factory.mktemp("s") / "x.toml"
    path.write_bytes(data)
    codes = []
    try:
        assert isinstance(settingsfile.read(path), dict)
    except XRoadError as exc:
        codes.append(exc.code)
    assert set(codes) <= {Code.INVALID_CONFIGURATION}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"b": 1}, "f.toml: unknown setting b"),
        ({"t": {"x": 1, "zz": 2}}, "f.toml: unknown setting [t] zz"),
        ({"u": {"x": 1}}, "f.toml: unknown setting [u] x"),
        ({"a": {"x": 1}}, "f.toml: unknown setting [a] x"),
        ({"t": 1}, "f.toml: unknown setting t"),
    ],
)
def test_unknown_keys_are_refused(data: dict[str, Any], message: str) -> None:
    with pytest.raises(XRoadError) as err:
        settingsfile.refuse_unknown(data, [("", "a"), ("t", "x")], "f.toml")
    assert (err.value.code, err.value.detail) == (Code.INVALID_CONFIGURATION, message)
    settingsfile.refuse_unknown({"a": 1, "t": {"x": 2}}, [("", "a"), ("t", "x")], "f.toml")


@dataclass(frozen=True)
class _Example:
    name: str = "n"
    port: int = 1
    delay: float = 1.0
    on: bool = False


_LAYOUT = (("", "name", "name"), ("net", "port", "port"), ("net", "delay", "delay"),
           ("net", "on", "on"))  # fmt: skip


def test_fields_from_layout() -> None:
    data = {"name": "x", "net": {"port": 2, "delay": 3, "on": True}}
    kwargs = settingsfile.fields_from(data, _LAYOUT, _Example, "f.toml")
    assert kwargs == {"name": "x", "port": 2, "delay": 3.0, "on": True}
    assert type(kwargs["delay"]) is float
    text = settingsfile.render_layout(_LAYOUT, vars(_Example(**kwargs)))
    assert tomllib.loads(text) == {**data, "net": {"port": 2, "delay": 3.0, "on": True}}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"net": {"port": "2"}}, "f.toml: [net] port must be of type int"),
        ({"net": {"port": True}}, "f.toml: [net] port must be of type int"),
        ({"net": {"on": 1}}, "f.toml: [net] on must be of type bool"),
        ({"name": 3}, "f.toml: name must be of type str"),
        ({"port": 3}, "f.toml: unknown setting port"),
    ],
)
def test_fields_from_refuses_wrong_types(data: dict[str, Any], message: str) -> None:
    with pytest.raises(XRoadError) as err:
        settingsfile.fields_from(data, _LAYOUT, _Example, "f.toml")
    assert (err.value.code, err.value.detail) == (Code.INVALID_CONFIGURATION, message)


def test_getters() -> None:
    assert settingsfile.as_list("k", ["a"]) == ["a"]
    settingsfile.check_int("p", 5, 0, 9)
    settingsfile.check_text("h", "x")
    for call, message in (
        (lambda: settingsfile.as_list("k", "a"), "k must be a list"),
        (lambda: settingsfile.check_int("p", 10, 0, 9), "p must be a whole number 0..9"),
        (
            lambda: settingsfile.check_int("p", True, 0, 9, "an integer"),
            "p must be an integer 0..9",
        ),
        (lambda: settingsfile.check_text("h", ""), "h must be a non-empty string"),
        (lambda: settingsfile.typed("k", 1.5, int), "k must be of type int"),
    ):
        with pytest.raises(XRoadError) as err:
            call()
        assert (err.value.code, err.value.detail) == (Code.INVALID_CONFIGURATION, message)


def test_located_prefixes_the_file() -> None:
    for exc in (XRoadError(Code.IO_ERROR, "boom"), ValueError("boom"), TypeError("boom")):
        with pytest.raises(XRoadError) as err, settingsfile.located("f.toml"):
            raise exc
        assert (err.value.code, err.value.detail) == (Code.INVALID_CONFIGURATION, "f.toml: boom")


# --- writing ---------------------------------------------------------------------------------


def test_private_files_are_0600_and_others_follow_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        public = settingsfile.write(tmp_path / "p.toml", "a = 1\n")
        private = settingsfile.write(tmp_path / "s.toml", "a = 1\n", private=True)
        public.chmod(0o644)
        settingsfile.write(public, "a = 2\n", private=True)  # rewriting makes it private
    finally:
        os.umask(old)
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert stat.S_IMODE(public.stat().st_mode) == 0o600
    assert stat.S_IMODE(settingsfile.write(tmp_path / "q.toml", "").stat().st_mode) == 0o644


def test_write_creates_the_directory_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    path = settingsfile.write(tmp_path / "new" / "x.toml", "a = 1\n")
    settingsfile.write(path, "a = 2\n")
    assert os.listdir(path.parent) == ["x.toml"]
    assert path.read_text() == "a = 2\n"


def test_failed_write_keeps_the_old_file_and_cleans_up(tmp_path: Path) -> None:
    target = tmp_path / "x.toml"
    target.mkdir()  # os.replace cannot put a file over a directory
    (target / "keep").write_text("old")
    with pytest.raises(XRoadError) as err:
        settingsfile.write(target, "a = 1\n")
    assert err.value.code == Code.IO_ERROR
    assert sorted(os.listdir(tmp_path)) == ["x.toml"]
    assert (target / "keep").read_text() == "old"


def test_readers_see_the_old_or_the_new_file_never_a_part(tmp_path: Path) -> None:
    path = tmp_path / "x.toml"
    values = ["1" * 50_000, "2" * 50_000]
    big = [settingsfile.render([("", "v", value)]) for value in values]
    settingsfile.write(path, big[0])
    stop = threading.Event()

    def writer() -> None:
        n = 0
        while not stop.is_set():
            settingsfile.write(path, big[n % 2])
            n += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        seen = {settingsfile.read(path)["v"] for _ in range(100)}
    finally:
        stop.set()
        thread.join()
    assert seen <= set(values)
    assert sorted(os.listdir(tmp_path)) == ["x.toml"]
