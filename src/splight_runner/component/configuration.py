"""Setting the distro up inside the component's process.

Under ``opentelemetry-instrument`` (no runner) the pipeline runs in the
component: the ``splight`` configurator entry point reaches :func:`configure_sdk`,
which builds the SDK here and feeds it from the bootstrap's capture. (Under the
runner the component only captures: the bootstrap's ``startup``.) A failure here
prints one line and the component runs unshipped — the runner must never be why
it fails.

The SDK is built before the component's first line, not lazily on the first
record. Building it later was tried and measured (a no-op component started in a
fifth of the time) but it cannot be made safe: a component that logs and ends
at once makes the SDK import run during interpreter shutdown, where
``concurrent.futures`` refuses work (the SDK's resource detection needs it),
Python 3.12 refuses new threads, LIFO ``atexit`` order runs the late provider's
shutdown before our flush, and any ``eval`` of a string clears CPython's
"unhandled KeyboardInterrupt" flag (exit 1 instead of death by SIGINT). Start-up
is kept short instead by skipping upstream's instrumentor loader when no
instrumentor needs loading, and by building the distro's default configuration
(``splight`` logs only, no traces or metrics exported, no upstream plug-ins)
directly from the SDK's provider classes: upstream's ``_initialize_components``
would import the metrics SDK and ``logging.config`` and scan every installed
distribution's entry points to arrive at the same providers: about 100 ms, a
fifth of a bootstrapped no-op component's start-up on the benchmark machine.
Anything beyond the defaults goes through upstream, unchanged.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from splight_runner import environment as names
from splight_runner import settings as config
from splight_runner.bootstrap.splight_capture.entry_points import declared as declared_entry_points
from splight_runner.bootstrap.splight_capture.startup import is_top_process
from splight_runner.diagnostics import say
from splight_runner.engine import records
from splight_runner.pipeline.accounting import DropCounter
from splight_runner.pipeline.resource import resource_attributes

#: How often the capture thread drains when the hot path has not woken it.
_CAPTURE_DRAIN_INTERVAL = 0.2


def _splight_exporter_problem(process_id: str | None, id_problem: str | None = None) -> str | None:
    """None when the ``splight`` exporter can work, else the one-line reason it cannot."""
    try:
        config.engine_settings()
        if process_id is None:
            if id_problem is not None:
                return id_problem
            config.require_process_id()
    except config.ConfigError as error:
        return str(error)
    return None


class SdkSetup:
    """The SDK providers, built once through the SDK's own configuration path."""

    def __init__(
        self,
        drops: DropCounter,
        configurator_kwargs: dict[str, Any],
        delivery: config.DeliverySettings,
        process_id: str | None,
    ) -> None:
        self._drops = drops
        self._process_id = process_id
        self._kwargs = configurator_kwargs
        self._delivery = delivery
        self.logger_provider: Any = None
        self.processors: list[Any] = []

    def build(self) -> Any:
        """Build the providers (once, before the component runs); the LoggerProvider, None when it cannot be built."""
        try:
            self._build()
        except Exception as error:
            say(f"could not set up OpenTelemetry, records are not shipped ({type(error).__name__}: {error})")
        return self.logger_provider

    def _build(self) -> None:
        from opentelemetry._logs import get_logger_provider

        from splight_runner.pipeline.exporter import SplightLogExporter
        from splight_runner.pipeline.processor import SplightLogRecordProcessor

        def processor_for(exporter: Any) -> Any:
            if isinstance(exporter, SplightLogExporter):
                processor = SplightLogRecordProcessor(exporter, drops=self._drops, settings=self._delivery)
                self.processors.append(processor)
                return processor
            from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

            return BatchLogRecordProcessor(exporter)

        version = self._kwargs.get("auto_instrumentation_version")
        if version is None:
            from opentelemetry.instrumentation.version import __version__ as version
        attributes = resource_attributes(self._process_id, config.process_type())
        if self.short_path_possible():
            exporter = SplightLogExporter(process_id=self._process_id, timeout=self._delivery.export_timeout)
            _build_defaults(attributes, version, processor_for(exporter))
        else:
            from opentelemetry.sdk._configuration import _initialize_components

            _initialize_components(
                auto_instrumentation_version=version,
                resource_attributes=attributes,
                setup_logging_handler=False,
                export_log_record_processor=processor_for,
            )
        self.logger_provider = get_logger_provider()

    def short_path_possible(self) -> bool:
        """True when the configuration asked for is exactly the distro's defaults.

        Then ``_initialize_components`` would build: a tracer provider with no
        span processor, a logger provider with the Splight processor, and a meter
        provider with no reader. :func:`_build_defaults` builds the first two; the
        third is left to the API's no-op, since without a reader it records nothing.
        """
        if set(self._kwargs) - {"auto_instrumentation_version"}:
            return False
        if config.exporter_names(names.OTEL_LOGS_EXPORTER, "splight") != ["splight"]:
            return False
        if config.exporter_names(names.OTEL_TRACES_EXPORTER, "none") or config.exporter_names(
            names.OTEL_METRICS_EXPORTER, "none"
        ):
            return False
        if any(os.environ.get(name, "").strip() for name in names.UPSTREAM_SETUP_VARIABLES):
            return False
        return _UPSTREAM_OPAMP_GROUP not in declared_entry_points()


def _build_defaults(resource_attributes: dict[str, Any], version: str | None, processor: Any) -> None:
    """The providers of the distro's default configuration, from the SDK's own classes."""
    from opentelemetry._logs import set_logger_provider
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import set_tracer_provider

    if version:
        resource_attributes = {**resource_attributes, "telemetry.auto.version": version}
    # Resource.create applies OTEL_RESOURCE_ATTRIBUTES, OTEL_SERVICE_NAME and the detectors, as upstream's set-up does.
    resource = Resource.create(resource_attributes)
    set_tracer_provider(TracerProvider(resource=resource))
    logger_provider = LoggerProvider(resource=resource)
    set_logger_provider(logger_provider)
    logger_provider.add_log_record_processor(processor)


def configure_sdk(**kwargs: Any) -> None:
    """In-process (``opentelemetry-instrument``): build the SDK, hook capture, health and the exit paths.

    A configuration mistake is one line on stderr, never an exception: the component runs, and what
    can still work does (an unknown exporter is left out, a malformed ``OTEL_BLRP_*`` gives the defaults).
    """
    try:
        _configure_sdk(kwargs)
    except config.ConfigError as error:
        say(f"OpenTelemetry is not set up, records are not shipped: {error}")


def _checked_exporters_in_process(variable: str, default: str) -> list[str]:
    """``variable``'s exporters; unknown names are said in one line and left out (of the variable too,
    so that upstream's set-up does not fail on them)."""
    chosen, problem = config.checked_exporters(
        variable, default, lambda group: declared_entry_points().get(group, set())
    )
    if problem is not None:
        say(f"{problem}; left out")
        os.environ[variable] = ",".join(chosen) or "none"
    return chosen


def _adopt_process_id() -> tuple[str | None, str | None]:
    """The process id and, when it is malformed, the one line saying so (the id is then None).

    A variable (or its secrets file) wins; else the component's own ``--component-id`` argument,
    which then becomes ``COMPONENT_ID`` for this process and its children (as under ``run-component``).
    """
    try:
        process_id = config.process_id()
        if process_id is not None:
            return process_id, None
        process_id = config.process_id(os.environ, sys.argv)
    except config.ConfigError as error:
        return None, str(error)
    if process_id is not None:
        os.environ[names.COMPONENT_ID] = process_id
    return process_id, None


def _delivery_settings_in_process() -> config.DeliverySettings:
    """``OTEL_BLRP_*``; a malformed one is said in one line and removed, so that every batch processor
    (the SDK's too) uses its default."""
    for name in names.OTEL_BLRP_VARIABLES:
        try:
            config.positive_int(name, 1)
        except config.ConfigError as error:
            say(f"{error}; the default is used")
            os.environ.pop(name, None)
    return config.delivery_settings()


def _configure_sdk(kwargs: dict[str, Any]) -> None:
    from splight_runner.bootstrap.splight_capture import capture, health, lifecycle
    from splight_runner.component import endings
    from splight_runner.component.intake import InProcessIntake
    from splight_runner.pipeline.logs import LogPipeline

    records.send_historical_fields_only(config.historical_record_fields())
    process_id, id_problem = _adopt_process_id()
    log_exporters = _checked_exporters_in_process(names.OTEL_LOGS_EXPORTER, "splight")
    _checked_exporters_in_process(names.OTEL_TRACES_EXPORTER, "none")
    _checked_exporters_in_process(names.OTEL_METRICS_EXPORTER, "none")
    # Every signal: one OTLP/gRPC exporter missing would fail upstream's set-up for all of them.
    for variable, _, default in names.OTLP_SIGNALS:
        grpc_problem = config.otlp_grpc_problem(exporters=variable)
        if grpc_problem is not None:
            say(f"{grpc_problem}; otlp left out")
            kept = [name for name in config.exporter_names(variable, default) if name != "otlp"]
            os.environ[variable] = ",".join(kept) or "none"
            if variable == names.OTEL_LOGS_EXPORTER:
                log_exporters = [name for name in log_exporters if name != "otlp"]
    if "splight" in log_exporters:
        problem = _splight_exporter_problem(process_id, id_problem)
        if problem is not None:
            say(f"not sending to the Splight Engine: {problem}")
            log_exporters = [name for name in log_exporters if name != "splight"]
            os.environ[names.OTEL_LOGS_EXPORTER] = ",".join(log_exporters) or "none"
    elif id_problem is not None:
        say(f"{id_problem}: records carry no process id")
    delivery = _delivery_settings_in_process()
    top = is_top_process()

    drops = DropCounter()
    sdk = SdkSetup(drops, kwargs, delivery, process_id)
    provider = sdk.build()
    if provider is None or not log_exporters:
        return

    pipeline = LogPipeline(
        provider,
        splight=sdk.processors[0] if sdk.processors else None,
        process_type=config.process_type(),
        code_attributes=config.flag(names.OTEL_PYTHON_LOG_CODE_ATTRIBUTES),
    )
    intake = InProcessIntake(
        pipeline.emit,
        limit=delivery.max_queue_size,
        wake_at=delivery.max_export_batch_size,
        interval=_CAPTURE_DRAIN_INTERVAL,
    )
    capture.install(intake, intake.own_threads)
    submit = intake.submit
    health.install(lambda engine_state: submit(capture.status_item(engine_state)))
    watch = lifecycle.ExitWatch() if top else None
    ending = endings.InProcess(
        intake,
        pipeline,
        tracer_provider=_sdk_tracer_provider(),
        export_timeout=delivery.export_timeout,
        owes_final_status=top,
    )
    lifecycle.install(ending, watch=watch, top_process=top)


def _sdk_tracer_provider() -> Any:
    """The SDK tracer provider when one exports spans (it must be flushed on every exit path)."""
    if not config.exporter_names(names.OTEL_TRACES_EXPORTER, "none"):
        return None
    from opentelemetry.trace import get_tracer_provider

    provider = get_tracer_provider()
    return provider if hasattr(provider, "force_flush") else None


#: Entry point group through which upstream's set-up starts an OpAMP client.
_UPSTREAM_OPAMP_GROUP = "_opentelemetry_opamp"
