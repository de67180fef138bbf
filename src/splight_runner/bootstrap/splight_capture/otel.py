"""OpenTelemetry in a supervised component: only what the component's own environment has.

The bootstrap never brings OpenTelemetry with it. Where the component's
environment has some, three things use it, none of them imported at start-up:

* span ids: a record made inside a span carries the span's ids (capture reads
  them when ``opentelemetry.context`` is loaded). With the SDK installed and no
  tracer provider named, the API is told to load the SDK's on first use, so
  spans have real ids; with the API alone, spans are the API's no-ops and
  records carry no ids.
* the OTel Logs API: when nothing else provides a logger provider, the API's
  own loader (``OTEL_PYTHON_LOGGER_PROVIDER=splight``) is answered with a
  provider that hands each record to the channel (:func:`serve_logs_api`). The
  answer is wired into the API right after it is imported, not through an
  entry point: the component's environment has no splight-runner entry points.
* spans exported (``OTEL_TRACES_EXPORTER``/``OTEL_METRICS_EXPORTER``): the
  component's own SDK builds its providers through upstream's set-up
  (:func:`build_span_side`), its logs going to the channel. Without the SDK,
  one line says so and records still ship.

Either way an OTel Logs API record takes the channel like a ``logging`` record
and the runner exports it with the component's resource.
"""

from __future__ import annotations

import os
import time

from . import entry_points, imports, names
from .capture import current_context, span_ids
from .values import plain_value
from .voice import say
from .wire import OTEL

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType
    from typing import Any

#: ``OTEL_PYTHON_LOGGER_PROVIDER`` value the bootstrap answers.
LOGGER_PROVIDER = "splight"
#: The SDK's tracer provider entry point name.
SDK_TRACER_PROVIDER = "sdk_tracer_provider"
_FIELDS = ("timestamp", "observed_timestamp", "severity_number", "severity_text", "body", "attributes", "event_name")


def flat_record(
    scope: str | None,
    *,
    timestamp: int | None,
    observed_timestamp: int | None,
    severity_number: Any,
    severity_text: str | None,
    body: Any,
    attributes: Any,
    event_name: str | None,
    trace_id: int,
    span_id: int,
    trace_flags: int,
) -> tuple:
    return (
        OTEL,
        scope or "",
        timestamp or 0,
        observed_timestamp or time.time_ns(),
        getattr(severity_number, "value", severity_number) or 0,
        severity_text,
        plain_value(body),
        plain_value(dict(attributes)) if attributes else None,
        event_name,
        trace_id or 0,
        span_id or 0,
        int(trace_flags or 0),
    )


def _ids_of(context: Any) -> tuple:
    """The ids of the span active in ``context`` (the caller's context when none is given)."""
    return span_ids(context if context is not None else current_context())


def _emit_to(channel: Any, scope: str, record: Any, fields: dict) -> None:
    if record is not None:
        fields = {name: getattr(record, name, None) for name in _FIELDS}
        ids = (record.trace_id or 0, record.span_id or 0, int(record.trace_flags or 0))
        if not ids[0]:
            ids = _ids_of(getattr(record, "context", None))
    else:
        ids = _ids_of(fields.get("context"))
    channel.submit(
        flat_record(
            scope,
            timestamp=fields.get("timestamp"),
            observed_timestamp=fields.get("observed_timestamp"),
            severity_number=fields.get("severity_number"),
            severity_text=fields.get("severity_text"),
            body=fields.get("body"),
            attributes=fields.get("attributes"),
            event_name=fields.get("event_name"),
            trace_id=ids[0],
            span_id=ids[1],
            trace_flags=ids[2],
        )
    )


def channel_logger_provider(api: ModuleType, channel: Any) -> Any:
    """A logger provider of the component's own OTel API (``api``: ``opentelemetry._logs``) for the channel.

    The classes derive from the installed API's, whatever its version: ``emit``
    takes a ``LogRecord`` (older APIs) or keyword fields (newer ones).
    """

    class ChannelLogger(api.Logger):  # type: ignore[misc,name-defined]
        def __init__(self, name: str) -> None:
            self._name = name

        def emit(self, record: Any = None, **fields: Any) -> None:
            try:  # capture must never be why a call fails
                _emit_to(channel, self._name, record, fields)
            except Exception:
                pass

        def enabled(self, *args: Any, **kwargs: Any) -> bool:
            return True

    class ChannelLoggerProvider(api.LoggerProvider):  # type: ignore[misc,name-defined]
        def get_logger(self, name: str, *args: Any, **kwargs: Any) -> Any:
            return ChannelLogger(name)

    return ChannelLoggerProvider()


class ChannelLogRecordProcessor:
    """A log record processor (duck-typed: the SDK is the component's) that hands SDK records to the channel."""

    def __init__(self, channel: Any) -> None:
        self._channel = channel

    def on_emit(self, log_record: Any) -> None:
        try:
            record = log_record.log_record
            scope = log_record.instrumentation_scope
            _emit_to(self._channel, scope.name if scope is not None else "", record, {})
        except Exception:
            pass  # capture must never be why a call fails

    emit = on_emit

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._channel.write()


def serve_logs_api(channel: Any) -> None:
    """Span ids and the OTel Logs API, from the component's own OpenTelemetry, when it loads any."""
    os.environ.setdefault(names.OTEL_PYTHON_LOGGER_PROVIDER, LOGGER_PROVIDER)

    def answer_loader(module: ModuleType) -> None:
        load = getattr(module, "_load_provider", None)
        if load is None:
            return

        def _load_provider(variable: str, provider: str) -> Any:
            if provider == "logger_provider" and os.environ.get(variable) == LOGGER_PROVIDER:
                import opentelemetry._logs as api

                return channel_logger_provider(api, channel)
            return load(variable, provider)

        module._load_provider = _load_provider

    imports.after_import("opentelemetry._logs._internal", answer_loader)
    imports.after_import("opentelemetry.trace", _sdk_tracer_provider_by_default)


def _sdk_tracer_provider_by_default(module: ModuleType) -> None:
    """Real spans (with ids records can carry) when the component has the SDK and named no provider."""
    if names.OTEL_PYTHON_TRACER_PROVIDER in os.environ:
        return
    if SDK_TRACER_PROVIDER in entry_points.declared().get("opentelemetry_tracer_provider", ()):
        os.environ[names.OTEL_PYTHON_TRACER_PROVIDER] = SDK_TRACER_PROVIDER


def build_span_side(channel: Any) -> Any:
    """Tracer and meter providers through the component's SDK (upstream's set-up), its logs to the channel.

    Returns the SDK tracer provider to flush at exit, None when there is none.
    """
    try:
        from opentelemetry.sdk._configuration import _initialize_components
    except ImportError:
        say(
            "spans are not exported: the component's environment has no opentelemetry-sdk "
            "(install it there to export spans); log records still ship"
        )
        return None
    try:
        from opentelemetry.instrumentation.version import __version__ as version
    except ImportError:
        version = None
    kwargs = {
        "auto_instrumentation_version": version,
        "resource_attributes": _resource_attributes(),
        "setup_logging_handler": False,
    }  # type: dict
    import inspect  # here: milliseconds of every component's start-up, needed only with an SDK

    processor = ChannelLogRecordProcessor(channel) if channel is not None else None
    accepted = inspect.signature(_initialize_components).parameters
    if processor is not None and "log_record_processors" in accepted:
        kwargs["log_record_processors"] = [processor]
        processor = None
    saved = os.environ.get(names.OTEL_LOGS_EXPORTER)
    os.environ[names.OTEL_LOGS_EXPORTER] = "none"  # the runner exports the records
    try:
        _initialize_components(**{key: value for key, value in kwargs.items() if key in accepted})
    finally:
        if saved is None:
            os.environ.pop(names.OTEL_LOGS_EXPORTER, None)
        else:
            os.environ[names.OTEL_LOGS_EXPORTER] = saved
    if processor is not None:
        from opentelemetry._logs import get_logger_provider

        logger_provider = get_logger_provider()
        if hasattr(logger_provider, "add_log_record_processor"):
            logger_provider.add_log_record_processor(processor)
    from opentelemetry.trace import get_tracer_provider

    provider = get_tracer_provider()
    return provider if hasattr(provider, "force_flush") else None


def _resource_attributes() -> dict:
    """What the runner worked out for the component's resource (it reads the configuration, not us)."""
    from urllib.parse import unquote  # only with an SDK here, which imports it anyway

    attributes = {}
    for pair in (os.environ.get(names.SPLIGHT_RUNNER_RESOURCE) or "").split(","):
        key, equals, value = pair.partition("=")
        if equals:
            attributes[unquote(key)] = unquote(value)
    return attributes
