"""File parts of multipart calls: native webhooks and the Pinkfish dialect (DESIGN §4, §7).

The body is parsed as a stream (python-multipart's push parser): each file part is written to
``{data_dir}/uploads/{fileId}`` (0600, in 0700 directories) chunk by chunk as it arrives, so
memory does not grow with a request's size. Text fields are kept, within
``FLOWGATE_MAX_BODY_BYTES`` in all. A small row per file lets ``GET /api/v1/files/{id}`` serve
it to keys of the project that received it; files are deleted with the inbox, after
``FLOWGATE_INBOX_DAYS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from flowgate import errors, ids
from flowgate.service.auth import Principal
from flowgate.service.core import Services
from flowgate.store.base import FileRow
from flowgate.types import JSON, JSONObject
from flowgate.vault import make_private_dirs

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

#: At most this many file parts and text fields in one request; more is 400 (DESIGN §7).
MAX_FILES = 20
MAX_FIELDS = 1000
UPLOADS_DIR = "uploads"


@dataclass(frozen=True, slots=True, kw_only=True)
class Form:
    """A multipart body as the run sees it (``body``) and the files it stored."""

    body: JSONObject
    files: list[FileRow]


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredFile:
    row: FileRow
    path: Path


class BodyCheck(Protocol):
    """Sees every raw chunk of a body as it streams through; ``finish``, once it has ended,
    raises to refuse it (a signature that does not match)."""

    def update(self, chunk: bytes, /) -> None: ...
    def finish(self) -> None: ...


def is_multipart(content_type: str) -> bool:
    return content_type.split(";")[0].strip().lower().startswith("multipart/")


def grouped(pairs: Sequence[tuple[str, JSON]]) -> JSONObject:
    """Repeated names become lists, in order."""
    out: JSONObject = {}
    for name, value in pairs:
        before = out.get(name)
        if name not in out:
            out[name] = value
        elif isinstance(before, list):
            before.append(value)
        else:
            out[name] = [before, value]
    return out


async def read_form(
    svc: Services,
    *,
    project_id: str,
    owner_id: str,
    content_type: str,
    chunks: AsyncIterable[bytes],
    check: BodyCheck | None = None,
) -> Form:
    """Parse and store a ``multipart/form-data`` body as files of ``project_id``, recorded as
    received by ``owner_id`` (a trigger, or the workflow a dialect call named); ``check`` sees
    its raw chunks and may refuse it once it has ended, before the files are recorded. Raises
    UnsupportedMediaType (not form-data, no boundary), PayloadTooLarge (a file over
    ``max_upload_bytes``, fields over ``max_body_bytes``), InvalidRequest (malformed, too many
    parts, text not UTF-8) and what ``check.finish`` raises; on any failure the files written
    so far are deleted."""
    kind, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise errors.UnsupportedMediaType(
            "Multipart bodies must be multipart/form-data with a boundary"
        )
    settings = svc.settings
    reader = _Reader(
        root=settings.data_dir,
        max_file_bytes=settings.max_upload_bytes,
        max_field_bytes=settings.max_body_bytes,
    )
    # The whole request: every file at its cap, plus the fields and part headers.
    limit = MAX_FILES * settings.max_upload_bytes + 2 * settings.max_body_bytes
    try:
        parser = MultipartParser(boundary, reader.callbacks())
        size = 0
        async for chunk in chunks:
            size += len(chunk)
            if size > limit:
                raise errors.PayloadTooLarge(f"Request body is larger than {limit} bytes")
            # File writes block: the parser and its callbacks run in a worker thread.
            await asyncio.to_thread(_feed, parser, check, chunk)
        if not reader.ended:
            raise errors.InvalidRequest("The multipart body ends before its closing boundary")
        if check is not None:
            check.finish()
        rows = reader.rows(project_id, owner_id, svc.clock.now())
        await svc.store.insert_files(rows)
    except FormParserError as exc:
        await asyncio.to_thread(reader.discard)
        raise errors.InvalidRequest(f"Malformed multipart body: {exc}") from exc
    except BaseException:
        await asyncio.to_thread(reader.discard)
        raise
    base = f"{settings.base_url}/api/v1/files/"
    body = grouped([(name, reader.value(name, part, base)) for name, part in reader.parts])
    return Form(body=body, files=rows)


async def open_file(svc: Services, principal: Principal, file_id: str) -> StoredFile:
    """A stored upload of the caller's project. Raises Forbidden, NotFound."""
    principal.require("runs:read")
    row = await svc.store.get_file(principal.project_id, file_id)
    path = None if row is None else svc.settings.data_dir / row["path"]
    if row is None or path is None or not await asyncio.to_thread(path.is_file):
        raise errors.NotFound("File not found")
    return StoredFile(row=row, path=path)


async def prune_files(svc: Services, *, before: datetime, batch: int = 1000) -> int:
    """Delete files stored before ``before``, ``batch`` at a time; returns how many. The file
    goes before its row, so a crash in between leaves a row whose file is already gone."""
    total = 0
    while True:
        rows = await svc.store.old_files(before=before, limit=batch)
        paths = [svc.settings.data_dir / row["path"] for row in rows]
        await asyncio.to_thread(_unlink_all, paths)
        await svc.store.delete_files([(row["project_id"], row["id"]) for row in rows])
        total += len(rows)
        if len(rows) < batch:
            return total


async def delete_stored(svc: Services, rows: Sequence[FileRow]) -> None:
    """Delete files that ``read_form`` stored, and their rows (a request refused after all)."""
    await asyncio.to_thread(_unlink_all, [svc.settings.data_dir / row["path"] for row in rows])
    await svc.store.delete_files([(row["project_id"], row["id"]) for row in rows])


def _feed(parser: MultipartParser, check: BodyCheck | None, chunk: bytes) -> None:
    if check is not None:
        check.update(chunk)
    parser.write(chunk)


def _unlink_all(paths: Sequence[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


@dataclass(slots=True, kw_only=True)
class _File:
    id: str
    filename: str
    content_type: str
    path: Path
    out: BinaryIO
    size: int = 0


def _text(raw: bytes, what: str) -> str:
    try:
        text = raw.decode()
    except UnicodeDecodeError as exc:
        raise errors.InvalidRequest(f"Multipart {what} is not UTF-8 text") from exc
    if "\x00" in text:  # PostgreSQL can store no NUL in a run's input
        raise errors.InvalidRequest(f"Multipart {what} must not contain NUL characters")
    return text


class _Reader:
    """python-multipart's callbacks: collects text fields, streams files to disk. Runs in one
    worker thread at a time (each ``parser.write`` is awaited before the next)."""

    def __init__(self, *, root: Path, max_file_bytes: int, max_field_bytes: int) -> None:
        self.root = root
        self.max_file_bytes = max_file_bytes
        self.max_field_bytes = max_field_bytes
        #: ``(name, text or file)`` in arrival order.
        self.parts: list[tuple[str, str | _File]] = []
        self.files: list[_File] = []
        self.ended = False
        self._fields = 0
        self._field_bytes = 0
        self._headers: dict[str, bytes] = {}
        self._header_name = b""
        self._header_value = b""
        self._name = ""
        self._file: _File | None = None
        self._value = bytearray()

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_piece,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._data,
            "on_part_end": self._part_end,
            "on_end": self._end,
        }

    def _part_begin(self) -> None:
        self._headers, self._file, self._value = {}, None, bytearray()

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _header_piece(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._header_name.decode("latin-1").lower()] = self._header_value
        self._header_name, self._header_value = b"", b""

    def _headers_finished(self) -> None:
        disposition = self._headers.get("content-disposition", b"").decode("latin-1")
        kind, options = parse_options_header(disposition)
        if kind != b"form-data" or b"name" not in options:
            raise errors.InvalidRequest("A multipart part lacks Content-Disposition: form-data")
        self._name = _text(options[b"name"], "part name")
        if b"filename" not in options:
            self._fields += 1
            if self._fields > MAX_FIELDS:
                raise errors.InvalidRequest(f"At most {MAX_FIELDS} multipart fields are accepted")
            return
        if len(self.files) >= MAX_FILES:
            raise errors.InvalidRequest(f"At most {MAX_FILES} multipart files are accepted")
        filename = _text(options[b"filename"], "file name").replace("\\", "/").rsplit("/", 1)[-1]
        content_type = _text(self._headers.get("content-type", b""), "content type").strip()
        file_id = ids.new_id("file")
        path = self.root / UPLOADS_DIR / file_id
        make_private_dirs(path.parent)
        # Created 0600 and exclusively: the id is random, so an existing file is an attack.
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._file = _File(
            id=file_id,
            filename=filename[:1000],
            content_type=(content_type or "application/octet-stream")[:255],
            path=path,
            out=os.fdopen(descriptor, "wb"),
        )
        self.files.append(self._file)

    def _data(self, data: bytes, start: int, end: int) -> None:
        file = self._file
        if file is None:
            self._field_bytes += end - start
            if self._field_bytes > self.max_field_bytes:
                raise errors.PayloadTooLarge(
                    f"Multipart text fields are larger than {self.max_field_bytes} bytes"
                )
            self._value += data[start:end]
            return
        file.size += end - start
        if file.size > self.max_file_bytes:
            raise errors.PayloadTooLarge(
                f"An uploaded file is larger than {self.max_file_bytes} bytes"
            )
        file.out.write(data[start:end])

    def _part_end(self) -> None:
        if self._file is None:
            self.parts.append((self._name, _text(bytes(self._value), f"field {self._name!r}")))
            self._value = bytearray()
            return
        self._file.out.close()
        self.parts.append((self._name, self._file))
        self._file = None

    def _end(self) -> None:
        self.ended = True

    def rows(self, project_id: str, owner_id: str, now: datetime) -> list[FileRow]:
        return [
            FileRow(
                project_id=project_id,
                id=file.id,
                trigger_id=owner_id,
                filename=file.filename,
                content_type=file.content_type,
                size=file.size,
                path=f"{UPLOADS_DIR}/{file.id}",
                created_at=now,
            )
            for file in self.files
        ]

    @staticmethod
    def value(name: str, part: str | _File, base_url: str) -> JSON:
        if isinstance(part, str):
            return part
        return {
            "name": name,
            "filename": part.filename,
            "contentType": part.content_type,
            "size": part.size,
            "url": base_url + part.id,
        }

    def discard(self) -> None:
        """Close and delete every file of this request, the partial one included."""
        for file in self.files:
            with contextlib.suppress(OSError):
                file.out.close()
            file.path.unlink(missing_ok=True)
