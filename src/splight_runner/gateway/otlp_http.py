"""OTLP/HTTP on the wire: content types, body decompression and chunked reading, request decoding,
and the ``google.rpc.Status`` body of error answers (as the OTLP/HTTP specification asks).

Nothing here knows the Engine: it turns bytes into an ``ExportLogsServiceRequest``
or a :class:`RequestProblem` (answered with its status, nothing sent).
"""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import Iterator
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

PROTOBUF = "application/x-protobuf"
PROTOBUF_TYPES = frozenset({PROTOBUF, "application/protobuf"})
JSON = "application/json"
_GZIP_WBITS = 16 + zlib.MAX_WBITS

# gRPC status codes for the google.rpc.Status body of error answers (OTLP/HTTP spec).
_RPC_CODE = {
    400: 3,  # INVALID_ARGUMENT
    401: 16,  # UNAUTHENTICATED
    404: 5,  # NOT_FOUND
    405: 12,  # UNIMPLEMENTED
    411: 3,
    413: 8,  # RESOURCE_EXHAUSTED
    415: 3,
    429: 8,
    500: 13,  # INTERNAL
    503: 14,  # UNAVAILABLE
}


class RequestProblem(Exception):
    """A request that is wrong in itself: answered ``status`` with ``message``, nothing sent."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def inflate(data: bytes, encoding: str, limit: int) -> bytes:
    """Decompress ``data`` (``gzip`` or ``deflate``) without ever producing more than ``limit`` + 1 bytes.

    Asking zlib for at most ``limit + 1`` bytes is what makes a zip bomb
    harmless: the output is cut there and the request refused (413), however
    large the stream would have inflated. A stream that ends before its end
    marker is truncated (400); concatenated gzip members are all read, as
    ``gzip`` readers do.
    """
    wbits = _GZIP_WBITS if encoding in ("gzip", "x-gzip") else zlib.MAX_WBITS
    parts: list[bytes] = []
    size = 0
    pending = data
    while True:
        decompressor = zlib.decompressobj(wbits)
        try:
            try:
                chunk = decompressor.decompress(pending, limit - size + 1)
            except zlib.error:
                if wbits != zlib.MAX_WBITS or parts:
                    raise
                # "deflate" is zlib-wrapped by the HTTP spec, but some clients send raw deflate.
                wbits = -zlib.MAX_WBITS
                decompressor = zlib.decompressobj(wbits)
                chunk = decompressor.decompress(pending, limit - size + 1)
        except zlib.error as error:
            raise RequestProblem(400, f"body is not valid {encoding} data ({error})") from None
        size += len(chunk)
        if size > limit:
            raise RequestProblem(413, f"body larger than {limit} bytes after decompression")
        parts.append(chunk)
        if not decompressor.eof:
            raise RequestProblem(400, f"{encoding} body is truncated")
        pending = decompressor.unused_data
        if not pending or wbits != _GZIP_WBITS:
            if pending:
                raise RequestProblem(400, f"data after the end of the {encoding} stream")
            return b"".join(parts)


def _hex_ids_to_base64(document: Any) -> None:
    """OTLP JSON carries trace and span ids as hex; protobuf JSON expects base64. Convert in place."""
    if not isinstance(document, dict):
        return
    for resource_logs in _items(document, "resourceLogs", "resource_logs"):
        for scope_logs in _items(resource_logs, "scopeLogs", "scope_logs"):
            for record in _items(scope_logs, "logRecords", "log_records"):
                for key in ("traceId", "trace_id", "spanId", "span_id"):
                    value = record.get(key)
                    if isinstance(value, str):
                        try:
                            record[key] = base64.b64encode(bytes.fromhex(value)).decode("ascii")
                        except ValueError:
                            raise RequestProblem(400, f"{key} {value[:64]!r} is not hex") from None


def _items(parent: Any, *keys: str) -> Iterator[dict[str, Any]]:
    if not isinstance(parent, dict):
        return
    for key in keys:
        value = parent.get(key)
        if isinstance(value, list):
            yield from (item for item in value if isinstance(item, dict))


def decode_request(body: bytes, content_type: str) -> ExportLogsServiceRequest:
    """An ``ExportLogsServiceRequest`` from an OTLP/HTTP body (protobuf or OTLP JSON), or 400."""
    request = ExportLogsServiceRequest()
    if content_type == JSON:
        try:
            document = json.loads(body)
        except (ValueError, RecursionError):
            raise RequestProblem(400, "body is not valid JSON") from None
        if not isinstance(document, dict):
            raise RequestProblem(400, "body must be a JSON object (ExportLogsServiceRequest)")
        _hex_ids_to_base64(document)
        try:
            json_format.ParseDict(document, request, ignore_unknown_fields=True)
        except (json_format.ParseError, ValueError, TypeError, RecursionError) as error:
            raise RequestProblem(400, f"not an OTLP JSON ExportLogsServiceRequest: {short(error)}") from None
        return request
    try:
        request.ParseFromString(body)
    except (DecodeError, ValueError, RecursionError) as error:
        raise RequestProblem(400, f"not a protobuf ExportLogsServiceRequest: {short(error)}") from None
    return request


def short(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 200 else text[:199] + "…"


def has_body(handler: Any) -> bool:
    """Whether the request announced a body we did not read (then the connection must close)."""
    length = handler.headers.get("Content-Length")
    return bool(handler.headers.get("Transfer-Encoding")) or (length is not None and length.strip() != "0")


def reply_type_for(content_type: str | None) -> str:
    """Errors and responses use the request's encoding (OTLP/HTTP spec); protobuf unless it is JSON."""
    value = (content_type or "").split(";", 1)[0].strip().lower()
    return JSON if value == JSON else PROTOBUF


def encode_message(message: Any, reply_type: str) -> bytes:
    if reply_type == JSON:
        return json.dumps(json_format.MessageToDict(message), ensure_ascii=False).encode("utf-8")
    return message.SerializeToString()


def rpc_status(status: int, message: str, reply_type: str) -> bytes:
    """A ``google.rpc.Status`` body, as the OTLP/HTTP specification asks of error answers."""
    code = _RPC_CODE.get(status, 2)  # UNKNOWN
    if reply_type == JSON:
        return json.dumps({"code": code, "message": message}, ensure_ascii=False).encode("utf-8")
    # Status { int32 code = 1; string message = 2; }: two fields, written by hand
    # so error answers do not depend on googleapis-common-protos.
    text = message.encode("utf-8")
    return b"\x08" + _varint(code) + b"\x12" + _varint(len(text)) + text


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        bits = value & 0x7F
        value >>= 7
        if value:
            out.append(bits | 0x80)
        else:
            out.append(bits)
            return bytes(out)


def read_chunked(stream: Any, limit: int) -> bytes:
    """A ``Transfer-Encoding: chunked`` body, refused (413) as soon as it passes ``limit``."""
    parts: list[bytes] = []
    size = 0
    try:
        while True:
            line = stream.readline(1026)
            if not line.endswith(b"\n"):
                raise RequestProblem(400, "malformed chunked body")
            try:
                chunk_size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise RequestProblem(400, "malformed chunk size") from None
            if chunk_size < 0:
                raise RequestProblem(400, "malformed chunk size")
            if chunk_size == 0:
                for _ in range(100):  # trailer fields, then the empty line
                    trailer = stream.readline(8194)
                    if trailer in (b"\r\n", b"\n", b""):
                        return b"".join(parts)
                raise RequestProblem(400, "too many trailer fields")
            size += chunk_size
            if size > limit:
                raise RequestProblem(413, f"body larger than {limit} bytes")
            data = stream.read(chunk_size)
            if len(data) < chunk_size or stream.readline(3) not in (b"\r\n", b"\n"):
                raise RequestProblem(400, "truncated chunked body")
            parts.append(data)
    except OSError:
        raise RequestProblem(400, "connection broke while reading the body") from None
