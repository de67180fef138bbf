"""Run the demo component under the runner against a local dev-engine and show what arrived.

python examples/run_demo.py
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from splight_runner.dev_engine.server import COLUMNS_LINE, DevEngine

HERE = Path(__file__).resolve().parent


def main() -> int:
    with DevEngine(out=sys.stdout) as engine:
        env = {
            **os.environ,
            "SPLIGHT_PLATFORM_API_HOST": engine.url,
            "SPLIGHT_ACCESS_ID": "dev-access",
            "SPLIGHT_SECRET_KEY": "dev-secret",
        }
        print(f"== dev-engine on {engine.url}; running the demo component under splight-runner", flush=True)
        print(f"== dev-engine {COLUMNS_LINE}\n", flush=True)
        code = subprocess.call(
            [
                sys.executable,
                "-m",
                "splight_runner.cli",
                "run-component",
                str(HERE / "demo" / "main.py"),
                "--component-id=demo-component",
            ],
            env=env,
        )
        engine.wait_for(lambda e: any(status == "Succeeded" for _, status in e.statuses), timeout=15)
        print(
            f"\n== component exit code {code}; the Engine received {len(engine.records)} records "
            f"and statuses {[status for _, status in engine.statuses]}"
        )
    return code


if __name__ == "__main__":
    sys.exit(main())
