"""Framing: the records of one landed object, found in a bounded stream of its bytes.

A landed object is NDJSON, plain or gzip (one or several members). Records end at any line
ending (LF, CRLF or CR alone); several JSON values on one line (`{..}{..}`, Firehose without a
delimiter) are several records; a UTF-8 byte-order mark at the start is not part of the first
record. The framer only finds where records begin and end: whether a record is a valid reading is
bronze's decision. It marks what framing alone can see: text after a JSON value on its line, a
record over the size limit, an object that expands past its limit, damaged gzip, no records.

Memory stays bounded whatever the object holds: the object is read and decompressed in pieces;
an oversize record keeps only its first `KEPT_BYTES` and the rest of its line is counted, not
held; an object whose decompressed bytes (or record count) pass the limit is refused as a whole.
"""

from __future__ import annotations

import codecs
import json
import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from iot_assets.lib import reasons

GZIP_MAGIC = b"\x1f\x8b"
MAX_RECORD_BYTES = 64 * 1024  # a record over this is quarantined as record_too_large
KEPT_BYTES = 4096  # what a refused or oversize record keeps of its bytes
# An object may hold at most max_expanded_bytes // MIN_RECORD_CHARGE records: a record costs
# Python about this much memory even when its text is two bytes, so a bomb of tiny records is
# bounded as tightly as one of long lines.
MIN_RECORD_CHARGE = 64
READ_BYTES = 256 * 1024  # bytes asked of `read` at a time
EXPAND_BYTES = 1 << 20  # most decompressed bytes produced per step

_LINE_END = re.compile(r"[\r\n]")
_BLANK = re.compile(r"[ \t\r\n]*")
_SPACE = re.compile(r"[ \t]*")
_DECODER = json.JSONDecoder()


@dataclass(frozen=True, slots=True)
class Framed:
    """One record of a landed object."""

    data: bytes  # the record's bytes as they arrived (a refused/oversize one: at most KEPT_BYTES)
    offset: int  # byte offset of the record's first byte in the decompressed object
    problem: str | None  # None, or "<reason>: <detail>" with <reason> a constant from iot_assets.lib.reasons


class _TooLarge(Exception):
    """The object passes its expansion limit; the message says how."""


def _nbytes(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogateescape"))


class _Stream:
    """The object's decompressed bytes, in pieces, counting what was read and produced."""

    def __init__(self, read: Callable[[int], bytes], max_expanded_bytes: int):
        self._read, self.max_expanded = read, max_expanded_bytes
        self.size = self.expanded = 0
        self.head = self.expanded_head = b""
        self.damage: str | None = None

    def _next(self) -> bytes:
        data = self._read(READ_BYTES) or b""
        self.size += len(data)
        self.head += data[: KEPT_BYTES - len(self.head)]
        return data

    def _out(self, data: bytes) -> bytes:
        self.expanded += len(data)
        if self.expanded > self.max_expanded:
            raise _TooLarge(
                f"expands past the limit of {self.max_expanded} bytes (IOT_MAX_OBJECT_EXPANDED_BYTES) "
                f"after {self.size} bytes read"
            )
        self.expanded_head += data[: KEPT_BYTES - len(self.expanded_head)]
        return data

    def chunks(self) -> Iterator[bytes]:
        """Plain bytes as read; gzip (recognised by its magic, not by the key) decompressed."""
        first = self._next()
        while 0 < len(first) < 2 and (more := self._next()):
            first += more
        if first[:2] == GZIP_MAGIC:
            yield from self._gunzip(first)
            return
        while first:
            yield self._out(first)
            first = self._next()

    def _gunzip(self, data: bytes) -> Iterator[bytes]:
        """Every gzip member in turn; damage ends the stream and is noted in `damage`."""
        d = zlib.decompressobj(31)
        while True:
            if d.eof:
                data = d.unused_data + data
                if not data and not (data := self._next()):
                    return
                if data[:2] != GZIP_MAGIC and len(data) < 2:
                    data += self._next()
                if data[:2] != GZIP_MAGIC:
                    self._after_members(data)
                    return
                d = zlib.decompressobj(31)
            if not data and not (data := self._next()):
                if out := d.flush():
                    yield self._out(out)
                self.damage = f"the gzip data ends inside a member after {self.size} bytes (truncated)"
                return
            try:
                out = d.decompress(data, EXPAND_BYTES)
            except zlib.error as exc:
                at = self.size - len(data)
                self._drain()
                self.damage = f"{self.size - at} of {self.size} bytes from byte {at} on do not decompress ({exc})"
                return
            data = d.unconsumed_tail
            if out:
                yield self._out(out)

    def _after_members(self, data: bytes) -> None:
        """Bytes after the last gzip member: zero padding is allowed (as gzip allows it), anything else is damage."""
        at, padding = self.size - len(data), not data.strip(b"\0")
        while more := self._next():
            padding = padding and not more.strip(b"\0")
        if not padding:
            self.damage = f"{self.size - at} of {self.size} bytes from byte {at} on are not gzip"

    def _drain(self) -> None:
        while self._next():
            pass


class _Scanner:
    """Records in the decompressed text; text is held from the current record on, a window ahead."""

    def __init__(self, stream: _Stream, max_record_bytes: int):
        self._chunks, self._stream = stream.chunks(), stream
        self._decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
        self.limit, self.text, self.i, self.offset, self.eof = max_record_bytes, "", 0, 0, False
        self._clear = 0  # text before this index holds no line ending (a long line is searched once)
        self.tail = b""  # an unfinished last line of damaged gzip

    def _fill(self, chars: int) -> None:
        """Read on until `chars` characters lie ahead of the current one, or the stream ends."""
        while not self.eof and len(self.text) - self.i < chars:
            chunk = next(self._chunks, None)
            self.eof = chunk is None
            added = self._decoder.decode(chunk or b"", final=self.eof)
            self.text, self._clear, self.i = self.text[self.i :] + added, max(0, self._clear - self.i), 0

    def records(self) -> Iterator[Framed]:
        self._fill(self.limit + 2)
        if self.text.startswith("\ufeff"):
            self.i, self.offset = 1, 3
        while self._skip_blank():
            yield from self._record()

    def _skip_blank(self) -> bool:
        """Past blank text (any line ending too); False at the end of the object."""
        while True:
            self._fill(self.limit + 2)
            end = _BLANK.match(self.text, self.i).end()
            self.offset += end - self.i
            self.i = end
            if self.i < len(self.text):
                return True
            if self.eof:
                return False

    def _record(self) -> Iterator[Framed]:
        start, text = self.i, self.text
        window = min(len(text), start + self.limit + 1)
        m = _LINE_END.search(text, max(start, self._clear), window)
        self._clear = m.start() if m else window
        if m:
            yield from self._line(text[start : m.start()])
        elif len(text) - start > self.limit:
            yield from self._long_line()
        elif self._stream.damage:
            self.tail, self.i = text[start:].encode("utf-8", "surrogateescape"), len(text)
        else:
            yield from self._line(text[start:])

    def _line(self, line: str) -> Iterator[Framed]:
        """The first record of a line that fits the window; a further value on it is left for the next call."""
        end = _value_end(line, 0)
        if end is None:
            yield self._emit(line)
            return
        after = _SPACE.match(line, end).end()
        if after == len(line) or line[after] in "{[":
            yield self._emit(line[:end])
        else:
            yield self._emit(line, _trailing(line[end:]))

    def _long_line(self) -> Iterator[Framed]:
        """A line longer than a record may be: values on it are records while they fit, else it is oversize."""
        start, text = self.i, self.text
        end = _value_end(text, start)
        if end is not None and end - start <= self.limit:
            after = _SPACE.match(text, end).end()
            if after == len(text) or text[after] in "{[\r\n":
                yield self._emit(text[start:end])
                return
        yield self._oversize()

    def _emit(self, text: str, problem: str | None = None) -> Framed:
        data = text.encode("utf-8", "surrogateescape")
        framed = (
            Framed(data[:KEPT_BYTES], self.offset, _too_large(len(data), self.limit))
            if len(data) > self.limit
            else Framed(data, self.offset, problem)
        )
        self.i += len(text)
        self.offset += len(data)
        return framed

    def _oversize(self) -> Framed:
        """The record from here to its line end, counted as it streams past; only its first bytes kept."""
        offset, kept, size = self.offset, self.text[self.i : self.i + KEPT_BYTES], 0
        while True:
            m = _LINE_END.search(self.text, self.i)
            stop = m.start() if m else len(self.text)
            size += _nbytes(self.text[self.i : stop])
            self.i = stop
            if m or self.eof:
                break
            self._fill(1)
        self.offset += size
        data = kept.encode("utf-8", "surrogateescape")[:KEPT_BYTES]
        return Framed(data, offset, _too_large(size, self.limit))


def _value_end(text: str, start: int) -> int | None:
    """Where the JSON value starting at `start` ends, or None when none does."""
    try:
        return _DECODER.raw_decode(text, start)[1]
    except (ValueError, RecursionError):
        return None


def _trailing(after: str) -> str:
    raw = after.encode("utf-8", "surrogateescape")
    return f"{reasons.TRAILING_TEXT}: {len(raw)} bytes after the JSON value on its line: {raw[:40]!r}"


def _too_large(size: int, limit: int) -> str:
    return f"{reasons.RECORD_TOO_LARGE}: {size} bytes, over the limit of {limit}"


def frame_object(read: Callable[[int], bytes], *, max_record_bytes: int, max_expanded_bytes: int) -> list[Framed]:
    """All records of one landed object; `read(n)` is a file-like read (e.g. boto3 StreamingBody.read).

    Never returns []: an object without records gives one Framed with a problem. Damaged gzip
    gives the records read before the damage plus one corrupt_gzip record saying what was lost.
    """
    stream = _Stream(read, max_expanded_bytes)
    scanner = _Scanner(stream, max_record_bytes)
    most = max(1, max_expanded_bytes // MIN_RECORD_CHARGE)
    records: list[Framed] = []
    try:
        for framed in scanner.records():
            if len(records) == most:
                raise _TooLarge(f"more than {most} records (IOT_MAX_OBJECT_EXPANDED_BYTES / {MIN_RECORD_CHARGE})")
            records.append(framed)
    except _TooLarge as exc:
        return [Framed(stream.expanded_head, 0, f"{reasons.OBJECT_TOO_LARGE}: {exc}")]
    if stream.damage:
        return records + [_damaged(stream, scanner, len(records))]
    if not records:
        return [Framed(stream.expanded_head, 0, f"{reasons.EMPTY_OBJECT}: {stream.size} bytes, no records")]
    return records


def _damaged(stream: _Stream, scanner: _Scanner, read: int) -> Framed:
    """The row that accounts for damaged gzip: what failed, and how many bytes could not be read as records."""
    data = scanner.tail[:KEPT_BYTES] if read or scanner.tail else stream.head
    return Framed(
        data,
        scanner.offset,
        f"{reasons.CORRUPT_GZIP}: {stream.damage}; {read} records read before it, "
        f"{len(scanner.tail)} decompressed bytes of an unfinished last line",
    )
