"""OTLP/HTTP on the wire: content types, body decompression and chunked reading, request decoding,
and the ``google.rpc.Status`` body of error answers (as the OTLP/HTTP specification asks).

Nothing here knows the Engine: it turns bytes into a checked :class:`LogsRequest`
(walked and parsed one record at a time, so memory does not grow with the number of
records) or a :class:`RequestProblem` (answered with its status, nothing sent).
"""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

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


def _count_json_records(document: dict[str, Any], max_records: int) -> None:
    """413 before the document is turned into protobuf (which would take ~130 bytes a record)."""
    records = 0
    for resource_logs in _items(document, "resourceLogs", "resource_logs"):
        for scope_logs in _items(resource_logs, "scopeLogs", "scope_logs"):
            for key in ("logRecords", "log_records"):
                value = scope_logs.get(key)
                records += len(value) if isinstance(value, list) else 0
    if records > max_records:
        raise RequestProblem(413, f"more than {max_records} log records in one request (send smaller batches)")


def _items(parent: Any, *keys: str) -> Iterator[dict[str, Any]]:
    if not isinstance(parent, dict):
        return
    for key in keys:
        value = parent.get(key)
        if isinstance(value, list):
            yield from (item for item in value if isinstance(item, dict))


def decode_request(body: bytes, content_type: str, max_records: int) -> LogsRequest:
    """A checked :class:`LogsRequest` from an OTLP/HTTP body (protobuf or OTLP JSON): 400, or 413 above
    ``max_records`` records (resource and scope groups count too)."""
    if content_type == JSON:
        try:
            document = json.loads(body)
        except (ValueError, RecursionError):
            raise RequestProblem(400, "body is not valid JSON") from None
        if not isinstance(document, dict):
            raise RequestProblem(400, "body must be a JSON object (ExportLogsServiceRequest)")
        _hex_ids_to_base64(document)
        _count_json_records(document, max_records)
        request = ExportLogsServiceRequest()
        try:
            json_format.ParseDict(document, request, ignore_unknown_fields=True)
        except (json_format.ParseError, ValueError, TypeError, RecursionError) as error:
            raise RequestProblem(400, f"not an OTLP JSON ExportLogsServiceRequest: {short(error)}") from None
        del document
        body = request.SerializeToString()
        del request
    return LogsRequest.check(body, max_records)


# -- the protobuf request, walked on the wire ----------------------------------------------------
#
# ``ExportLogsServiceRequest.ParseFromString`` builds every message at once: an empty
# log record is 2 bytes on the wire and about 130 bytes parsed, so a 2 KB gzip of a
# million empty records became 130 MB before a single one could be counted. The
# request is kept as its bytes instead; the three outer levels (request →
# ResourceLogs → ScopeLogs → LogRecord) are walked here, and each resource, scope
# and log record is parsed on its own when it is needed, then dropped.

#: Field numbers of the outer messages (opentelemetry-proto logs/v1).
_RESOURCE_LOGS = 1  # ExportLogsServiceRequest.resource_logs
_RESOURCE = 1  # ResourceLogs.resource
_SCOPE_LOGS = 2  # ResourceLogs.scope_logs
_SCOPE = 1  # ScopeLogs.scope
_LOG_RECORDS = 2  # ScopeLogs.log_records

#: A message larger than this is scanned before it is parsed (see :data:`MAX_VALUES`).
_SCAN_ABOVE = 64 * 1024
#: Most attributes and values (nested messages) one resource, scope or log record may
#: hold: parsed, each takes 30-130 bytes, so this bounds one parsed message to a few MB.
MAX_VALUES = 65_536

# Which length-delimited fields of the inner messages are messages themselves
# (everything the scan must count), by message: field number -> message.
_ANY_VALUE: dict[int, str] = {5: "array", 6: "kvlist"}
_INNER: dict[str, dict[int, str]] = {
    "record": {5: "any", 6: "kv"},  # LogRecord.body, .attributes
    "resource": {1: "kv"},  # Resource.attributes
    "scope": {3: "kv"},  # InstrumentationScope.attributes
    "kv": {2: "any"},  # KeyValue.value
    "any": _ANY_VALUE,  # AnyValue.array_value, .kvlist_value
    "array": {1: "any"},  # ArrayValue.values
    "kvlist": {1: "kv"},  # KeyValueList.values
}

_MALFORMED = "not a protobuf ExportLogsServiceRequest"


def _read_varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    value = 0
    shift = 0
    while pos < end and shift < 64:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
    raise RequestProblem(400, f"{_MALFORMED}: truncated or overlong varint")


def _messages(data: bytes, start: int, end: int, wanted: int) -> Iterator[tuple[int, int, int]]:
    """``(field, start, stop)`` of every length-delimited field in ``data[start:end]``; only those
    numbered ``wanted`` unless it is 0. Other wire types are skipped; a malformed message is 400."""
    pos = start
    while pos < end:
        key = data[pos]
        if key < 0x80:
            pos += 1
        else:
            key, pos = _read_varint(data, pos, end)
        field, wire = key >> 3, key & 7
        if field == 0:
            raise RequestProblem(400, f"{_MALFORMED}: field number 0")
        if wire == 2:
            length = data[pos] if pos < end else 0x80
            if length < 0x80:
                pos += 1
            else:
                length, pos = _read_varint(data, pos, end)
            stop = pos + length
            if stop > end:
                raise RequestProblem(400, f"{_MALFORMED}: a field runs past the end of its message")
            if not wanted or field == wanted:
                yield field, pos, stop
            pos = stop
        elif wire == 0:
            _, pos = _read_varint(data, pos, end)
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise RequestProblem(400, f"{_MALFORMED}: unsupported wire type {wire}")
    if pos != end:
        raise RequestProblem(400, f"{_MALFORMED}: a field runs past the end of its message")


def _count_values(data: bytes, start: int, stop: int, kind: str, limit: int) -> None:
    """413 when the message holds more than ``limit`` nested messages (attributes, values)."""
    count = 0
    stack = [(kind, start, stop)]
    while stack:
        kind, start, stop = stack.pop()
        inner = _INNER[kind]
        for field, begin, end in _messages(data, start, stop, 0):
            child = inner.get(field)
            if child is None:
                continue
            count += 1
            if count > limit:
                raise RequestProblem(413, f"a log record, resource or scope holds more than {limit} values")
            if len(stack) < 200:  # deeper than protobuf's own limit (100): the parse refuses it
                stack.append((child, begin, end))


def _parse(message: Any, data: bytes, parts: list[tuple[int, int]], kind: str) -> Any:
    """``message`` parsed from the concatenation of ``parts`` of ``data`` (how protobuf merges a
    field that occurs several times), scanned first when large; 400/413 when it cannot be."""
    if len(parts) == 1:
        start, stop = parts[0]
        if stop - start > _SCAN_ABOVE:
            _count_values(data, start, stop, kind, MAX_VALUES)  # before copying a large message
        raw = data[start:stop]
    else:
        raw = b"".join(data[start:stop] for start, stop in parts)
        if len(raw) > _SCAN_ABOVE:
            _count_values(raw, 0, len(raw), kind, MAX_VALUES)
    try:
        message.ParseFromString(raw)
    except (DecodeError, ValueError, RecursionError) as error:
        raise RequestProblem(400, f"{_MALFORMED}: {short(error)}") from None
    return message


@dataclass
class Scope:
    """One ScopeLogs of the request: its resource, its scope name, its records (each with its size
    on the wire)."""

    resource: Resource
    scope_name: str
    records: Iterator[tuple[LogRecord, int]]


class LogsRequest:
    """An ``ExportLogsServiceRequest`` kept as its protobuf bytes (see above), already checked."""

    def __init__(self, data: bytes, records: int, groups: int) -> None:
        self.data = data
        #: Log records in the request.
        self.records = records
        #: ResourceLogs and ScopeLogs in the request.
        self.groups = groups

    @classmethod
    def check(cls, data: bytes, max_records: int) -> LogsRequest:
        """Walk and parse every message once (400 on anything malformed), counting records and
        groups (ResourceLogs, ScopeLogs); 413 as soon as either passes ``max_records``. Nothing parsed is kept."""
        records = groups = 0
        too_many_groups = RequestProblem(413, f"more than {max_records} resource and scope groups in one request")
        for resource_parts, scopes in cls._walk(data):
            groups += 1
            if groups > max_records:
                raise too_many_groups
            _parse(Resource(), data, resource_parts, "resource")
            for scope_parts, log_records in scopes:
                groups += 1
                if groups > max_records:
                    raise too_many_groups
                _parse(InstrumentationScope(), data, scope_parts, "scope")
                for start, stop in log_records:
                    records += 1
                    if records > max_records:
                        raise RequestProblem(
                            413, f"more than {max_records} log records in one request (send smaller batches)"
                        )
                    _parse(LogRecord(), data, [(start, stop)], "record")
        return cls(data, records, groups)

    def scopes(self) -> Iterator[Scope]:
        """The request's ScopeLogs in order, each record parsed only when its iterator reaches it."""
        data = self.data
        for resource_parts, scopes in self._walk(data):
            resource = _parse(Resource(), data, resource_parts, "resource")
            for scope_parts, log_records in scopes:
                scope = _parse(InstrumentationScope(), data, scope_parts, "scope")
                records = ((_parse(LogRecord(), data, [p], "record"), p[1] - p[0]) for p in log_records)
                yield Scope(resource, scope.name, records)

    @staticmethod
    def _walk(
        data: bytes,
    ) -> Iterator[tuple[list[tuple[int, int]], Iterator[tuple[list[tuple[int, int]], Iterator[tuple[int, int]]]]]]:
        """Per ResourceLogs: the parts of its resource, and per ScopeLogs the parts of its scope and
        the ``(start, stop)`` of each log record (lazily)."""
        for _, start, stop in _messages(data, 0, len(data), _RESOURCE_LOGS):
            resource = [(begin, end) for field, begin, end in _messages(data, start, stop, 0) if field == _RESOURCE]

            def scopes(start: int = start, stop: int = stop) -> Iterator[Any]:
                for _, begin, end in _messages(data, start, stop, _SCOPE_LOGS):
                    scope = [(b, e) for field, b, e in _messages(data, begin, end, 0) if field == _SCOPE]
                    records = ((b, e) for _, b, e in _messages(data, begin, end, _LOG_RECORDS))
                    yield scope, records

            yield resource, scopes()


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
