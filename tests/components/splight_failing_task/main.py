"""A splight-lib component whose critical task raises about 2 s after start.

Built on the real ``SplightBaseComponent`` so the process ends the way a real
component ends (splight-lib's own exit path), but ``_setup_component`` is
overridden: the stock one loads ``spec.json`` and fetches the component's
input from the Splight API, which a test must not need.
"""

import argparse
import time

from splight_lib.component import SplightBaseComponent
from splight_lib.execution import Task
from splight_lib.logging import getLogger

logger = getLogger("FailingComponent")


class FailingComponent(SplightBaseComponent):
    def _setup_component(self, component_id: str) -> None:
        """No spec.json and no API call: nothing here needs the network."""

    def start(self) -> None:
        self.execution_engine.add_task(
            Task(target=self._work, period=60),
            in_background=False,
            exit_on_fail=True,
        )
        self.execution_engine.start()

    def _work(self) -> None:
        logger.info("working")
        time.sleep(2)
        raise RuntimeError("critical task failed")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--component-id", required=True)
    args = parser.parse_args()
    print("component", args.component_id, "starting", flush=True)
    FailingComponent(component_id=args.component_id).start()


if __name__ == "__main__":
    main()
