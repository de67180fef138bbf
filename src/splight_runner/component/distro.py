"""The OpenTelemetry distro and configurator named ``splight``.

The configurator hands over to :func:`splight_runner.component.configuration.configure_sdk`,
the set-up ``run-component`` uses too: the SDK's own configuration path
(``_initialize_components``) whenever anything beyond the distro's defaults is
asked for, so every ``OTEL_*`` variable means what the specification says. It
adds the Splight resource attributes, pairs the ``splight`` exporter with
:class:`~splight_runner.pipeline.processor.SplightLogRecordProcessor`, and installs the single capture path (the
``logging`` hook) instead of OTel's ``LoggingHandler``.

Next to other distros (``opentelemetry-distro`` is what OpenTelemetry's getting-started pages
install), ``opentelemetry-instrument`` loads one distro (``OTEL_PYTHON_DISTRO``, else the first
it finds) and one configurator (``OTEL_PYTHON_CONFIGURATOR``, else the first). :func:`selection`
works out which, for ``splight-runner check``. Under the ``splight`` distro, upstream's warnings
that it did not load the other configurators are silenced (they are the selection working); the
``splight`` configurator under another distro sets nothing up and says so in one line, since that
distro's logging instrumentor would add a handler that exports every record a second time.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any, NamedTuple

from opentelemetry.instrumentation.distro import BaseDistro

from splight_runner import environment as names
from splight_runner import settings as config
from splight_runner.bootstrap.splight_capture.instrumentation import instrumentor_kwargs
from splight_runner.diagnostics import say

SPLIGHT = "splight"
DISTRO_GROUP = "opentelemetry_distro"
CONFIGURATOR_GROUP = "opentelemetry_configurator"
#: The logger upstream's loader warns through when it skips a configurator.
_UPSTREAM_LOADER_LOGGER = "opentelemetry.instrumentation.auto_instrumentation._load"

#: Set when ``opentelemetry-instrument`` loaded this distro (the configurator checks it).
_distro_loaded = False


class _OtherConfiguratorsSkipped(logging.Filter):
    """Drops upstream's "Configuration of X not loaded, splight already loaded" and "... because
    splight is set by OTEL_PYTHON_CONFIGURATOR": under this distro, that is the selection working."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.msg if isinstance(record.msg, str) else ""
        args = record.args if isinstance(record.args, tuple) else ()
        return not (message.startswith("Configuration of %s not loaded") and args[1:2] == (SPLIGHT,))


class SplightDistro(BaseDistro):
    """Defaults that make ``opentelemetry-instrument`` ship to the Engine like ``run-component``."""

    def _configure(self, **kwargs: Any) -> None:
        global _distro_loaded
        _distro_loaded = True
        config.apply_distro_defaults()
        logging.getLogger(_UPSTREAM_LOADER_LOGGER).addFilter(_OtherConfiguratorsSkipped())

    def load_instrumentor(self, entry_point: Any, **kwargs: Any) -> None:
        # One rule for both ways in (the bootstrap's instrumentation module): the logging one only for
        # log correlation, never its handler.
        wanted = instrumentor_kwargs(entry_point, kwargs)
        if wanted is not None:
            super().load_instrumentor(entry_point, **wanted)


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
        if not _distro_loaded:
            loaded = selection().distro
            say(
                f"the {SPLIGHT} configurator needs the {SPLIGHT} distro, but opentelemetry-instrument loaded "
                f"{f'the {loaded!r} distro' if loaded else 'no distro'}: nothing is exported; "
                f"set {names.OTEL_PYTHON_DISTRO}={SPLIGHT}"
            )
            return
        from splight_runner.component import configuration  # deferred: keeps entry-point loading cheap

        configuration.configure_sdk(**kwargs)


# --- which distro and configurator opentelemetry-instrument loads ------------------------------


class Plugin(NamedTuple):
    """An installed entry point of a distro or configurator group."""

    name: str
    distribution: str


class Selection(NamedTuple):
    """What ``opentelemetry-instrument`` loads, worked out as its loader does."""

    distros: list[Plugin]
    configurators: list[Plugin]
    #: The distro's entry point name; None: none matches, upstream's do-nothing default distro.
    distro: str | None
    #: The configurator's name; None: none runs.
    configurator: str | None

    @property
    def is_splight(self) -> bool:
        return self.distro == SPLIGHT and self.configurator == SPLIGHT

    def advice(self, env: Mapping[str, str]) -> str:
        """What to set so that ``opentelemetry-instrument`` uses splight-runner ("" when it does and
        nothing else can take its place)."""
        if self.is_splight:
            others = any(plugin.name != SPLIGHT for plugin in self.distros)
            if others and env.get(names.OTEL_PYTHON_DISTRO) != SPLIGHT:
                return f"another distro is installed: set {names.OTEL_PYTHON_DISTRO}={SPLIGHT} to keep this choice"
            return ""
        if not any(plugin.name == SPLIGHT for plugin in self.distros):
            return "splight-runner's entry points are not installed in this environment"
        steps = [f"set {names.OTEL_PYTHON_DISTRO}={SPLIGHT}"]
        if env.get(names.OTEL_PYTHON_CONFIGURATOR) not in (None, SPLIGHT):
            steps.append(f"unset {names.OTEL_PYTHON_CONFIGURATOR}")
        return " and ".join(steps)


def _installed(group: str) -> list[Plugin]:
    from importlib.metadata import entry_points

    found = []
    for entry_point in entry_points(group=group):
        dist = getattr(entry_point, "dist", None)
        found.append(Plugin(entry_point.name, f"{dist.name} {dist.version}" if dist is not None else "?"))
    return found


def selection(env: Mapping[str, str] | None = None) -> Selection:
    """The installed distros and configurators, and the ones ``opentelemetry-instrument`` loads:
    ``OTEL_PYTHON_DISTRO`` (else the first found), then ``OTEL_PYTHON_CONFIGURATOR``, else the
    distro's default (``splight`` under this distro), else the first found."""
    env = os.environ if env is None else env
    distros = _installed(DISTRO_GROUP)
    configurators = _installed(CONFIGURATOR_GROUP)
    wanted = env.get(names.OTEL_PYTHON_DISTRO)
    if wanted is None:
        distro = distros[0].name if distros else None
    else:
        distro = wanted if any(plugin.name == wanted for plugin in distros) else None
    wanted = env.get(names.OTEL_PYTHON_CONFIGURATOR)
    if wanted is None and distro == SPLIGHT:
        wanted = SPLIGHT
    if wanted is None:
        configurator = configurators[0].name if configurators else None
    else:
        configurator = wanted if any(plugin.name == wanted for plugin in configurators) else None
    return Selection(distros, configurators, distro, configurator)
