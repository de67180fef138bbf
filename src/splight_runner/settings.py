"""Configuration, read when a command needs it and never at import.

Every problem is reported as a :class:`ConfigError` whose message is the single
line an operator sees (the CLI prints it and exits 2), so a mistake in the
environment never turns into a traceback.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Mapping, Sequence

from splight_runner import environment as env_names
from splight_runner import urls

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NamedTuple
else:
    from splight_runner._tuples import NamedTuple


# --- Defaults (the names and their meaning: splight_runner.environment) ----------
DEFAULT_API_HOST = "https://api.splight-ai.com"
DEFAULT_API_VERSION = "v3"
DEFAULT_SECRETS_DIR = "/etc/config"
#: The Splight delivery path's defaults for OpenTelemetry's batch variables (documented in the README).
DEFAULT_SCHEDULE_DELAY_MS = 1000
DEFAULT_MAX_QUEUE_SIZE = 20_000
DEFAULT_MAX_EXPORT_BATCH_SIZE = 1000
DEFAULT_EXPORT_TIMEOUT_MS = 10_000
#: Engine calls in flight at once (SPLIGHT_RUNNER_EXPORT_CONCURRENCY): see docs/performance.md for the choice.
DEFAULT_EXPORT_CONCURRENCY = 4
#: Seconds from a stop signal to the runner's exit (``docker stop`` sends SIGKILL after 10 s).
DEFAULT_STOP_GRACE = 8.0


class ConfigError(Exception):
    """A missing or malformed setting; ``str(error)`` names it in one line."""


class UsageError(ConfigError):
    """A command-line mistake: one line, exit 2 (defined here so every module raises the same class)."""


def read(name: str, env: Mapping[str, str] | None = None) -> str | None:
    """Value of ``name``: the file ``<secrets dir>/<name>`` wins over the variable.

    The file form is how the Splight Engine has always mounted secrets
    (``/etc/config/<NAME>``); its trailing newline is not part of the value.
    """
    env = os.environ if env is None else env
    secrets_dir = env.get(env_names.SPLIGHT_RUNNER_SECRETS_DIR) or DEFAULT_SECRETS_DIR
    path = os.path.join(secrets_dir, name)
    try:
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as file:
                return file.read().strip()
    except OSError as error:
        raise ConfigError(f"{name}: cannot read {path}: {error.strerror}") from None
    value = env.get(name)
    return value.strip() if value is not None else None


def _non_empty(name: str, env: Mapping[str, str] | None) -> str | None:
    value = read(name, env)
    return value or None


class EngineSettings(NamedTuple):
    """Where and how to reach the Engine. The secret never appears in ``repr``.

    A ``NamedTuple`` rather than a dataclass: the supervisor reads this before it
    starts the component, and ``dataclasses`` (with ``inspect``) would add a fifth
    to the runner's own start-up.
    """

    host: str
    api_version: str
    access_id: str
    secret_key: str

    def __repr__(self) -> str:
        return f"EngineSettings(host={self.host!r}, api_version={self.api_version!r}, access_id={self.access_id!r})"

    @property
    def base_url(self) -> str:
        return f"{self.host}/{self.api_version}"

    @property
    def logs_path(self) -> str:
        return f"{self._api_path}/logs/write/"

    def status_path(self, process_id: str) -> str:
        return f"{self._api_path}/engine/component/components/{process_id}/update-status/"

    @property
    def _api_path(self) -> str:
        return f"{urls.split(self.host).path}/{self.api_version}"

    @property
    def authorization(self) -> str:
        return f"Splight {self.access_id} {self.secret_key}"


def api_host(env: Mapping[str, str] | None = None) -> str:
    host = _non_empty(env_names.SPLIGHT_PLATFORM_API_HOST, env) or DEFAULT_API_HOST
    try:
        parts: urls.Url | None = urls.split(host)
    except ValueError:  # a bracket without its pair
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{env_names.SPLIGHT_PLATFORM_API_HOST}: {host!r} is not an http(s) URL")
    if parts.query or parts.fragment:
        raise ConfigError(f"{env_names.SPLIGHT_PLATFORM_API_HOST}: {host!r} must not have a query or fragment")
    try:
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        raise ConfigError(f"{env_names.SPLIGHT_PLATFORM_API_HOST}: {host!r} has a malformed port") from None
    return host.rstrip("/")


def engine_settings(env: Mapping[str, str] | None = None) -> EngineSettings:
    """Engine URL and credentials; raises :class:`ConfigError` naming what is wrong."""
    host = api_host(env)
    version = (_non_empty(env_names.API_VERSION, env) or DEFAULT_API_VERSION).strip("/")
    if not version or "/" in version or " " in version:
        raise ConfigError(f"{env_names.API_VERSION}: {version!r} is not a path segment like 'v3'")
    access_id = _non_empty(env_names.SPLIGHT_ACCESS_ID, env)
    secret_key = _non_empty(env_names.SPLIGHT_SECRET_KEY, env)
    missing = [
        name
        for name, value in (
            (env_names.SPLIGHT_ACCESS_ID, access_id),
            (env_names.SPLIGHT_SECRET_KEY, secret_key),
        )
        if value is None
    ]
    if missing:
        raise ConfigError(f"{' and '.join(missing)} not set (needed to send to the Splight Engine)")
    for name, value in ((env_names.SPLIGHT_ACCESS_ID, access_id), (env_names.SPLIGHT_SECRET_KEY, secret_key)):
        if any(ch.isspace() for ch in value) or not value.isprintable():
            # Never echo the value: it may be the secret.
            raise ConfigError(f"{name} contains whitespace or control characters")
    return EngineSettings(host=host, api_version=version, access_id=access_id, secret_key=secret_key)


#: The option a component is started with (``python main.py --component-id ID``).
COMPONENT_ID_OPTION = "--component-id"


def _valid_id(source: str, value: str) -> str:
    if "/" in value or any(ch.isspace() for ch in value):
        raise ConfigError(f"{source}: {value!r} is not a valid id")
    return value


def process_id(env: Mapping[str, str] | None = None, argv: Sequence[str] | None = None) -> str | None:
    """COMPONENT_ID, else COMPUTE_NODE_ID, else AGENT_ID; else, given the component's command line
    ``argv`` (``sys.argv``), its ``--component-id ID`` or ``--component-id=ID``. A variable always wins."""
    for name in env_names.PROCESS_ID_VARIABLES:
        value = _non_empty(name, env)
        if value is not None:
            return _valid_id(name, value)
    if argv is not None:
        value = component_id_argument(argv)
        if value is not None:
            return _valid_id(COMPONENT_ID_OPTION, value)
    return None


def component_id_argument(argv: Sequence[str]) -> str | None:
    """The first ``--component-id ID`` / ``--component-id=ID`` of a command line (``argv[0]`` is the program),
    before any ``--``; None when there is none or its value is empty."""
    prefix = COMPONENT_ID_OPTION + "="
    args = list(argv[1:])
    for index, arg in enumerate(args):
        if arg == "--":
            return None
        if arg == COMPONENT_ID_OPTION:
            value = args[index + 1].strip() if index + 1 < len(args) else ""
            return value or None
        if arg.startswith(prefix):
            return arg[len(prefix) :].strip() or None
    return None


def require_process_id(env: Mapping[str, str] | None = None) -> str:
    value = process_id(env)
    if value is None:
        raise ConfigError(
            "no process id: pass --component-id or set "
            + ", ".join(env_names.PROCESS_ID_VARIABLES[:-1])
            + f" or {env_names.PROCESS_ID_VARIABLES[-1]}"
        )
    return value


def process_type(env: Mapping[str, str] | None = None, default: str = "component") -> str:
    return _non_empty(env_names.PROCESS_TYPE, env) or default


def exporter_names(variable: str, default: str, env: Mapping[str, str] | None = None) -> list[str]:
    """The comma-separated OTEL_*_EXPORTER list; ``none`` means no exporter."""
    env = os.environ if env is None else env
    raw = env.get(variable, default)
    names = [part.strip().lower() for part in raw.split(",") if part.strip()]
    return [] if names in ([], ["none"]) else names


#: Per ``OTEL_*_EXPORTER`` variable: what its exporters export, the names every installation has,
#: and the entry point group where any other name must be installed.
_EXPORTER_KINDS = {
    env_names.OTEL_LOGS_EXPORTER: ("log", ("splight", "otlp", "console"), "opentelemetry_logs_exporter"),
    env_names.OTEL_TRACES_EXPORTER: ("span", ("otlp", "console"), "opentelemetry_traces_exporter"),
    env_names.OTEL_METRICS_EXPORTER: ("metric", ("otlp", "console"), "opentelemetry_metrics_exporter"),
}


def checked_exporters(
    variable: str,
    default: str,
    installed: Callable[[str], Collection[str]],
    env: Mapping[str, str] | None = None,
) -> tuple[list[str], str | None]:
    """The ``OTEL_*_EXPORTER`` list (each name once) without the names that are neither built in nor
    installed, and the one line naming those (None when there are none).

    ``installed(group)`` gives the entry point names of a group; it is only called for a name
    that is not built in. The CLI refuses to start on the line; in the component it is said and the
    other exporters still work.
    """
    kind, built_in, group = _EXPORTER_KINDS[variable]
    chosen = list(dict.fromkeys(exporter_names(variable, default, env)))
    unknown = [name for name in chosen if name not in built_in and name not in installed(group)]
    if not unknown:
        return chosen, None
    problem = (
        f"{variable}: no {kind} exporter named {', '.join(map(repr, unknown))} "
        f"({', '.join(built_in)}, none, or an installed {group})"
    )
    return [name for name in chosen if name not in unknown], problem


RECORD_FIELDS_ALL = "all"
RECORD_FIELDS_HISTORICAL = "historical"


def historical_record_fields(env: Mapping[str, str] | None = None) -> bool:
    """``SPLIGHT_RUNNER_RECORD_FIELDS``: True for ``historical`` (only the eight fields the Engine has
    always received), False for ``all`` or unset."""
    env = os.environ if env is None else env
    raw = (env.get(env_names.SPLIGHT_RUNNER_RECORD_FIELDS) or "").strip().lower()
    if raw in ("", RECORD_FIELDS_ALL):
        return False
    if raw == RECORD_FIELDS_HISTORICAL:
        return True
    raise ConfigError(
        f"{env_names.SPLIGHT_RUNNER_RECORD_FIELDS}: {raw!r} is not "
        f"{RECORD_FIELDS_ALL!r} or {RECORD_FIELDS_HISTORICAL!r}"
    )


def positive_int(name: str, default: int, env: Mapping[str, str] | None = None, *, minimum: int = 1) -> int:
    env = os.environ if env is None else env
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ConfigError(f"{name}: {raw!r} is not an integer") from None
    if value < minimum:
        raise ConfigError(f"{name}: {value} is below the minimum {minimum}")
    return value


def flag(name: str, env: Mapping[str, str] | None = None) -> bool:
    """An on/off switch: on only when the variable is ``true`` (any case, surrounding spaces ignored)."""
    env = os.environ if env is None else env
    return env.get(name, "").strip().lower() == "true"


class DeliverySettings(NamedTuple):
    """The ``OTEL_BLRP_*`` batch settings of the Splight delivery path, read once (milliseconds as given)."""

    max_queue_size: int = DEFAULT_MAX_QUEUE_SIZE
    schedule_delay_ms: int = DEFAULT_SCHEDULE_DELAY_MS
    max_export_batch_size: int = DEFAULT_MAX_EXPORT_BATCH_SIZE
    export_timeout_ms: int = DEFAULT_EXPORT_TIMEOUT_MS
    #: Engine calls the Splight processor keeps in flight (``SPLIGHT_RUNNER_EXPORT_CONCURRENCY``).
    export_concurrency: int = DEFAULT_EXPORT_CONCURRENCY

    @property
    def export_timeout(self) -> float:
        """:attr:`export_timeout_ms` in seconds."""
        return self.export_timeout_ms / 1000


def delivery_settings(env: Mapping[str, str] | None = None) -> DeliverySettings:
    """Every ``OTEL_BLRP_*`` variable the runner reads and the export concurrency.

    Raises :class:`ConfigError` naming the first bad one.
    """
    export_timeout = positive_int(env_names.OTEL_BLRP_EXPORT_TIMEOUT, DEFAULT_EXPORT_TIMEOUT_MS, env)
    return DeliverySettings(
        max_queue_size=positive_int(env_names.OTEL_BLRP_MAX_QUEUE_SIZE, DEFAULT_MAX_QUEUE_SIZE, env),
        schedule_delay_ms=positive_int(env_names.OTEL_BLRP_SCHEDULE_DELAY, DEFAULT_SCHEDULE_DELAY_MS, env),
        max_export_batch_size=positive_int(
            env_names.OTEL_BLRP_MAX_EXPORT_BATCH_SIZE, DEFAULT_MAX_EXPORT_BATCH_SIZE, env
        ),
        export_timeout_ms=export_timeout,
        export_concurrency=positive_int(env_names.SPLIGHT_RUNNER_EXPORT_CONCURRENCY, DEFAULT_EXPORT_CONCURRENCY, env),
    )


def stop_grace(env: Mapping[str, str] | None = None) -> float:
    """``SPLIGHT_RUNNER_STOP_GRACE`` in seconds (a positive number)."""
    env = os.environ if env is None else env
    raw = (env.get(env_names.SPLIGHT_RUNNER_STOP_GRACE) or "").strip()
    if not raw:
        return DEFAULT_STOP_GRACE
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{env_names.SPLIGHT_RUNNER_STOP_GRACE}: {raw!r} is not a number of seconds") from None
    if not value > 0 or value != value or value == float("inf"):
        raise ConfigError(f"{env_names.SPLIGHT_RUNNER_STOP_GRACE}: {raw!r} must be a positive number of seconds")
    return value


#: OTLP's protocol when none is named: the specification's default, and what the lean install exports with.
OTLP_DEFAULT_PROTOCOL = "http/protobuf"
#: What to install for OTLP over gRPC.
GRPC_EXTRA = "splight-runner[grpc]"


def otlp_grpc_problem(
    env: Mapping[str, str] | None = None, exporters: str = env_names.OTEL_LOGS_EXPORTER
) -> str | None:
    """The one line when the signal of ``exporters`` (an ``OTEL_*_EXPORTER`` variable; logs by default)
    is to go out as OTLP over gRPC and that exporter is not installed.

    Every signal is asked about under ``opentelemetry-instrument``: there one signal's missing exporter
    makes upstream's set-up fail for all, the Splight Engine's records included.
    """
    env = os.environ if env is None else env
    _, signal_protocol, default = next(signal for signal in env_names.OTLP_SIGNALS if signal[0] == exporters)
    if "otlp" not in exporter_names(exporters, default, env):
        return None
    variable = signal_protocol
    if not env.get(variable):
        variable = env_names.OTEL_EXPORTER_OTLP_PROTOCOL
    if (env.get(variable) or OTLP_DEFAULT_PROTOCOL).strip().lower() != "grpc":
        return None
    import importlib.util

    try:
        installed = importlib.util.find_spec("opentelemetry.exporter.otlp.proto.grpc") is not None
    except (ImportError, ValueError):
        installed = False
    if installed:
        return None
    return f"{variable}=grpc: OTLP over gRPC is not installed (pip install '{GRPC_EXTRA}'); http/protobuf needs nothing"


def apply_distro_defaults(env: Any = None) -> None:
    """The distro's defaults for OpenTelemetry's own variables (set only when unset)."""
    env = os.environ if env is None else env
    env.setdefault(env_names.OTEL_EXPORTER_OTLP_PROTOCOL, OTLP_DEFAULT_PROTOCOL)
    env.setdefault(env_names.OTEL_PYTHON_CONFIGURATOR, "splight")
    env.setdefault(env_names.OTEL_LOGS_EXPORTER, "splight")
    otlp = env.get(env_names.OTEL_EXPORTER_OTLP_ENDPOINT) or env.get(env_names.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)
    env.setdefault(env_names.OTEL_TRACES_EXPORTER, "otlp" if otlp else "none")
    env.setdefault(env_names.OTEL_METRICS_EXPORTER, "none")
