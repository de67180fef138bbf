"""Setting the distro up inside the component's process.

Two ways in, one setup: ``run-component``'s ``sitecustomize`` calls :func:`start`;
``opentelemetry-instrument`` reaches :func:`configure_sdk` through the
``splight`` configurator entry point. Either way a failure here prints one line
and the component runs unshipped — the runner must never be why it fails.
"""

from __future__ import annotations

import os
from typing import Any

from splight_runner import environment as names
from splight_runner import settings as config
from splight_runner import translation
from splight_runner.exporter import say

#: How often the capture thread drains when the hot path has not woken it.
_CAPTURE_DRAIN_INTERVAL = 0.2


def _resource_attributes(process_id: str | None, process_type: str) -> dict[str, Any]:
    attributes: dict[str, Any] = {translation.RESOURCE_PROCESS_TYPE: process_type}
    if process_id:
        attributes[translation.RESOURCE_COMPONENT_ID] = process_id
    explicit = os.environ.get("OTEL_RESOURCE_ATTRIBUTES", "")
    if not os.environ.get(names.OTEL_SERVICE_NAME) and "service.name=" not in explicit.replace(" ", ""):
        attributes["service.name"] = f"splight-{process_type}"
    return attributes


def _splight_exporter_usable(process_id: str | None) -> str | None:
    """None when the ``splight`` exporter can work, else the one-line reason it cannot."""
    try:
        config.engine_settings()
        if process_id is None:
            config.require_process_id()
    except config.ConfigError as error:
        return str(error)
    return None


def configure_sdk(**kwargs: Any) -> None:
    """Build providers through the SDK's configuration path, then install capture, health and exit hooks."""
    from opentelemetry._logs import get_logger_provider
    from opentelemetry.sdk._configuration import _initialize_components
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

    from splight_runner import capture, health, lifecycle
    from splight_runner.exporter import SplightLogExporter, SplightLogRecordProcessor

    process_type = config.process_type()
    process_id = config.process_id()
    log_exporters = config.exporter_names(names.OTEL_LOGS_EXPORTER, "splight")
    if "splight" in log_exporters:
        problem = _splight_exporter_usable(process_id)
        if problem is not None:
            say(f"not sending to the Splight Engine: {problem}")
            log_exporters = [name for name in log_exporters if name != "splight"]
            os.environ[names.OTEL_LOGS_EXPORTER] = ",".join(log_exporters) or "none"

    processors: list[SplightLogRecordProcessor] = []

    def processor_for(exporter: Any) -> Any:
        if isinstance(exporter, SplightLogExporter):
            processor = SplightLogRecordProcessor(exporter)
            processors.append(processor)
            return processor
        return BatchLogRecordProcessor(exporter)

    _initialize_components(
        auto_instrumentation_version=kwargs.get("auto_instrumentation_version"),
        resource_attributes=_resource_attributes(process_id, process_type),
        setup_logging_handler=False,
        export_log_record_processor=processor_for,
    )
    if not log_exporters:
        return

    provider = get_logger_provider()
    queue_size = config.positive_int(names.OTEL_BLRP_MAX_QUEUE_SIZE, names.DEFAULT_MAX_QUEUE_SIZE)
    batch_size = config.positive_int(names.OTEL_BLRP_MAX_EXPORT_BATCH_SIZE, names.DEFAULT_MAX_EXPORT_BATCH_SIZE)
    timeout = config.positive_int(names.OTEL_BLRP_EXPORT_TIMEOUT, names.DEFAULT_EXPORT_TIMEOUT_MS) / 1000
    bridge = capture.CaptureBridge(
        provider,  # type: ignore[arg-type]
        max_queue_size=queue_size,
        wake_at=batch_size,
        schedule_delay=_CAPTURE_DRAIN_INTERVAL,
        drops=processors[0].drops if processors else None,
    )
    capture.install(bridge)
    health.install(bridge.submit_status)
    watch = lifecycle.ExitWatch() if lifecycle.owes_final_status(bool(processors)) else None
    lifecycle.install(lifecycle.Pipeline(bridge, provider, processors, timeout, watch))


def start() -> None:
    """Called by the bootstrap ``sitecustomize`` when the supervisor activated the runner."""
    try:
        from opentelemetry.instrumentation.auto_instrumentation._load import _load_instrumentors
        from opentelemetry.instrumentation.version import __version__ as instrumentation_version

        from splight_runner.distro import SplightConfigurator, SplightDistro

        distro = SplightDistro()
        distro.configure()
        SplightConfigurator().configure(auto_instrumentation_version=instrumentation_version)
        _load_instrumentors(distro)
    except config.ConfigError as error:
        say(f"not shipping logs: {error}")
    except Exception as error:
        say(f"could not set up OpenTelemetry, the component runs without it ({type(error).__name__}: {error})")
