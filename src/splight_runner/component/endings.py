"""How a component process ends under ``opentelemetry-instrument``, where the pipeline is in it.

Ending is feeding what capture holds into the pipeline and one flush with the
export deadline; the component's top process adds its own final status. (Under
the runner a process only hands over: the bootstrap's ``handover``.)
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from splight_runner.bootstrap.splight_capture.handover import flush_spans
from splight_runner.engine import records
from splight_runner.pipeline.ending import ending_record, how_it_ended, owes_last_words

if TYPE_CHECKING:
    from splight_runner.bootstrap.splight_capture.lifecycle import ExitWatch
    from splight_runner.component.intake import InProcessIntake
    from splight_runner.pipeline.logs import LogPipeline


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
        ending = last = None
        if watch is not None and self.owes_final_status:
            ending = records.exit_status(watch.code, watch.stopped)
            if owes_last_words(watch.code, watch.stopped):
                # What the process can see of its own end: its exit code and SystemExit text.
                last = ending_record(how_it_ended(watch.code), watch.text or "")
        never_fed = self.intake.close()
        lost = self.intake.dropped + self.intake.lost + never_fed
        self.pipeline.end(ending, give_up_at, lost_before=lost, last_words=last)
        flush_spans(self.tracer_provider, give_up_at - time.monotonic())

    def before_exec(self) -> None:
        """What capture holds goes into the pipeline and out, within the export timeout: the new image
        starts with an empty one (and, being the same process, still owes the final status)."""
        give_up_at = time.monotonic() + self.export_timeout
        self.intake.flush(give_up_at - time.monotonic())
        self.pipeline.flush(give_up_at)
        flush_spans(self.tracer_provider, give_up_at - time.monotonic())

    def after_fork_in_child(self) -> None:
        self.owes_final_status = False  # a forked child is not the component: its end is not the component's
        self.intake.after_fork_in_child()
        self.pipeline.after_fork_in_child()
