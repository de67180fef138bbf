"""The OpenTelemetry distro and configurator named ``splight``.

The configurator hands over to :func:`splight_runner.component.configuration.configure_sdk`,
the set-up ``run-component`` uses too: the SDK's own configuration path
(``_initialize_components``) whenever anything beyond the distro's defaults is
asked for, so every ``OTEL_*`` variable means what the specification says. It
adds the Splight resource attributes, pairs the ``splight`` exporter with
:class:`~splight_runner.pipeline.processor.SplightLogRecordProcessor`, and installs the single capture path (the
``logging`` hook) instead of OTel's ``LoggingHandler``.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.instrumentation.distro import BaseDistro

from splight_runner import environment as names
from splight_runner import settings as config


class SplightDistro(BaseDistro):
    """Defaults that make ``opentelemetry-instrument`` ship to the Engine like ``run-component``."""

    def _configure(self, **kwargs: Any) -> None:
        from splight_runner.component.configuration import apply_distro_defaults

        apply_distro_defaults()

    def load_instrumentor(self, entry_point: Any, **kwargs: Any) -> None:
        if entry_point.name == "logging":
            # Our hook already captures every record: the instrumentor's LoggingHandler would send each
            # twice, and its record factory costs every logging call. It stays only for what it alone
            # does: trace ids in the component's own log format (OTEL_PYTHON_LOG_CORRELATION=true).
            if not config.flag(names.OTEL_PYTHON_LOG_CORRELATION):
                return
            kwargs["enable_log_auto_instrumentation"] = False
        super().load_instrumentor(entry_point, **kwargs)


class SplightConfigurator:
    """The ``opentelemetry_configurator`` entry point: providers, capture, health and exit hooks.

    Upstream's loader only calls ``configure(**kwargs)``. Not a subclass of the
    SDK's ``_OTelSDKConfigurator``: importing ``opentelemetry.sdk._configuration``
    (metrics SDK, ``logging.config``) is most of what the short default set-up saves.
    """

    _configured = False

    def configure(self, **kwargs: Any) -> None:
        if SplightConfigurator._configured:
            return  # the SDK's configurators are singletons that configure once; so is this one
        SplightConfigurator._configured = True
        from splight_runner.component import configuration  # deferred: keeps entry-point loading cheap

        configuration.configure_sdk(**kwargs)
