"""``splight-runner`` command line (stdlib argparse: the runner adds nothing to the component's dependencies).

Exit codes: the component's own (signal N → 128+N); 2 with one line on stderr for
a usage or configuration mistake, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, NoReturn

from splight_runner import __version__
from splight_runner import environment as names
from splight_runner import settings as config
from splight_runner.settings import UsageError

if TYPE_CHECKING:
    from splight_runner.supervisor.launch import PipelineSpec

PROG = "splight-runner"
USAGE_ERROR = 2

_DESCRIPTION = """\
Run Splight components under OpenTelemetry and ship their logs and status to the Splight Engine.

commands:
  run-component PATH/main.py --component-id=ID [-- ARGS...]
                        run a component (python main.py --component-id ID ARGS...) in PATH's folder
  run [--component-id=ID] -- CMD [ARGS...]
                        run any command (script.py, -m module, console script) under the distro
  run-agent             run splight-agent under the distro (PROCESS_TYPE=agent)
  gateway [--listen HOST:PORT] [--token TOKEN]
                        OTLP/HTTP receiver that turns OTLP logs into Engine calls
  dev-engine [--port N] [--record FILE]
                        local stand-in of the Engine's two endpoints, prints what it receives
  check                 validate the configuration and make one authenticated call to the Engine
  version               print the version
  help                  show this help

configuration (environment; a file /etc/config/NAME wins over the variable):
  SPLIGHT_ACCESS_ID, SPLIGHT_SECRET_KEY   Engine credentials
  SPLIGHT_PLATFORM_API_HOST               Engine base URL (default https://api.splight-ai.com)
  API_VERSION                             path prefix (default v3)
  COMPONENT_ID / COMPUTE_NODE_ID / AGENT_ID   the process id
  PROCESS_TYPE                            sender_type of every record
  OTEL_LOGS_EXPORTER                      splight (default), console, otlp, or a list like splight,otlp
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog.removeprefix(PROG + ' ')}: {message}")


def _split_double_dash(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    argv = list(argv)
    if "--" in argv:
        index = argv.index("--")
        return argv[:index], argv[index + 1 :]
    return argv, []


#: Log exporter names every installation has; any other is looked up among installed entry points.
_BUILT_IN_EXPORTERS = frozenset({"splight", "otlp", "console"})


def _pipeline_for(env: dict[str, str]) -> PipelineSpec | None:
    """The supervisor's pipeline, every setting checked now: a mistake is one line before the start."""
    from splight_runner.supervisor.launch import PipelineSpec

    exporters = tuple(dict.fromkeys(config.exporter_names(names.OTEL_LOGS_EXPORTER, "splight", env)))
    unknown = [name for name in exporters if name not in _BUILT_IN_EXPORTERS and not _exporter_installed(name)]
    if unknown:
        raise config.ConfigError(
            f"{names.OTEL_LOGS_EXPORTER}: no log exporter named {', '.join(map(repr, unknown))} "
            "(splight, otlp, console, none, or an installed opentelemetry_logs_exporter)"
        )
    delivery = config.delivery_settings(env)
    engine = config.engine_settings(env) if "splight" in exporters else None
    process_id = config.require_process_id(env) if engine is not None else config.process_id(env)
    if not exporters:
        return None
    return PipelineSpec(
        exporter_names=exporters,
        engine=engine,
        process_id=process_id,
        process_type=config.process_type(env),
        delivery=delivery,
        code_attributes=config.flag(names.OTEL_PYTHON_LOG_CODE_ATTRIBUTES, env),
    )


def _exporter_installed(name: str) -> bool:
    from importlib.metadata import entry_points

    return any(ep.name == name for ep in entry_points(group="opentelemetry_logs_exporter"))


def _launch(argv: list[str], cwd: str | None, overrides: dict[str, str]) -> int:
    from splight_runner.supervisor.launch import Launch, supervise

    env = {**os.environ, **overrides}
    pipeline = _pipeline_for(env)
    return supervise(
        Launch(
            argv=argv,
            cwd=cwd,
            env_overrides=overrides,
            pipeline=pipeline,
            export_timeout=config.delivery_settings(env).export_timeout,
            stop_grace=config.stop_grace(env),
        )
    )


def cmd_run_component(args: list[str]) -> int:
    own, extra = _split_double_dash(args)
    parser = _Parser(prog=f"{PROG} run-component", add_help=True)
    parser.add_argument("path", help="the component's main.py")
    parser.add_argument("--component-id", dest="component_id")
    ns = parser.parse_args(own)
    if not os.path.isfile(ns.path):
        raise UsageError(f"run-component: {ns.path}: no such file")
    folder, script = os.path.split(os.path.realpath(ns.path))
    overrides = {names.PROCESS_TYPE: os.environ.get(names.PROCESS_TYPE) or "component"}
    if ns.component_id:
        overrides[names.COMPONENT_ID] = ns.component_id
    component_id = ns.component_id or config.process_id({**os.environ, **overrides})
    argv = [sys.executable, script]
    if component_id:
        argv += ["--component-id", component_id]
    return _launch(argv + extra, folder, overrides)


def _command_argv(command: list[str]) -> list[str]:
    first = command[0]
    if first == "-m" or first.endswith(".py"):
        return [sys.executable, *command]
    import shutil

    resolved = shutil.which(first)
    if resolved is None:
        raise UsageError(f"run: {first}: command not found")
    return [resolved, *command[1:]]


def cmd_run(args: list[str]) -> int:
    own, command = _split_double_dash(args)
    parser = _Parser(prog=f"{PROG} run")
    parser.add_argument("--component-id", dest="component_id")
    ns = parser.parse_args(own)
    if not command:
        raise UsageError("run: nothing to run; usage: splight-runner run [--component-id=ID] -- CMD [ARGS...]")
    overrides = {names.PROCESS_TYPE: os.environ.get(names.PROCESS_TYPE) or "component"}
    if ns.component_id:
        overrides[names.COMPONENT_ID] = ns.component_id
    return _launch(_command_argv(command), None, overrides)


def cmd_run_agent(args: list[str]) -> int:
    own, extra = _split_double_dash(args)
    _Parser(prog=f"{PROG} run-agent").parse_args(own)
    overrides = {names.PROCESS_TYPE: "agent"}
    return _launch(_command_argv(["splight-agent", *extra]), None, overrides)


def cmd_dev_engine(args: list[str]) -> int:
    parser = _Parser(prog=f"{PROG} dev-engine")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--record", help="append what arrives as JSON lines to this file")
    parser.add_argument("--access-id", default=os.environ.get(names.SPLIGHT_ACCESS_ID) or "dev-access")
    parser.add_argument("--secret-key", default=os.environ.get(names.SPLIGHT_SECRET_KEY) or "dev-secret")
    parser.add_argument("--api-version", default=os.environ.get(names.API_VERSION) or config.DEFAULT_API_VERSION)
    parser.add_argument("--quiet", action="store_true", help="do not print the records")
    ns = parser.parse_args(args)
    if not 0 <= ns.port <= 65535:
        raise UsageError(f"dev-engine: --port {ns.port} is not a TCP port")
    from splight_runner.dev_engine import server as dev_engine

    return dev_engine.run(
        ns.host,
        ns.port,
        access_id=ns.access_id,
        secret_key=ns.secret_key,
        api_version=ns.api_version,
        record_path=ns.record,
        quiet=ns.quiet,
    )


def cmd_gateway(args: list[str]) -> int:
    try:
        from splight_runner.gateway import command as gateway
    except ImportError as error:
        raise config.ConfigError(
            f"gateway: needs the optional extra (pip install 'splight-runner[gateway]'): {error}"
        ) from None
    return gateway.main(args)


def cmd_check(args: list[str]) -> int:
    _Parser(prog=f"{PROG} check").parse_args(args)
    from splight_runner.engine.client import EngineClient, EngineError

    engine = config.engine_settings()
    process_id = config.process_id()
    exporters = config.exporter_names(names.OTEL_LOGS_EXPORTER, "splight")
    print(f"Engine:       {engine.base_url}")
    print(f"Access id:    {engine.access_id}")
    print(f"Process id:   {process_id or '(not set: run-component needs --component-id or COMPONENT_ID)'}")
    print(f"Process type: {config.process_type()}")
    print(f"Logs go to:   {', '.join(exporters) or 'nowhere (OTEL_LOGS_EXPORTER=none)'}")
    client = EngineClient(engine, timeout=10.0)
    try:
        client.write_logs(b'{"records":[]}')
    except EngineError as error:
        if error.status == 400:
            print("Engine:       reachable, credentials accepted")
            return 0
        print(f"Engine:       {error}", file=sys.stderr)
        if error.status in (401, 403):
            print(f"{PROG}: check: the Engine rejected the credentials", file=sys.stderr)
        return 1
    finally:
        client.close()
    print("Engine:       reachable, credentials accepted")
    return 0


def _help() -> int:
    print(f"usage: {PROG} COMMAND [ARGS...]\n\n{_DESCRIPTION}")
    return 0


COMMANDS = {
    "run-component": cmd_run_component,
    "run": cmd_run,
    "run-agent": cmd_run_agent,
    "gateway": cmd_gateway,
    "dev-engine": cmd_dev_engine,
    "check": cmd_check,
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        print(f"usage: {PROG} COMMAND [ARGS...]  (try '{PROG} help')", file=sys.stderr)
        return USAGE_ERROR
    if argv[0] in ("help", "--help", "-h"):
        return _help()
    if argv[0] in ("version", "--version", "-V"):
        print(f"{PROG} {__version__}")
        return 0
    command = COMMANDS.get(argv[0])
    try:
        if command is None:
            raise UsageError(f"unknown command {argv[0]!r} (try '{PROG} help')")
        return command(argv[1:])
    except config.ConfigError as error:  # UsageError included
        print(f"{PROG}: {error}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
