"""Load generator for the gateway row, run as its own process: OTLP/HTTP protobuf requests.

Usage: ``python gateway_client.py URL REQUESTS RECORDS_PER_REQUEST CONNECTIONS``.
Bodies are built before the clock starts, every record unique (distinct
message and ``time_unix_nano``: the gateway's retry memory would rightly skip
a body it already delivered). Each connection sends its share in order over one
keep-alive connection, like a collector's ``otlphttp`` exporter with that many
consumers. Prints one ``BENCH_RESULT`` JSON line: start/end wall-clock times
and the status codes seen.
"""

from __future__ import annotations

import http.client
import json
import sys
import threading
import time
from urllib.parse import urlsplit

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.resource.v1.resource_pb2 import Resource


def _attr(key: str, value: str) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(string_value=value))


def build_body(request_index: int, records: int, base_ns: int) -> bytes:
    resource = Resource(
        attributes=[
            _attr("splight.component.id", "C1"),
            _attr("splight.process.type", "component"),
            _attr("service.name", "bench-gateway"),
        ]
    )
    logs = []
    for i in range(records):
        n = request_index * records + i
        logs.append(
            LogRecord(
                time_unix_nano=base_ns + n * 1000,
                observed_time_unix_nano=base_ns + n * 1000,
                severity_number=9,
                severity_text="INFO",
                body=AnyValue(string_value=f"record {n} of the gateway benchmark"),
                attributes=[_attr("code.file.path", "/app/main.py"), _attr("splight.tags", "RUNTIME")],
            )
        )
    request = ExportLogsServiceRequest(
        resource_logs=[ResourceLogs(resource=resource, scope_logs=[ScopeLogs(log_records=logs)])]
    )
    request.resource_logs[0].scope_logs[0].scope.name = "bench.gateway"
    return request.SerializeToString()


def main(argv: list[str]) -> int:
    url, requests, records, connections = argv[0], int(argv[1]), int(argv[2]), int(argv[3])
    parts = urlsplit(url)
    base_ns = time.time_ns()
    bodies = [build_body(index, records, base_ns) for index in range(requests)]
    statuses: dict[int, int] = {}
    lock = threading.Lock()

    def send(share: list[bytes]) -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        for body in share:
            conn.request("POST", "/v1/logs", body=body, headers={"Content-Type": "application/x-protobuf"})
            response = conn.getresponse()
            response.read()
            with lock:
                statuses[response.status] = statuses.get(response.status, 0) + 1
        conn.close()

    threads = [threading.Thread(target=send, args=(bodies[i::connections],)) for i in range(connections)]
    start = time.time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    end = time.time()
    sizes = [len(body) for body in bodies]
    result = {"start": start, "end": end, "statuses": statuses, "request_bytes": max(sizes)}
    print("BENCH_RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
