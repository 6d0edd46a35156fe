"""Content types, the incremental multipart parser and the writer (crossroad.wire.mime)."""

from __future__ import annotations

import pytest

from crossroad.errors import Code, XRoadError
from crossroad.wire.mime import (
    ContentType,
    HeaderField,
    MimeLimits,
    MultipartParser,
    MultipartWriter,
    PartData,
    PartEnd,
    PartStart,
    base_type,
    multipart_mixed,
    parse_multipart,
)


def chunked(data: bytes, boundary: str, sizes: list[int]) -> list[tuple[list[bytes], bytes]]:
    """Parse ``data`` fed in chunks of ``sizes`` (cycled); (raw header lines, body) per part."""
    parser = MultipartParser(boundary)
    events = []
    i = k = 0
    while i < len(data):
        step = sizes[k % len(sizes)]
        events += parser.feed(data[i : i + step])
        i += step
        k += 1
    events += parser.close()
    parts: list[tuple[list[bytes], bytearray]] = []
    ended = 0
    for event in events:
        if isinstance(event, PartStart):
            assert event.index == len(parts)
            parts.append(([f.raw for f in event.headers.fields], bytearray()))
        elif isinstance(event, PartData):
            assert event.data
            parts[-1][1].extend(event.data)
        else:
            assert isinstance(event, PartEnd)
            ended += 1
    assert ended == len(parts)
    return [(h, bytes(b)) for h, b in parts]


SAMPLE = (
    b"preamble\r\n--b1\r\nContent-Type: text/xml\r\nContent-ID: <a>\r\n\r\n<x/>\r\n"
    b"--b1\r\nContent-Type: application/octet-stream\r\n\r\n--b1x\r\n\r--b\r\n--b1-\r\n"
    b"\r\n--b1\r\n\r\n\r\n--b1--  \r\nepilogue --b1\r\n"
)
SAMPLE_PARTS = [
    ([b"Content-Type: text/xml", b"Content-ID: <a>"], b"<x/>"),
    ([b"Content-Type: application/octet-stream"], b"--b1x\r\n\r--b\r\n--b1-\r\n"),
    ([], b""),
]


# --------------------------------------------------------------------------- content types


def test_content_type_parsing_is_robust() -> None:
    ct = ContentType.parse(
        'Multipart/Related; start-info="application/soap+xml"; TYPE="application/xop+xml"; '
        'boundary="jetty771207119h3h10dty";charset=UTF-8'
    )
    assert ct.mime_type == "multipart/related"
    assert ct.start_info == "application/soap+xml"
    assert ct.type == "application/xop+xml"
    assert ct.boundary == "jetty771207119h3h10dty"
    assert ct.charset == "UTF-8"
    assert ct.start is None
    quoted = ContentType.parse(r'text/xml; charset = "a\"b;c" ; start=<root>; x; charset=no')
    assert quoted.charset == 'a"b;c'  # the first occurrence wins
    assert quoted.start == "<root>"
    assert quoted.param("x") == ""
    assert ContentType.parse(None).mime_type == ""
    assert ContentType.parse("tsdfsdfsdf").mime_type == "tsdfsdfsdf"
    assert ContentType.parse('a/b; boundary="unterminated').boundary == "unterminated"
    assert base_type(" Text/XML ; charset=x") == "text/xml"
    assert base_type(None) is None
    assert base_type("") is None
    assert multipart_mixed("xtop1") == "multipart/mixed; charset=UTF-8; boundary=xtop1"


@pytest.mark.parametrize(
    "value", ["multipart/mixed", "multipart/mixed; boundary=", "x/y; boundary=" + "b" * 300]
)
def test_require_boundary(value: str) -> None:
    with pytest.raises(XRoadError) as err:
        ContentType.parse(value).require_boundary()
    assert err.value.code == Code.INVALID_CONTENT_TYPE


# --------------------------------------------------------------------------- parser


def test_sample_parts() -> None:
    assert chunked(SAMPLE, "b1", [len(SAMPLE)]) == SAMPLE_PARTS


def test_every_split_point_gives_the_same_parts() -> None:
    for i in range(len(SAMPLE) + 1):
        parser = MultipartParser("b1")
        events = parser.feed(SAMPLE[:i]) + parser.feed(SAMPLE[i:]) + parser.close()
        bodies: list[bytes] = []
        for event in events:
            if isinstance(event, PartStart):
                bodies.append(b"")
            elif isinstance(event, PartData):
                bodies[-1] += event.data
        assert bodies == [body for _, body in SAMPLE_PARTS], i


@pytest.mark.parametrize("sizes", [[1], [2], [3], [5, 1, 7], [64]])
def test_small_chunks(sizes: list[int]) -> None:
    assert chunked(SAMPLE, "b1", sizes) == SAMPLE_PARTS


def test_bare_lf_line_ends_and_folded_headers() -> None:
    data = b"--b\nContent-Type: text/plain;\n\tcharset=UTF-8\nX-A:  one \n\nbody\n--b--\n"
    ((headers, body),) = parse_multipart(data, "b")
    assert body == b"body"
    assert headers.content_type == "text/plain;\tcharset=UTF-8"
    assert headers.fields[0].raw == b"Content-Type: text/plain;\n\tcharset=UTF-8"
    assert headers.get("x-a") == "one"
    assert headers.mime_type == "text/plain"
    assert [f.name for f in headers.without("content-type")] == ["X-A"]


def test_crlf_folded_header_keeps_its_raw_bytes() -> None:
    data = b"--b\r\nA: 1\r\n 2\r\n\r\nx\r\n--b--"
    ((headers, body),) = parse_multipart(data, "b")
    assert headers.fields[0].raw == b"A: 1\r\n 2"
    assert headers.get("A") == "1 2"
    assert body == b"x"


def test_no_delimiter_means_no_parts() -> None:
    assert parse_multipart(b"", "b") == []
    assert parse_multipart(b"just a preamble --bx\r\n--b-", "b") == []


def test_final_delimiter_without_dashes_at_the_end() -> None:
    # soapfault-mtom.answer ends so: NIIS's mime4j accepts it.
    assert parse_multipart(b"--b\r\n\r\nx\r\n--b", "b") == [
        (parse_multipart(b"--b\r\n\r\nx\r\n--b--", "b")[0][0], b"x")
    ]
    assert [b for _, b in parse_multipart(b"--b\r\n\r\nx\r\n--b \t", "b")] == [b"x"]
    assert [b for _, b in parse_multipart(b"--b\r\n\r\nx\r\n--b\r\n", "b")] == [b"x"]


def test_close_delimiter_may_be_followed_by_anything() -> None:
    assert [b for _, b in parse_multipart(b"--b\r\n\r\nx\r\n--b--garbage", "b")] == [b"x"]


def test_delimiter_look_alikes_are_body() -> None:
    data = b"--b\r\n\r\n--bb\r\n--b-x\r\n--b x\r\n--b\r\n\r\ny\r\n--b--"
    assert [b for _, b in parse_multipart(data, "b")] == [b"--bb\r\n--b-x\r\n--b x", b"y"]


def test_body_ending_in_cr_keeps_it() -> None:
    data = b"--b\r\n\r\nx\r\r\n--b--"
    assert [b for _, b in parse_multipart(data, "b")] == [b"x\r"]


@pytest.mark.parametrize(
    "data",
    [
        b"--b\r\nContent-Type: a/b\r\n\r\nunfinished",
        b"--b\r\nContent-Type: a/b\r\n",
        b"--b\r\nContent-Type",
        b"--b\r\nno colon here\r\n\r\n--b--",
        b"--b\r\n: empty name\r\n\r\n--b--",
        b"--b\r\n bad continuation\r\n\r\n--b--",
        b"--b\r\nBad Name: x\r\n\r\n--b--",
    ],
)
def test_strict_errors(data: bytes) -> None:
    with pytest.raises(XRoadError) as err:
        parse_multipart(data, "b")
    assert err.value.code == Code.MIME_PARSING_FAILED


def test_limits() -> None:
    many = b"".join(b"--b\r\n\r\nx\r\n" for _ in range(5)) + b"--b--"
    assert len(parse_multipart(many, "b")) == 5
    with pytest.raises(XRoadError) as err:
        parse_multipart(many, "b", MimeLimits(max_parts=4))
    assert err.value.code == Code.MIME_PARSING_FAILED
    fields = b"--b\r\n" + b"".join(b"A: 1\r\n" for _ in range(10)) + b"\r\n--b--"
    with pytest.raises(XRoadError):
        parse_multipart(fields, "b", MimeLimits(max_header_fields=9))
    with pytest.raises(XRoadError):
        parse_multipart(fields, "b", MimeLimits(max_header_bytes=40))
    parser = MultipartParser("b", MimeLimits(max_header_bytes=100))
    parser.feed(b"--b\r\nA: ")
    with pytest.raises(XRoadError):
        parser.feed(b"x" * 200)
    with pytest.raises(XRoadError):
        parse_multipart(b"--b" + b" " * 2000 + b"\r\n", "b")


def test_parser_misuse() -> None:
    with pytest.raises(XRoadError) as err:
        MultipartParser("")
    assert err.value.code == Code.INVALID_CONTENT_TYPE
    with pytest.raises(XRoadError):
        MultipartParser("bö\u0100")
    parser = MultipartParser("b")
    parser.feed(b"--b--")
    assert parser.finished
    assert parser.feed(b"epilogue") == []
    parser.close()
    assert parser.close() == []
    with pytest.raises(XRoadError):
        parser.feed(b"more")


def test_body_streams_without_buffering() -> None:
    parser = MultipartParser("boundary")
    parser.feed(b"--boundary\r\n\r\n")
    emitted = sum(len(e.data) for e in parser.feed(b"a" * 100_000) if isinstance(e, PartData))
    assert emitted >= 100_000 - len(b"\r\n--boundary")


# --------------------------------------------------------------------------- writer


def test_writer_frames_like_niis() -> None:
    w = MultipartWriter("xtop1")
    out = w.start_part("text/xml", [HeaderField("Content-ID", "<a>"), ("X-B", "c")]) + b"<x/>"
    out += w.start_nested("xatt1")
    out += w.start_part(None, [HeaderField("Content-Type", "a/b", b"Content-Type:  a/b")])
    out += b"data"
    out += w.end_nested()
    out += w.start_part("signature/bdoc-1.0/ts", [("content-type", "dropped")]) + b"sig"
    out += w.close()
    assert out == (
        b"--xtop1\r\ncontent-type: text/xml\r\nContent-ID: <a>\r\nX-B: c\r\n\r\n<x/>"
        b"\r\n--xtop1\r\ncontent-type: multipart/mixed; charset=UTF-8; boundary=xatt1\r\n\r\n"
        b"\r\n--xatt1\r\nContent-Type:  a/b\r\n\r\ndata\r\n--xatt1--\r\n"
        b"\r\n--xtop1\r\ncontent-type: signature/bdoc-1.0/ts\r\n\r\nsig\r\n--xtop1--\r\n"
    )
    assert w.content_type == "multipart/mixed; charset=UTF-8; boundary=xtop1"
    assert w.depth == 0
    assert w.close() == b""
    with pytest.raises(XRoadError):
        w.start_part("a/b")
    parts = parse_multipart(out, "xtop1")
    assert [h.mime_type for h, _ in parts] == [
        "text/xml",
        "multipart/mixed",
        "signature/bdoc-1.0/ts",
    ]
    nested = parse_multipart(parts[1][1], "xatt1")
    assert nested[0][1] == b"data"
    assert nested[0][0].fields[0].raw == b"Content-Type:  a/b"
