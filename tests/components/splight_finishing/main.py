"""A splight-lib component whose work is done after two runs of its task.

The task then stops the execution engine the way splight-lib offers
(``ExecutionEngine.stop()``), and the component ends through splight-lib's own
exit path. ``_setup_component`` is overridden so no spec.json or Splight API is
needed.
"""

import argparse

from splight_lib.component import SplightBaseComponent
from splight_lib.execution import Task
from splight_lib.logging import getLogger

logger = getLogger("FinishingComponent")


class FinishingComponent(SplightBaseComponent):
    def _setup_component(self, component_id: str) -> None:
        """No spec.json and no API call: nothing here needs the network."""

    def start(self) -> None:
        self._runs = 0
        self.execution_engine.add_task(
            Task(target=self._work, period=1),
            in_background=False,
            exit_on_fail=True,
        )
        self.execution_engine.start()

    def _work(self) -> None:
        self._runs += 1
        logger.info("run %d", self._runs)
        if self._runs == 2:
            self.execution_engine.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--component-id", required=True)
    args = parser.parse_args()
    print("component", args.component_id, "starting", flush=True)
    FinishingComponent(component_id=args.component_id).start()


if __name__ == "__main__":
    main()
