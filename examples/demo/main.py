"""A small component for the README's demo: the loggers a Splight component really has."""

import argparse
import logging
import threading
import time

# An ordinary module logger, as most libraries have.
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
log = logging.getLogger("demo")

# What splight-lib builds: a Logger outside logging's tree that does not propagate.
# A root handler never sees these records; the runner still ships them.
splight_logger = logging.Logger("demo.splight", logging.DEBUG)
splight_logger.propagate = False
splight_logger.addHandler(logging.StreamHandler())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--component-id", required=True)
    args = parser.parse_args()

    log.info("component %s starting", args.component_id)
    splight_logger.info("reading inputs", extra={"tags": "RUNTIME"})

    def worker(n: int) -> None:
        log.info("worker %d done", n)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    try:
        _ = 1 / 0
    except ZeroDivisionError:
        log.exception("a handled error, with its traceback")
    time.sleep(0.2)
    log.warning("component %s done", args.component_id)


if __name__ == "__main__":
    main()
