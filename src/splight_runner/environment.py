"""Names of every environment variable the runner reads or sets, in one place.

Values are read through :mod:`splight_runner.settings`; nothing here reads the
environment, so importing this module is free.
"""

from __future__ import annotations

# --- The Splight contract (SPEC.md, "Configuration") -------------------------
SPLIGHT_ACCESS_ID = "SPLIGHT_ACCESS_ID"
SPLIGHT_SECRET_KEY = "SPLIGHT_SECRET_KEY"
SPLIGHT_PLATFORM_API_HOST = "SPLIGHT_PLATFORM_API_HOST"
API_VERSION = "API_VERSION"
COMPONENT_ID = "COMPONENT_ID"
COMPUTE_NODE_ID = "COMPUTE_NODE_ID"
AGENT_ID = "AGENT_ID"
PROCESS_TYPE = "PROCESS_TYPE"
SPLIGHT_RUNNER_SECRETS_DIR = "SPLIGHT_RUNNER_SECRETS_DIR"
SPLIGHT_GATEWAY_TOKEN = "SPLIGHT_GATEWAY_TOKEN"

#: Process id variables, in the order they are looked up.
PROCESS_ID_VARIABLES = (COMPONENT_ID, COMPUTE_NODE_ID, AGENT_ID)

DEFAULT_API_HOST = "https://api.splight-ai.com"
DEFAULT_API_VERSION = "v3"
DEFAULT_SECRETS_DIR = "/etc/config"

# --- Set by the supervisor for the process it starts -------------------------
#: "1" when the bootstrap ``sitecustomize`` must set the distro up.
SPLIGHT_RUNNER_ACTIVE = "SPLIGHT_RUNNER_ACTIVE"
#: File where the component process records the last status the Engine accepted,
#: so the supervisor knows whether a final status is still owed.
SPLIGHT_RUNNER_STATE_FILE = "SPLIGHT_RUNNER_STATE_FILE"

# --- OpenTelemetry's own variables that the distro gives defaults to ---------
OTEL_LOGS_EXPORTER = "OTEL_LOGS_EXPORTER"
OTEL_TRACES_EXPORTER = "OTEL_TRACES_EXPORTER"
OTEL_METRICS_EXPORTER = "OTEL_METRICS_EXPORTER"
OTEL_SERVICE_NAME = "OTEL_SERVICE_NAME"
OTEL_PYTHON_DISTRO = "OTEL_PYTHON_DISTRO"
OTEL_PYTHON_CONFIGURATOR = "OTEL_PYTHON_CONFIGURATOR"
OTEL_EXPORTER_OTLP_ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
OTEL_BLRP_SCHEDULE_DELAY = "OTEL_BLRP_SCHEDULE_DELAY"
OTEL_BLRP_MAX_QUEUE_SIZE = "OTEL_BLRP_MAX_QUEUE_SIZE"
OTEL_BLRP_MAX_EXPORT_BATCH_SIZE = "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE"
OTEL_BLRP_EXPORT_TIMEOUT = "OTEL_BLRP_EXPORT_TIMEOUT"
#: opentelemetry-instrumentation-logging's switch for its own LoggingHandler.
OTEL_PYTHON_LOG_AUTO_INSTRUMENTATION = "OTEL_PYTHON_LOG_AUTO_INSTRUMENTATION"
#: Upstream's switch for code.function.name / code.line.number on log records.
OTEL_PYTHON_LOG_CODE_ATTRIBUTES = "OTEL_PYTHON_LOG_CODE_ATTRIBUTES"
#: opentelemetry-instrumentation-logging's switch for trace ids in the log format.
OTEL_PYTHON_LOG_CORRELATION = "OTEL_PYTHON_LOG_CORRELATION"
#: Upstream set-up choices the distro's own short set-up does not make: when any is set,
#: the SDK is built by upstream's ``_initialize_components`` instead.
UPSTREAM_SETUP_VARIABLES = (
    "OTEL_PYTHON_ID_GENERATOR",
    "OTEL_TRACES_SAMPLER",
    "OTEL_PYTHON_TRACER_CONFIGURATOR",
    "OTEL_PYTHON_METER_CONFIGURATOR",
    "OTEL_PYTHON_LOGGER_CONFIGURATOR",
)

# --- Defaults of the Splight delivery path (documented in the README) --------
DEFAULT_SCHEDULE_DELAY_MS = 1000
DEFAULT_MAX_QUEUE_SIZE = 20_000
DEFAULT_MAX_EXPORT_BATCH_SIZE = 1000
DEFAULT_EXPORT_TIMEOUT_MS = 10_000
#: Hard limits of one logs/write POST.
MAX_RECORDS_PER_POST = 1000
MAX_BYTES_PER_POST = 1024 * 1024
