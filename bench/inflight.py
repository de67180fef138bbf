"""``python -m bench.inflight``: Engine calls in flight (1, 2, 4, 8) against a 30 ms and a 300 ms Engine.

Each configuration runs ``burst.py`` (N records logged, then exit at once) under
``run-component`` against the dev-engine with a per-call delay, with a long exit
deadline so that every run delivers everything and the time it takes is what is
measured. The figure is the time from the component's exit to the Engine having
every record and the final status; the table in docs/performance.md is this
script's output. Configurations alternate run by run (1, 2, 4, 8, 1, 2, ...),
so a machine that gets busier slows them alike.
"""

from __future__ import annotations

import argparse
import sys

from bench.harness import DASH, med, progress
from bench.rows import far_engine_run
from splight_runner.dev_engine.server import DevEngine


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.inflight", description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=30_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", default="1,2,4,8", help="comma-separated values to measure")
    parser.add_argument("--delays", default="0.03,0.3", help="comma-separated per-call delays (seconds)")
    ns = parser.parse_args(argv)
    levels = [int(v) for v in ns.concurrency.split(",")]
    delays = [float(v) for v in ns.delays.split(",")]
    print(f"| Engine a call | in flight | exit → all records and final status, s: median (min{DASH}max) "
          "| records/s after exit | delivered | within the 10 s deadline |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    with DevEngine(out=None) as engine:
        for delay in delays:
            engine.set_delay(delay)
            runs: dict[int, list[dict[str, float]]] = {level: [] for level in levels}
            for index in range(ns.runs):
                for level in levels:
                    progress(f"{delay * 1000:.0f} ms, {level} in flight, run {index + 1}/{ns.runs}")
                    runs[level].append(far_engine_run(engine, ns.records, level, export_timeout_ms=120_000))
            for level in levels:
                times = [run["all"] for run in runs[level]]
                rates = [ns.records / run["records"] for run in runs[level]]
                got = min(int(run["received"]) for run in runs[level])
                ordered = all(run["final"] and run["status_last"] for run in runs[level])
                within = sum(1 for t in times if t < 10.0)
                print(
                    f"| {delay * 1000:.0f} ms | {level} | {med(times):.2f} ({min(times):.2f}{DASH}{max(times):.2f}) "
                    f"| {med(rates):,.0f} | {got:,}/{ns.records:,}, final status last: {'yes' if ordered else 'NO'} "
                    f"| {within}/{len(times)} |"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
