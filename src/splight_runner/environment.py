"""Names of every environment variable the runner reads or sets, in one place: names only.

Each name comes with its meaning and default. Values are read through
:mod:`splight_runner.settings` (which holds the defaults); nothing here reads
the environment, so importing this module is free.
"""

from __future__ import annotations

# The names the component side reads are spelled once, in the bootstrap (which imports nothing of ours).
from splight_runner.bootstrap.splight_capture import names as _component

# --- Splight configuration (a file <secrets dir>/<NAME> wins over the variable) ---

SPLIGHT_ACCESS_ID = "SPLIGHT_ACCESS_ID"
"""
.. envvar:: SPLIGHT_ACCESS_ID

The access id of the Engine credentials (``Authorization: Splight <id> <secret>``).
No default: required when the ``splight`` exporter is selected.
"""

SPLIGHT_SECRET_KEY = "SPLIGHT_SECRET_KEY"
"""
.. envvar:: SPLIGHT_SECRET_KEY

The secret key of the Engine credentials; never printed. No default: required
when the ``splight`` exporter is selected.
"""

SPLIGHT_PLATFORM_API_HOST = "SPLIGHT_PLATFORM_API_HOST"
"""
.. envvar:: SPLIGHT_PLATFORM_API_HOST

The Engine's base URL, http(s), without query or fragment.
Default: ``https://api.splight-ai.com``.
"""

API_VERSION = "API_VERSION"
"""
.. envvar:: API_VERSION

The API path segment put after the host (``<host>/<version>/logs/write/``). Default: ``v3``.
"""

COMPONENT_ID = "COMPONENT_ID"
"""
.. envvar:: COMPONENT_ID

The process id of a component: the ``id`` of every record and the component whose
status is updated. First of :data:`PROCESS_ID_VARIABLES` looked up. No default.
"""

COMPUTE_NODE_ID = "COMPUTE_NODE_ID"
"""
.. envvar:: COMPUTE_NODE_ID

The process id of a compute node, used when :envvar:`COMPONENT_ID` is unset. No default.
"""

AGENT_ID = "AGENT_ID"
"""
.. envvar:: AGENT_ID

The process id of an agent, used when neither of the two above is set. No default.
"""

PROCESS_TYPE = "PROCESS_TYPE"
"""
.. envvar:: PROCESS_TYPE

The ``sender_type`` of every record (the ``splight.process.type`` resource attribute).
Default: ``component`` (``agent`` under ``run-agent``).
"""

SPLIGHT_RUNNER_SECRETS_DIR = "SPLIGHT_RUNNER_SECRETS_DIR"
"""
.. envvar:: SPLIGHT_RUNNER_SECRETS_DIR

The folder where a file named like a variable wins over the variable (how the Engine
mounts secrets). Default: ``/etc/config``.
"""

SPLIGHT_GATEWAY_TOKEN = "SPLIGHT_GATEWAY_TOKEN"
"""
.. envvar:: SPLIGHT_GATEWAY_TOKEN

The bearer token ``splight-runner gateway`` requires of its clients (``--token`` wins).
Default: unset, no token required.
"""

SPLIGHT_RUNNER_RECORD_FIELDS = "SPLIGHT_RUNNER_RECORD_FIELDS"
"""
.. envvar:: SPLIGHT_RUNNER_RECORD_FIELDS

Which fields an Engine record has. ``all``: the eight historical ones (``sender_type, id, name,
message, loglevel, filename, traceback, tags``), then ``timestamp`` and, inside a span,
``trace_id``/``span_id``. ``historical``: only the eight, for an Engine that takes nothing else.
Read where Engine records are made: the runner (``run-component``, ``run``, ``run-agent``,
``opentelemetry-instrument``), ``gateway`` and ``check --write-test-record``. Default: ``all``.
"""

#: Process id variables, in the order they are looked up.
PROCESS_ID_VARIABLES = (COMPONENT_ID, COMPUTE_NODE_ID, AGENT_ID)

# --- Set by the runner for the processes it starts ---------------------------------

SPLIGHT_RUNNER_ACTIVE = _component.SPLIGHT_RUNNER_ACTIVE
"""
.. envvar:: SPLIGHT_RUNNER_ACTIVE

Set to ``1`` by the supervisor: the bootstrap ``sitecustomize`` must set the distro up.
Default: unset (the bootstrap only runs a shadowed ``sitecustomize``).
"""

SPLIGHT_RUNNER_CHANNEL = _component.SPLIGHT_RUNNER_CHANNEL
"""
.. envvar:: SPLIGHT_RUNNER_CHANNEL

Set by the supervisor: the Unix socket its export pipeline listens on. Every
process of the component that loads the bootstrap connects to it and hands over
what it captures; its presence means "supervised: capture only". Default: unset.
"""

SPLIGHT_RUNNER_TOP_PROCESS = _component.SPLIGHT_RUNNER_TOP_PROCESS
"""
.. envvar:: SPLIGHT_RUNNER_TOP_PROCESS

Set by the component's top process to its own pid when the bootstrap runs;
children inherit it and so know they are not the top process (they write each
record through at once, install no signal handler, and owe no final status).
Default: unset.
"""

SPLIGHT_RUNNER_RESOURCE = _component.SPLIGHT_RUNNER_RESOURCE
"""
.. envvar:: SPLIGHT_RUNNER_RESOURCE

Set by the supervisor when the component exports spans: the component's resource
attributes (``splight.component.id``, ``splight.process.type``, the
``service.name`` default) as ``OTEL_RESOURCE_ATTRIBUTES`` spells them (``key=value``
pairs, comma separated, percent-encoded), worked out once by the runner, so the spans and the
records the runner exports carry the same resource. Default: unset.
"""

SPLIGHT_RUNNER_STATE = _component.SPLIGHT_RUNNER_STATE
"""
.. envvar:: SPLIGHT_RUNNER_STATE

Set by the supervisor: its private folder, where the component's top process
keeps the tail of its stderr and its fatal-error stack for the runner's
how-it-ended record. Default: unset.
"""

SPLIGHT_RUNNER_PARENT = _component.SPLIGHT_RUNNER_PARENT
"""
.. envvar:: SPLIGHT_RUNNER_PARENT

Set by the supervisor when it spawned the component's Python (``run-component``):
its own pid. The bootstrap asks the kernel for SIGTERM should that process die
(Linux's parent-death signal), terminates the component at once if it is already
gone, and removes the variable, so that no child of the component asks again.
Default: unset.
"""

SPLIGHT_RUNNER_CAPTURE_OUTPUT = _component.SPLIGHT_RUNNER_CAPTURE_OUTPUT
"""
.. envvar:: SPLIGHT_RUNNER_CAPTURE_OUTPUT

``true``: under the runner, each line the component writes to stdout or stderr
outside ``logging`` also becomes a record (stdout ``INFO``, stderr ``ERROR``, the
logger named ``stdout``/``stderr``). Default: off.
"""

SPLIGHT_RUNNER_PYTHON = "SPLIGHT_RUNNER_PYTHON"
"""
.. envvar:: SPLIGHT_RUNNER_PYTHON

The interpreter ``run-component`` starts the component with (``--python`` wins).
Default: the runner's own interpreter, unless the runner lives in an environment of
its own (pipx's), then the first ``python3`` on ``PATH``; see ``supervisor.interpreter``.
"""

SPLIGHT_RUNNER_STOP_GRACE = "SPLIGHT_RUNNER_STOP_GRACE"
"""
.. envvar:: SPLIGHT_RUNNER_STOP_GRACE

Seconds from a stop signal (SIGTERM/SIGINT) to the runner to the runner's own
exit, the component's shutdown, the last records and the final status included:
less than ``docker stop``'s 10 s before its SIGKILL. Default: ``8``.
"""

OTEL_PYTHON_TRACER_PROVIDER = _component.OTEL_PYTHON_TRACER_PROVIDER
"""
.. envvar:: OTEL_PYTHON_TRACER_PROVIDER

The OTel API's lazily loaded tracer provider. Under the runner, when no spans
are exported, the component gets ``sdk_tracer_provider`` (set only when unset),
so spans have real ids at no start-up cost.
"""

OTEL_PYTHON_LOGGER_PROVIDER = _component.OTEL_PYTHON_LOGGER_PROVIDER
"""
.. envvar:: OTEL_PYTHON_LOGGER_PROVIDER

The OTel API's lazily loaded logger provider. Under the runner, when no spans are
exported, the component gets ``splight`` (set only when unset): OTel Logs API
records go to the runner like ``logging`` records, at no start-up cost.
"""

PYTHONPATH = "PYTHONPATH"
"""
.. envvar:: PYTHONPATH

Python's module path; the supervisor puts the bootstrap folder first on the component's.
"""

# --- OpenTelemetry's own variables that the distro reads or gives defaults to -----

OTEL_LOGS_EXPORTER = _component.OTEL_LOGS_EXPORTER
"""
.. envvar:: OTEL_LOGS_EXPORTER

Comma-separated log exporters (``splight``, ``console``, ``otlp``; ``none``: no exporter).
Default: ``splight``.
"""

OTEL_TRACES_EXPORTER = _component.OTEL_TRACES_EXPORTER
"""
.. envvar:: OTEL_TRACES_EXPORTER

Span exporters. Default (the distro's): ``otlp`` when an OTLP endpoint is set, else ``none``.
"""

OTEL_METRICS_EXPORTER = _component.OTEL_METRICS_EXPORTER
"""
.. envvar:: OTEL_METRICS_EXPORTER

Metric exporters. Default (the distro's): ``none``.
"""

OTEL_SERVICE_NAME = "OTEL_SERVICE_NAME"
"""
.. envvar:: OTEL_SERVICE_NAME

The ``service.name`` resource attribute. Default (the distro's): ``splight-<process type>``.
"""

OTEL_RESOURCE_ATTRIBUTES = "OTEL_RESOURCE_ATTRIBUTES"
"""
.. envvar:: OTEL_RESOURCE_ATTRIBUTES

Extra resource attributes, ``key=value,...``; a ``service.name`` here keeps the distro's
default service name away. Default: unset.
"""

OTEL_PYTHON_DISTRO = "OTEL_PYTHON_DISTRO"
"""
.. envvar:: OTEL_PYTHON_DISTRO

The distro ``opentelemetry-instrument`` loads (``splight``). Default: the first installed one
``opentelemetry-instrument`` finds (with another distro installed, set it: ``splight-runner check``
says which one loads).
"""

OTEL_PYTHON_CONFIGURATOR = "OTEL_PYTHON_CONFIGURATOR"
"""
.. envvar:: OTEL_PYTHON_CONFIGURATOR

The configurator ``opentelemetry-instrument`` runs. Default (the distro's): ``splight``. The
``splight`` configurator runs only under the ``splight`` distro (under another it says so in one
line and sets nothing up: that distro's logging handler would export every record twice).
"""

OTEL_EXPORTER_OTLP_ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"
"""
.. envvar:: OTEL_EXPORTER_OTLP_ENDPOINT

The OTLP endpoint of every signal; when set, traces are exported by default. Default: unset.
"""

OTEL_EXPORTER_OTLP_TRACES_ENDPOINT = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
"""
.. envvar:: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT

The OTLP endpoint of traces; when set, traces are exported by default. Default: unset.
"""

OTEL_EXPORTER_OTLP_PROTOCOL = "OTEL_EXPORTER_OTLP_PROTOCOL"
"""
.. envvar:: OTEL_EXPORTER_OTLP_PROTOCOL

``http/protobuf`` or ``grpc`` (``OTEL_EXPORTER_OTLP_LOGS_PROTOCOL`` and
``..._TRACES_PROTOCOL`` win for their signal). Default: ``http/protobuf``, the
OpenTelemetry specification's default (the Python SDK alone would pick gRPC);
gRPC needs the ``grpc`` extra (``pip install 'splight-runner[grpc]'``).
"""

OTEL_EXPORTER_OTLP_LOGS_PROTOCOL = "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL"
OTEL_EXPORTER_OTLP_TRACES_PROTOCOL = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
OTEL_EXPORTER_OTLP_METRICS_PROTOCOL = "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL"
#: Each ``OTEL_*_EXPORTER`` variable, the signal's own protocol variable and the distro's default exporters.
OTLP_SIGNALS = (
    (OTEL_LOGS_EXPORTER, OTEL_EXPORTER_OTLP_LOGS_PROTOCOL, "splight"),
    (OTEL_TRACES_EXPORTER, OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, "none"),
    (OTEL_METRICS_EXPORTER, OTEL_EXPORTER_OTLP_METRICS_PROTOCOL, "none"),
)

OTEL_BLRP_SCHEDULE_DELAY = "OTEL_BLRP_SCHEDULE_DELAY"
"""
.. envvar:: OTEL_BLRP_SCHEDULE_DELAY

Milliseconds between two exports of the Splight processor. Default: 1000.
"""

OTEL_BLRP_MAX_QUEUE_SIZE = "OTEL_BLRP_MAX_QUEUE_SIZE"
"""
.. envvar:: OTEL_BLRP_MAX_QUEUE_SIZE

Records the capture intake and the Splight processor each hold before dropping the newest.
Default: 20000.
"""

OTEL_BLRP_MAX_EXPORT_BATCH_SIZE = "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE"
"""
.. envvar:: OTEL_BLRP_MAX_EXPORT_BATCH_SIZE

Records per export batch (at most the queue size). Default: 1000.
"""

OTEL_BLRP_EXPORT_TIMEOUT = _component.OTEL_BLRP_EXPORT_TIMEOUT
"""
.. envvar:: OTEL_BLRP_EXPORT_TIMEOUT

Milliseconds: the bound of one export's retries, of the flush at exit, and of the
supervisor's final status call. Default: 10000.
"""

SPLIGHT_RUNNER_EXPORT_CONCURRENCY = "SPLIGHT_RUNNER_EXPORT_CONCURRENCY"
"""
.. envvar:: SPLIGHT_RUNNER_EXPORT_CONCURRENCY

Engine calls the Splight processor keeps in flight at once (a positive integer). One
call carries at most 1,000 records, so one call at a time against an Engine 300 ms away
moves at most about 3,300 records a second. Statuses still wait for every record batch
before them; with :envvar:`SPLIGHT_RUNNER_RECORD_FIELDS` ``historical`` (records without
a timestamp) and while the Engine is failing, one call is in flight. Default: 4.
"""

#: Every integer delivery variable the runner reads into ``DeliverySettings``: the
#: ``OTEL_BLRP_*`` ones and :data:`SPLIGHT_RUNNER_EXPORT_CONCURRENCY` (a malformed one is a
#: configuration error under the runner; in-process it is said and its default used).
OTEL_BLRP_VARIABLES = (
    OTEL_BLRP_SCHEDULE_DELAY,
    OTEL_BLRP_MAX_QUEUE_SIZE,
    OTEL_BLRP_MAX_EXPORT_BATCH_SIZE,
    OTEL_BLRP_EXPORT_TIMEOUT,
    SPLIGHT_RUNNER_EXPORT_CONCURRENCY,
)

OTEL_PYTHON_LOG_AUTO_INSTRUMENTATION = "OTEL_PYTHON_LOG_AUTO_INSTRUMENTATION"
"""
.. envvar:: OTEL_PYTHON_LOG_AUTO_INSTRUMENTATION

opentelemetry-instrumentation-logging's switch for its own LoggingHandler; the distro
keeps it off (its own hook captures every record). Default: unset.
"""

OTEL_PYTHON_LOG_CODE_ATTRIBUTES = "OTEL_PYTHON_LOG_CODE_ATTRIBUTES"
"""
.. envvar:: OTEL_PYTHON_LOG_CODE_ATTRIBUTES

``true``: records also carry ``code.function.name`` and ``code.line.number``. Default: off.
"""

OTEL_PYTHON_LOG_CORRELATION = _component.OTEL_PYTHON_LOG_CORRELATION
"""
.. envvar:: OTEL_PYTHON_LOG_CORRELATION

``true``: the logging instrumentor is loaded only to put ``otelTraceID``, ``otelSpanID``,
``otelTraceSampled`` and ``otelServiceName`` on every record (its record factory), for the
component's own format to use. Unlike upstream, it never calls ``logging.basicConfig``: the
component's handlers and output stay its own, and :envvar:`OTEL_PYTHON_LOG_FORMAT` is not
used. Default: off.
"""

OTEL_PYTHON_LOG_FORMAT = "OTEL_PYTHON_LOG_FORMAT"
"""
.. envvar:: OTEL_PYTHON_LOG_FORMAT

Upstream's format for the ``basicConfig`` it makes under :envvar:`OTEL_PYTHON_LOG_CORRELATION`;
not used by the distro, which never changes the component's logging configuration.
"""

#: Upstream set-up choices the distro's own short set-up does not make: when any is set,
#: the SDK is built by upstream's ``_initialize_components`` instead. Default: all unset.
UPSTREAM_SETUP_VARIABLES = (
    "OTEL_PYTHON_ID_GENERATOR",
    "OTEL_TRACES_SAMPLER",
    "OTEL_PYTHON_TRACER_CONFIGURATOR",
    "OTEL_PYTHON_METER_CONFIGURATOR",
    "OTEL_PYTHON_LOGGER_CONFIGURATOR",
)
