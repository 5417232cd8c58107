"""The framer on its own: where records begin and end in a landed object, and bounded memory."""

import gzip
import io
import subprocess
import sys
import textwrap

import pytest

from iot_assets.lib import reasons
from iot_assets.lib.framing import KEPT_BYTES, Framed, frame_object

A, B, C = b'{"a":1}', b'{"b":2}', b'{"c":3}'


def frame(body: bytes, max_record_bytes: int = 100, max_expanded_bytes: int = 10**6) -> list[Framed]:
    return frame_object(io.BytesIO(body).read, max_record_bytes=max_record_bytes, max_expanded_bytes=max_expanded_bytes)


def clean(body: bytes) -> list[tuple[bytes, int]]:
    got = frame(body)
    assert [f.problem for f in got] == [None] * len(got)
    return [(f.data, f.offset) for f in got]


@pytest.mark.parametrize(
    "body,want",
    [
        (A + b"\n\n" + B, [(A, 0), (B, 9)]),
        (A + b"\r\n" + B + b"\r\n", [(A, 0), (B, 9)]),
        (A + b"\r" + B + b"\r", [(A, 0), (B, 8)]),
        (b"\xef\xbb\xbf" + A + b"\n" + B, [(A, 3), (B, 11)]),
        (A + B + b" " + C + b"\n", [(A, 0), (B, 7), (C, 15)]),
        (A * 40, [(A, 7 * i) for i in range(40)]),  # one line longer than a record may be
        (b'[1,2]\nnot json\n{"a":', [(b"[1,2]", 0), (b"not json", 6), (b'{"a":', 15)]),
        (gzip.compress(A + b"\n") + gzip.compress(B + b"\n"), [(A, 0), (B, 8)]),  # concatenated members
        (gzip.compress(A + b"\n") + b"\0" * 10, [(A, 0)]),  # zero padding after gzip, as gzip allows
        (b'{"s":"norm\xe1l"}', [(b'{"s":"norm\xe1l"}', 0)]),  # not UTF-8: kept as it arrived
    ],
    ids=[
        "lf",
        "crlf",
        "cr_only",
        "bom",
        "values_on_one_line",
        "long_line_of_values",
        "not_objects_framed_as_lines",
        "gzip_members",
        "gzip_zero_padding",
        "not_utf8",
    ],
)
def test_records_are_found_on_any_line_ending_and_several_on_a_line(body, want):
    assert clean(body) == want


@pytest.mark.parametrize(
    "body,after",
    [(A + b" garbage\n" + B, b" garbage"), (A + b"\0\0\0\n" + B, b"\0\0\0"), (A + b', "x"\n' + B, b', "x"')],
    ids=["garbage", "nuls", "comma"],
)
def test_text_after_the_value_is_trailing_text_and_the_next_line_still_a_record(body, after):
    first, second = frame(body)
    assert first.data == A + after
    assert first.problem == f"trailing_text: {len(after)} bytes after the JSON value on its line: {after!r}"
    assert (second.data, second.problem) == (B, None)


def test_an_oversize_record_keeps_its_first_bytes_and_the_next_line_is_a_record():
    big = b'{"a":"' + b"x" * 5000 + b'"}'
    first, second = frame(big + b"\n" + B)
    assert first == Framed(big[:KEPT_BYTES], 0, f"record_too_large: {len(big)} bytes, over the limit of 100")
    assert second == Framed(B, len(big) + 1, None)


def test_a_25_mib_line_is_one_refused_record_among_good_ones():
    big = b"x" * (25 << 20)
    got = frame(A + b"\n" + big + b"\n" + B, max_record_bytes=64 * 1024, max_expanded_bytes=1 << 30)
    assert [(len(f.data), f.offset, f.problem) for f in got] == [
        (7, 0, None),
        (KEPT_BYTES, 8, f"record_too_large: {25 << 20} bytes, over the limit of 65536"),
        (7, 8 + (25 << 20) + 1, None),
    ]


@pytest.mark.parametrize(
    "body,problem",
    [
        (b"", "empty_object: 0 bytes, no records"),
        (b"\n \r\n", "empty_object: 4 bytes, no records"),
        (gzip.compress(b"\n", mtime=0), "empty_object: 21 bytes, no records"),
        (
            b"\x1f\x8b\x08\x00garbage",
            (
                "corrupt_gzip: the gzip data ends inside a member after 11 bytes (truncated); "
                "0 records read before it, 0 decompressed bytes of an unfinished last line"
            ),
        ),
    ],
    ids=["zero_bytes", "blank_lines", "gzip_of_nothing", "bad_gzip"],
)
def test_an_object_without_records_is_one_marked_record(body, problem):
    got = frame(body)
    assert len(got) == 1 and got[0].problem == problem and len(got[0].data) <= KEPT_BYTES


def test_truncated_gzip_keeps_its_readable_records_and_says_what_was_lost():
    lines = b"".join(b'{"n":%d}\n' % i for i in range(200))
    body = gzip.compress(lines, mtime=0)
    got = frame(body[: len(body) // 2], max_expanded_bytes=1 << 20)
    *readable, lost = got
    assert readable and all(f.problem is None for f in readable)
    assert [f.data for f in readable] == lines.split(b"\n")[: len(readable)]
    assert lost.problem.startswith(
        f"corrupt_gzip: the gzip data ends inside a member after {len(body) // 2} bytes "
        f"(truncated); {len(readable)} records read before it, "
    )
    assert lost.offset == sum(len(f.data) + 1 for f in readable)


def test_gzip_damaged_in_the_middle_keeps_what_comes_before():
    first = gzip.compress(b"".join(b'{"n":%d}\n' % i for i in range(50)), mtime=0)
    got = frame(first + b"\x1f\x8b\x08\x00" + b"\xff" * 40)
    assert len(got) == 51 and all(f.problem is None for f in got[:50])
    assert got[50].problem.startswith("corrupt_gzip: ") and "50 records read before it" in got[50].problem


def test_an_object_that_expands_past_the_limit_is_one_refused_record():
    got = frame(gzip.compress(b"0" * (5 << 20)), max_expanded_bytes=1 << 20)
    assert len(got) == 1 and len(got[0].data) == KEPT_BYTES
    assert got[0].problem.startswith(
        f"{reasons.OBJECT_TOO_LARGE}: expands past the limit of 1048576 bytes (IOT_MAX_OBJECT_EXPANDED_BYTES)"
    )


def test_an_object_of_too_many_tiny_records_is_refused():
    got = frame(b"{}\n" * 1000, max_expanded_bytes=64 * 100)
    assert len(got) == 1 and got[0].problem.startswith(f"{reasons.OBJECT_TOO_LARGE}: more than 100 records")


_BOMB = textwrap.dedent("""
    import gzip, io, resource, sys
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
    from iot_assets.lib.framing import frame_object
    member = gzip.compress({content} * ((64 << 20) // len({content})), compresslevel=9, mtime=0)
    body = member * 64                                   # expands to 4 GiB
    got = frame_object(io.BytesIO(body).read, max_record_bytes=64 * 1024, max_expanded_bytes=256 << 20)
    print(len(body), len(got), got[0].problem)
""")


@pytest.mark.parametrize("content", ["b'\\x00'", "b'{\"a\":1}\\n'"], ids=["one_endless_line", "tiny_records"])
def test_a_4_gib_gzip_bomb_is_refused_within_1_gib_of_memory(content):
    out = subprocess.run(
        [sys.executable, "-c", _BOMB.format(content=content)], check=False, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    size, rows, problem = out.stdout.split(" ", 2)
    assert int(size) < 20 << 20 and rows == "1" and problem.startswith(f"{reasons.OBJECT_TOO_LARGE}: ")
