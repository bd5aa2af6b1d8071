"""Reading a request's form (``multipart/form-data``), within limits.

Each uploaded file is spooled to an anonymous temporary file as it arrives
(held in memory up to :data:`SPOOL_BYTES`, then on disk in the system's
temporary folder, unlinked from the start, so nothing is left behind whatever
happens): a request body is never held in memory, let alone twice, and no
name from the request is ever used as a path.  A :class:`Form` is closed
(``with form:``) when its request is answered.  The whole body is limited to
``max_bytes`` (checked against ``Content-Length`` first, then while reading,
so a client that lies or streams without a length is cut off as well), the
number of parts to ``max_parts`` and a plain field to :data:`MAX_FIELD_BYTES`.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from typing import IO, Any, AsyncIterator, Dict, List, Optional, cast

from .errors import ServiceError

__all__ = ["Upload", "Form", "read_form", "single_upload", "optional_upload", "MAX_FIELD_BYTES", "SPOOL_BYTES"]

MAX_FIELD_BYTES = 4096
"""The longest plain (non-file) form field, in bytes (speaker names are at most 256 characters)."""

MAX_BOUNDARY = 70
"""The longest multipart boundary (RFC 2046 allows 1 to 70 characters)."""

SPOOL_BYTES = 256 * 1024
"""An uploaded file up to this size stays in memory; a larger one goes to a temporary file on disk."""


def _spool() -> IO[bytes]:
    return tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES, prefix="redimnet-upload-")


@dataclass
class Upload:
    """One uploaded file: its form field, the client's file name (for messages only) and its bytes."""

    field: str
    filename: str
    file: IO[bytes]
    """The file's bytes, spooled as received (a temporary file; read it from the start)."""
    size: int

    def read(self) -> bytes:
        """The whole file's bytes (for small files and tests; the service decodes :attr:`file` in blocks)."""
        self.file.seek(0)
        return self.file.read()


@dataclass
class Form:
    """A parsed form: plain fields (last value wins) and files (in upload order); ``with form:`` closes the files."""

    fields: Dict[str, str] = field(default_factory=dict)
    files: List[Upload] = field(default_factory=list)

    def files_named(self, name: str) -> List[Upload]:
        return [upload for upload in self.files if upload.field == name]

    def close(self) -> None:
        """Close (and so delete) the spooled files."""
        for upload in self.files:
            upload.file.close()

    def __enter__(self) -> "Form":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _too_large(max_bytes: int) -> ServiceError:
    return ServiceError(
        413,
        "too_large",
        f"the request is larger than the service accepts "
        f"({max_bytes / 1e6:g} MB); send a shorter or more compressed recording",
    )


class _Collector:
    """python-multipart callbacks that build a :class:`Form` (files spooled, fields in memory)."""

    def __init__(self, max_parts: int):
        self.form = Form()
        self.max_parts = max_parts
        self.parts = 0
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._disposition = b""
        self._data = bytearray()
        self._file: Optional[IO[bytes]] = None
        self._size = 0
        self.ended = False

    def callbacks(self) -> dict:
        return {
            "on_part_begin": self.part_begin,
            "on_part_data": self.part_data,
            "on_part_end": self.part_end,
            "on_header_field": self.header_field,
            "on_header_value": self.header_value,
            "on_header_end": self.header_end,
            "on_end": self.end,
        }

    def end(self) -> None:
        self.ended = True

    def close(self) -> None:
        self.form.close()
        if self._file is not None:
            self._file.close()

    def part_begin(self) -> None:
        self.parts += 1
        if self.parts > self.max_parts:
            raise ServiceError(400, "bad_form", f"the form has more than {self.max_parts} parts")
        self._disposition, self._data, self._file, self._size = b"", bytearray(), None, 0

    def header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def header_end(self) -> None:
        if bytes(self._header_name).lower() == b"content-disposition":
            self._disposition = bytes(self._header_value)
            if b"filename" in _options(self._disposition):  # a file: spooled from its first byte
                self._file = _spool()
        self._header_name, self._header_value = bytearray(), bytearray()

    def part_data(self, data: bytes, start: int, end: int) -> None:
        if self._file is not None:
            self._file.write(memoryview(data)[start:end])
            self._size += end - start
        else:
            self._data += data[start:end]
            if len(self._data) > MAX_FIELD_BYTES:  # refused as it comes: a plain field is never held long
                self._field_too_long()

    def _field_too_long(self) -> None:
        name = _options(self._disposition).get(b"name", b"").decode("utf-8", "replace")
        raise ServiceError(400, "bad_form", f"form field '{name[:40]}' is longer than {MAX_FIELD_BYTES} bytes")

    def part_end(self) -> None:
        options = _options(self._disposition)
        if b"name" not in options:
            raise ServiceError(400, "bad_form", "a form part has no name (Content-Disposition: form-data; name=...)")
        name = options[b"name"].decode("utf-8", "replace")
        if self._file is not None:
            filename = options[b"filename"].decode("utf-8", "replace")
            self.form.files.append(Upload(name, filename, self._file, self._size))
            self._file = None
            return
        try:
            self.form.fields[name] = bytes(self._data).decode("utf-8")
        except UnicodeDecodeError:
            raise ServiceError(400, "bad_form", f"form field '{name[:40]}' is not UTF-8 text") from None


def _options(disposition: bytes) -> dict:
    from python_multipart.multipart import parse_options_header

    return parse_options_header(disposition)[1]


async def read_form(headers, stream: AsyncIterator[bytes], max_bytes: int, max_parts: int = 16) -> Form:
    """Parse a ``multipart/form-data`` body from ``stream`` (the request's body chunks) into a :class:`Form`.

    Raises :class:`ServiceError`: 415 for another content type, 413 past
    ``max_bytes``, 400 for a malformed form (the files spooled so far are closed).
    """
    from python_multipart import MultipartParser
    from python_multipart.exceptions import FormParserError
    from python_multipart.multipart import parse_options_header

    content_type, options = parse_options_header(headers.get("content-type", ""))
    if content_type != b"multipart/form-data" or not options.get(b"boundary"):
        raise ServiceError(
            415, "unsupported_media_type", "send the recording as multipart/form-data (e.g. curl -F audio=@file.wav)"
        )
    boundary = options[b"boundary"]
    if len(boundary) > MAX_BOUNDARY:
        raise ServiceError(
            400,
            "bad_form",
            f"the multipart boundary is {len(boundary)} characters long; at most {MAX_BOUNDARY} are allowed (RFC 2046)",
        )
    declared = headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > max_bytes:
                raise _too_large(max_bytes)
        except ValueError:
            raise ServiceError(400, "bad_request", "the Content-Length header is not a number") from None
    collector = _Collector(max_parts)
    received = 0
    try:
        try:
            parser = MultipartParser(boundary, cast(Any, collector.callbacks()))
            async for chunk in stream:
                received += len(chunk)
                if received > max_bytes:
                    raise _too_large(max_bytes)
                parser.write(chunk)
            parser.finalize()
        except FormParserError as error:
            raise ServiceError(400, "bad_form", f"malformed multipart/form-data body ({error})") from None
        if not collector.ended:
            raise ServiceError(
                400, "bad_form", "the multipart/form-data body ends before its closing boundary (a truncated upload?)"
            )
    except BaseException:  # refused, or the client hung up: nothing spooled stays open
        collector.close()
        raise
    return collector.form


def optional_upload(form: Form, name: str) -> Optional[Upload]:
    """The one file uploaded as field ``name``, or ``None`` (400 when there are several)."""
    uploads = form.files_named(name)
    if len(uploads) > 1:
        raise ServiceError(400, "bad_form", f"send one file as '{name}', got {len(uploads)}")
    return uploads[0] if uploads else None


def single_upload(form: Form, name: str) -> Upload:
    """The one file uploaded as field ``name`` (400 when there is none or there are several)."""
    upload = optional_upload(form, name)
    if upload is None:
        raise ServiceError(400, "missing_file", f"no file in form field '{name}' (e.g. curl -F {name}=@file.wav)")
    return upload
