"""Reading a request: files from a multipart form or texts from JSON, the options beside them, and how
the OpenAPI document describes such a body. Files become raw inputs exactly as uploads to the studio do.
"""

from __future__ import annotations

import json

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from core.errors import InputError
from core.inputs.raw import ARCHIVE_SUFFIXES, TABLE_SUFFIXES, RawInput, ReadConfig, suffix_of
from core.inputs.sources import read_texts
from core.inputs.uploads import read_uploads


class ApiError(Exception):
    """An error answered as ``{"error": {...}}`` with ``status``."""

    def __init__(self, status: int, code: str, message: str, input: str | None = None, headers: dict | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.input, self.headers = status, code, message, input, headers or {}


def error_body(code: str, message: str, input: str | None = None) -> dict:
    return {"error": {"code": code, "message": message, "input": input}}


def describe_request_body(options: dict[str, dict]) -> dict:
    """The OpenAPI description of a body read by ``_read_request``: files (multipart) or texts (JSON), and options."""
    multipart = {
        "type": "object",
        "properties": {"files": {"type": "array", "items": {"type": "string", "format": "binary"}}, **options},
    }
    json_body = {"type": "object", "properties": {"texts": {"type": "array", "items": {"type": "string"}}, **options}}
    return {
        "requestBody": {
            "required": True,
            "content": {"multipart/form-data": {"schema": multipart}, "application/json": {"schema": json_body}},
        }
    }


PREDICT_OPTIONS = {
    "version": {"type": "integer", "description": "model version (default: the active one)"},
    "top_k": {"type": "integer", "description": "keep only the k best concepts of each result"},
    "include_neighbours": {"type": "boolean", "default": True, "description": "the labelled inputs closest to each one"},
}
SEARCH_OPTIONS = {"k": {"type": "integer", "default": 10, "description": "how many stored inputs to return"}}
INPUT_OPTIONS = {
    "concept": {"type": "string", "description": "label every input with this concept"},
    "negative": {"type": "boolean", "default": False, "description": "as negatives of the concept"},
}


async def read_request(request: Request, max_files: int) -> tuple[dict, list[RawInput | InputError]]:
    """(options, inputs) from a multipart form (files and fields) or a JSON object (``texts`` and options)."""
    kind = request.headers.get("content-type", "")
    if kind.startswith("multipart/form-data"):
        form = await request.form(max_files=max_files, max_fields=64)
        try:
            files, options = [], {}
            for key, value in form.multi_items():
                if hasattr(value, "read"):
                    files.append((value.filename or "upload", await value.read()))
                elif key == "texts":
                    options.setdefault("texts", []).append(value)
                else:
                    options[key] = value
        finally:
            await form.close()
        items = await _read_uploads(files) if files else []
        return options, items + list(read_texts(options.pop("texts", [])))
    if kind.startswith("application/json"):
        try:
            body = json.loads(await request.body())
        except ValueError as e:
            raise ApiError(422, "bad_request", f"the body is not JSON: {e}") from e
        if not isinstance(body, dict):
            raise ApiError(422, "bad_request", 'the body must be a JSON object such as {"texts": ["..."]}')
        texts = body.pop("texts", [])
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise ApiError(422, "bad_request", "texts must be a list of strings")
        return body, list(read_texts(texts))
    raise ApiError(415, "unsupported_media_type", "send multipart/form-data (files) or application/json (texts)")


# Uploads up to this size, with no archive or table among them, are read on the event loop itself:
# hashing a few photos takes microseconds, less than the hop to a worker thread and back.
_INLINE_UPLOAD_BYTES = 4 * 1024**2


async def _read_uploads(files: list[tuple[str, bytes]]) -> list[RawInput | InputError]:
    expanded = any(suffix_of(name) in ARCHIVE_SUFFIXES | TABLE_SUFFIXES for name, _ in files)
    if not expanded and sum(len(data) for _, data in files) <= _INLINE_UPLOAD_BYTES:
        return list(read_uploads(files, ReadConfig()))
    # Off the event loop: expanding a zip or a table, or hashing large files, would stall every other request.
    return await run_in_threadpool(lambda: list(read_uploads(files, ReadConfig())))


def read_int_option(options: dict, key: str) -> int | None:
    value = options.get(key)
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ApiError(422, "bad_request", f"{key} must be a whole number, not {value!r}") from None
    if number < 1:
        raise ApiError(422, "bad_request", f"{key} must be at least 1")
    return number


def read_bool_option(options: dict, key: str, default: bool) -> bool:
    value = options.get(key, default)
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "true", "yes", "on")
