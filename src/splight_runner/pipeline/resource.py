"""The component's resource attributes: one rule for both pipeline hosts.

Light on purpose (no OpenTelemetry import): the component's set-up reads it too.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from splight_runner import environment as names
from splight_runner import urls
from splight_runner.engine import records

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def resource_attributes(
    process_id: str | None, process_type: str, env: Mapping[str, str] | None = None
) -> dict[str, str]:
    """``splight.process.type``, ``splight.component.id`` and a ``service.name`` default.

    ``service.name`` is ``splight-<process type>`` unless ``OTEL_SERVICE_NAME`` or
    ``OTEL_RESOURCE_ATTRIBUTES`` names one (``Resource.create`` applies those).
    """
    env = os.environ if env is None else env
    attributes: dict[str, str] = {records.RESOURCE_PROCESS_TYPE: process_type}
    if process_id:
        attributes[records.RESOURCE_COMPONENT_ID] = process_id
    explicit = env.get(names.OTEL_RESOURCE_ATTRIBUTES, "")
    if not env.get(names.OTEL_SERVICE_NAME) and "service.name=" not in explicit.replace(" ", ""):
        attributes["service.name"] = f"splight-{process_type}"
    return attributes


def resource_text(attributes: Mapping[str, str]) -> str:
    """``attributes`` as ``OTEL_RESOURCE_ATTRIBUTES`` spells them (the form :func:`engine_identity` reads).

    How the runner hands the component's resource to a component that exports
    spans (``SPLIGHT_RUNNER_RESOURCE``): ``key=value`` pairs, comma separated,
    percent-encoded, so the component's side reads them without ``json``.
    """
    return ",".join(f"{urls.quote(key)}={urls.quote(value)}" for key, value in attributes.items())


def engine_identity(attributes: Mapping[str, Any], env: Mapping[str, str] | None = None) -> tuple[str | None, str]:
    """Whose records these are to the Engine (process id, sender type), as the SDK's resource would say.

    The direct path builds no ``Resource``: this reads the two attributes the
    Engine uses as ``Resource.create(attributes)`` would merge them, the given
    ones over ``OTEL_RESOURCE_ATTRIBUTES`` (``key=value`` pairs, comma separated,
    values percent-decoded).
    """
    env = os.environ if env is None else env
    from_env: dict[str, str] = {}
    for pair in env.get(names.OTEL_RESOURCE_ATTRIBUTES, "").split(","):
        key, equals, value = pair.partition("=")
        if equals:
            from_env[key.strip()] = urls.unquote(value.strip())
    merged = {**from_env, **attributes}
    process_id = merged.get(records.RESOURCE_COMPONENT_ID)
    sender_type = merged.get(records.RESOURCE_PROCESS_TYPE) or records.COMPONENT
    return (str(process_id) if process_id else None), str(sender_type)
