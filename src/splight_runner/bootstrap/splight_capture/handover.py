"""How a supervised component process ends: it hands over what it still holds.

The runner hosts the pipeline and owes the final status, so ending here is only
writing what the channel still holds (the runner reads it even after this
process is gone) and flushing the spans the component's own SDK exports.
"""

from __future__ import annotations

from . import output, tail
from .channel import Channel
from .lifecycle import ExitWatch

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: At most this long for the runner to read what the channel still holds at exit.
HAND_OVER_TIMEOUT = 2.0


def flush_spans(tracer_provider: Any, timeout: float) -> None:
    if tracer_provider is None:
        return
    try:
        tracer_provider.force_flush(int(max(0.0, timeout) * 1000))
    except Exception:
        pass


class HandOver:
    def __init__(self, channel: Channel | None, *, tracer_provider: Any = None, export_timeout: float) -> None:
        self.channel = channel
        self.tracer_provider = tracer_provider
        self.export_timeout = export_timeout

    def shutdown(self, watch: ExitWatch | None) -> None:
        output.flush()
        if self.channel is not None:
            self.channel.close(timeout=min(HAND_OVER_TIMEOUT, self.export_timeout))
        flush_spans(self.tracer_provider, self.export_timeout)

    def before_exec(self) -> None:
        if self.channel is not None:
            self.channel.write(blocking_for=min(HAND_OVER_TIMEOUT, self.export_timeout))
        flush_spans(self.tracer_provider, self.export_timeout)

    def after_fork_in_child(self) -> None:
        tail.after_fork_in_child()
        if self.channel is not None:
            self.channel.after_fork_in_child()
