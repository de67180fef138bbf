"""What the bootstrap ``sitecustomize`` calls in a supervised component: :func:`start`.

Its own module so that the imports go one way: :mod:`.distro` (the entry points)
and this module both use :mod:`.configuration`, which imports neither. The
distro class is imported only when an instrumentor is to be loaded: importing
``opentelemetry.instrumentation.distro`` costs about as much as the rest of the
set-up.
"""

from __future__ import annotations

import os

from splight_runner import environment as names
from splight_runner import settings as config
from splight_runner.component.configuration import (
    apply_distro_defaults,
    capture_for_supervisor,
    configure_sdk,
    declared_entry_points,
)
from splight_runner.diagnostics import say


def _instrumentors_to_load() -> bool:
    declared = declared_entry_points().get("opentelemetry_instrumentor", set())
    correlation = config.flag(names.OTEL_PYTHON_LOG_CORRELATION)
    return bool(declared - {"logging"}) or ("logging" in declared and correlation)


def start() -> None:
    """Called by the bootstrap ``sitecustomize`` when the supervisor activated the runner."""
    try:
        apply_distro_defaults()
        channel = os.environ.get(names.SPLIGHT_RUNNER_CHANNEL)
        if channel:
            capture_for_supervisor(channel)
        else:
            configure_sdk()
        if _instrumentors_to_load():
            from opentelemetry.instrumentation.auto_instrumentation._load import _load_instrumentors

            from splight_runner.component.distro import SplightDistro

            _load_instrumentors(SplightDistro())
    except config.ConfigError as error:
        say(f"not shipping logs: {error}")
    except Exception as error:
        say(f"could not set up OpenTelemetry, the component runs without it ({type(error).__name__}: {error})")
