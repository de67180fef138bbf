"""What the bootstrap ``sitecustomize`` calls in a component the runner started: :func:`start`.

Capture only: every ``logging`` record, every OTel Logs API record and every
splight-lib engine state go to the runner over the channel; the runner (this
process's parent) checked the configuration and hosts the pipeline. Nothing
here imports anything but the standard library and this package, so the
component's environment needs nothing of the runner's. A failure is one line
on stderr and the component runs unshipped: the runner must never be why it
fails.
"""

from __future__ import annotations

import os

from . import capture, channel, health, instrumentation, lifecycle, names, otel, output, tail
from .handover import HandOver
from .voice import say

#: ``OTEL_BLRP_EXPORT_TIMEOUT``'s default, in ms (the runner has already refused a malformed one).
_EXPORT_TIMEOUT_MS = 10000


def is_top_process() -> bool:
    """True in the component's top process; its children (fork, spawn, subprocess) inherit the mark.

    ``os.execv`` keeps the process id, so a top process that re-executes itself stays the top one.
    """
    owner = os.environ.get(names.SPLIGHT_RUNNER_TOP_PROCESS)
    if owner is None:
        os.environ[names.SPLIGHT_RUNNER_TOP_PROCESS] = str(os.getpid())
        return True
    return owner == str(os.getpid())


def _exporting(variable: str) -> bool:
    value = os.environ.get(variable, "none")
    return any(part.strip().lower() not in ("", "none") for part in value.split(","))


def _export_timeout() -> float:
    try:
        milliseconds = int(os.environ.get(names.OTEL_BLRP_EXPORT_TIMEOUT, ""))
    except ValueError:
        milliseconds = _EXPORT_TIMEOUT_MS
    return (milliseconds if milliseconds > 0 else _EXPORT_TIMEOUT_MS) / 1000


def start() -> None:
    try:
        _start()
    except Exception as error:
        say(f"could not set up capture, the component runs unshipped ({type(error).__name__}: {error})")


def _start() -> None:
    top = is_top_process()
    state = os.environ.get(names.SPLIGHT_RUNNER_STATE)
    if top and state:
        tail.install(state)  # how it ended: the runner reads it after any death
    path = os.environ.get(names.SPLIGHT_RUNNER_CHANNEL)
    sink = None
    if path:
        sink = channel.Channel(path, write_through=not top, report_dir=state)
        as_records = os.environ.get(names.SPLIGHT_RUNNER_CAPTURE_OUTPUT, "").strip().lower() == "true"
        capture.install(sink, mark_handlers=as_records)
        if as_records:
            output.install(sink.submit)
        submit = sink.submit
        health.install(lambda engine_state: submit(capture.status_item(engine_state)))
    tracer_provider = None
    if _exporting(names.OTEL_TRACES_EXPORTER) or _exporting(names.OTEL_METRICS_EXPORTER):
        tracer_provider = otel.build_span_side(sink)
    elif sink is not None:
        otel.serve_logs_api(sink)
    if sink is not None or tracer_provider is not None:
        lifecycle.install(
            HandOver(sink, tracer_provider=tracer_provider, export_timeout=_export_timeout()), top_process=top
        )
    if instrumentation.any_to_load():
        instrumentation.load()
