"""``splight-runner gateway`` over real HTTP on 127.0.0.1, delivering to a real DevEngine.

Requests are built with the ``opentelemetry.proto`` messages (and, for the
equivalence test, with the OTLP exporter's own encoder from SDK records), so
what is tested is what a collector or an SDK really sends.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import http.client
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from google.protobuf import json_format
from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.sdk._logs import ReadWriteLogRecord
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from splight_runner import diagnostics
from splight_runner.dev_engine.server import DevEngine
from splight_runner.engine import records as translation
from splight_runner.gateway.command import parse_listen
from splight_runner.gateway.otlp_http import inflate
from splight_runner.gateway.server import Gateway
from splight_runner.settings import ConfigError, EngineSettings
from support import ACCESS_ID, RFC3339_MICROS, RUNNER, SECRET_KEY, engine_env

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
T0 = 1_704_067_200_000_000_000  # 2024-01-01T00:00:00Z in ns
TRACE = bytes(range(1, 17))
SPAN = bytes(range(1, 9))


# -- building requests -------------------------------------------------------------------------


def value(python: Any) -> AnyValue:
    if isinstance(python, str):
        return AnyValue(string_value=python)
    if isinstance(python, bool):
        return AnyValue(bool_value=python)
    if isinstance(python, int):
        return AnyValue(int_value=python)
    if isinstance(python, float):
        return AnyValue(double_value=python)
    if isinstance(python, dict):
        return AnyValue(kvlist_value=KeyValueList(values=[KeyValue(key=k, value=value(v)) for k, v in python.items()]))
    if isinstance(python, list):
        return AnyValue(array_value=ArrayValue(values=[value(v) for v in python]))
    raise TypeError(python)


def attrs(mapping: dict[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=k, value=value(v)) for k, v in mapping.items()]


@dataclass
class Rec:
    """One OTLP log record to put in a request."""

    body: Any = "hello"
    severity: int = 9
    severity_text: str = "INFO"
    attributes: dict[str, Any] | None = None
    time_ns: int = T0
    observed_ns: int = 0
    trace_id: bytes = b""
    span_id: bytes = b""
    event_name: str = ""


def status_rec(status: str, time_ns: int = T0) -> Rec:
    return Rec(
        body=status,
        attributes={translation.ATTR_STATUS: status},
        event_name=translation.STATUS_EVENT_NAME,
        time_ns=time_ns,
    )


def otlp(
    records: list[Rec],
    *,
    component_id: str | None = "C1",
    process_type: str | None = None,
    scope: str = "my.logger",
    request: ExportLogsServiceRequest | None = None,
) -> ExportLogsServiceRequest:
    """An ExportLogsServiceRequest (or one more ResourceLogs in ``request``)."""
    request = request if request is not None else ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    resource = {"service.name": "svc"}
    if component_id is not None:
        resource[translation.RESOURCE_COMPONENT_ID] = component_id
    if process_type is not None:
        resource[translation.RESOURCE_PROCESS_TYPE] = process_type
    resource_logs.resource.attributes.extend(attrs(resource))
    scope_logs = resource_logs.scope_logs.add()
    scope_logs.scope.name = scope
    for rec in records:
        record = scope_logs.log_records.add()
        record.time_unix_nano = rec.time_ns
        record.observed_time_unix_nano = rec.observed_ns
        record.severity_number = rec.severity  # type: ignore[assignment]
        record.severity_text = rec.severity_text
        if rec.body is not None:
            record.body.CopyFrom(value(rec.body))
        record.attributes.extend(attrs(rec.attributes or {}))
        record.trace_id = rec.trace_id
        record.span_id = rec.span_id
        record.event_name = rec.event_name
    return request


def many(n: int, *, start: int = 0, prefix: str = "m") -> list[Rec]:
    return [Rec(body=f"{prefix}{i}", time_ns=T0 + i * 1000) for i in range(start, start + n)]


def to_otlp_json(request: ExportLogsServiceRequest) -> bytes:
    """OTLP JSON as the specification writes it: lowerCamelCase, integer enums, hex ids."""
    document = json_format.MessageToDict(request, use_integers_for_enums=True)
    for resource_logs in document.get("resourceLogs", []):
        for scope_logs in resource_logs.get("scopeLogs", []):
            for record in scope_logs.get("logRecords", []):
                for key in ("traceId", "spanId"):
                    if key in record:
                        record[key] = base64.b64decode(record[key]).hex()
    return json.dumps(document).encode()


# -- talking to the gateway --------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def response(self) -> ExportLogsServiceResponse:
        answer = ExportLogsServiceResponse()
        if self.headers.get("content-type") == JSON:
            json_format.Parse(self.body, answer)
        else:
            answer.ParseFromString(self.body)
        return answer

    def rpc_status(self) -> tuple[int, str]:
        """The google.rpc.Status of an error answer, in either encoding."""
        if self.headers.get("content-type") == JSON:
            document = json.loads(self.body)
            return document["code"], document["message"]
        from google.rpc import status_pb2

        status = status_pb2.Status()
        status.ParseFromString(self.body)
        return status.code, status.message


def post(
    gateway: Gateway | int,
    body: bytes | ExportLogsServiceRequest,
    *,
    content_type: str = PROTOBUF,
    headers: dict[str, str] | None = None,
    path: str = "/v1/logs",
    method: str = "POST",
    timeout: float = 30.0,
) -> Reply:
    if isinstance(body, ExportLogsServiceRequest):
        body = body.SerializeToString()
    port = gateway if isinstance(gateway, int) else gateway.port
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": content_type, **(headers or {})})
        response = conn.getresponse()
        data = response.read()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
    finally:
        conn.close()


def settings(engine: DevEngine) -> EngineSettings:
    return EngineSettings(host=engine.url, api_version="v3", access_id=ACCESS_ID, secret_key=SECRET_KEY)


@pytest.fixture
def gateway(dev_engine: DevEngine) -> Iterator[Gateway]:
    with Gateway(("127.0.0.1", 0), settings(dev_engine), engine_timeout=5.0) as started:
        yield started


def expected(message: str, **overrides: Any) -> dict[str, Any]:
    record = {
        "sender_type": "component",
        "id": "C1",
        "name": "my.logger",
        "message": message,
        "loglevel": "INFO",
        "filename": "",
        "traceback": "",
        "tags": None,
        "timestamp": "2024-01-01T00:00:00.000000Z",
    }
    record.update(overrides)
    return record


def messages(engine: DevEngine) -> list[str]:
    return [record["message"] for record in engine.records]


def logs_posts(engine: DevEngine) -> list[Any]:
    return [r for r in engine.requests if r.path.endswith("/logs/write/")]


# -- what arrives ------------------------------------------------------------------------------


def test_records_and_statuses_arrive_as_engine_calls_in_request_order(gateway: Gateway, dev_engine: DevEngine) -> None:
    request = otlp(
        [
            Rec(
                body="started",
                attributes={
                    "code.file.path": "/app/src/main.py",
                    "code.function.name": "run",
                    "code.line.number": 12,
                    translation.ATTR_TAGS: {"asset": "a1", "n": 3},
                },
                trace_id=TRACE,
                span_id=SPAN,
            ),
            status_rec("Running", T0 + 1000),
            Rec(
                body="it broke",
                severity=17,
                severity_text="ERROR",
                time_ns=T0 + 2_000_123,
                attributes={
                    "code.file.path": "C:\\app\\worker.py",
                    translation.ATTR_EXCEPTION_STACKTRACE: "Traceback (most recent call last):\n  boom\nValueError: x",
                    translation.ATTR_TAGS: ["a", "b"],
                },
            ),
            Rec(body="no time", severity=0, severity_text="WARN", time_ns=0, observed_ns=T0 + 5_000),
            Rec(body={"structured": [1, 2]}, severity=21, severity_text="FATAL", trace_id=b"\x00" * 16),
        ],
        process_type="agent",
    )
    reply = post(gateway, request)
    assert reply.status == 200
    assert reply.headers["content-type"] == PROTOBUF
    assert not reply.response().HasField("partial_success")
    common = {"sender_type": "agent"}
    assert dev_engine.records == [
        expected(
            "started",
            filename="main.py",
            tags={"asset": "a1", "n": 3},
            trace_id=TRACE.hex(),
            span_id=SPAN.hex(),
            **common,
        ),
        expected(
            "it broke",
            loglevel="ERROR",
            filename="worker.py",
            traceback="Traceback (most recent call last):\n  boom\nValueError: x",
            tags=["a", "b"],
            timestamp="2024-01-01T00:00:00.002000Z",
            **common,
        ),
        expected("no time", loglevel="WARNING", timestamp="2024-01-01T00:00:00.000005Z", **common),
        expected('{"structured": [1, 2]}', loglevel="CRITICAL", **common),
    ]
    assert dev_engine.statuses == [("C1", "Running")]
    # logs, then the status, then the logs made after it: the order of the request.
    kinds = ["status" if "update-status" in r.path else "logs" for r in dev_engine.requests]
    assert kinds == ["logs", "status", "logs"]
    assert all(RFC3339_MICROS.match(r["timestamp"]) for r in dev_engine.records)


def test_gateway_records_equal_the_in_process_exporter_records(gateway: Gateway, dev_engine: DevEngine) -> None:
    """SDK records → OTLP exporter's encoder → gateway give what translation.from_sdk gives in-process."""
    resource = Resource.create(
        {translation.RESOURCE_COMPONENT_ID: "C9", translation.RESOURCE_PROCESS_TYPE: "component"}
    )
    scope = InstrumentationScope("pkg.module")

    def sdk(**kwargs: Any) -> ReadWriteLogRecord:
        return ReadWriteLogRecord(log_record=LogRecord(**kwargs), resource=resource, instrumentation_scope=scope)

    batch = [
        sdk(
            timestamp=T0 + 123_456_789,
            observed_timestamp=T0 + 123_456_789,
            severity_text="INFO",
            severity_number=SeverityNumber.INFO,
            body="reading 42 values",
            attributes={
                "code.file.path": "/srv/comp/main.py",
                "code.line.number": 7,
                "thread.name": "MainThread",
                translation.ATTR_TAGS: {"asset": "A", "ids": [1, 2]},
            },
            trace_id=0x0AF7651916CD43DD8448EB211C80319C,
            span_id=0xB7AD6B7169203331,
        ),
        sdk(
            timestamp=T0,
            severity_text="WARN",
            severity_number=SeverityNumber.WARN,
            body="ümlaut and emoji 🎉",
            attributes={"code.filepath": "legacy.py"},
        ),
        sdk(
            observed_timestamp=T0 + 1,
            severity_text="ERROR",
            severity_number=SeverityNumber.ERROR,
            body="failed",
            attributes={translation.ATTR_EXCEPTION_STACKTRACE: "Traceback...\nKeyError: 'k'", "extra": 1.5},
        ),
        sdk(
            timestamp=T0 + 5,
            severity_text="INFO",
            severity_number=SeverityNumber.INFO,
            body="Running",
            attributes={translation.ATTR_STATUS: "Running"},
            event_name=translation.STATUS_EVENT_NAME,
        ),
    ]
    in_process = [translation.from_sdk(readable, None, "component") for readable in batch]
    reply = post(gateway, encode_logs(batch))
    assert reply.status == 200
    # Compared as the Engine receives them (JSON: the SDK keeps sequences as tuples).
    assert dev_engine.records == json.loads(json.dumps([payload for kind, payload in in_process if kind == "log"]))
    assert dev_engine.statuses == [payload for kind, payload in in_process if kind == "status"]


def test_a_status_is_sent_only_when_it_changes(gateway: Gateway, dev_engine: DevEngine) -> None:
    for status, t in (("Running", 1), ("Running", 2), ("Failed", 3), ("Failed", 4), ("Running", 5)):
        assert post(gateway, otlp([status_rec(status, T0 + t)])).status == 200
    assert post(gateway, otlp([status_rec("Running", T0 + 6)], component_id="C2")).status == 200
    assert dev_engine.statuses == [("C1", "Running"), ("C1", "Failed"), ("C1", "Running"), ("C2", "Running")]
    # A record that merely mentions a status is a log, and "Unknown" is never a status.
    post(gateway, otlp([Rec(body="Stopped"), Rec(body="Unknown", event_name=translation.STATUS_EVENT_NAME)]))
    assert messages(dev_engine) == ["Stopped", "Unknown"]
    assert len(dev_engine.statuses) == 4


def test_records_without_component_id_are_rejected_in_partial_success(gateway: Gateway, dev_engine: DevEngine) -> None:
    request = otlp([Rec(body="orphan 1"), Rec(body="orphan 2")], component_id=None)
    otlp([Rec(body="kept")], request=request)
    otlp([Rec(body="orphan 3")], component_id="", request=request)
    reply = post(gateway, request)
    assert reply.status == 200
    partial = reply.response().partial_success
    assert partial.rejected_log_records == 3
    assert translation.RESOURCE_COMPONENT_ID in partial.error_message
    assert messages(dev_engine) == ["kept"]
    assert gateway.stats.records_rejected == 3


def test_otlp_json_is_equivalent_to_protobuf(gateway: Gateway, dev_engine: DevEngine) -> None:
    records = [
        Rec(
            body="json too",
            attributes={"code.file.path": "/a/b.py", translation.ATTR_TAGS: {"k": "v"}},
            trace_id=TRACE,
            span_id=SPAN,
            time_ns=T0 + 999_999,
        ),
        status_rec("Running"),
        Rec(body=None, severity=13, severity_text="WARN"),
    ]
    assert post(gateway, otlp(records, component_id="P")).status == 200
    from_protobuf = dev_engine.records
    body = json.loads(to_otlp_json(otlp(records, component_id="J")))
    body["someFutureField"] = {"ignored": True}  # unknown fields are ignored
    body["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]["futureField"] = 1
    reply = post(gateway, json.dumps(body).encode(), content_type="application/json; charset=utf-8")
    assert reply.status == 200
    assert reply.headers["content-type"] == JSON
    assert json.loads(reply.body) == {}
    from_json = dev_engine.records[len(from_protobuf) :]
    assert [{**r, "id": "X"} for r in from_json] == [{**r, "id": "X"} for r in from_protobuf]
    assert from_json[0]["trace_id"] == TRACE.hex()
    assert dev_engine.statuses == [("P", "Running"), ("J", "Running")]


def test_json_with_snake_case_names_and_a_partial_success_answer(gateway: Gateway, dev_engine: DevEngine) -> None:
    document = {
        "resource_logs": [
            {
                "resource": {"attributes": [{"key": "splight.component.id", "value": {"stringValue": "S"}}]},
                "scope_logs": [
                    {
                        "scope": {"name": "snake"},
                        "log_records": [
                            {
                                "time_unix_nano": str(T0),
                                "severity_number": 17,
                                "body": {"string_value": "snake case"},
                                "trace_id": TRACE.hex(),
                                "span_id": "",
                            }
                        ],
                    }
                ],
            },
            {"scopeLogs": [{"logRecords": [{"body": {"stringValue": "no id"}}]}]},
        ]
    }
    reply = post(gateway, json.dumps(document).encode(), content_type=JSON)
    assert reply.status == 200
    answer = json.loads(reply.body)
    assert answer["partialSuccess"]["rejectedLogRecords"] in (1, "1")
    assert dev_engine.records == [expected("snake case", id="S", name="snake", loglevel="ERROR", trace_id=TRACE.hex())]


def test_gzip_and_deflate_bodies(gateway: Gateway, dev_engine: DevEngine) -> None:
    data = otlp(many(3)).SerializeToString()
    assert post(gateway, gzip.compress(data), headers={"Content-Encoding": "gzip"}).status == 200
    assert messages(dev_engine) == ["m0", "m1", "m2"]
    dev_engine.clear()
    data = otlp(many(2, start=10)).SerializeToString()
    assert post(gateway, zlib.compress(data), headers={"Content-Encoding": "deflate"}).status == 200
    json_body = to_otlp_json(otlp(many(1, start=20)))
    reply = post(gateway, gzip.compress(json_body), content_type=JSON, headers={"Content-Encoding": "gzip"})
    assert reply.status == 200
    assert messages(dev_engine) == ["m10", "m11", "m20"]


def test_keep_alive_and_chunked_transfer_encoding(gateway: Gateway, dev_engine: DevEngine) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
    try:
        for i in range(3):
            conn.request(
                "POST", "/v1/logs", body=otlp(many(1, start=i)).SerializeToString(), headers={"Content-Type": PROTOBUF}
            )
            response = conn.getresponse()
            response.read()
            assert response.status == 200
        data = otlp(many(2, start=3)).SerializeToString()
        conn.request(
            "POST",
            "/v1/logs",
            body=iter([data[:10], data[10:]]),
            headers={"Content-Type": PROTOBUF},
            encode_chunked=True,
        )
        response = conn.getresponse()
        response.read()
        assert response.status == 200
    finally:
        conn.close()
    assert messages(dev_engine) == ["m0", "m1", "m2", "m3", "m4"]


def test_a_record_too_big_for_one_post_is_truncated_visibly(gateway: Gateway, dev_engine: DevEngine) -> None:
    huge = "x" * (2 * 1024 * 1024)
    assert post(gateway, otlp([Rec(body=huge), Rec(body="after")])).status == 200
    first, second = dev_engine.records
    assert first["message"].startswith("xxx") and "truncated by splight-runner" in first["message"]
    assert second["message"] == "after"


def test_more_than_1000_records_go_in_several_posts(gateway: Gateway, dev_engine: DevEngine) -> None:
    assert post(gateway, otlp(many(2500))).status == 200
    assert messages(dev_engine) == [f"m{i}" for i in range(2500)]
    assert [r.records for r in logs_posts(dev_engine)] == [1000, 1000, 500]


# -- requests that are wrong in themselves -----------------------------------------------------


@pytest.mark.parametrize(
    ("body", "content_type", "headers"),
    [
        (b"\xff\xfe garbage \x00\x01", PROTOBUF, {}),
        (b"\x0a\xff\xff\xff\xff\x0f", PROTOBUF, {}),  # a length far past the end
        (b"{not json", JSON, {}),
        (b"[1, 2]", JSON, {}),
        (b'{"resourceLogs": 5}', JSON, {}),
        (b'{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"traceId": "zz"}]}]}]}', JSON, {}),
        (gzip.compress(b"data")[:-6], PROTOBUF, {"Content-Encoding": "gzip"}),  # truncated gzip
        (b"not gzip at all", PROTOBUF, {"Content-Encoding": "gzip"}),
        (gzip.compress(b"") + b"trailing", PROTOBUF, {"Content-Encoding": "gzip"}),
    ],
    ids=[
        "garbage",
        "bad-length",
        "bad-json",
        "json-array",
        "json-wrong-type",
        "bad-hex",
        "truncated-gzip",
        "not-gzip",
        "gzip-trailing",
    ],
)
def test_undecodable_bodies_are_400_with_an_rpc_status(
    gateway: Gateway, dev_engine: DevEngine, body: bytes, content_type: str, headers: dict[str, str]
) -> None:
    reply = post(gateway, body, content_type=content_type, headers=headers)
    assert reply.status == 400
    assert reply.headers["content-type"] == content_type
    code, message = reply.rpc_status()
    assert code == 3 and message
    assert dev_engine.requests == []


def test_bodies_over_the_limit_are_413_raw_and_after_decompression(dev_engine: DevEngine) -> None:
    with Gateway(("127.0.0.1", 0), settings(dev_engine), max_body_bytes=64 * 1024) as gateway:
        big = otlp([Rec(body="y" * 70_000)]).SerializeToString()
        assert post(gateway, big).status == 413
        # 1 GiB of zeros is about 1 MiB of gzip: refused after inflating at most the limit.
        bomb = io.BytesIO()
        with gzip.GzipFile(fileobj=bomb, mode="wb") as writer:
            chunk = b"\0" * (1024 * 1024)
            for _ in range(64):
                writer.write(chunk)
        compressed = bomb.getvalue()
        assert len(compressed) < 64 * 1024
        started = time.monotonic()
        reply = post(gateway, compressed, headers={"Content-Encoding": "gzip"})
        assert reply.status == 413
        assert time.monotonic() - started < 5
        assert reply.rpc_status()[0] == 8
        # Just under the limit is fine.
        small = otlp([Rec(body="y" * 1000)]).SerializeToString()
        assert post(gateway, gzip.compress(small), headers={"Content-Encoding": "gzip"}).status == 200
    assert messages(dev_engine) == ["y" * 1000]


def test_inflate_never_produces_more_than_the_limit() -> None:
    data = zlib.compress(b"a" * 10_000_000)
    with pytest.raises(Exception, match="larger than 1000 bytes"):
        inflate(data, "deflate", 1000)
    assert inflate(gzip.compress(b"one") + gzip.compress(b"two"), "gzip", 100) == b"onetwo"
    raw = zlib.compressobj(wbits=-15)
    assert inflate(raw.compress(b"raw deflate") + raw.flush(), "deflate", 100) == b"raw deflate"


def test_wrong_content_type_or_encoding_is_415(gateway: Gateway, dev_engine: DevEngine) -> None:
    body = otlp(many(1)).SerializeToString()
    assert post(gateway, body, content_type="text/plain").status == 415
    assert post(gateway, body, content_type="").status == 415
    assert post(gateway, body, headers={"Content-Encoding": "br"}).status == 415
    assert dev_engine.requests == []


def test_a_token_is_required_when_set(dev_engine: DevEngine) -> None:
    with Gateway(("127.0.0.1", 0), settings(dev_engine), token="s3cret-token") as gateway:
        body = otlp(many(1)).SerializeToString()
        assert post(gateway, body).status == 401
        reply = post(gateway, body, headers={"Authorization": "Bearer wrong"})
        assert reply.status == 401
        assert reply.headers["www-authenticate"] == "Bearer"
        assert post(gateway, body, headers={"Authorization": "Basic s3cret-token"}).status == 401
        assert dev_engine.requests == []
        assert post(gateway, body, headers={"Authorization": "Bearer s3cret-token"}).status == 200
        assert post(gateway, b"", path="/healthz", method="GET").status == 200  # health needs no token
    assert messages(dev_engine) == ["m0"]


def test_paths_and_methods(gateway: Gateway) -> None:
    health = post(gateway, b"", path="/healthz", method="GET")
    assert (health.status, health.body) == (200, b"ok")
    assert post(gateway, b"", path="/healthz", method="HEAD").status == 200
    assert post(gateway, b"", path="/healthz", method="POST").status == 405
    assert post(gateway, b"", path="/v1/traces").status == 404
    assert post(gateway, b"", path="/", method="GET").status == 404
    reply = post(gateway, b"", method="GET")
    assert (reply.status, reply.headers["allow"]) == (405, "POST")
    assert post(gateway, b"", method="PUT").status == 405
    assert post(gateway, b"", method="BREW").status == 405


def test_missing_content_length_is_411_and_huge_content_length_is_413(gateway: Gateway) -> None:
    assert (
        raw_exchange(gateway, b"POST /v1/logs HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n\r\n")[:12]
        == b"HTTP/1.1 411"
    )
    head = b"POST /v1/logs HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nContent-Length: "
    assert raw_exchange(gateway, head + b"99999999999999\r\n\r\n")[:12] == b"HTTP/1.1 413"
    assert raw_exchange(gateway, head + b"-5\r\n\r\n")[:12] == b"HTTP/1.1 400"


def raw_exchange(gateway: Gateway, data: bytes, *, read: bool = True, timeout: float = 5.0) -> bytes:
    """Send raw bytes on a fresh connection, half-close it, and read what comes back until EOF."""
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=timeout) as sock:
        with contextlib.suppress(OSError):
            sock.sendall(data)
        if not read:
            return b""
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        with contextlib.suppress(OSError):
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks)


def test_the_gateway_survives_200_malformed_requests(gateway: Gateway, dev_engine: DevEngine) -> None:
    head = b"POST /v1/logs HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
    json_head = b"POST /v1/logs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    good = otlp(many(1)).SerializeToString()
    attacks = [
        b"\x00\x01\x02garbage\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        b"POST /v1/logs HTTP/1.1\r\n" + b"X-Long: " + b"a" * 70_000 + b"\r\n\r\n",
        b"POST /v1/logs HTTP/1.1\r\n" + b"".join(b"H%d: v\r\n" % i for i in range(200)) + b"\r\n",
        head + b"Content-Length: 100\r\n\r\nshort",  # then the client goes away
        head + b"Content-Length: 10\r\nContent-Length: 11\r\n\r\n0123456789",
        head + b"Content-Length: abc\r\n\r\n",
        head + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n",
        head + b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
        head + b"Transfer-Encoding: gzip\r\n\r\n",
        head + b"Content-Encoding: gzip\r\nContent-Length: 4\r\n\r\n\x1f\x8b\x08\x00",
        head + b"Content-Length: %d\r\n\r\n" % len(good) + good[:-3] + b"\xff\xff\xff",
        json_head + b"Content-Length: 8\r\n\r\n[[[[[[[[",
        json_head + b"Content-Length: 20000\r\n\r\n" + b"[" * 10_000 + b"]" * 10_000,
        b"",
    ]
    for i in range(200):
        raw_exchange(gateway, attacks[i % len(attacks)], read=i % 3 != 0, timeout=2.0)
    assert post(gateway, good).status == 200
    assert messages(dev_engine) == ["m0"]
    assert post(gateway, b"", path="/healthz", method="GET").body == b"ok"


# -- when the Engine cannot take the records ---------------------------------------------------


def test_503_with_retry_after_while_the_engine_refuses_then_each_record_once(
    gateway: Gateway, dev_engine: DevEngine
) -> None:
    request = otlp([*many(3), status_rec("Running"), *many(2, start=3)])
    dev_engine.refuse_for(1.0)
    reply = post(gateway, request)
    assert reply.status == 503
    assert int(reply.headers["retry-after"]) >= 1
    assert reply.rpc_status()[0] == 14
    assert dev_engine.wait_for(lambda engine: post(gateway, b"", path="/healthz", method="GET").status == 200)
    time.sleep(1.2)
    assert post(gateway, request).status == 200
    assert post(gateway, request).status == 200  # a duplicate delivery of the whole request
    assert messages(dev_engine) == ["m0", "m1", "m2", "m3", "m4"]
    assert dev_engine.statuses == [("C1", "Running")]


def test_the_engines_retry_after_is_passed_on(gateway: Gateway, dev_engine: DevEngine) -> None:
    dev_engine.fail_next(1, 503, retry_after="7")
    reply = post(gateway, otlp(many(1)))
    assert (reply.status, reply.headers["retry-after"]) == (503, "7")
    dev_engine.fail_next(1, 502)
    reply = post(gateway, otlp(many(1)))
    assert (reply.status, reply.headers["retry-after"]) == (503, str(gateway.retry_after))
    assert post(gateway, otlp(many(1))).status == 200
    assert messages(dev_engine) == ["m0"]


def test_429_from_the_engine_is_passed_on(gateway: Gateway, dev_engine: DevEngine) -> None:
    dev_engine.fail_next(1, 429, retry_after="3")
    reply = post(gateway, otlp(many(2)), content_type=PROTOBUF)
    assert (reply.status, reply.headers["retry-after"]) == (429, "3")
    assert reply.rpc_status()[0] == 8
    assert post(gateway, otlp(many(2))).status == 200
    assert messages(dev_engine) == ["m0", "m1"]


def test_a_retry_after_a_partly_accepted_request_delivers_each_record_once(
    gateway: Gateway, dev_engine: DevEngine
) -> None:
    """2500 records = 3 POSTs; the first is accepted, the second fails; the retry sends only the rest."""
    request = otlp(many(2500)).SerializeToString()
    dev_engine.set_delay(0.3)

    def fail_the_second_post() -> None:
        dev_engine.wait_for(lambda engine: len(engine.records) >= 1000, timeout=20)
        dev_engine.fail_next(1, 503, endpoint="logs")
        dev_engine.set_delay(0)

    watcher = threading.Thread(target=fail_the_second_post)
    watcher.start()
    reply = post(gateway, request)
    watcher.join()
    assert reply.status == 503
    assert len(dev_engine.records) == 1000
    assert post(gateway, request).status == 200
    assert messages(dev_engine) == [f"m{i}" for i in range(2500)]
    assert [r.status for r in logs_posts(dev_engine)] == [201, 503, 201, 201]
    assert gateway.stats.records_skipped_as_duplicates == 1000


def test_a_retry_after_a_failed_status_does_not_repeat_the_logs_before_it(
    gateway: Gateway, dev_engine: DevEngine
) -> None:
    request = otlp([*many(1200), status_rec("Running"), *many(10, start=1200), status_rec("Stopped", T0 + 9)])
    dev_engine.fail_next(1, 503, endpoint="status")
    assert post(gateway, request).status == 503
    assert len(dev_engine.records) == 1200
    dev_engine.close_mid_response(1)  # the next call (the status) is cut off mid-answer
    assert post(gateway, request).status == 503
    assert post(gateway, request).status == 200
    assert messages(dev_engine) == [f"m{i}" for i in range(1210)]
    assert dev_engine.statuses == [("C1", "Running"), ("C1", "Stopped")]
    # A late retry of the same request cannot move the component back to Running.
    assert post(gateway, request).status == 200
    assert dev_engine.statuses == [("C1", "Running"), ("C1", "Stopped")]


def test_identical_requests_in_flight_at_once_are_delivered_once(gateway: Gateway, dev_engine: DevEngine) -> None:
    """A collector that timed out and retried while the first attempt is still running."""
    request = otlp(many(5)).SerializeToString()
    dev_engine.set_delay(0.5)
    replies: list[Reply] = []
    threads = [threading.Thread(target=lambda: replies.append(post(gateway, request))) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [r.status for r in replies] == [200, 200, 200]
    assert messages(dev_engine) == ["m0", "m1", "m2", "m3", "m4"]


def test_same_looking_records_from_different_reads_are_not_taken_for_a_retry(
    gateway: Gateway, dev_engine: DevEngine
) -> None:
    """filelog: one line repeated in the same second, read at two moments (different observed times)."""
    line = Rec(body="waiting for data", time_ns=T0, observed_ns=T0 + 100)
    again = Rec(body="waiting for data", time_ns=T0, observed_ns=T0 + 200_000_000)
    assert post(gateway, otlp([line])).status == 200
    assert post(gateway, otlp([again])).status == 200
    assert messages(dev_engine) == ["waiting for data", "waiting for data"]


def test_a_hung_engine_gives_503_not_a_hung_collector(dev_engine: DevEngine) -> None:
    with Gateway(("127.0.0.1", 0), settings(dev_engine), engine_timeout=0.5) as gateway:
        dev_engine.set_delay(3)
        started = time.monotonic()
        reply = post(gateway, otlp(many(1)))
        assert reply.status == 503
        assert time.monotonic() - started < 2.5
        dev_engine.set_delay(0)


def test_a_non_retryable_engine_rejection_is_a_partial_success(
    gateway: Gateway, dev_engine: DevEngine, capsys: pytest.CaptureFixture[str]
) -> None:
    dev_engine.fail_next(1, 400, endpoint="logs")
    reply = post(gateway, otlp([*many(1200), status_rec("Running")]))
    assert reply.status == 200
    partial = reply.response().partial_success
    assert partial.rejected_log_records == 1000
    assert "injected failure (400)" in partial.error_message
    assert messages(dev_engine) == [f"m{i}" for i in range(1000, 1200)]
    assert dev_engine.statuses == [("C1", "Running")]
    err = capsys.readouterr().err
    assert "rejected 1000 log records" in err
    assert len(err.strip().splitlines()) == 1


def test_wrong_engine_credentials_are_503_said_once_and_never_print_the_secret(
    dev_engine: DevEngine, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The gateway's own credentials are wrong: the collector must keep the records (503), not drop them."""
    monkeypatch.setattr(diagnostics, "_limited", {})  # a fresh rate limiter: this test wants the first line
    wrong = EngineSettings(host=dev_engine.url, api_version="v3", access_id=ACCESS_ID, secret_key="TOPSECRET42")
    with Gateway(("127.0.0.1", 0), wrong) as gateway:
        for _ in range(5):
            reply = post(gateway, otlp(many(2)))
            assert reply.status == 503
            assert int(reply.headers["retry-after"]) >= 1
            assert reply.rpc_status()[0] == 14
            assert "TOPSECRET42" not in reply.body.decode("utf-8", "replace")
        assert gateway.stats.records_rejected == 0
    err = capsys.readouterr().err
    assert "TOPSECRET42" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "credentials" in lines[0] and "SPLIGHT_SECRET_KEY" in lines[0], err


def test_an_engine_403_is_503_too_and_delivery_resumes(gateway: Gateway, dev_engine: DevEngine) -> None:
    dev_engine.fail_next(2, 403, endpoint="logs")
    assert post(gateway, otlp(many(2))).status == 503
    assert post(gateway, otlp(many(2))).status == 503
    assert post(gateway, otlp(many(2))).status == 200
    assert messages(dev_engine) == ["m0", "m1"]


def test_stop_closes_idle_connections_and_frees_the_port(dev_engine: DevEngine) -> None:
    gateway = Gateway(("127.0.0.1", 0), settings(dev_engine)).start()
    conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=5)
    conn.request("GET", "/healthz")
    conn.getresponse().read()
    gateway.stop()
    with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
        conn.request("GET", "/healthz")
        conn.getresponse()
    conn.close()
    again = Gateway(("127.0.0.1", gateway.port), settings(dev_engine)).start()
    try:
        assert post(again, b"", path="/healthz", method="GET").status == 200
    finally:
        again.stop()


def test_listen_addresses() -> None:
    assert parse_listen("127.0.0.1:14318") == ("127.0.0.1", 14318)
    assert parse_listen(":0") == ("127.0.0.1", 0)
    assert parse_listen("[::1]:80") == ("::1", 80)
    for bad in ("localhost", "host:port", "1.2.3.4:70000", "::1:80"):
        with pytest.raises(ConfigError):
            parse_listen(bad)


# -- the command ----------------------------------------------------------------------------------


def start_cli(env: dict[str, str], *args: str) -> tuple[subprocess.Popen[str], int]:
    process = subprocess.Popen(
        [*RUNNER, "gateway", "--listen", "127.0.0.1:0", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    match = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
    if match is None:
        process.kill()
        pytest.fail(f"no listening line: {line!r} {process.communicate()}")
    return process, int(match.group(1))


def test_cli_gateway_delivers_and_stops_on_sigterm(dev_engine: DevEngine) -> None:
    env = engine_env(dev_engine, SPLIGHT_GATEWAY_TOKEN="tok")
    process, port = start_cli(env)
    try:
        assert post(port, otlp(many(2))).status == 401
        assert post(port, otlp(many(2)), headers={"Authorization": "Bearer tok"}).status == 200
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=15)
    assert process.returncode == 0, err
    assert messages(dev_engine) == ["m0", "m1"]
    assert "stopped" in out
    assert "dev-secret" not in out + err
    assert "Traceback" not in err


def test_cli_gateway_without_credentials_exits_2_with_one_line(dev_engine: DevEngine) -> None:
    env = {k: v for k, v in engine_env(dev_engine).items() if k != "SPLIGHT_SECRET_KEY"}
    done = subprocess.run([*RUNNER, "gateway"], env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "SPLIGHT_SECRET_KEY" in lines[0]
    assert done.stdout == ""


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--listen", "nonsense"], "--listen"),
        (["--max-body-bytes", "0"], "--max-body-bytes"),
        (["--max-records", "0"], "--max-records"),
        (["--max-connections", "x"], "--max-connections"),
        (["--listen", "0.0.0.0:0"], "SPLIGHT_GATEWAY_TOKEN"),
        (["--bogus"], "unrecognized"),
    ],
)
def test_cli_gateway_usage_errors_exit_2(dev_engine: DevEngine, args: list[str], needle: str) -> None:
    done = subprocess.run(
        [*RUNNER, "gateway", *args], env=engine_env(dev_engine), capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], done.stderr


def test_cli_gateway_port_in_use_exits_2(dev_engine: DevEngine) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [*RUNNER, "gateway", "--listen", f"127.0.0.1:{port}"],
            env=engine_env(dev_engine),
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert done.returncode == 2
    assert "cannot listen" in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_throughput_is_measured(dev_engine: DevEngine) -> None:
    """Not an assertion on speed (machines differ): a sanity check that 50 x 500 records flow quickly."""
    bodies = [otlp(many(500, start=k * 500)).SerializeToString() for k in range(50)]
    dev_engine_out = os.environ.get("SPLIGHT_GATEWAY_BENCH")
    with Gateway(("127.0.0.1", 0), settings(dev_engine)) as gateway:
        conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=30)
        started = time.perf_counter()
        for body in bodies:
            conn.request("POST", "/v1/logs", body=body, headers={"Content-Type": PROTOBUF})
            response = conn.getresponse()
            response.read()
            assert response.status == 200
        elapsed = time.perf_counter() - started
        conn.close()
    assert len(dev_engine.records) == 25_000
    if dev_engine_out:
        print(f"\n{25_000 / elapsed:.0f} records/s (gateway and DevEngine in one process)", file=sys.stderr)


# -- limits (issue 12) ------------------------------------------------------------------------------


def test_records_per_request_are_capped_with_413(dev_engine: DevEngine) -> None:
    with Gateway(("127.0.0.1", 0), settings(dev_engine), max_records=1000) as gateway:
        reply = post(gateway, otlp(many(1001)))
        assert reply.status == 413
        assert "more than 1000 log records" in reply.rpc_status()[1]
        json_reply = post(gateway, to_otlp_json(otlp(many(1001))), content_type=JSON)
        assert json_reply.status == 413
        assert dev_engine.requests == []
        assert post(gateway, otlp(many(1000))).status == 200
    assert len(dev_engine.records) == 1000


def test_a_record_with_too_many_values_is_413(gateway: Gateway, dev_engine: DevEngine) -> None:
    request = otlp([Rec(attributes={f"k{i}": i for i in range(70_000)})])
    reply = post(gateway, request)
    assert reply.status == 413
    assert "65536 values" in reply.rpc_status()[1]
    assert post(gateway, otlp([Rec(attributes={f"k{i}": i for i in range(5_000)})])).status == 200
    assert messages(dev_engine) == ["hello"]


def test_engine_records_are_built_one_post_at_a_time(
    gateway: Gateway, dev_engine: DevEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Engine refuses the first POST of 5000 records: only that POST's records were translated."""
    built = 0
    real = translation.engine_record

    def counting(**kwargs: Any) -> dict[str, Any]:
        nonlocal built
        built += 1
        return real(**kwargs)

    monkeypatch.setattr(translation, "engine_record", counting)
    dev_engine.fail_next(1, 503, endpoint="logs")
    assert post(gateway, otlp(many(5000))).status == 503
    assert built == 1000
    assert post(gateway, otlp(many(5000))).status == 200
    assert len(dev_engine.records) == 5000


def test_records_without_timestamps_are_not_duplicated_on_a_retry(gateway: Gateway, dev_engine: DevEngine) -> None:
    """Issue 12: 1,000 duplicates of 2,500. The timestamp must not come from the gateway's clock."""
    request = otlp([Rec(body=f"m{i}", time_ns=0, observed_ns=0) for i in range(2500)]).SerializeToString()
    dev_engine.set_delay(0.3)

    def fail_the_second_post() -> None:
        dev_engine.wait_for(lambda engine: len(engine.records) >= 1000, timeout=20)
        dev_engine.fail_next(1, 503, endpoint="logs")
        dev_engine.set_delay(0)

    watcher = threading.Thread(target=fail_the_second_post)
    watcher.start()
    assert post(gateway, request).status == 503
    watcher.join()
    time.sleep(0.01)
    assert post(gateway, request).status == 200
    time.sleep(0.01)
    assert post(gateway, request).status == 200  # the whole request once more, later
    assert messages(dev_engine) == [f"m{i}" for i in range(2500)]


def test_a_record_without_time_gets_its_observed_time_else_the_one_before_it(
    gateway: Gateway, dev_engine: DevEngine
) -> None:
    second = 1_000_000_000
    request = otlp(
        [
            Rec(body="none yet", time_ns=0),
            Rec(body="observed", time_ns=0, observed_ns=T0 + 2 * second),
            Rec(body="inherits", time_ns=0),
            Rec(body="own", time_ns=T0 + 5 * second, observed_ns=T0 + 9 * second),
        ]
    )
    assert post(gateway, request).status == 200
    stamps = {record["message"]: record["timestamp"] for record in dev_engine.records}
    assert stamps == {
        "none yet": "1970-01-01T00:00:00.000000Z",
        "observed": "2024-01-01T00:00:02.000000Z",
        "inherits": "2024-01-01T00:00:02.000000Z",
        "own": "2024-01-01T00:00:05.000000Z",
    }


def test_idle_and_slow_connections_are_closed(dev_engine: DevEngine) -> None:
    with Gateway(("127.0.0.1", 0), settings(dev_engine), idle_timeout=0.5, read_timeout=1.0) as gateway:
        idle = socket.create_connection(("127.0.0.1", gateway.port), timeout=5)
        slow = socket.create_connection(("127.0.0.1", gateway.port), timeout=5)
        started = time.monotonic()
        slow.sendall(b"POST /v1/logs HTTP/1.1\r\n")
        closed_slow = None
        for _ in range(30):  # a header line every 0.1 s, never finishing
            try:
                slow.sendall(b"X-Slow: 1\r\n")
            except OSError:
                closed_slow = time.monotonic() - started
                break
            time.sleep(0.1)
        assert idle.recv(1) == b""  # closed by the gateway
        assert closed_slow is not None and closed_slow < 2.9
        assert post(gateway, otlp(many(1))).status == 200
        idle.close()
        slow.close()


def test_at_the_connection_cap_the_longest_idle_connection_makes_room(dev_engine: DevEngine) -> None:
    with Gateway(("127.0.0.1", 0), settings(dev_engine), max_connections=4) as gateway:
        idle = [socket.create_connection(("127.0.0.1", gateway.port), timeout=5) for _ in range(10)]
        started = time.monotonic()
        assert post(gateway, otlp(many(1)), timeout=5).status == 200
        assert time.monotonic() - started < 2.0
        assert idle[0].recv(1) == b""  # the oldest went first
        for sock in idle:
            sock.close()
