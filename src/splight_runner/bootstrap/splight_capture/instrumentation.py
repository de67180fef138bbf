"""Upstream instrumentors, loaded from the component's own environment when it has them.

The rule for the ``logging`` instrumentor is written here once and read by both
ways in (the bootstrap under the runner, the ``splight`` distro under
``opentelemetry-instrument``): capture already takes every record, so the
instrumentor's ``LoggingHandler`` would export each one twice and its record
factory would cost every logging call. It is loaded only for what it alone does,
trace ids on every record for the component's own format
(``OTEL_PYTHON_LOG_CORRELATION=true``), without the ``logging.basicConfig``
upstream adds to that, which would change the component's output.
"""

from __future__ import annotations

import os

from . import entry_points, names

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

INSTRUMENTOR_GROUP = "opentelemetry_instrumentor"


def log_correlation() -> bool:
    return os.environ.get(names.OTEL_PYTHON_LOG_CORRELATION, "").strip().lower() == "true"


def instrumentor_kwargs(entry_point: Any, kwargs: dict[str, Any]) -> dict[str, Any] | None:
    """The keyword arguments to load ``entry_point``'s instrumentor with; None: do not load it."""
    if entry_point.name != "logging":
        return kwargs
    if not log_correlation():
        return None
    return dict(kwargs, enable_log_auto_instrumentation=False, set_logging_format=False, inject_trace_context=True)


def any_to_load() -> bool:
    """True when an installed instrumentor would do something (the loader itself costs start-up)."""
    declared = entry_points.declared().get(INSTRUMENTOR_GROUP, set())
    return bool(declared - {"logging"}) or ("logging" in declared and log_correlation())


def load() -> None:
    """Load the installed instrumentors as ``opentelemetry-instrument`` would, with the rule above."""
    from opentelemetry.instrumentation.auto_instrumentation._load import _load_instrumentors
    from opentelemetry.instrumentation.distro import BaseDistro

    class _Distro(BaseDistro):  # type: ignore[misc]
        def _configure(self, **kwargs: Any) -> None:
            pass

        def load_instrumentor(self, entry_point: Any, **kwargs: Any) -> None:
            wanted = instrumentor_kwargs(entry_point, kwargs)
            if wanted is not None:
                super().load_instrumentor(entry_point, **wanted)

    _load_instrumentors(_Distro())
