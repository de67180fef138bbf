"""What a component process does when it ends, in each of the two ways the runner is present.

:class:`HandOver` — under the runner: the supervisor hosts the pipeline and owes
the final status, so ending is writing what the channel still holds (the
supervisor reads it even after this process is gone) and flushing spans.

:class:`InProcess` — under ``opentelemetry-instrument``: the pipeline is here,
so ending is feeding what capture holds into it and one flush with the export
deadline; the component's top process adds its own final status.
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from splight_runner.component.capture import InProcessIntake
    from splight_runner.component.channel import Channel
    from splight_runner.component.lifecycle import ExitWatch
    from splight_runner.pipeline.logs import LogPipeline

#: At most this long for the supervisor to read what the channel still holds at exit.
_HAND_OVER_TIMEOUT = 2.0


def _flush_spans(tracer_provider: Any, timeout: float) -> None:
    if tracer_provider is None:
        return
    with contextlib.suppress(Exception):
        tracer_provider.force_flush(int(max(0.0, timeout) * 1000))


class HandOver:
    def __init__(self, channel: Channel, *, tracer_provider: Any = None, export_timeout: float) -> None:
        self.channel = channel
        self.tracer_provider = tracer_provider
        self.export_timeout = export_timeout

    def shutdown(self, watch: ExitWatch | None) -> None:
        self.channel.close(timeout=min(_HAND_OVER_TIMEOUT, self.export_timeout))
        _flush_spans(self.tracer_provider, self.export_timeout)

    def after_fork_in_child(self) -> None:
        self.channel.after_fork_in_child()


class InProcess:
    def __init__(
        self,
        intake: InProcessIntake,
        pipeline: LogPipeline,
        *,
        tracer_provider: Any = None,
        export_timeout: float,
        owes_final_status: bool,
    ) -> None:
        self.intake = intake
        self.pipeline = pipeline
        self.tracer_provider = tracer_provider
        self.export_timeout = export_timeout
        self.owes_final_status = owes_final_status

    def shutdown(self, watch: ExitWatch | None) -> None:
        give_up_at = time.monotonic() + self.export_timeout
        self.intake.flush(give_up_at - time.monotonic())
        ending = watch.ending() if watch is not None and self.owes_final_status else None
        never_fed = self.intake.close()
        self.pipeline.end(ending, give_up_at, lost_before=self.intake.dropped + never_fed)
        _flush_spans(self.tracer_provider, give_up_at - time.monotonic())

    def after_fork_in_child(self) -> None:
        self.owes_final_status = False  # a forked child is not the component: its end is not the component's
        self.intake.after_fork_in_child()
        self.pipeline.after_fork_in_child()
