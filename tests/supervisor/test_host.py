"""PipelineHost: what a component process wrote on its channel is read, however late the reader runs.

A real component process (the bootstrap on its PYTHONPATH, as the supervisor
starts it) talks to a real host and its real pipeline, which ships to a
dev-engine on 127.0.0.1.
"""

from __future__ import annotations

import subprocess
import sys
import time

from splight_runner.pipeline.deadline import ExitDeadline
from splight_runner.settings import delivery_settings, engine_settings
from splight_runner.supervisor.host import PipelineHost
from splight_runner.supervisor.launch import PipelineSpec, build_pipeline, child_environment
from support import engine_env, write_component


def test_a_component_that_connected_wrote_and_exited_before_the_reader_first_ran_is_read(dev_engine, tmp_path):
    """On a busy machine the runner's reader (at a lower priority) may not run once in a short component's life.

    Here it does not run at all until the component has exited: the connection
    waits in the listener's backlog and the records in the socket. Stopping the
    reading must still take them (it once ended the reader before its first look,
    and the runner said the component "never connected").
    """
    main = write_component(
        tmp_path / "component",
        """
        import logging
        log = logging.getLogger("app")
        log.warning("first")
        log.warning("second")
        """,
    )
    env = engine_env(dev_engine)
    spec = PipelineSpec(("splight",), engine_settings(env), "C1", "component", delivery_settings(env))
    host = PipelineHost(str(tmp_path))
    try:
        child = subprocess.run(
            [sys.executable, str(main)],
            env=child_environment(env, {"COMPONENT_ID": "C1"}, host.path),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert child.returncode == 0, child.stderr
        host.start_pipeline(lambda: build_pipeline(spec))
        host.start()
        pipeline = host.finish(ExitDeadline(time.monotonic() + 10))
        assert host.connections_seen == 1
        assert pipeline.end("Succeeded", time.monotonic() + 10) == 0
    finally:
        host.close()
    assert [record["message"] for record in dev_engine.records] == ["first", "second"]
    assert dev_engine.statuses == [("C1", "Succeeded")]
